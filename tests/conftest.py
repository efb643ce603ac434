"""Shared fixtures: the real JSRT data (beside the repository) and the bundled sample."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _grid_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Training's grid cache goes to a per-session temporary folder, not the user's cache."""
    monkeypatch.setenv("NAPARI_PAL_GRID_CACHE", str(tmp_path_factory.getbasetemp() / "grids"))


@pytest.fixture(scope="session")
def jsrt256() -> Path:
    """JSRT 256 px data set in ``../shared/data/jsrt256`` (the folder holding the repo)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "jsrt256"
    if not path.is_dir():
        pytest.skip(f"JSRT data not found at {path}")
    return path


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The synthetic sample data set committed in ``resources/sample``."""
    return REPO / "resources" / "sample"


def hash_tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` (relative path -> SHA-256): proves a folder was left as it was."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tree_hash():
    return hash_tree
