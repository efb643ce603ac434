"""The Export panel: write every mask (the input's layout and image sizes, images copied)
and quality.csv with the review status to a folder; into the input folder only when asked,
and then with a backup of its masks. A successful export tells the state (the autosave of
the dataset is then discarded)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QCheckBox, QFileDialog, QPushButton, QVBoxLayout, QWidget

from napari_pal._napari import notify
from napari_pal._napari.state import DRAFT, ReviewState
from napari_pal.errors import PalError


class ExportPanel(QWidget):
    def __init__(self, state: ReviewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.overwrite_check = QCheckBox("overwrite the original masks (a backup is kept)")
        self.export_button = QPushButton("Export corrected masks + quality.csv…")
        self.export_button.clicked.connect(self._clicked)
        lay.addWidget(self.overwrite_check)
        lay.addWidget(self.export_button)

    def _clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export corrected masks to")
        if path:
            self.export(path)

    def export(self, folder: str | Path) -> Path | None:
        """Write every mask (layout and sizes of the input) and quality.csv to ``folder``;
        the path of quality.csv, or None after an error (shown)."""
        from napari_pal.review.export import export_masks, write_quality_csv

        state = self.state
        try:
            masks = state.layer_masks()
            drafts = [n for n in state.drafts if state.status.get(n) == DRAFT]
            written = export_masks(folder, state.meta, masks, skip=drafts,
                                   overwrite_originals=self.overwrite_check.isChecked())
            csv_path = write_quality_csv(Path(folder) / "quality.csv", state.names,
                                         state.classes, state.scores, state.status)
        except (PalError, OSError) as err:
            notify.error(err)
            return None
        state.exported.emit(Path(folder))
        backup = [p for p in written if p.name.startswith("masks.backup-")]
        extra = f"; originals backed up in {backup[0]}" if backup else ""
        left = (f" ({len(drafts)} draft{'s' if len(drafts) != 1 else ''} not accepted or "
                "edited: left without masks)") if drafts else ""
        notify.info(f"exported {len(state.names) - len(drafts)} images' masks and "
                    f"{csv_path.name} to {folder}{extra}{left}")
        return csv_path
