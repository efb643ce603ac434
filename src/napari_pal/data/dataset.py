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

from napari_pal.data import dicom
from napari_pal.data import imagefiles as f
from napari_pal.data.imagefiles import IMAGE_SUFFIXES, MASK_SUFFIXES, MaskResampledWarning
from napari_pal.data.layout import Layout
from napari_pal.data.split import parse_split_spec, read_split
from napari_pal.data.writing import _safe_name, write_classes_txt, write_masks  # noqa: F401
from napari_pal.errors import DatasetError

__all__ = ["IMAGE_SUFFIXES", "MASK_SUFFIXES", "Dataset", "Item", "Layout",
           "MaskResampledWarning", "open_dataset", "parse_split_spec", "read_split",
           "write_classes_txt", "write_masks"]
# _safe_name (imported above) stays importable from here for review.recovery


@dataclass(frozen=True)
class Item:
    name: str
    image_path: Path
    mask_paths: tuple[Path, ...]  # one per class for CLASS_FOLDERS, else one file; () = none

    @property
    def annotated(self) -> bool:
        """The image has its masks (an unannotated image is predicted, never scored)."""
        return bool(self.mask_paths)


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


def _classes_txt(root: Path, problems: list[str]) -> list[str] | None:
    p = root / "classes.txt"
    if not p.is_file():
        return None
    try:
        names = [ln.strip() for ln in p.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"'{p}' cannot be read ({err}). Fix: save it as UTF-8 text.")
        return None
    names = [n for n in names if n]
    if len(set(names)) != len(names) or not names:
        problems.append(f"'{p}' is empty or repeats a class name. "
                        "Fix: one unique class name per line.")
    return names


def _files(folder: Path, suffixes: Sequence[str], problems: list[str], *,
           dicom_by_header: bool = False) -> dict[str, Path]:
    """stem -> file for the visible files of ``folder`` with these suffixes.

    ``dicom_by_header``: a file with another suffix (or none) that is DICOM by its header
    counts too, named by its whole file name (DICOM exports name files '1.2.840...' or
    'IM0001').
    """
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        name = p.stem
        if p.suffix.lower() not in suffixes:
            if not (dicom_by_header and p.is_file() and dicom.is_dicom(p)):
                continue
            name = p.name
        if not p.is_file():
            problems.append(f"'{p}' is a directory named like an image. Fix: rename or move it.")
        elif name in out:
            problems.append(f"'{out[name]}' and '{p}' have the same name '{name}'. "
                            "Fix: keep one file per name (remove or rename the other).")
        else:
            out[name] = p
    return out


def _mask_files(folder: Path, problems: list[str]) -> dict[str, Path | None]:
    """stem -> mask file; a mask in a format the product does not read (a JPEG, a BMP ...)
    is an error naming it (its stem maps to None), never silently skipped (which would
    then read as "no mask")."""
    refused: dict[str, Path | None] = {}
    for p in sorted(folder.iterdir()):
        suffix = p.suffix.lower()
        if (p.is_file() and not p.name.startswith(".") and suffix not in MASK_SUFFIXES
                and suffix in f.refused_mask_suffixes()):
            lossy = " (lossy: its edges are not 0/255)" if suffix in f.LOSSY_SUFFIXES else ""
            problems.append(f"mask '{p}' is a {suffix} file{lossy}; masks must be "
                            f"{', '.join(MASK_SUFFIXES)}. Fix: save it as PNG.")
            refused[p.stem] = None
    return refused | _files(folder, MASK_SUFFIXES, problems)


def _unmatched(what: str, names: Iterable[str], fix: str) -> str:
    """'1 image has ...' / '2 images have ...': ``what`` holds '<s>' and '<have>'."""
    names = sorted(names)
    one = len(names) == 1
    what = what.replace("<s>", "" if one else "s").replace("<have>", "has" if one else "have")
    return f"{len(names)} {what}: {', '.join(names)}. Fix: {fix}"


