"""napari writer: Labels layers -> masks in the dataset layout, at each image's own size.

Layers made by the reader (or the widget) carry the stack's mapping in their metadata;
classes not among the saved layers are taken from the original masks, so the written
folder is always a complete dataset mask set. Saving into the input folder itself keeps
a backup of its masks first (the user chose that folder explicitly in napari's dialog).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_pal.review.stack import META_KEY


def _meta(attrs: dict) -> dict | None:
    return (attrs.get("metadata") or {}).get(META_KEY)


def write_labels_layers(path: str, layers: Sequence[tuple[Any, dict]]) -> list[str]:
    from napari_pal.data.dataset import Layout, write_classes_txt, write_masks
    from napari_pal.review.export import export_masks
    from napari_pal.review.stack import LayerMasks, dataset_from_meta, mask_store

    path = str(path)
    metas = [_meta(attrs) for _, attrs in layers]
    if all(m is not None and m.get("class_index") is not None for m in metas):
        meta = metas[0]
        by_class = {m["class_index"]: data for (data, _), m in zip(layers, metas)
                    if m["root"] == meta["root"] and m["names"] == meta["names"]}
        stacks = []
        originals = None
        for k in range(len(meta["classes"])):
            if k in by_class:
                stacks.append(by_class[k])
            else:  # keep the class as it is on disk
                if originals is None:
                    originals = mask_store(dataset_from_meta(meta), meta)  # read per slice
                stacks.append(originals.layer(k))
        written = export_masks(path, meta, LayerMasks(meta, stacks), overwrite_originals=True)
        return [str(p) for p in written]
    # Labels drawn from scratch: one class per layer (its name), one image per slice.
    out, written = Path(path), []
    classes = [attrs.get("name", f"class_{k + 1}") for k, (_, attrs) in enumerate(layers)]
    arrays = [np.asarray(data) for data, _ in layers]
    arrays = [a[None] if a.ndim == 2 else a for a in arrays]
    n = arrays[0].shape[0]
    if any(a.shape != arrays[0].shape for a in arrays):
        from napari_pal.errors import DatasetError

        raise DatasetError("these Labels layers differ in shape; save them one at a time.")
    for i in range(n):
        masks = np.stack([a[i] > 0 for a in arrays])
        written += write_masks(out, Layout.CLASS_FOLDERS, classes, f"slice_{i:04d}", masks)
    written.append(write_classes_txt(out, classes))
    return [str(p) for p in written]


def write_labels(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 single-layer writer."""
    return write_labels_layers(path, [(data, attributes)])


def write_labels_multi(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 multi-layer writer (several class layers at once)."""
    return write_labels_layers(path, [(d, a) for d, a, _ in layer_data])
