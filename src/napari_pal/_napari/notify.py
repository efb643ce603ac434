"""Every notification the widget shows goes through here (tests replace these functions:
panels call them as ``notify.error(...)``, so one patch reaches every panel)."""

from __future__ import annotations

from napari_pal.errors import PalError


def error(err: BaseException) -> None:
    """A PalError's message names the file and the fix: shown as it is."""
    from napari.utils.notifications import show_error

    show_error(str(err) if isinstance(err, PalError) else f"{type(err).__name__}: {err}")


def info(msg: str) -> None:
    from napari.utils.notifications import show_info

    show_info(msg)


def warning(msg: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(msg)
