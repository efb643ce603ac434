"""Qt-free glue between a dataset folder and napari's stacked layers.

Every image of a folder becomes one slice of a ``(N, Hmax, Wmax)`` stack, placed at the
slice's top-left corner (offset (0, 0)), so nothing is cropped and a pixel (y, x) of a
slice is the pixel (y, x) of its file. What is needed to map a slice back to its file is
kept in the layers' ``metadata["napari_pal"]`` (see :func:`stack_meta`).

The image stack is a lazy dask array (one file read per slice shown). The mask stacks are
paintable :class:`~napari_pal.review.slicestore.SliceArray` s over one zarr store per
dataset in the user's cache (:func:`mask_store`): a slice's mask files are read when the
slice is first shown or asked for, so opening a folder of any size reads only what is shown
(napari >= 0.8 paints into such arrays). :func:`mask_stacks` (dense numpy) is kept for
small folders and tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_pal.data.dataset import Dataset, Layout, open_dataset

META_KEY = "napari_pal"

#: One colour per class (RGB hex), cycled for more classes.
CLASS_COLOURS = ("#ff4040", "#40a0ff", "#ffd000", "#40e040", "#ff40ff", "#40ffff",
                 "#ff9020", "#a070ff")


def class_colour(k: int) -> str:
    return CLASS_COLOURS[k % len(CLASS_COLOURS)]


def is_dataset_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "images").is_dir() and (p / "masks").is_dir()


def stack_meta(ds: Dataset, shapes: Sequence[tuple[int, int]] | None = None) -> dict[str, Any]:
    """What maps every slice of the stack back to its file (plain, copyable values)."""
    shapes = [tuple(map(int, ds.image_shape(i))) for i in range(len(ds))] \
        if shapes is None else [tuple(map(int, s)) for s in shapes]
    return {
        "root": str(Path(ds.root).resolve()),
        "layout": Layout(ds.layout).value,
        "classes": list(ds.classes),
        "names": list(ds.names),
        "shapes": shapes,
        "offsets": [(0, 0)] * len(shapes),
        "suffixes": [it.mask_paths[0].suffix.lower() if it.mask_paths else None
                     for it in ds.items],
        # images without masks: shown with empty mask slices, status "draft", never scored
        "drafts": [it.name for it in ds.items if not it.annotated],
    }


def canvas_shape(meta: Mapping[str, Any]) -> tuple[int, int, int]:
    shapes = meta["shapes"]
    if not shapes:
        return (0, 1, 1)
    return (len(shapes), max(s[0] for s in shapes), max(s[1] for s in shapes))


def region(meta: Mapping[str, Any], i: int) -> tuple[slice, slice]:
    """The (rows, cols) of slice ``i`` that hold image ``i``."""
    (h, w), (oy, ox) = meta["shapes"][i], meta["offsets"][i]
    return slice(oy, oy + h), slice(ox, ox + w)


def lazy_image_stack(ds: Dataset, meta: Mapping[str, Any]):
    """A dask array (N, Hmax, Wmax) float32: each slice is read when napari shows it."""
    import dask
    import dask.array as da

    n, hmax, wmax = canvas_shape(meta)

    def load(i: int) -> np.ndarray:
        out = np.zeros((hmax, wmax), np.float32)
        img = ds.read_image(i)
        rows, cols = region(meta, i)
        out[rows, cols] = img[: rows.stop - rows.start, : cols.stop - cols.start]
        return out

    slices = [da.from_delayed(dask.delayed(load)(i), shape=(hmax, wmax), dtype=np.float32)
              for i in range(n)]
    if not slices:
        return da.zeros((0, hmax, wmax), dtype=np.float32)
    return da.stack(slices)


def mask_stacks(ds: Dataset, meta: Mapping[str, Any]) -> np.ndarray:
    """uint8 (C, N, Hmax, Wmax): 1 inside each class's mask."""
    n, hmax, wmax = canvas_shape(meta)
    out = np.zeros((len(ds.classes), n, hmax, wmax), np.uint8)
    for i in range(n):
        if ds.items[i].annotated:  # a draft's slices stay empty until predicted or painted
            rows, cols = region(meta, i)
            out[:, i, rows, cols] = ds.read_masks(i)
    return out


def mask_store(ds: Dataset, meta: Mapping[str, Any], folder: str | Path | None = None):
    """A SliceStore (C, N, Hmax, Wmax) uint8 of the masks, each slice read from its mask
    files on first access; in a fresh session folder of the layer cache unless ``folder``."""
    from napari_pal.review.slicestore import SliceStore, session_folder

    n, hmax, wmax = canvas_shape(meta)
    c = len(meta["classes"])

    def fill(i: int) -> np.ndarray | None:
        if not ds.items[i].annotated:  # a draft's slices stay empty until predicted or painted
            return None
        out = np.zeros((c, hmax, wmax), np.uint8)
        rows, cols = region(meta, i)
        out[:, rows, cols] = ds.read_masks(i)
        return out

    where = Path(folder) if folder is not None else session_folder(meta["root"]) / "masks"
    return SliceStore(where, (c, n, hmax, wmax), np.uint8, fill=fill)


def open_folder(path: str | Path, classes: Sequence[str] | None = None) -> tuple[Dataset, dict]:
    """Open a dataset lazily (file matching only) and describe its stack; images without
    masks are kept as drafts."""
    ds = open_dataset(Path(path), classes=classes, check=False, unannotated=True)
    return ds, stack_meta(ds)


def dataset_from_meta(meta: Mapping[str, Any]) -> Dataset:
    """The Dataset a stack came from, restricted to the stack's images in its order."""
    ds = open_dataset(Path(meta["root"]), classes=meta["classes"], check=False,
                      unannotated=True)
    names = list(meta["names"])
    if ds.names != names:
        ds = ds.subset(names)
        order = {n: k for k, n in enumerate(names)}
        ds.items.sort(key=lambda it: order[it.name])
    return ds


class LayerMasks(Mapping):
    """name -> bool (C, H, W) masks read from the label stacks when asked (no copy up front).

    This is how the annotator's current masks reach training and scoring as ``overrides``.
    """

    def __init__(self, meta: Mapping[str, Any], stacks: Sequence[np.ndarray]):
        self.meta, self.stacks = meta, list(stacks)
        self._index = {n: i for i, n in enumerate(meta["names"])}

    def masks(self, i: int) -> np.ndarray:
        rows, cols = region(self.meta, i)
        return np.stack([np.asarray(s[i, rows, cols]) > 0 for s in self.stacks])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.masks(self._index[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self.meta["names"])

    def __len__(self) -> int:
        return len(self._index)


class OnlyNames(Mapping):
    """A view of ``masks`` (name -> masks) restricted to ``names``, read when asked: the
    annotated images' masks for training, without the drafts' (and without a copy)."""

    def __init__(self, masks: Mapping[str, Any], names: Sequence[str]):
        self._masks, self._names = masks, [n for n in names if n in masks]

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
