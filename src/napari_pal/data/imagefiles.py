"""Reading and writing single image / mask files.

Every reader failure (PIL, tifffile, zlib ... raise many exception types) becomes a
DatasetError naming the file, and truncated files never load partially. Every write goes
through ``atomic_path`` so a kill leaves the old file or the new one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageFile

from napari_pal.atomic import atomic_path
from napari_pal.data import dicom
from napari_pal.errors import DatasetError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated PNG must fail, not load half

TIFF_SUFFIXES = (".tif", ".tiff")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg") + dicom.SUFFIXES
#: formats whose compression changes pixel values: never accepted for masks
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".jp2", ".j2k", ".jpx")
_RGB_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray


class MaskResampledWarning(UserWarning):
    """Masks were stored at a whole-factor different size and resampled to the image's."""


def _unreadable(path: Path, err: BaseException) -> DatasetError:
    why = "the file is empty (0 bytes)" if _is_empty(path) else f"{type(err).__name__}: {err}"
    return DatasetError(f"cannot read '{path}' ({why}). Fix: re-export the file "
                        "(it may be truncated or not an image) or remove it from the folder.")


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def refused_mask_suffixes() -> frozenset[str]:
    """Suffixes of image formats that are not accepted for masks (a file with one in a
    masks folder is an error, not ignored): every format PIL knows, minus MASK_SUFFIXES."""
    known = set(Image.registered_extensions()) | set(LOSSY_SUFFIXES)
    return frozenset(known - set(MASK_SUFFIXES))


def is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


_AS_STORED = ("1", "L", "I", "F", "RGB", "RGBA", "LA", "I;16", "I;16B", "I;16L")


def read_array(path: Path, *, palette_as_rgb: bool = False) -> tuple[np.ndarray, bool]:
    """Read a file as stored: (array, samples_last) where samples_last marks colour channels.

    Palette PNGs give their indices (labels) unless ``palette_as_rgb`` (for images).
    """
    path = Path(path)
    try:
        if is_tiff(path):
            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                arr = series.asarray()
                return np.asarray(arr), series.axes.endswith("S")
        with Image.open(path) as im:
            im.load()
            if im.mode in _AS_STORED or (im.mode == "P" and not palette_as_rgb):
                arr = np.asarray(im)
            else:  # CMYK, YCbCr, LAB, HSV, PA ...
                arr = np.asarray(im.convert("RGBA" if "A" in im.mode else "RGB"))
            return arr, arr.ndim == 3
    except Exception as err:  # noqa: BLE001 - readers raise many types; all mean "unreadable"
        raise _unreadable(path, err) from err


def stored_shape(path: Path) -> tuple[int, ...]:
    """The array shape from the header only (no pixel decoding)."""
    path = Path(path)
    if dicom.is_dicom(path):
        return dicom.dicom_shape(path)
    try:
        if is_tiff(path):
            with tifffile.TiffFile(path) as tf:
                return tuple(tf.series[0].shape)
        with Image.open(path) as im:
            w, h = im.size
            bands = len(im.getbands()) if im.mode not in ("P", "1") else 1
            return (h, w) if bands == 1 else (h, w, bands)
    except Exception as err:  # noqa: BLE001
        raise _unreadable(path, err) from err


def plane_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int]:
    """(H, W) of a grey or colour image of this stored shape; error for a stack."""
    s = tuple(d for d in shape if d != 1) if len(shape) > 2 else shape
    if len(s) == 2:
        return int(s[0]), int(s[1])
    if len(s) == 3 and s[-1] in (2, 3, 4):
        return int(s[0]), int(s[1])
    if len(s) == 3 and s[0] in (3, 4):
        return int(s[1]), int(s[2])
    raise DatasetError(f"'{path}' has shape {shape}: a stack or volume where a 2-D image is "
                       "expected. Fix: save one 2-D grey (or RGB) image per file.")


def _scale(arr: np.ndarray, path: Path) -> np.ndarray:
    """Scale to [0, 1]: integers by their dtype range, floats by min-max."""
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if arr.dtype.kind in "ui":
        if arr.dtype == np.int32 and arr.size and arr.min() >= 0 and arr.max() <= 65535:
            arr = arr.astype(np.uint16)  # PIL's mode "I" holds 16-bit PNGs
        info = np.iinfo(arr.dtype)
        return (arr.astype(np.float64) - info.min) / (float(info.max) - info.min)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise DatasetError(f"'{path}' contains NaN or infinite values. "
                               "Fix: re-export the image with finite values.")
        return arr
    raise DatasetError(f"'{path}' has unsupported pixel type {arr.dtype}. "
                       "Fix: save it as 8- or 16-bit grey, RGB, or float TIFF.")


def to_grey(arr: np.ndarray, samples_last: bool, path: Path) -> np.ndarray:
    """Any supported stored image -> float32 (H, W) in [0, 1]."""
    if arr.ndim > 2:
        keep = [i for i, d in enumerate(arr.shape) if d != 1]
        if len(keep) >= 2:
            arr = arr.reshape([arr.shape[i] for i in keep])
    plane_shape(arr.shape, path)  # raises for stacks
    if arr.ndim == 3 and not (samples_last or arr.shape[-1] in (2, 3, 4)):
        arr = np.moveaxis(arr, 0, -1)
    is_float = arr.dtype.kind == "f"
    x = _scale(arr, path)
    if x.ndim == 3:
        x = x[..., 0] if x.shape[-1] == 2 else x[..., :3] @ _RGB_WEIGHTS
    if is_float:
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def to_plane_mask(arr: np.ndarray, samples_last: bool, path: Path) -> np.ndarray:
    """A stored 2-D mask (grey; or colour with equal channels) -> its 2-D values."""
    if arr.ndim == 3 and samples_last and arr.shape[-1] in (2, 3, 4):
        rgb = arr[..., : min(3, arr.shape[-1])]
        if (rgb == rgb[..., :1]).all():
            arr = rgb[..., 0]
        else:
            raise DatasetError(f"mask '{path}' is a colour image. "
                               "Fix: save masks as single-channel grey images.")
    if arr.ndim != 2:
        raise DatasetError(f"mask '{path}' has shape {arr.shape}, not 2-D. Fix: save one 2-D "
                           "mask per file, or use the multichannel TIFF layout (C, H, W).")
    if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
        raise DatasetError(f"mask '{path}' has unsupported values ({arr.dtype}). "
                           "Fix: save masks as 8-bit 0/255 images.")
    return arr


