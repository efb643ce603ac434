"""The lazily filled, writable slice stores behind the mask layers (no napari needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_pal.data.dataset import open_dataset
from napari_pal.data.synthetic import make_sample_dataset
from napari_pal.review import slicestore
from napari_pal.review.export import export_masks
from napari_pal.review.slicestore import SliceStore, session_folder
from napari_pal.review.stack import LayerMasks, mask_stacks, mask_store, open_folder


@pytest.fixture(autouse=True)
def _layers_in_tmp(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv(slicestore.ENV, str(tmp_path / "layers"))
    return tmp_path / "layers"


def test_slice_array_indexes_like_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 3, (6, 9, 7)).astype(np.uint8)
    store = SliceStore(tmp_path / "s", (1, 6, 9, 7), fill=lambda i: ref[i][None])
    arr = store.layer(0)
    assert arr.shape == ref.shape and arr.dtype == ref.dtype and arr.ndim == 3
    for key in [2, -1, (3, 4), (3, 4, 5), (slice(1, 4), slice(2, 8), 3), ..., (1, ...),
                (slice(None), slice(None, None, 2)), (np.array([0, 5, 5]), np.array([1, 2, 8]),
                                                      np.array([0, 6, 3]))]:
        np.testing.assert_array_equal(np.asarray(arr[key]), ref[key])
    want = ref.copy()
    for key, value in [((2, slice(1, 4), slice(0, 3)), 1), ((slice(0, 2), 0), 2),
                       ((np.array([4, 4, 1]), np.array([0, 1, 2]), np.array([6, 6, 6])),
                        np.array([1, 2, 0], np.uint8))]:
        arr[key] = value
        want[key] = value
        np.testing.assert_array_equal(np.asarray(arr), want)
    store.close()
    assert not (tmp_path / "s").exists()


def test_mask_store_fills_on_first_access_only(tmp_path: Path, monkeypatch) -> None:
    make_sample_dataset(tmp_path / "data", n=40, size=32, seed=4)
    ds, meta = open_folder(tmp_path / "data")
    reads: list[int] = []
    real = type(ds).read_masks
    monkeypatch.setattr(type(ds), "read_masks", lambda self, i: reads.append(i) or real(self, i))
    store = mask_store(ds, meta)
    assert reads == []  # opening reads no mask
    lungs = store.layer(0)
    assert lungs.shape == (40, 32, 32)
    np.testing.assert_array_equal(lungs[30] > 0, real(ds, 30)[0])
    np.testing.assert_array_equal(store.layer(2)[30] > 0, real(ds, 30)[2])
    assert reads == [30]  # one read of slice 30 serves every class
    lungs[30, :4, :4] = 1
    store._cache.clear()  # the edit is in the zarr store, not only in the LRU
    assert (lungs[30, :4, :4] == 1).all() and reads == [30]
    assert store.fills == 1 and store.is_written(30) and not store.is_written(29)
    assert store.folder.is_relative_to(tmp_path / "layers")


def test_edits_reach_the_export_and_never_the_dataset(tmp_path: Path, tree_hash) -> None:
    make_sample_dataset(tmp_path / "data", n=5, size=32, seed=5)
    data = tmp_path / "data"
    before = tree_hash(data)
    ds, meta = open_folder(data)
    store = mask_store(ds, meta)
    store.layer(1)[2, 3:9, 3:9] = 1  # a correction of image 2's heart
    masks = LayerMasks(meta, [store.layer(k) for k in range(len(ds.classes))])
    export_masks(tmp_path / "out", meta, masks)
    back = open_dataset(tmp_path / "out")
    dense = mask_stacks(ds, meta)
    for i in range(5):
        want = dense[:, i] > 0
        if i == 2:
            want[1, 3:9, 3:9] = True
        np.testing.assert_array_equal(back.read_masks(i), want)
    assert tree_hash(data) == before  # nothing written into the dataset folder


def test_session_folder_outside_the_dataset_and_stale_sessions_removed(tmp_path: Path,
                                                                       monkeypatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv(slicestore.ENV, str(data / "cache"))
    with pytest.raises(slicestore.PalError, match="inside the dataset"):
        session_folder(data)
    monkeypatch.setenv(slicestore.ENV, str(tmp_path / "layers"))
    first = session_folder(data)
    dead = first.parent / "999999999-1"  # a process that crashed: its store is cleared
    dead.mkdir()
    second = session_folder(data)
    assert first.is_dir() and second.is_dir() and first != second and not dead.exists()
