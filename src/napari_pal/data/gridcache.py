"""Grid samples of a dataset on disk, so training memory does not grow with the folder.

Each image is normalised and letterboxed into the training grid once, stored as uint8
(its masks bit-packed) in one file per dataset and grid size in the user cache (never in
the input folder), and read back a batch at a time with plain file reads: nothing is
mapped into the process, so the resident memory is one batch, not the file. 10,000
images at 256 px with three classes take 0.9 GB on disk.

The file records, per image, the size and modification time of its image and mask files;
when one changes only that image is re-gridded (the others are copied over), and the new
file replaces the old in one rename, so a kill never leaves a half-built cache in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_pal.atomic import atomic_path, clean_stale
from napari_pal.errors import PalError

if TYPE_CHECKING:
    from napari_pal.data.dataset import Dataset

ENV = "NAPARI_PAL_GRID_CACHE"
#: Bump when what a grid sample holds changes (normalisation, letterbox, resampling).
FORMAT = 1
_MAGIC = b"PALGRID\x01"
_ALIGN = 4096

__all__ = ["ENV", "GridCache", "cache_base", "cache_path", "open_grid_cache"]


def cache_base() -> Path:
    """$NAPARI_PAL_GRID_CACHE, else the platform's user cache folder + napari-pal/grids."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-pal")) / "grids"


def _fingerprint(paths: Sequence[Path]) -> list[list]:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append([p.name, st.st_size, st.st_mtime_ns])
    return out


def cache_path(dataset: Dataset, size: int, base: str | os.PathLike | None = None) -> Path:
    """The cache file of this dataset (folder, layout, classes, image names) at ``size``."""
    root = Path(dataset.root).expanduser().resolve()
    ident = json.dumps([os.path.normcase(str(root)), dataset.layout.value, list(dataset.classes),
                        int(size), FORMAT, list(dataset.names)])
    key = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    label = re.sub(r"[^A-Za-z0-9._-]", "_", root.name)[:40] or "data"
    folder = (Path(base).expanduser() if base is not None else cache_base()).resolve()
    if folder == root or root in folder.parents:
        raise PalError(f"the grid cache folder '{folder}' lies inside the dataset folder "
                       f"'{root}'; napari-pal never writes into a dataset folder. Fix: set "
                       f"{ENV} to a folder outside the dataset.")
    return folder / f"{label}-{size}px-{key}.grid"


@dataclass
class GridCache:
    """An open cache file: ``read`` gives uint8 images (n, S, S) and bool masks (n, C, S, S)."""

    path: Path
    size: int
    classes: int
    names: list[str]
    shapes: list[tuple[int, int]]  # (H, W) of each image as stored
    fingerprints: list[list[list]]
    data_offset: int
    _fh: object = None  # the open file (unbuffered)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def image_bytes(self) -> int:
        return self.size * self.size

    @property
    def mask_bytes(self) -> int:
        return (self.classes * self.size * self.size + 7) // 8

    @property
    def record_bytes(self) -> int:
        return self.image_bytes + self.mask_bytes

    def __len__(self) -> int:
        return len(self.names)

    def raw(self, i: int) -> bytes:
        """Record ``i`` as stored (image bytes, then packed mask bits)."""
        rec = self.record_bytes
        with self._lock:  # the prefetch thread and the caller share the file position
            self._fh.seek(self.data_offset + i * rec)
            data = self._fh.read(rec)
        if len(data) != rec:
            raise PalError(f"grid cache '{self.path}' is shorter than its header says. "
                           "Fix: delete it; it is rebuilt on the next run.")
        return data

    def read(self, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        n, s, c = len(idx), self.size, self.classes
        images = np.empty((n, s, s), np.uint8)
        packed = np.empty((n, self.mask_bytes), np.uint8)
        for k, i in enumerate(idx):
            rec = np.frombuffer(self.raw(int(i)), np.uint8)
            images[k] = rec[: self.image_bytes].reshape(s, s)
            packed[k] = rec[self.image_bytes:]
        masks = np.unpackbits(packed, axis=1, count=c * s * s).reshape(n, c, s, s)
        return images, masks.view(bool)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __del__(self) -> None:
        self.close()


def _load(path: Path) -> GridCache | None:
    """The cache at ``path``, or None if missing, of another format, or damaged."""
    try:
        fh = open(path, "rb", buffering=0)  # noqa: SIM115 - kept open by the GridCache
    except OSError:
        return None
    try:
        head = fh.read(16)
        if len(head) != 16 or head[:8] != _MAGIC:
            raise ValueError("not a grid cache")
        (length,) = struct.unpack("<Q", head[8:])
        meta = json.loads(fh.read(length).decode("utf-8"))
        if meta["format"] != FORMAT:
            raise ValueError("old format")
        cache = GridCache(path, int(meta["size"]), int(meta["classes"]), list(meta["names"]),
                          [tuple(s) for s in meta["shapes"]], meta["fingerprints"],
                          int(meta["data_offset"]), fh)
        if os.fstat(fh.fileno()).st_size != cache.data_offset + len(cache) * cache.record_bytes:
            raise ValueError("truncated")
        return cache
    except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError):
        fh.close()
        return None


