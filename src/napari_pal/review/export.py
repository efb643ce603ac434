"""The export of a review: every mask in the input's layout, the images, classes.txt, and
quality.csv; the backup kept when the input's own masks are overwritten; where runs go.

GUI-free: the widget's Export panel and the writer call it. Nothing is written into the
input folder unless the user asks to overwrite its masks, and then a backup is kept first.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_pal.atomic import atomic_path, write_text
from napari_pal.data.dataset import Layout, write_classes_txt, write_masks
from napari_pal.errors import DatasetError
from napari_pal.review.stack import LayerMasks, dataset_from_meta


def backup_masks(root: Path) -> Path:
    """Copy root/masks (and classes.txt) to root/masks.backup-<time> before overwriting."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = root / f"masks.backup-{stamp}"
    k = 1
    while dest.exists():
        dest = root / f"masks.backup-{stamp}-{k}"
        k += 1
    shutil.copytree(root / "masks", dest)
    if (root / "classes.txt").is_file():
        shutil.copy2(root / "classes.txt", dest / "classes.txt")
    return dest


def same_folder(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def export_masks(out: str | Path, meta: Mapping[str, Any], masks: LayerMasks, *,
                 overwrite_originals: bool = False, copy_images: bool = True,
                 skip: Sequence[str] = ()) -> list[Path]:
    """Write the masks of every image to ``out`` in the input's layout, at each image's size,
    with a copy of the images (so ``out`` opens as a dataset) and classes.txt. Images named
    in ``skip`` (drafts nobody accepted or edited) get no mask file; their image is still
    copied, so ``out`` opens with them as drafts again.

    Writing into the input folder itself needs ``overwrite_originals`` and then keeps a
    backup of its masks first. Returns the written files (plus a backup folder, if made).
    """
    out, root = Path(out), Path(meta["root"])
    written: list[Path] = []
    if same_folder(out, root):
        if not overwrite_originals:
            raise DatasetError(f"'{out}' is the input folder: its original masks are never "
                               "overwritten unless you ask for it (tick 'overwrite originals'; "
                               "a backup is kept). Fix: choose another folder.")
        written.append(backup_masks(root))
    elif root.resolve() in out.resolve().parents:
        raise DatasetError(f"'{out}' lies inside the input folder '{root}'; napari-pal never "
                           "writes into an input folder. Fix: choose a folder outside it.")
    layout = Layout(meta["layout"])
    classes = list(meta["classes"])
    names = meta["names"]
    ds = dataset_from_meta(meta) if copy_images and not same_folder(out, root) else None
    for i in range(len(names)):
        suffix = meta.get("suffixes", [None] * len(names))[i]
        if names[i] not in skip:
            written += write_masks(out, layout, classes, names[i], masks.masks(i),
                                   suffix=suffix)
        if ds is not None:
            src = ds.items[i].image_path
            dest = out / "images" / src.name
            if not (dest.exists() and dest.stat().st_size == src.stat().st_size
                    and dest.stat().st_mtime >= src.stat().st_mtime):
                with atomic_path(dest) as tmp:
                    shutil.copyfile(src, tmp)
                shutil.copystat(src, dest)
            written.append(dest)
    written.append(write_classes_txt(out, classes))
    return written


def quality_csv(names: Sequence[str], classes: Sequence[str], scores: Mapping[str, Any],
                status: Mapping[str, str]) -> str:
    """The export's quality.csv: the engine's score table plus review status, worst first."""
    from napari_pal.scoring.quality import scores_csv

    scored = [scores[n] for n in names if n in scores]
    return scores_csv(scored, classes, signals=False, status=status,
                      unscored=[n for n in names if n not in scores])


def write_quality_csv(path: str | Path, *args) -> Path:
    path = Path(path)
    write_text(path, quality_csv(*args))
    return path


def default_runs_dir(root: str | Path) -> Path:
    """A per-dataset folder for training runs in the user's cache (never in the input)."""
    import hashlib

    from platformdirs import user_cache_dir

    key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return Path(user_cache_dir("napari-pal")) / "runs" / f"{Path(root).name}-{key}"
