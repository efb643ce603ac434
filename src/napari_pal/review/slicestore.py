"""Writable stacks of slices that do not have to fit in memory: what napari's mask,
prediction and disagreement layers hold for a folder of any size.

A :class:`SliceStore` is a ``(C, N, H, W)`` zarr array (one chunk per class and slice) in a
session folder of the user's cache, never inside the dataset. Slice ``i`` is read with
``fill(i)`` (the mask files of image ``i``) when it is first shown or asked for, and only
then: opening a folder of 2,000 images reads nothing but the slices shown. The first edit
of a slice copies it into the store; every later write goes through to zarr, so the store
holds every slice as painted, and unedited slices are never copied (opening and exporting
write nothing but the edits). A small LRU of decoded planes keeps painting fast. Memory is
the LRU (``cache_planes`` planes), not the folder.

:class:`SliceArray` is one class of it as a numpy-like ``(N, H, W)`` array. napari (>= 0.8)
paints into any such array through ``__getitem__`` / ``__setitem__`` with basic slices (brush,
fill, undo) and integer-array indices (``data_setitem``); both are implemented per plane on
numpy, so indexing behaves exactly as it does on a numpy array.
"""

from __future__ import annotations

import atexit
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_pal.errors import PalError

#: where session stores go: $NAPARI_PAL_LAYER_CACHE, else beside the recovery folders
ENV = "NAPARI_PAL_LAYER_CACHE"


def layer_cache_base() -> Path:
    from napari_pal.review.recovery import default_base

    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else default_base().parent / "layers"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours
        return True
    return True


