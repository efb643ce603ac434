"""Checkpoints: written atomically, read without running code.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers, so a
crafted pickle in a checkpoint is refused instead of executed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from napari_pal.atomic import atomic_path
from napari_pal.errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, state dicts, plain values) atomically."""
    state = {"format": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint safely; any problem becomes a CheckpointError naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here; train first "
                              f"(napari-pal train DATA --out RUN) and pass the RUN folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(
            f"{path}: not a napari-pal checkpoint that can be loaded safely ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); it may be damaged or crafted: retrain or use "
            f"a checkpoint you trust") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown checkpoint format; retrain with this version")
    for key in ("segmenter", "qam", "config", "classes"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}; retrain")
    return state
