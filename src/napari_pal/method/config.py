"""Training settings: one record shared by the CLI, the GUI and the checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

STRATEGIES = ("baseline", "qam", "qam_ocm")
QAM_INPUTS = ("image+masks", "image+masks+prediction")
# the per-sample loss the quality module learns to rank: its cross-entropy part alone
# (default), or the segmenter's whole loss as in the paper, whose Dice part rewards
# over-drawn masks (see weighting.py and the README's method section)
QAM_LOSSES = ("bce", "bce+dice")


@dataclass
class TrainConfig:
    """Defaults are the CPU protocol: JSRT (165 images, 256 px) trains in under 20 min on
    2 cores.

    The paper's protocol is ``lr=1e-4, batch_size=32`` for many more iterations.
    """

    strategy: str = "qam_ocm"
    epochs: int = 60
    size: int = 256
    batch_size: int = 16
    lr: float = 1e-3
    lam: float = 1.0
    seed: int = 0
    width: int = 16
    depth: int = 4
    qam_width: int = 16
    qam_input: str = "image+masks+prediction"
    qam_loss: str = "bce"
    warmup_epochs: int = -1  # -1: a fifth of the epochs
    augment: bool = True
    precision: str = "auto"  # auto | fp32 | bf16
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 0  # 0: all cores

    def __post_init__(self) -> None:
        from napari_pal.errors import PalError

        if self.strategy not in STRATEGIES:
            raise PalError(f"unknown strategy {self.strategy!r}: "
                           f"choose one of {', '.join(STRATEGIES)}")
        if self.qam_input not in QAM_INPUTS:
            raise PalError(f"unknown qam_input {self.qam_input!r}: choose one of {QAM_INPUTS}")
        if self.qam_loss not in QAM_LOSSES:
            raise PalError(f"unknown qam_loss {self.qam_loss!r}: choose one of {QAM_LOSSES}")
        if self.size < 2**self.depth or self.size % 2**self.depth:
            raise PalError(f"size {self.size} must be a multiple of {2**self.depth} (2**depth)")
        for name in ("epochs", "batch_size", "width", "qam_width"):
            if getattr(self, name) < 1:
                raise PalError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.lam <= 0:
            raise PalError("lr and lam must be positive")

    @property
    def warmup(self) -> int:
        """Epochs of plain (uniform-weight) training before the quality module weighs samples."""
        if self.strategy == "baseline":
            return self.epochs
        return self.epochs // 5 if self.warmup_epochs < 0 else self.warmup_epochs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