def _record(dataset: Dataset, i: int, size: int) -> tuple[tuple[int, int], bytes]:
    from napari_pal.data.trainset import grid_sample_of

    frame, img, msk = grid_sample_of(dataset, i, size)
    image = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return (frame.height, frame.width), image.tobytes() + np.packbits(msk.ravel()).tobytes()


def open_grid_cache(dataset: Dataset, size: int, *,
                    progress: Callable[[int, int], None] | None = None,
                    base: str | os.PathLike | None = None) -> GridCache:
    """The dataset's grid cache at ``size``: reused if every file is unchanged, else
    (re)built, re-gridding only the images whose files changed."""
    path = cache_path(dataset, size, base)
    prints = [_fingerprint([it.image_path, *it.mask_paths]) for it in dataset.items]
    old = _load(path)
    if old is not None and old.names == dataset.names and old.size == size \
            and old.classes == len(dataset.classes) and old.fingerprints == prints:
        if progress:
            progress(len(dataset), len(dataset))
        return old
    reuse: dict[str, int] = {}  # name -> record in the old file, for unchanged files
    if old is not None and old.size == size and old.classes == len(dataset.classes):
        where = {name: k for k, name in enumerate(old.names)}
        for i, name in enumerate(dataset.names):
            k = where.get(name)
            if k is not None and old.fingerprints[k] == prints[i]:
                reuse[name] = k
    n = len(dataset)
    clean_stale(path.parent)  # half-built caches of killed runs (an hour old or more)
    meta = {"format": FORMAT, "size": size, "classes": len(dataset.classes),
            "names": list(dataset.names), "fingerprints": prints,
            "shapes": [list(old.shapes[reuse[nm]]) if nm in reuse else None
                       for nm in dataset.names], "data_offset": 0}
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            head_len = len(json.dumps(meta)) + 64 + 12 * n  # room for the shapes filled in
            offset = -(-(16 + head_len) // _ALIGN) * _ALIGN
            fh.seek(offset)
            for i, name in enumerate(dataset.names):
                if name in reuse:
                    fh.write(old.raw(reuse[name]))
                else:
                    meta["shapes"][i], rec = _record(dataset, i, size)
                    fh.write(rec)
                if progress:
                    progress(i + 1, n)
            meta["data_offset"] = offset
            blob = json.dumps(meta).encode("utf-8")
            if 16 + len(blob) > offset:  # pragma: no cover - the reserve covers any shape
                raise PalError(f"grid cache header for '{dataset.root}' outgrew its room")
            fh.seek(0)
            fh.write(_MAGIC + struct.pack("<Q", len(blob)) + blob)
            if old is not None:
                old.close()  # before the rename (Windows cannot replace an open file)
    except OSError as err:
        raise PalError(f"cannot write the grid cache '{path}' ({err}). Fix: free disk space "
                       f"or set {ENV} to a writable folder outside the dataset.") from err
    finally:
        if old is not None:
            old.close()
    cache = _load(path)
    if cache is None:  # pragma: no cover - only if another process broke it in between
        raise PalError(f"the grid cache '{path}' was just written but cannot be read back. "
                       "Fix: delete it and run again.")
    return cache