def binary_mask(values: np.ndarray, path: Path) -> np.ndarray:
    """A class mask: at most two distinct values; any non-zero is foreground."""
    if values.dtype != bool and len(np.unique(values)) > 2:
        raise DatasetError(f"mask '{path}' is not binary ({len(np.unique(values))} distinct "
                           "values). Fix: save 0/255 masks, or use the label-image layout "
                           "(masks/<name>.png with 0 = background, k = class k).")
    return values != 0


def label_values(values: np.ndarray, path: Path) -> np.ndarray:
    """A label image: non-negative whole numbers."""
    if values.dtype == bool:
        return values.astype(np.uint8)
    if values.dtype.kind == "f" and not (values == np.round(values)).all():
        raise DatasetError(f"label mask '{path}' has fractional values. Fix: save labels "
                           "as an integer image (0 = background, k = class k).")
    if values.size and values.min() < 0:
        raise DatasetError(f"label mask '{path}' has negative values. Fix: use 0 for "
                           "background and 1..K for the classes.")
    return values.astype(np.int64)


def read_image(path: Path) -> np.ndarray:
    """float32 (H, W) in [0, 1]; DICOM as its window shows it (``dicom.read_dicom``)."""
    if dicom.is_dicom(path):
        return dicom.read_dicom(path)
    return to_grey(*read_array(path, palette_as_rgb=True), path)


def read_class_masks(name: str, paths: Sequence[Path]) -> np.ndarray:
    """bool (C, h, w) from one binary mask file per class."""
    planes = [binary_mask(to_plane_mask(*read_array(p), p), p) for p in paths]
    if len({m.shape for m in planes}) > 1:
        sizes = ", ".join(f"'{p}' {m.shape}" for p, m in zip(paths, planes))
        raise DatasetError(f"the class masks of '{name}' differ in size: {sizes}. "
                           "Fix: save every class mask of an image at one size.")
    return np.stack(planes)


def read_label_mask(path: Path, classes: Sequence[str]) -> np.ndarray:
    """bool (C, h, w) from a label image (0 = background, k = class k)."""
    labels = label_values(to_plane_mask(*read_array(path), path), path)
    k, top = len(classes), int(labels.max()) if labels.size else 0
    if top > k:
        raise DatasetError(f"label mask '{path}' has label {top} but there are only {k} "
                           f"classes {list(classes)}. Fix: list every class in classes.txt "
                           "(line k = label k) or fix the mask.")
    return labels[None] == np.arange(1, k + 1)[:, None, None]


def read_multichannel_mask(path: Path, classes: Sequence[str]) -> np.ndarray:
    """bool (C, h, w) from a (C, H, W) TIFF, channel c = class c."""
    arr, samples_last = read_array(path)
    if samples_last:
        arr = np.moveaxis(arr, -1, 0)
    k = len(classes)
    if arr.ndim != 3 or arr.shape[0] != k:
        raise DatasetError(f"multichannel mask '{path}' has shape {arr.shape}, expected "
                           f"({k}, H, W) for classes {list(classes)}. Fix: save one channel "
                           "per class, in the order of classes.txt.")
    if arr.dtype.kind not in "biuf":
        raise DatasetError(f"mask '{path}' has unsupported values ({arr.dtype}). "
                           "Fix: save masks as 8-bit 0/255 channels.")
    return arr != 0


def resample_masks(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Whole-factor resampling: nearest (repeat) up, area-average + threshold 0.5 down."""
    c, h, w = masks.shape
    H, W = shape
    if (h, w) == (H, W):
        return masks
    if H % h == 0 and W % w == 0 and H // h == W // w:
        f = H // h
        return masks.repeat(f, axis=1).repeat(f, axis=2)
    f = h // H
    return masks.reshape(c, H, f, W, f).mean(axis=(2, 4)) >= 0.5


def resample_factor_ok(mask_hw: tuple[int, int], image_hw: tuple[int, int]) -> bool:
    (h, w), (H, W) = mask_hw, image_hw
    if min(h, w, H, W) <= 0:
        return False
    up = H % h == 0 and W % w == 0 and H // h == W // w
    down = h % H == 0 and w % W == 0 and h // H == w // W
    return up or down


def warn_resampled(mask_hw: tuple[int, int], image_hw: tuple[int, int], where: Path) -> None:
    warnings.warn(f"masks in '{where}' are stored at {mask_hw[0]}x{mask_hw[1]}, images are "
                  f"{image_hw[0]}x{image_hw[1]}: masks are resampled to the image size",
                  MaskResampledWarning, stacklevel=3)


def write_png(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def write_tiff(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, arr, photometric="minisblack")


def write_plane(path: Path, arr: np.ndarray) -> None:
    """Write a 2-D (or (C,H,W) for TIFF) integer array as PNG or TIFF by suffix."""
    (write_tiff if is_tiff(path) else write_png)(Path(path), arr)
