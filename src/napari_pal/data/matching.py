"""Matching a folder's images with their masks, in the three layouts: which files are
images, which are masks of which class, and every problem found on the way (collected,
not raised, so that open_dataset reports them all in one error)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from napari_pal.data import dicom
from napari_pal.data import imagefiles as f
from napari_pal.data.imagefiles import IMAGE_SUFFIXES, MASK_SUFFIXES
from napari_pal.data.layout import Item, Layout
from napari_pal.errors import DatasetError


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


def unmatched(what: str, names: Iterable[str], fix: str) -> str:
    """'1 image has ...' / '2 images have ...': ``what`` holds '<s>' and '<have>'."""
    names = sorted(names)
    one = len(names) == 1
    what = what.replace("<s>", "" if one else "s").replace("<have>", "has" if one else "have")
    return f"{len(names)} {what}: {', '.join(names)}. Fix: {fix}"


def find_items(root: Path, classes: Sequence[str] | None, problems: list[str],
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
            problems.append(unmatched(f"image<s> <have> no mask in '{root / 'masks' / c}'",
                                       names - set(masks), "add the masks or remove the images"))
        if set(masks) - names:
            problems.append(unmatched(f"mask<s> in '{root / 'masks' / c}' <have> no image",
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
        problems.append(unmatched(f"image<s> <have> no mask in '{masks_dir}'", names - set(loose),
                                   "add the masks or remove the images"))
    if set(loose) - names:
        problems.append(unmatched(f"mask<s> in '{masks_dir}' <have> no image", set(loose) - names,
                                   "add the images or remove the masks"))
    items = [Item(n, p, (loose[n],) if n in loose else ()) for n, p in images.items()
             if n in loose or (unannotated and n in names)]
    if txt is not None and classes is not None and list(classes) != txt:
        problems.append(f"'{root / 'classes.txt'}' lists {txt}, expected classes "
                        f"{list(classes)}. Fix: open a folder with the expected classes.")
    order = txt if txt is not None else (list(classes) if classes is not None else None)
    if order is None:
        order = count_classes(layout, [it for it in items if it.annotated], problems)
        if not order and items:
            problems.append(f"every mask in '{masks_dir}' is all background (0), so there are "
                            "no classes. Fix: check the export (label k = class k).")
            return None
    return layout, order, items


def count_classes(layout: Layout, items: list[Item], problems: list[str]) -> list[str]:
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
