"""Training settings: one record shared by the CLI, the GUI and the checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

STRATEGIES = ("baseline", "qam", "qam_ocm")
QAM_INPUTS = ("image+masks", "image+masks+prediction")
# the per-sample loss the quality module learns to rank: its cross-entropy part alone
# (default), or the segmenter's whole loss as in the paper, whose Dice part rewards
# over-drawn masks (see weighting.py and the README's method section)
QAM_LOSSES = ("bce", "bce+dice")
PRECISIONS = ("auto", "fp32", "bf16")


def parse_stages(text: str, multiple: int = 1) -> list[tuple[int, int]]:
    """``"96:12,128:36"`` -> [(96, 12), (128, 36)]; PalError naming the fix when malformed."""
    from napari_pal.errors import PalError

    stages = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        try:
            size, epochs = (int(x) for x in part.split(":"))
        except ValueError:
            raise PalError(f"stages {text!r}: each stage is SIZE:EPOCHS, e.g. '96:12,128:36'"
                           ) from None
        if size < multiple or size % multiple or epochs < 1:
            raise PalError(f"stages {text!r}: {part} needs a size that is a multiple of "
                           f"{multiple} and at least one epoch")
        stages.append((size, epochs))
    return stages


def _setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None) -> Any:
    """A training setting: its default, the help the CLI and the widget show, its choices."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Setting:
    """One training setting as the user interfaces present it."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None


@dataclass
class TrainConfig:
    """Defaults are the CPU protocol: JSRT (165 images, 256 px) trains in under 20 min on
    2 cores.

    The paper's protocol is ``lr=1e-4, batch_size=32`` for many more iterations.
    """

    strategy: str = _setting("qam_ocm", "baseline: plain U-Net; qam: quality-weighted losses; "
                             "qam_ocm: weights bounded by λ·tanh (the paper's full method)",
                             choices=STRATEGIES)
    epochs: int = _setting(60, "passes over the training images")
    size: int = _setting(256, "square training size in px (images are letterboxed to it)")
    batch_size: int = _setting(16, "images per mini-batch (the softmax weights are per batch)")
    lr: float = _setting(1e-3, "Adam learning rate (cosine schedule)")
    lam: float = _setting(1.0, "OCM bound λ in λ·tanh(t): two weights differ at most by e^(2λ)")
    seed: int = _setting(0, "random seed (initialisation, batches, augmentation)")
    width: int = _setting(16, "U-Net base width (channels of the first level)")
    depth: int = _setting(4, "U-Net levels (size must be a multiple of 2**depth)")
    qam_width: int = _setting(16, "quality module base width")
    qam_input: str = _setting("image+masks+prediction", "what the quality module sees",
                              choices=QAM_INPUTS)
    qam_loss: str = _setting("bce", "per-sample loss the quality module learns to rank",
                             choices=QAM_LOSSES)
    anchor: float = _setting(1.0, "how strongly reviewed (trusted) masks pull the quality "
                             "module's scores a margin above the others (0: off)")
    part_counts: str = _setting("all", "classes whose masks are judged by the folder's usual "
                                "number of parts (a lung left out scores 0): all, none, or "
                                "a comma list; leave out classes whose count varies by "
                                "nature (e.g. nodules)")
    warmup_epochs: int = _setting(-1, "epochs of equal weights before re-weighting "
                                  "(-1: a fifth of the epochs)")
    stages: str = _setting("", "progressive resizing: SIZE:EPOCHS,... trains those first "
                           "epochs at those sizes, the rest at size (e.g. 96:12,128:36); "
                           "empty: size throughout")
    ramp_epochs: int = _setting(0, "epochs over which λ grows from 0 after the warm-up "
                                "(0: full strength at once; -1: a tenth of the epochs)")
    augment: bool = _setting(True, "small random rotations, scalings, shifts and contrast "
                             "changes (no flips)")
    precision: str = _setting("auto", "auto: bfloat16 where the CPU or GPU runs it natively",
                              choices=PRECISIONS)
    device: str = _setting("auto", "auto, cpu, cuda, cuda:1 or mps")
    threads: int = _setting(0, "CPU threads (0: all cores)")

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
        staged = sum(e for _, e in parse_stages(self.stages, 2**self.depth))
        if staged >= self.epochs:
            raise PalError(f"stages {self.stages!r} take {staged} of the {self.epochs} epochs: "
                           "leave at least one epoch at size (fewer stage epochs, or more "
                           "epochs)")
        if self.anchor < 0:
            raise PalError(f"anchor must be 0 (off) or positive, got {self.anchor}")
        if self.lr <= 0 or self.lam <= 0:
            raise PalError("lr and lam must be positive")

    def part_count_classes(self, classes: list[str]) -> list[str]:
        """The classes of ``classes`` that ``part_counts`` names (PalError for a name that
        is not one of them)."""
        from napari_pal.errors import PalError

        text = self.part_counts.strip()
        if text in ("all", ""):
            return list(classes)
        if text == "none":
            return []
        named = [c.strip() for c in text.split(",") if c.strip()]
        unknown = [c for c in named if c not in classes]
        if unknown:
            raise PalError(f"part_counts names {', '.join(unknown)}, not a class of the data "
                           f"({', '.join(classes)}); give all, none or some of those")
        return [c for c in classes if c in named]

    @property
    def warmup(self) -> int:
        """Epochs of plain (uniform-weight) training before the quality module weighs samples."""
        if self.strategy == "baseline":
            return self.epochs
        return self.epochs // 5 if self.warmup_epochs < 0 else self.warmup_epochs

    @property
    def ramp(self) -> int:
        """Epochs over which the re-weighting grows to full strength after the warm-up."""
        return self.epochs // 10 if self.ramp_epochs < 0 else self.ramp_epochs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def settings(cls) -> list[Setting]:
        """Every setting with its default, help and choices: the CLI's options and the
        widget's training form are both built from this list."""
        return [Setting(f.name, f.type if isinstance(f.type, type) else
                        {"str": str, "int": int, "float": float, "bool": bool}[f.type],
                        f.default, f.metadata["help"], f.metadata["choices"])
                for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
