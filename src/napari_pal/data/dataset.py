"""The data layer: a folder of radiographs + masks, matched by file stem (GUI-free).

``open_dataset`` finds every problem in one pass and raises one DatasetError that names
each offending file with its fix. Nothing is ever written into the input folder.

An image with no mask at all is *unannotated*: an error by default (a forgotten mask must
not pass unnoticed), an Item with ``annotated == False`` when ``unannotated=True`` (predict
it, offer its prediction as a draft mask, never score or train on it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_pal.data import imagefiles as f
from napari_pal.data.imagefiles import IMAGE_SUFFIXES, MASK_SUFFIXES, MaskResampledWarning
from napari_pal.data.layout import Item, Layout
from napari_pal.data.matching import find_items, unmatched
from napari_pal.data.split import parse_split_spec, read_split
from napari_pal.data.writing import _safe_name, write_classes_txt, write_masks  # noqa: F401
from napari_pal.errors import DatasetError

__all__ = ["IMAGE_SUFFIXES", "MASK_SUFFIXES", "Dataset", "Item", "Layout",
           "MaskResampledWarning", "open_dataset", "parse_split_spec", "read_split",
           "write_classes_txt", "write_masks"]
# _safe_name (imported above) stays importable from here for review.recovery


@dataclass
class Dataset:
    root: Path
    layout: Layout
    classes: list[str]
    items: list[Item]

    @property
    def names(self) -> list[str]:
        return [it.name for it in self.items]

    @property
    def annotated_names(self) -> list[str]:
        return [it.name for it in self.items if it.annotated]

    @property
    def unannotated_names(self) -> list[str]:
        """Images without masks: their predictions are drafts (status "draft")."""
        return [it.name for it in self.items if not it.annotated]

    def annotated(self) -> Dataset:
        """The images that have masks (what training and scoring use)."""
        return replace(self, items=[it for it in self.items if it.annotated])

    def __len__(self) -> int:
        return len(self.items)

    def index(self, name: str) -> int:
        for i, it in enumerate(self.items):
            if it.name == name:
                return i
        raise DatasetError(f"no image named '{name}' in '{self.root}'. Fix: use one of the "
                           f"names in {self.root / 'images'}.")

    def image_shape(self, i: int) -> tuple[int, int]:
        """(H, W) read from the file header only."""
        p = self.items[i].image_path
        return f.plane_shape(f.stored_shape(p), p)

    def read_image(self, i: int) -> np.ndarray:
        """float32 (H, W) in [0, 1]."""
        return f.read_image(self.items[i].image_path)

    def read_stored_masks(self, i: int) -> np.ndarray:
        """bool (C, h, w) at the size the masks are stored."""
        it = self.items[i]
        if not it.annotated:
            raise DatasetError(f"image '{it.image_path}' has no mask in '{self.root / 'masks'}' "
                               "(unannotated: predict it, do not score it). Fix: add its masks.")
        if self.layout is Layout.CLASS_FOLDERS:
            return f.read_class_masks(it.name, it.mask_paths)
        if self.layout is Layout.LABEL_IMAGE:
            return f.read_label_mask(it.mask_paths[0], self.classes)
        return f.read_multichannel_mask(it.mask_paths[0], self.classes)

    def read_masks(self, i: int) -> np.ndarray:
        """bool (C, H, W) at the IMAGE's size (whole-factor resampled, with a warning)."""
        masks = self.read_stored_masks(i)
        return self._fit(i, masks, self.image_shape(i))

    def _fit(self, i: int, masks: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
        mask_hw = (int(masks.shape[1]), int(masks.shape[2]))
        if mask_hw == image_hw:
            return masks
        it = self.items[i]
        if not f.resample_factor_ok(mask_hw, image_hw):
            raise DatasetError(
                f"image '{it.image_path}' is {image_hw[0]}x{image_hw[1]} but its mask "
                f"'{it.mask_paths[0]}' is {mask_hw[0]}x{mask_hw[1]}. Fix: save the mask at the "
                "image's size (or a whole-number factor of it with the same aspect).")
        f.warn_resampled(mask_hw, image_hw, self.root / "masks")
        return f.resample_masks(masks, image_hw)

    def subset(self, names: Iterable[str]) -> Dataset:
        wanted = list(dict.fromkeys(names))
        have = set(self.names)
        missing = [n for n in wanted if n not in have]
        if missing:
            raise DatasetError(f"no images named {missing} in '{self.root / 'images'}'. "
                               "Fix: check the names (file stems, without suffix).")
        keep = set(wanted)
        return replace(self, items=[it for it in self.items if it.name in keep])


def _check(ds: Dataset, problems: list[str]) -> None:
    """Read every file once (streaming) and collect what is wrong with it."""
    seen = np.zeros(len(ds.classes), bool)
    sizes: set[tuple[tuple[int, int], tuple[int, int]]] = set()
    for i in range(len(ds.items)):
        try:
            hw = ds.read_image(i).shape
        except DatasetError as err:
            problems.append(str(err))
            hw = None
        if not ds.items[i].annotated:
            continue
        try:
            masks = ds.read_stored_masks(i)
        except DatasetError as err:
            problems.append(str(err))
            continue
        seen |= masks.any(axis=(1, 2))
        if hw is not None and masks.shape[1:] != hw:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", MaskResampledWarning)
                    ds._fit(i, masks, hw)
                sizes.add((masks.shape[1:], hw))
            except DatasetError as err:
                problems.append(str(err))
    for c, ok in zip(ds.classes, seen):
        if ds.annotated_names and not ok:
            problems.append(f"class '{c}' is empty in every mask: remove the folder or check "
                            "the export (or its line in classes.txt).")
    for mask_hw, image_hw in sorted(sizes):
        f.warn_resampled(mask_hw, image_hw, ds.root / "masks")


def _raise(root: Path, problems: list[str]) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in dict.fromkeys(problems))
        raise DatasetError(f"cannot use dataset folder '{root}' ({len(problems)} "
                           f"problem{'s' if len(problems) > 1 else ''}):\n{lines}")


def open_dataset(root: str | Path, *, split: str | None = None,
                 classes: Sequence[str] | None = None, check: bool = True,
                 unannotated: bool = False) -> Dataset:
    """Open DATA/images + DATA/masks; ``check`` reads every file once to validate it.

    ``unannotated``: images without any mask (or a folder without masks/) are kept as
    Items with ``annotated == False`` instead of being an error.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder '{root}' does not exist. Fix: give the folder that "
                           "holds images/ and masks/.")
    if not root.is_dir():
        raise DatasetError(f"'{root}' is not a folder. Fix: give the folder that holds "
                           "images/ and masks/.")
    problems: list[str] = []
    found = find_items(root, classes, problems, unannotated)
    if found is None:
        _raise(root, problems)
    layout, order, items = found
    ds = Dataset(root, layout, list(order), items)
    if split is not None:
        file, part = parse_split_spec(split)
        table = read_split(file)
        wanted = [n for n, s in table.items() if s == part]
        if not wanted:
            parts = sorted(set(table.values()))
            raise DatasetError(f"split file '{file}' has no names in part '{part}'. "
                               f"Fix: use one of the parts {parts}.")
        have = set(ds.names)
        missing = [n for n in wanted if n not in have]
        if missing:
            problems.append(unmatched(f"name<s> in part '{part}' of '{file}' <have> no image "
                                       f"{'' if unannotated else 'with masks '}in '{root}'",
                                       missing,
                                       "fix the split file or add the images"))
        ds = ds.subset(n for n in wanted if n in have)
    if check:
        _check(ds, problems)
    _raise(root, problems)
    return ds