def _find(root: Path, classes: Sequence[str] | None, problems: list[str],
          unannotated: bool = False) -> tuple[Layout, list[str], list[Item]] | None:
    """Match images to masks; returns None when the layout cannot be determined."""
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir():
        problems.append(f"no 'images' folder in '{root}'. Fix: put the radiographs in "
                        f"'{images_dir}' and the masks in '{masks_dir}'.")
        return None
    images = _files(images_dir, IMAGE_SUFFIXES, problems, dicom_by_header=True)
    if not images:
        problems.append(f"'{images_dir}' holds no image files ({', '.join(IMAGE_SUFFIXES)}). "
                        "Fix: add the radiographs there.")
    txt = _classes_txt(root, problems)
    if unannotated and not (masks_dir.is_dir() and any(
            not p.name.startswith(".") for p in masks_dir.iterdir())):
        return _images_only(root, images, txt, classes, problems)
    if not masks_dir.is_dir():
        problems.append(f"no 'masks' folder in '{root}'. Fix: put the masks in '{masks_dir}' "
                        "(masks/<class>/<name>.png, or masks/<name>.png as a label image).")
        return None
    dirs = [p for p in sorted(masks_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    loose = _mask_files(masks_dir, problems)
    if dirs and loose:
        problems.append(f"'{masks_dir}' mixes class folders ({', '.join(d.name for d in dirs)}) "
                        f"and loose mask files ({', '.join(p.name for p in loose.values())}). "
                        "Fix: use one layout - masks/<class>/<name>.png or masks/<name>.png.")
        return None
    refused = {n for n, p in loose.items() if p is None}
    loose = {n: p for n, p in loose.items() if p is not None}
    if not dirs and not loose and not refused:
        problems.append(f"'{masks_dir}' holds no masks. Fix: add masks/<class>/<name>.png "
                        "(one folder per class) or masks/<name>.png label images.")
        return None
    if dirs:
        return _find_class_folders(root, images, dirs, txt, classes, problems, unannotated)
    return _find_loose(root, images, loose, txt, classes, problems, unannotated, refused)


def _images_only(root, images, txt, classes, problems):
    """No masks at all: every image is unannotated; the classes come from the caller (the
    model) or classes.txt."""
    order = list(classes) if classes is not None else txt
    if order is None:
        problems.append(f"'{root}' has no masks and no classes.txt, so its classes are "
                        "unknown. Fix: add classes.txt (one class a line) or the masks.")
        return None
    return Layout.CLASS_FOLDERS, order, [Item(n, p, ()) for n, p in images.items()]


def _find_class_folders(root, images, dirs, txt, classes, problems, unannotated=False):
    found = [d.name for d in dirs]
    if classes is not None:
        order = list(classes)
        for d in found:
            if d not in order:
                problems.append(f"class folder '{root / 'masks' / d}' is not one of the expected "
                                f"classes {order}. Fix: rename or remove it.")
    elif txt is not None:
        order = txt
        for d in found:
            if d not in order:
                problems.append(f"class folder '{root / 'masks' / d}' is not listed in "
                                f"'{root / 'classes.txt'}'. Fix: add it there or remove it.")
    else:
        order = sorted(found)
    for c in order:
        if c not in found:
            problems.append(f"class '{c}' has no folder '{root / 'masks' / c}'. "
                            "Fix: add the folder with one mask per image.")
    per_class = {c: _mask_files(root / "masks" / c, problems) for c in order if c in found}
    items, names = [], set(images)
    if unannotated:  # an image with no mask in any class folder is a draft, not an error
        drafts = {n for n in names if not any(n in m for m in per_class.values())}
        names -= drafts
        items += [Item(n, images[n], ()) for n in sorted(drafts)]
    for c, masks in per_class.items():
        if names - set(masks):
            problems.append(_unmatched(f"image<s> <have> no mask in '{root / 'masks' / c}'",
                                       names - set(masks), "add the masks or remove the images"))
        if set(masks) - names:
            problems.append(_unmatched(f"mask<s> in '{root / 'masks' / c}' <have> no image",
                                       set(masks) - names, "add the images or remove the masks"))
    for n, p in images.items():
        if (all(m.get(n) is not None for m in per_class.values())
                and len(per_class) == len(order)):
            items.append(Item(n, p, tuple(per_class[c][n] for c in order)))
    items.sort(key=lambda it: list(images).index(it.name))
    return Layout.CLASS_FOLDERS, order, items


def _find_loose(root, images, loose, txt, classes, problems, unannotated=False, refused=()):
    masks_dir = root / "masks"
    ndims: dict[str, int] = {}
    for n, p in loose.items():
        if f.is_tiff(p):
            try:
                ndims[n] = 3 if len([d for d in f.stored_shape(p) if d != 1]) >= 3 else 2
            except DatasetError as err:
                problems.append(str(err))
        else:
            ndims[n] = 2
    if len(set(ndims.values())) > 1:
        flat = [p.name for n, p in loose.items() if ndims.get(n) == 2]
        problems.append(f"'{masks_dir}' mixes 2-D label images ({', '.join(flat)}) and 3-D "
                        "multichannel TIFFs. Fix: use one layout for every mask.")
        return None
    layout = Layout.MULTICHANNEL if 3 in ndims.values() else Layout.LABEL_IMAGE
    names = set(images) - set(refused)  # a refused mask is reported already
    if names - set(loose) and not unannotated:
        problems.append(_unmatched(f"image<s> <have> no mask in '{masks_dir}'", names - set(loose),
                                   "add the masks or remove the images"))
    if set(loose) - names:
        problems.append(_unmatched(f"mask<s> in '{masks_dir}' <have> no image", set(loose) - names,
                                   "add the images or remove the masks"))
    items = [Item(n, p, (loose[n],) if n in loose else ()) for n, p in images.items()
             if n in loose or (unannotated and n in names)]
    if txt is not None and classes is not None and list(classes) != txt:
        problems.append(f"'{root / 'classes.txt'}' lists {txt}, expected classes "
                        f"{list(classes)}. Fix: open a folder with the expected classes.")
    order = txt if txt is not None else (list(classes) if classes is not None else None)
    if order is None:
        order = _count_classes(layout, [it for it in items if it.annotated], problems)
        if not order and items:
            problems.append(f"every mask in '{masks_dir}' is all background (0), so there are "
                            "no classes. Fix: check the export (label k = class k).")
            return None
    return layout, order, items


def _count_classes(layout: Layout, items: list[Item], problems: list[str]) -> list[str]:
    """class_1..class_K: K = max label (label images) or the channel count (multichannel)."""
    counts: dict[int, list[str]] = {}
    for it in items:
        p = it.mask_paths[0]
        try:
            if layout is Layout.MULTICHANNEL:
                arr, last = f.read_array(p)
                k = arr.shape[-1] if last else arr.shape[0]
            else:
                arr = f.label_values(f.to_plane_mask(*f.read_array(p), p), p)
                k = int(arr.max()) if arr.size else 0
        except DatasetError as err:
            problems.append(str(err))
            continue
        counts.setdefault(k, []).append(p.name)
    if layout is Layout.MULTICHANNEL and len(counts) > 1:
        detail = "; ".join(f"{k} channels: {', '.join(v)}" for k, v in sorted(counts.items()))
        problems.append(f"multichannel masks differ in channel count ({detail}). "
                        "Fix: save every mask with one channel per class.")
    k = max(counts, default=0)
    return [f"class_{j}" for j in range(1, k + 1)]


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
    found = _find(root, classes, problems, unannotated)
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
            problems.append(_unmatched(f"name<s> in part '{part}' of '{file}' <have> no image "
                                       f"{'' if unannotated else 'with masks '}in '{root}'",
                                       missing,
                                       "fix the split file or add the images"))
        ds = ds.subset(n for n in wanted if n in have)
    if check:
        _check(ds, problems)
    _raise(root, problems)
    return ds
