"""napari reader: a dataset folder (images/ + masks/) -> one lazy image stack + one Labels
layer per class, on the same (N, Hmax, Wmax) stack (see ``review.stack`` for the placement).
Both are lazy: a slice's image and mask files are read when napari first shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_pal.review.stack import META_KEY, class_colour, is_dataset_folder


def napari_get_reader(path: str | list[str]):
    """Return a reader for a dataset folder, or None for anything else."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if is_dataset_folder(p):
        return read_dataset
    if p.name in ("images", "masks") and is_dataset_folder(p.parent):
        return read_dataset
    return None


def mask_layer_name(cls: str) -> str:
    return f"{cls} mask"


def image_layer_name(root: str | Path) -> str:
    return f"{Path(root).name} images"


def layer_data_for(path: str | Path, classes=None) -> list[tuple[Any, dict, str]]:
    """The layer data tuples for a dataset folder (also used by the widget's folder picker)."""
    from napari_pal.review.stack import lazy_image_stack, mask_store, open_folder

    ds, meta = open_folder(path, classes)
    image = lazy_image_stack(ds, meta)
    layers: list[tuple[Any, dict, str]] = [(image, {
        "name": image_layer_name(ds.root),
        "contrast_limits": [0.0, 1.0],
        "colormap": "gray",
        "metadata": {META_KEY: {**meta, "role": "image"}},
    }, "image")]
    store = mask_store(ds, meta)  # slices read from the mask files when first shown
    for k, cls in enumerate(ds.classes):
        layers.append((store.layer(k), {
            "name": mask_layer_name(cls),
            "opacity": 0.45,
            "colormap": {1: class_colour(k), None: "transparent"},
            "metadata": {META_KEY: {**meta, "role": "mask", "class_index": k}},
        }, "labels"))
    return layers


def read_dataset(path: str | list[str]) -> list[tuple[Any, dict, str]]:
    if isinstance(path, list):
        path = path[0]
    p = Path(path)
    if p.name in ("images", "masks") and is_dataset_folder(p.parent):
        p = p.parent
    return layer_data_for(p)
