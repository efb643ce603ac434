"""DICOM radiographs: one 2-D grey image per file, shown the way a viewer would show it.

Stored values become what the modality measured (rescale slope/intercept or modality
LUT), then what the exporting workstation chose to show (the VOI LUT, else the first
window), mapped to [0, 1]; MONOCHROME1 (air stored bright) is inverted so that air is dark
as in every other image. Anything this cannot decode faithfully (a compressed transfer
syntax without its decoder, several frames, colour) is refused with what to install or
convert, never guessed at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_pal.errors import DatasetError

SUFFIXES = (".dcm", ".dicom")
_PREAMBLE = 128
_MAGIC = b"DICM"


def is_dicom(path: Path) -> bool:
    """A ``.dcm`` file, or any file with the 'DICM' marker after the 128-byte preamble."""
    path = Path(path)
    if path.suffix.lower() in SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(_PREAMBLE + len(_MAGIC))
    except OSError:
        return False
    return head[_PREAMBLE:] == _MAGIC


def _refuse(path: Path, what: str, fix: str) -> DatasetError:
    return DatasetError(f"cannot read DICOM '{path}': {what}. Fix: {fix}")


def _read(path: Path, *, pixels: bool):
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError as err:  # pragma: no cover - a dependency; only a broken install lacks it
        raise _refuse(path, "pydicom is not installed", "pip install pydicom") from err
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as err:
        raise _refuse(path, f"not a readable DICOM file ({type(err).__name__}: {err})",
                      "re-export the file, or remove it from the folder") from err


def _check_header(ds, path: Path) -> tuple[int, int]:
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise _refuse(path, f"it holds {int(ds.NumberOfFrames)} frames",
                      "export one 2-D radiograph per file (e.g. split the frames with "
                      "'gdcmtar' or pydicom) ")
    if "Rows" not in ds or "Columns" not in ds:
        raise _refuse(path, "it holds no image (no Rows/Columns)",
                      "give image DICOM files only (not reports or structured data)")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _refuse(path, f"photometric interpretation {photometric} (colour)",
                      "export the radiograph as MONOCHROME2 grey DICOM, or as PNG/TIFF")
    bits = int(ds.get("BitsAllocated", 16))
    if bits not in (8, 16):
        raise _refuse(path, f"{bits}-bit pixels", "export 8- to 16-bit grey values")
    return int(ds.Rows), int(ds.Columns)


def dicom_shape(path: Path) -> tuple[int, int]:
    """(H, W) from the header only (pixel data not read)."""
    path = Path(path)
    return _check_header(_read(path, pixels=False), path)


def _pixels(ds, path: Path) -> np.ndarray:
    if "PixelData" not in ds:
        raise _refuse(path, "it has no pixel data", "give image DICOM files only")
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        arr = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - decoders raise many types
        if syntax is not None and syntax.is_compressed:
            raise _refuse(
                path, f"its pixel data is compressed ({syntax.name}) and could not be "
                f"decoded ({type(err).__name__}: {err})",
                "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (JPEG, "
                "JPEG-LS, JPEG 2000 decoders), or convert the file to uncompressed DICOM "
                "(e.g. 'gdcmconv --raw IN OUT' or 'dcmdjpeg IN OUT')") from err
        raise _refuse(path, f"its pixel data cannot be decoded ({type(err).__name__}: {err})",
                      "re-export the file as uncompressed DICOM, or as PNG/TIFF") from err
    if arr.ndim != 2:
        raise _refuse(path, f"its pixel data has shape {arr.shape}, not one 2-D image",
                      "export one 2-D grey radiograph per file")
    return arr


def _window(x: np.ndarray, ds) -> np.ndarray | None:
    """The first VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1]; None without one."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None

    from pydicom.multival import MultiValue

    def first(value) -> float:
        return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)

    c, w = first(ds.WindowCenter), first(ds.WindowWidth)
    func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if func == "SIGMOID" and w > 0:
        return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if func == "LINEAR_EXACT" and w > 0:
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    if func == "LINEAR" and w >= 1:
        if w == 1:
            return (x > c - 0.5).astype(np.float64)
        return np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    return None  # a window that cannot be applied: fall back to the data range


def read_dicom(path: Path) -> np.ndarray:
    """float32 (H, W) in [0, 1], air dark."""
    from pydicom.pixels import apply_modality_lut, apply_voi

    path = Path(path)
    ds = _read(path, pixels=True)
    _check_header(ds, path)
    stored = _pixels(ds, path)
    x = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    if ds.get("VOILUTSequence"):
        lut_in = x.astype(np.int64) if np.array_equal(x, np.round(x)) else x
        depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        y = np.asarray(apply_voi(lut_in, ds), dtype=np.float64) / float(2 ** depth - 1)
    else:
        y = _window(x, ds)
    if y is None:
        lo, hi = float(x.min()), float(x.max())
        y = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if not np.isfinite(y).all():
        raise _refuse(path, "its rescale or window gives non-finite values",
                      "check RescaleSlope/Intercept and the window, or re-export the file")
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        y = 1.0 - y
    return np.clip(y, 0.0, 1.0).astype(np.float32)
