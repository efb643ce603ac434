"""The widget docked on a folder, as the GUI tests need it (one place for the set-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def dock_widget(make_napari_viewer, folder: Path, runs_dir: Path, settings: dict[str, Any],
                *, by_hand: bool = True):
    """napari with ``folder`` opened and the review widget docked; training goes to
    ``runs_dir`` with the form set to ``settings`` (by hand: no time budget)."""
    from napari_pal._napari.widget import PalWidget

    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin="napari-pal")
    widget = PalWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pick-and-Learn quality review")
    widget.training_panel.runs_dir = runs_dir
    widget.training_panel.by_hand.setChecked(by_hand)
    for k, v in settings.items():
        widget.training_panel.form[k].value = v
    return viewer, widget
