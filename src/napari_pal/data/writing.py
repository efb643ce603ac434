"""Writing masks in a dataset's layout (the inverse of reading it), atomically."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_pal.atomic import write_text
from napari_pal.data import imagefiles as f
from napari_pal.data.imagefiles import MASK_SUFFIXES
from napari_pal.data.layout import Layout
from napari_pal.errors import DatasetError


def _safe_name(name: str) -> str:
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
           or Path(name).is_absolute() or name.startswith("."))
    if bad:
        raise DatasetError(f"mask name '{name}' is not a plain file name. Fix: use the image's "
                           "name without folders, '..' or a leading dot.")
    return name


def write_masks(out_root: Path, layout: Layout, classes: Sequence[str], name: str,
                masks: np.ndarray, *, suffix: str | None = None) -> list[Path]:
    """Write bool (C, H, W) masks for ``name`` under out_root/masks/ in ``layout``, atomically."""
    name, layout, masks = _safe_name(name), Layout(layout), np.asarray(masks, bool)
    if masks.ndim != 3 or masks.shape[0] != len(classes):
        raise DatasetError(f"masks for '{name}' have shape {masks.shape}, expected "
                           f"({len(classes)}, H, W) for classes {list(classes)}.")
    suffix = (suffix or (".tif" if layout is Layout.MULTICHANNEL else ".png")).lower()
    allowed = (".tif", ".tiff") if layout is Layout.MULTICHANNEL else MASK_SUFFIXES
    if suffix not in allowed:
        raise DatasetError(f"cannot write {layout.value} masks as '{suffix}'. "
                           f"Fix: use one of {allowed}.")
    masks_dir = Path(out_root) / "masks"
    if layout is Layout.CLASS_FOLDERS:
        paths = [masks_dir / _safe_name(c) / f"{name}{suffix}" for c in classes]
        for p, m in zip(paths, masks):
            f.write_plane(p, m.astype(np.uint8) * 255)
        return paths
    path = masks_dir / f"{name}{suffix}"
    if layout is Layout.MULTICHANNEL:
        f.write_tiff(path, masks.astype(np.uint8) * 255)
        return [path]
    if (masks.sum(axis=0) > 1).any():
        warnings.warn("classes overlap; in a label image the later class wins where they do",
                      UserWarning, stacklevel=2)
    labels = np.zeros(masks.shape[1:], np.uint8 if len(classes) < 256 else np.uint16)
    for k, m in enumerate(masks, start=1):
        labels[m] = k
    f.write_plane(path, labels)
    return [path]


def write_classes_txt(out_root: Path, classes: Sequence[str]) -> Path:
    """Write out_root/classes.txt (one class per line) atomically."""
    path = Path(out_root) / "classes.txt"
    write_text(path, "".join(f"{c}\n" for c in classes))
    return path
