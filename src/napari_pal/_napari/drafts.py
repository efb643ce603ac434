"""Drafts: images of the folder without masks. They are shown with empty mask slices and
status "draft"; their predicted masks are offered (Accept prediction: status "accepted"),
and painting into a draft's slice makes it "edited". Only then is it exported (the Export
panel leaves out images still "draft"): an empty mask must never be written as if someone
had annotated "nothing here"."""

from __future__ import annotations

from napari_pal._napari.autosave import atom_slices
from napari_pal._napari.state import DRAFT, EDITED, ReviewState
from napari_pal._napari.viewer_slices import current_index


class DraftWatcher:
    """Marks a draft "edited" when the annotator paints into its slice of a mask layer."""

    def __init__(self, viewer, state: ReviewState) -> None:
        self.viewer, self.state = viewer, state
        self._layers: list = []
        state.masks_changed.connect(self._watch)

    def _watch(self) -> None:
        self.close()
        self._layers = [ly for ly in self.state.mask_layer_choice if ly is not None]
        for ly in self._layers:
            ly.events.paint.connect(self._on_paint)

    def _on_paint(self, event) -> None:
        state = self.state
        if state.meta is None or not state.drafts:
            return
        touched = atom_slices(getattr(event, "value", None)) or {current_index(self.viewer)}
        names = state.names
        for i in touched:
            if 0 <= i < len(names) and state.status.get(names[i]) == DRAFT:
                state.set_status(names[i], EDITED)

    def close(self) -> None:
        """Stop watching (the widget is closing, or other mask layers are chosen)."""
        for ly in self._layers:
            try:
                ly.events.paint.disconnect(self._on_paint)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._layers = []
