"""The Recovery panel: offers the autosaved corrections of the dataset shown back (restore
or discard). Corrections whose files changed on disk since are listed as stale and restored
only when ticked. Hidden while nothing is on offer; after an export the autosave of the
dataset is discarded (the exported folder is the safe copy of the corrections)."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_pal._napari import notify
from napari_pal._napari.state import UNREVIEWED, ReviewState
from napari_pal._napari.viewer_slices import set_mask
from napari_pal.errors import PalError


class RecoveryPanel(QWidget):
    def __init__(self, state: ReviewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.store = None
        self._offer: list[tuple[str, bool]] = []  # (name, stale) of autosaved corrections
        self._offer_status: dict[str, str] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.stale_check = QCheckBox("also restore the stale ones")
        row = QHBoxLayout()
        self.restore_button = QPushButton("Restore autosaved corrections")
        self.restore_button.clicked.connect(lambda: self.restore())
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("forget the autosaved corrections of this dataset "
                                       "(the dataset itself is not touched)")
        self.discard_button.clicked.connect(self.discard)
        row.addWidget(self.restore_button)
        row.addWidget(self.discard_button)
        lay.addWidget(self.label)
        lay.addWidget(self.stale_check)
        lay.addLayout(row)
        self.setVisible(False)
        state.exported.connect(self._on_exported)

    # --- the offer --------------------------------------------------------------------------
    def offer(self, store) -> None:
        """Show what ``store`` (the RecoveryStore of the dataset shown, or None) holds."""
        self.store, self._offer, self._offer_status = store, [], {}
        meta = self.state.meta
        if store is None or meta is None:
            self.setVisible(False)
            return
        names = set(meta["names"])
        try:
            self._offer = [(n, store.is_stale(n)) for n in store.pending() if n in names]
            status = store.load_status()
        except (PalError, OSError) as err:
            notify.warning(str(err))
            status = {}
        self._offer_status = {n: s for n, s in status.items() if n in names and s != UNREVIEWED}
        self._show()

    def pending(self) -> list[tuple[str, bool]]:
        """(name, stale) of the autosaved corrections on offer for the dataset shown."""
        return list(self._offer)

    def _show(self, notify_user: bool = True) -> None:
        fresh = [n for n, stale in self._offer if not stale]
        stale = [n for n, s in self._offer if s]
        if not (self._offer or self._offer_status):
            self.setVisible(False)
            return
        parts = []
        if fresh:
            parts.append(f"{len(fresh)} image(s) with autosaved corrections")
        if stale:
            parts.append(f"{len(stale)} stale (their files changed on disk since): "
                         + ", ".join(stale[:5]) + (" …" if len(stale) > 5 else ""))
        if self._offer_status:
            parts.append(f"review status of {len(self._offer_status)} image(s)")
        text = "Autosaved: " + "; ".join(parts) + "."
        self.label.setText(text)
        self.stale_check.setVisible(bool(stale))
        self.stale_check.setChecked(False)
        n = len(fresh) or len(stale)
        self.restore_button.setText(f"Restore {n} autosaved correction{'s' * (n != 1)}"
                                    if self._offer else "Restore review status")
        self.setVisible(True)
        if notify_user:
            notify.info(f"{text} Restore them in the Pick-and-Learn widget's Data box.")

    # --- actions ----------------------------------------------------------------------------
    def restore(self, include_stale: bool | None = None) -> list[str]:
        """Write the autosaved corrections into the mask layers (one undoable edit per class
        and image) and the autosaved review status into the state; returns the names
        restored. Stale ones only with ``include_stale`` (default: the box's tick)."""
        state, meta = self.state, self.state.meta
        if self.store is None or meta is None:
            return []
        if include_stale is None:
            include_stale = self.stale_check.isChecked()
        try:
            layers = state.mask_layers()
        except PalError as err:
            notify.error(err)
            return []
        restored, skipped = [], []
        for name, stale in self._offer:
            if stale and not include_stale:
                continue
            i = meta["names"].index(name)
            try:
                m = self.store.load(name)
            except PalError as err:
                skipped.append(f"{name} ({err})")
                continue
            h, w = meta["shapes"][i]
            if tuple(m.shape[1:]) != (h, w):
                skipped.append(f"{name} (saved at {m.shape[2]}×{m.shape[1]} px, the image is "
                               f"now {w}×{h})")
                continue
            for k, layer in enumerate(layers):
                set_mask(layer, meta, i, m[k])
            restored.append(name)
        for name, st in self._offer_status.items():
            state.set_status(name, st)  # the autosave of the status follows the signal
        self._offer = [(n, s) for n, s in self._offer if n not in restored]
        self._offer_status = {}
        self._show(notify_user=False)
        msg = f"restored the autosaved corrections of {len(restored)} image(s)"
        if skipped:
            notify.warning(msg + "; not restored: " + "; ".join(skipped))
        else:
            notify.info(msg)
        return restored

    def discard(self) -> None:
        """Forget every autosaved correction of the dataset shown (the dataset is untouched)."""
        if self.store is not None:
            self.store.discard()
        self._offer, self._offer_status = [], {}
        self.setVisible(False)

    def _on_exported(self, folder) -> None:
        try:
            self.discard()
        except OSError as err:
            notify.warning(f"could not discard the autosave: {err}")
