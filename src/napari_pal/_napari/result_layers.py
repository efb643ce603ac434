"""The layers that show a run's results: each class's predicted masks (contours) and the
disagreement map. Made on the first scoring, updated in place afterwards. Both read the
state's SliceStores slice by slice (nothing is stacked in memory for the whole folder)."""

from __future__ import annotations

from napari_pal._napari.state import ReviewState
from napari_pal.review.stack import META_KEY, class_colour

PRED_SUFFIX = " prediction"
DISAGREEMENT = "disagreement"


def show_results(viewer, state: ReviewState) -> None:
    """Put the state's predictions and disagreement maps into their layers."""
    meta = state.meta
    for k, cls in enumerate(meta["classes"]):
        name = f"{cls}{PRED_SUFFIX}"
        md = {META_KEY: {**meta, "role": "prediction", "class_index": k}}
        if name in viewer.layers:
            layer = viewer.layers[name]
            if getattr(layer.data, "store", None) is state.pred:
                layer.refresh()  # the same store: new slices were written into it
            else:
                layer.data = state.pred.layer(k)
        else:
            layer = viewer.add_labels(state.pred.layer(k), name=name, opacity=0.9, metadata=md,
                                      colormap={1: class_colour(k), None: "transparent"})
        layer.contour = 1
    if DISAGREEMENT in viewer.layers:
        layer = viewer.layers[DISAGREEMENT]
        if getattr(layer.data, "store", None) is state.dis:
            layer.refresh()
        else:
            layer.data = state.dis.layer(0)
    else:
        viewer.add_image(state.dis.layer(0), multiscale=False, name=DISAGREEMENT,
                         colormap="inferno", blending="additive", opacity=0.6,
                         contrast_limits=(0.0, 1.0),
                         metadata={META_KEY: {**meta, "role": "disagreement"}})


def prediction_layer(viewer, state: ReviewState, k: int):
    name = f"{state.classes[k]}{PRED_SUFFIX}"
    return viewer.layers[name] if name in viewer.layers else None
