"""Label noise on a copy of a folder: the paper's (erode or dilate a random fraction of
the masks) or any annotator error kind of ``errorkinds``.

Engine of the ``corrupt`` command. It writes a new folder (same layout as the source) and
a corruption.csv ground truth; the source folder is only ever read.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_pal.atomic import atomic_path, write_text
from napari_pal.data import imagefiles as f
from napari_pal.data.dataset import Dataset, Layout, open_dataset, parse_split_spec, write_masks
from napari_pal.data.errorkinds import KINDS, PAPER_KINDS, CorruptionRecord, morph, pick, spoil
from napari_pal.errors import DatasetError

OPS = PAPER_KINDS  # the paper's noise, the default


def corrupt_mask(mask: np.ndarray, op: str, radius: int) -> np.ndarray:
    """Erode or dilate a bool (H, W) mask by a disk of ``radius`` pixels.

    Uses the exact Euclidean distance transform, which equals binary morphology with
    skimage.morphology.disk(radius) (x^2 + y^2 <= r^2) but costs the same for any radius.
    Outside the image counts as foreground for erosion, as in skimage.
    """
    mask = np.asarray(mask, bool)
    if op not in OPS:
        raise ValueError(f"unknown corruption {op!r}; use one of {OPS}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return morph(mask, op, radius)


def _check_out(src: Path, out: Path) -> None:
    s, o = src.resolve(), out.resolve()
    if o == s or o.is_relative_to(s):
        raise DatasetError(f"output folder '{out}' is the source folder or inside it ('{src}'). "
                           "Fix: choose an empty folder outside the source.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"output folder '{out}' is not empty. "
                           "Fix: choose an empty folder (or a new name).")


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _write_stored(out: Path, ds: Dataset, i: int, masks: np.ndarray) -> None:
    """Write corrupted masks in the source's layout, keeping each file's name and suffix."""
    it = ds.items[i]
    if ds.layout is Layout.CLASS_FOLDERS:
        for p, m in zip(it.mask_paths, masks):
            f.write_plane(out / p.relative_to(ds.root), m.astype(np.uint8) * 255)
        return
    write_masks(out, ds.layout, ds.classes, it.name, masks, suffix=it.mask_paths[0].suffix)


def corrupt_dataset(src: Path, out: Path, *, fraction: float, pixels: tuple[int, int],
                    seed: int = 0, ops: Sequence[str] = OPS, split: str | None = None,
                    classes_per_image: tuple[int, int] | None = None,
                    ) -> list[CorruptionRecord]:
    """Copy ``src`` to ``out``, spoiling the masks of round(fraction * n) images.

    ``ops``: kinds of ``errorkinds.KINDS`` (default the paper's erode/dilate), one drawn per
    spoilt class; ``pixels`` the size range of the sized kinds. ``classes_per_image`` None:
    every class of a picked image is spoilt (the paper's rule, same random numbers as
    before); (lo, hi): lo..hi of its classes.
    """
    src, out = Path(src), Path(out)
    lo, hi = (int(p) for p in pixels)
    if not 0.0 <= fraction <= 1.0:
        raise DatasetError(f"fraction {fraction} is not in [0, 1]. Fix: give e.g. 0.5.")
    if not 1 <= lo <= hi:
        raise DatasetError(f"pixels {pixels} is not a range 1 <= lo <= hi. Fix: give e.g. 5 15.")
    if not ops or any(op not in KINDS for op in ops):
        raise DatasetError(f"operations {list(ops)} must be among {KINDS}.")
    _check_out(src, out)
    ds = open_dataset(src, check=True)
    pool = ds.names
    if split is not None:
        pool = open_dataset(src, split=split, check=False).names
    rng = np.random.default_rng(seed)
    picked = pick(pool, fraction, rng)
    spoilt, records = spoil(ds.names, ds.classes, ds.read_stored_masks, picked, (lo, hi),
                            list(ops), rng, classes_per_image, donors=pool)
    out.mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(ds.items):
        _copy(it.image_path, out / it.image_path.relative_to(src))
        if it.name not in spoilt:
            for p in it.mask_paths:
                _copy(p, out / p.relative_to(src))
            continue
        _write_stored(out, ds, i, spoilt[it.name])
    if (src / "classes.txt").is_file():
        _copy(src / "classes.txt", out / "classes.txt")
    split_file = parse_split_spec(split)[0] if split is not None else src / "split.csv"
    if split_file.is_file():
        _copy(split_file, out / "split.csv")
    _write_csv(out / "corruption.csv", records)  # last: its presence marks a finished run
    return records


def _write_csv(path: Path, records: list[CorruptionRecord]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "class", "operation", "pixels", "detail"])
    w.writerows([r.name, r.cls, r.operation, r.pixels, r.detail] for r in records)
    write_text(path, buf.getvalue())


def read_corruption_csv(path: Path) -> dict[str, bool]:
    """name -> corrupted (any class with an operation other than "none")."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"cannot read '{path}' ({err}). Fix: give the corruption.csv "
                           "written by the corrupt command.") from err
    if rows and not {"name", "operation"} <= rows[0].keys():
        raise DatasetError(f"'{path}' needs columns name,class,operation,pixels. "
                           "Fix: give the corruption.csv written by the corrupt command.")
    out: dict[str, bool] = {}
    for row in rows:
        name = row["name"]
        out[name] = out.get(name, False) or (row["operation"] or "none").strip() != "none"
    return out


__all__ = ["CorruptionRecord", "corrupt_dataset", "corrupt_mask", "read_corruption_csv"]