def session_folder(dataset_root: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """A fresh folder for this process's stores of a dataset (stale sessions of processes
    that ended are removed); a PalError if it would lie inside the dataset."""
    from napari_pal.review.recovery import _key, _resolved

    root = _resolved(dataset_root)
    parent = (Path(base).expanduser() if base is not None else layer_cache_base()).resolve()
    parent = parent / _key(root)
    if parent == root or root in parent.parents:
        raise PalError(f"the layer cache '{parent}' would lie inside the dataset folder "
                       f"'{root}'; napari-pal never writes into a dataset folder. Fix: set "
                       f"{ENV} to a folder outside the dataset.")
    if parent.is_dir():
        for old in parent.iterdir():
            pid = old.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"{os.getpid()}-{time.time_ns()}"
    folder.mkdir(parents=True)
    atexit.register(shutil.rmtree, folder, True)  # a crash leaves it: removed at next open
    return folder


class SliceStore:
    """``(C, N, H, W)`` slices in a zarr array, each slice filled on first access."""

    def __init__(self, folder: str | os.PathLike, shape: tuple[int, int, int, int],
                 dtype: Any = np.uint8, fill: Callable[[int], np.ndarray | None] | None = None,
                 cache_planes: int = 12) -> None:
        import zarr

        c, n, h, w = (int(v) for v in shape)
        self.shape, self.dtype = (c, n, h, w), np.dtype(dtype)
        self.folder = Path(folder)
        self._z = zarr.create_array(store=str(self.folder), shape=self.shape,
                                    chunks=(1, 1, max(h, 1), max(w, 1)), dtype=self.dtype,
                                    fill_value=0, overwrite=True)
        self._fill = fill
        self._written = np.zeros(n, bool)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.cache_planes = max(int(cache_planes), c)
        self._lock = threading.RLock()
        #: how many times slices were read with ``fill`` (the mask files)
        self.fills = 0

    def __len__(self) -> int:
        return self.shape[1]

    def _remember(self, key: tuple[int, int], plane: np.ndarray) -> None:
        self._cache[key] = plane
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_planes:
            self._cache.popitem(last=False)

    def _read(self, i: int) -> np.ndarray:
        """Every class of slice i, from the fill (the mask files) or zeros."""
        data = None if self._fill is None else self._fill(i)
        if data is None:
            return np.zeros(self.shape[:1] + self.shape[2:], self.dtype)
        self.fills += 1
        return np.asarray(data, self.dtype)

    def plane(self, k: int, i: int) -> np.ndarray:
        """Class k of slice i (the cached array itself: callers copy before handing it out)."""
        with self._lock:
            key = (k, i)
            got = self._cache.get(key)
            if got is not None:
                self._cache.move_to_end(key)
                return got
            if self._written[i]:
                got = np.asarray(self._z[k, i])
                self._remember(key, got)
                return got
            data = self._read(i)
            for c in range(self.shape[0]):
                self._remember((c, i), np.array(data[c]))
            return self._cache[key]

    def write_plane(self, k: int, i: int, plane: np.ndarray) -> None:
        """Store class k of slice i (write-through to zarr). The first write to a slice
        copies all its classes into the store; from then on the store holds that slice."""
        with self._lock:
            plane = np.array(plane, self.dtype)
            if self._written[i]:
                self._z[k, i] = plane
            else:
                cached = [self._cache.get((c, i)) for c in range(self.shape[0])]
                data = np.stack(cached) if all(p is not None for p in cached) else self._read(i)
                data[k] = plane
                self._z[:, i] = data
                self._written[i] = True
                for c in range(self.shape[0]):
                    if c != k:
                        self._remember((c, i), np.array(data[c]))
            self._remember((k, i), plane)

    def is_written(self, i: int) -> bool:
        """Does the store hold slice i (edited at least once)?"""
        return bool(self._written[i])

    def layer(self, k: int) -> SliceArray:
        return SliceArray(self, k)

    def close(self) -> None:
        """Forget the planes and remove the session folder."""
        with self._lock:
            self._cache.clear()
            shutil.rmtree(self.folder, ignore_errors=True)


def _norm_key(key: Any, ndim: int) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (ndim - len(key) + 1) + key[at + 1:]
    if len(key) > ndim:
        raise IndexError(f"too many indices for a {ndim}-d array")
    return key + (slice(None),) * (ndim - len(key))


def _is_array(k: Any) -> bool:
    return isinstance(k, (np.ndarray, list)) or (hasattr(k, "__array__")
                                                  and not np.isscalar(k) and np.ndim(k) > 0)


class SliceArray:
    """Class ``k`` of a :class:`SliceStore` as a numpy-like ``(N, H, W)`` array that napari
    shows and paints into (see the module doc)."""

    def __init__(self, store: SliceStore, k: int) -> None:
        self.store, self.k = store, int(k)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.store.shape[1:]

    @property
    def dtype(self) -> np.dtype:
        return self.store.dtype

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, k0: Any) -> list[int]:
        return list(range(self.shape[0]))[k0]

    def __getitem__(self, key: Any) -> Any:
        key = _norm_key(key, 3)
        if any(_is_array(k) for k in key):
            return self._fancy(key, None)
        k0, rest = key[0], key[1:]
        if isinstance(k0, slice):
            planes = [self.store.plane(self.k, i)[rest] for i in self._rows(k0)]
            if not planes:
                return np.zeros((0, *np.zeros(self.shape[1:], bool)[rest].shape), self.dtype)
            return np.stack(planes)
        i = int(k0)
        i = i + self.shape[0] if i < 0 else i
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"index {int(k0)} is out of bounds for {self.shape[0]} slices")
        out = self.store.plane(self.k, i)[rest]
        return out.copy() if isinstance(out, np.ndarray) else out

    def __setitem__(self, key: Any, value: Any) -> None:
        key = _norm_key(key, 3)
        if any(_is_array(k) for k in key):
            self._fancy(key, value)
            return
        k0, rest = key[0], key[1:]
        rows = self._rows(k0) if isinstance(k0, slice) else [int(k0) % self.shape[0]]
        value = np.asarray(value, self.dtype)
        for j, i in enumerate(rows):
            plane = self.store.plane(self.k, i).copy()
            plane[rest] = value[j] if isinstance(k0, slice) and value.ndim == 3 else value
            self.store.write_plane(self.k, i, plane)

    def _fancy(self, key: tuple, value: Any) -> Any:
        """Integer-array indices (as napari's data_setitem uses): per plane, on numpy."""
        if any(isinstance(k, slice) for k in key):
            raise IndexError("mixing slices with index arrays is not supported here")
        idx = np.broadcast_arrays(*(np.asarray(k) for k in key))
        if any(a.dtype == bool for a in idx):
            raise IndexError("boolean indices are not supported here")
        i0 = idx[0] % self.shape[0]
        if value is None:
            out = np.empty(i0.shape, self.dtype)
            for i in np.unique(i0):
                m = i0 == i
                out[m] = self.store.plane(self.k, int(i))[idx[1][m], idx[2][m]]
            return out
        vals = np.broadcast_to(np.asarray(value, self.dtype), i0.shape)
        for i in np.unique(i0):
            m = i0 == i
            plane = self.store.plane(self.k, int(i)).copy()
            plane[idx[1][m], idx[2][m]] = vals[m]
            self.store.write_plane(self.k, int(i), plane)
        return None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"SliceArray(shape={self.shape}, dtype={self.dtype}, folder={self.store.folder})"
