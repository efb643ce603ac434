"""The review state every panel shares: one object, changed through its methods, with
signals (psygnal: no Qt, so it is tested and reasoned about without a display).

It holds what the review is about: the dataset shown (``meta``, its lazily opened
:class:`Dataset`), the mask layer chosen for each class, the quality scores, the predictions
and disagreement maps, the review status of each image, and the current run folder. It holds
no widgets and no viewer; panels read it and call its methods, and listen to its signals.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from napari_pal.errors import PalError
from napari_pal.review.stack import region

UNREVIEWED, REVIEWED = "unreviewed", "reviewed"
#: an image without masks: predicted, never scored; exported only once ACCEPTED or EDITED
DRAFT, ACCEPTED, EDITED = "draft", "accepted", "edited"


class ReviewState:
    """What is under review; see the module doc."""

    #: another dataset is about to be shown: the last chance to save what belongs to this one
    about_to_change = Signal()
    #: a new dataset is shown (or none): ``meta`` changed, everything else was reset
    dataset_changed = Signal()
    #: the mask layer chosen for some class changed
    masks_changed = Signal()
    #: a score or prediction map arrived (image index) / every image is scored (run folder)
    image_scored = Signal(int)
    scores_ready = Signal(object)
    #: training goes on, the ranking was refreshed on its current model (a RankingRefresh)
    ranking_refreshed = Signal(object)
    #: the review status of one image changed (its name)
    status_changed = Signal(str)
    #: the masks were exported to a folder: the autosave of the dataset is not needed
    exported = Signal(object)
    #: a job started (True) or ended (False)
    busy_changed = Signal(bool)

    def __init__(self) -> None:
        self.meta: dict[str, Any] | None = None
        self.image_layer: Any = None
        self.mask_layer_choice: list[Any] = []
        self.scores: dict[str, Any] = {}
        self.status: dict[str, str] = {}
        #: SliceStores in the layer cache, written image by image (None before any scoring):
        #: uint8 (C, N, H, W) predicted masks, float32 (1, N, H, W) disagreement maps
        self.pred: Any = None
        self.dis: Any = None
        self.last_run: Path | None = None
        #: per class: may its scores be read as a ranking (ClassReliability; {} = unknown)
        self.reliability: dict[str, Any] = {}
        self.refresh: Any = None  # the last RankingRefresh (None: no ranking while training)
        self.busy = False
        self._dataset = None

    # --- the dataset ----------------------------------------------------------------------
    def set_dataset(self, image_layer: Any, meta: Mapping[str, Any] | None) -> None:
        """Show another dataset: scores, predictions and status start afresh."""
        self.about_to_change.emit()
        self.image_layer = image_layer
        self.meta = None if meta is None else dict(meta)
        self._dataset = None
        self._close_maps()
        self.scores = {}
        self.reliability, self.refresh = {}, None
        drafts = set(() if self.meta is None else self.meta.get("drafts", ()))
        self.status = {} if self.meta is None else {
            n: DRAFT if n in drafts else UNREVIEWED for n in self.meta["names"]}
        self.mask_layer_choice = []
        self.dataset_changed.emit()

    @property
    def classes(self) -> list[str]:
        return [] if self.meta is None else list(self.meta["classes"])

    @property
    def names(self) -> list[str]:
        return [] if self.meta is None else list(self.meta["names"])

    def dataset(self):
        """The engine's Dataset of the stack (opened once, when first needed)."""
        if self.meta is None:
            raise PalError("open a dataset folder first")
        if self._dataset is None:
            from napari_pal.review.stack import dataset_from_meta

            self._dataset = dataset_from_meta(self.meta)
        return self._dataset

    # --- the mask layers ------------------------------------------------------------------
    def set_mask_layers(self, layers: list[Any]) -> None:
        if [id(x) for x in layers] != [id(x) for x in self.mask_layer_choice]:
            self.mask_layer_choice = list(layers)
            self.masks_changed.emit()

    def mask_layers(self) -> list:
        """The Labels layer of each class; a PalError while one is missing."""
        layers = self.mask_layer_choice
        if self.meta is None or len(layers) != len(self.classes) \
                or any(ly is None for ly in layers):
            raise PalError("choose the Labels layer that holds each class's masks (Data box), "
                           "or open a dataset folder first")
        return list(layers)

    def is_mask_layer(self, layer: Any) -> bool:
        return any(ly is layer for ly in self.mask_layer_choice)

    def layer_masks(self):
        """The masks as painted now: what training, scoring and export read."""
        from napari_pal.review.stack import LayerMasks

        return LayerMasks(self.meta, [ly.data for ly in self.mask_layers()])

    # --- results ----------------------------------------------------------------------------
    def clear_results(self) -> None:
        self.scores = {}

    @property
    def drafts(self) -> list[str]:
        """Images without masks in the folder (whatever their status now)."""
        return [] if self.meta is None else list(self.meta.get("drafts", ()))

    def _close_maps(self) -> None:
        for store in (self.pred, self.dis):
            if store is not None:
                store.close()
        self.pred, self.dis = None, None

    def _maps(self) -> None:
        """Make the prediction and disagreement stores (on disk, per slice) when first needed."""
        from napari_pal.review.slicestore import SliceStore, session_folder

        shape = tuple(self.image_layer.data.shape)
        if self.pred is None or self.pred.shape[1:] != shape:
            self._close_maps()
            folder = session_folder(self.meta["root"])
            c = len(self.meta["classes"])
            self.pred = SliceStore(folder / "pred", (c, *shape), np.uint8, cache_planes=2 * c)
            self.dis = SliceStore(folder / "dis", (1, *shape), np.float32, cache_planes=2)

    def _put_maps(self, i: int, probs: np.ndarray, dis: np.ndarray | float) -> None:
        self._maps()
        rows, cols = region(self.meta, i)
        for k in range(self.pred.shape[0]):
            plane = np.zeros(self.pred.shape[2:], np.uint8)
            plane[rows, cols] = probs[k] > 0.5
            self.pred.write_plane(k, i, plane)
        plane = np.zeros(self.dis.shape[2:], np.float32)
        plane[rows, cols] = dis
        self.dis.write_plane(0, i, plane)

    def predicted(self, k: int, i: int) -> np.ndarray | None:
        """bool (H, W): class k's predicted mask of image i at its size (None: not predicted)."""
        if self.pred is None:
            return None
        rows, cols = region(self.meta, i)
        return self.pred.plane(k, i)[rows, cols] > 0

    def add_draft(self, i: int, probs: np.ndarray) -> None:
        """Keep draft image ``i``'s predicted masks (no score: it has no masks to score)."""
        self._put_maps(i, probs, 0.0)
        self.image_scored.emit(i)

    def update_ranking(self, scores: Mapping[str, Any], reliability: Mapping[str, Any],
                       refresh: Any) -> None:
        """A refresh while training: new scores for the same images; status, masks and the
        predictions shown stay as they are."""
        self.scores = dict(scores)
        self.reliability = dict(reliability)
        self.refresh = refresh
        self.ranking_refreshed.emit(refresh)

    def add_analysis(self, i: int, analysis: Any) -> None:
        """Keep image ``i``'s score, predicted masks and disagreement map."""
        self._put_maps(i, analysis.probs, analysis.disagreement)
        self.scores[analysis.score.name] = analysis.score
        self.image_scored.emit(i)

    def finish_scoring(self, run_dir: Path, reliability: Mapping[str, Any] | None = None,
                       refresh: Any = None, scores: Mapping[str, Any] | None = None) -> None:
        """Every image is scored: ``scores`` (ranked over the reliable classes) replace the
        ones that arrived image by image."""
        if scores is not None:
            self.scores = dict(scores)
        self.reliability = dict(reliability or {})
        self.refresh = refresh
        self.last_run = Path(run_dir)
        self.scores_ready.emit(self.last_run)

    def worst_first(self, unreviewed_only: bool = False) -> list:
        return sorted((s for s in self.scores.values()
                       if not unreviewed_only or self.status.get(s.name) != REVIEWED),
                      key=lambda s: (s.quality, s.name))

    # --- review status ----------------------------------------------------------------------
    def set_status(self, name: str, status: str) -> None:
        if self.status.get(name) != status:
            self.status[name] = status
            self.status_changed.emit(name)

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busy_changed.emit(busy)
