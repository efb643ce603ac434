"""The Qt binding the GUI tests run on: napari (through qtpy) and pytest-qt use the same one,
and it is the one asked for (``QT_API``; ``make test`` runs this folder on PyQt5, then on
PyQt6). Run with ``-s`` to see the binding printed."""

from __future__ import annotations

import importlib
import sys

BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6")


def test_napari_runs_on_the_binding_asked_for(make_napari_viewer, qtbot, asked_qt_api) -> None:
    import qtpy
    from napari.utils.notifications import notification_manager
    from pytestqt.qt_compat import qt_api
    from qtpy.QtWidgets import QApplication

    shown: list[str] = []
    notification_manager.notification_ready.connect(lambda n: shown.append(str(n.message)))
    viewer = make_napari_viewer(show=True)
    from napari_pal._napari.widget import PalWidget

    viewer.window.add_dock_widget(PalWidget(viewer))
    qtbot.wait(50)
    print(f"\nQt binding: {qtpy.API_NAME} {qtpy.QT_VERSION} (pytest-qt: {qt_api.pytest_qt_api})")
    assert qtpy.API_NAME.lower() == qt_api.pytest_qt_api, \
        "napari and pytest-qt use different Qt bindings: set PYTEST_QT_API as QT_API"
    assert [b for b in BINDINGS if b in sys.modules] == [qtpy.API_NAME]
    app = QApplication.instance()
    assert isinstance(app, importlib.import_module(f"{qtpy.API_NAME}.QtWidgets").QApplication)
    asked = asked_qt_api
    if asked:
        assert qtpy.API_NAME.lower() == asked.lower()
    if qtpy.API_NAME == "PyQt6":
        assert not any("PyQt5 backend is deprecated" in m for m in shown)
