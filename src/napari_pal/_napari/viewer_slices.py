"""Which image of the stack the viewer shows, and one undoable edit of an image's masks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from napari_pal.review.stack import region


def slice_axis(viewer) -> int:
    """The stack axis (the images of a folder are stacked along the first one)."""
    return max(0, viewer.dims.ndim - 3)


def current_index(viewer) -> int:
    return int(viewer.dims.current_step[slice_axis(viewer)])


def current_name(viewer, meta: Mapping[str, Any] | None) -> str | None:
    if meta is None:
        return None
    i = current_index(viewer)
    return meta["names"][i] if 0 <= i < len(meta["names"]) else None


def set_mask(layer, meta: Mapping[str, Any], i: int, new: np.ndarray) -> None:
    """Put bool ``new`` into slice i's image region of ``layer``, as one undoable edit."""
    rows, cols = region(meta, i)
    cur = np.asarray(layer.data[i, rows, cols]) > 0
    yy, xx = np.nonzero(cur != new)
    if len(yy) == 0:
        return
    idx = (np.full_like(yy, i), yy + rows.start, xx + cols.start)
    layer.data_setitem(idx, new[yy, xx].astype(layer.data.dtype))
