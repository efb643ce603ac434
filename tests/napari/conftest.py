"""Every test in this folder drives real napari in real Qt: marked ``gui`` once, here.

The Qt binding: napari finds it through qtpy (``QT_API``: pyqt5, the default we ship, or
pyqt6), pytest-qt through ``PYTEST_QT_API`` (else pyproject's ``qt_api``). Both must be the
same; when this folder is what pytest was asked to run, this file is read before pytest-qt
chooses, and makes pytest-qt follow ``QT_API``. ``test_qt_binding`` checks the outcome.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: the binding asked for, read before qtpy (which rewrites QT_API to what it found) loads
ASKED_QT_API = os.environ.get("QT_API")
if ASKED_QT_API:
    os.environ.setdefault("PYTEST_QT_API", ASKED_QT_API.lower())


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gui)


@pytest.fixture
def asked_qt_api() -> str | None:
    """QT_API as it was before qtpy loaded (None: not set)."""
    return ASKED_QT_API


@pytest.fixture(autouse=True)
def _layer_cache_in_tmp(tmp_path_factory, monkeypatch):
    """The mask / prediction layers' stores go to a temporary folder, not the user's cache."""
    from napari_pal.review.slicestore import ENV

    monkeypatch.setenv(ENV, str(tmp_path_factory.getbasetemp() / "layers"))
