"""The grid cache: the same samples as gridding in memory, built once, reused, updated per
changed file, written atomically outside the dataset; training reads it batch by batch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from napari_pal.data import gridcache
from napari_pal.data.dataset import open_dataset
from napari_pal.data.synthetic import make_sample_dataset
from napari_pal.data.trainset import GridImages, grid_sample_of, load_training_set
from napari_pal.errors import PalError
from napari_pal.method.config import TrainConfig
from napari_pal.method.training import Trainer

SIZE = 32


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_sample_dataset(root, n=5, size=48, seed=3)
    return root


def _count_records(monkeypatch) -> list[int]:
    built: list[int] = []
    real = gridcache._record

    def counting(dataset, i, size):
        built.append(i)
        return real(dataset, i, size)

    monkeypatch.setattr(gridcache, "_record", counting)
    return built


def test_samples_match_gridding_in_memory(data: Path, tmp_path: Path) -> None:
    ds = open_dataset(data)
    ts = load_training_set(ds, SIZE, cache_dir=tmp_path / "c")
    assert isinstance(ts.images, GridImages) and len(ts) == 5
    images, masks = ts.batch(torch.tensor([3, 0]))
    assert images.shape == (2, 1, SIZE, SIZE) and images.dtype == torch.float32
    assert masks.shape == (2, 3, SIZE, SIZE) and masks.dtype == torch.float32
    for k, i in enumerate([3, 0]):
        frame, img, msk = grid_sample_of(ds, i, SIZE)
        assert ts.frames[i] == frame
        assert np.abs(images[k, 0].numpy() - img).max() <= 0.5 / 255 + 1e-6  # uint8 steps
        np.testing.assert_array_equal(masks[k].numpy(), msk.astype(np.float32))
    assert ts.masks[1].shape == (3, SIZE, SIZE) and ts.images[:].shape == (5, 1, SIZE, SIZE)
    for i in (np.int64(2), torch.tensor(2)):
        assert ts.images[i].shape == (1, SIZE, SIZE) and ts.masks[i].shape == (3, SIZE, SIZE)
    assert ts.images[np.array([1, 2])].shape == (2, 1, SIZE, SIZE)


def test_built_once_reused_and_updated_only_for_changed_files(
        data: Path, tmp_path: Path, monkeypatch) -> None:
    built = _count_records(monkeypatch)
    ds = open_dataset(data)
    load_training_set(ds, SIZE, cache_dir=tmp_path / "c")
    assert built == [0, 1, 2, 3, 4]
    files = list((tmp_path / "c").iterdir())
    assert len(files) == 1 and files[0].suffix == ".grid"
    built.clear()
    load_training_set(open_dataset(data), SIZE, cache_dir=tmp_path / "c")
    assert built == []  # reused across runs

    # an edited mask: only that image is re-gridded, and the new mask is what training sees
    p = data / "masks" / "heart" / f"{ds.names[2]}.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(p)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    ts = load_training_set(open_dataset(data, check=False), SIZE, cache_dir=tmp_path / "c")
    assert built == [2]
    assert ts.masks[[2]][0, 1].sum() == 0 and ts.masks[[1]][0, 1].sum() > 0
    assert len(list((tmp_path / "c").iterdir())) == 1  # replaced, not added; no temp left

    built.clear()
    load_training_set(open_dataset(data), 24, cache_dir=tmp_path / "c")  # another size
    assert built == [0, 1, 2, 3, 4] and len(list((tmp_path / "c").iterdir())) == 2


def test_a_damaged_cache_is_rebuilt(data: Path, tmp_path: Path, monkeypatch) -> None:
    ds = open_dataset(data)
    load_training_set(ds, SIZE, cache_dir=tmp_path / "c")
    (path,) = (tmp_path / "c").iterdir()
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 10)
    built = _count_records(monkeypatch)
    ts = load_training_set(ds, SIZE, cache_dir=tmp_path / "c")
    assert built == [0, 1, 2, 3, 4]
    assert ts.images[[4]].shape == (1, 1, SIZE, SIZE)


def test_a_failed_build_leaves_the_old_cache_and_no_partial_file(
        data: Path, tmp_path: Path, monkeypatch) -> None:
    ds = open_dataset(data)
    load_training_set(ds, SIZE, cache_dir=tmp_path / "c")
    (path,) = (tmp_path / "c").iterdir()
    before = path.read_bytes()
    p = data / "images" / f"{ds.names[1]}.png"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10_000_000))

    def boom(dataset, i, size):
        raise KeyboardInterrupt  # a kill half-way through the rebuild

    monkeypatch.setattr(gridcache, "_record", boom)
    with pytest.raises(KeyboardInterrupt):
        load_training_set(ds, SIZE, cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == [path] and path.read_bytes() == before


def test_cache_never_inside_the_dataset(data: Path) -> None:
    ds = open_dataset(data)
    with pytest.raises(PalError, match="NAPARI_PAL_GRID_CACHE"):
        load_training_set(ds, SIZE, cache_dir=data / "cache")
    assert not (data / "cache").exists()


def test_env_var_sets_the_cache_folder(data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(gridcache.ENV, str(tmp_path / "env-cache"))
    assert gridcache.cache_base() == tmp_path / "env-cache"
    load_training_set(open_dataset(data), SIZE)
    assert len(list((tmp_path / "env-cache").glob("data-32px-*.grid"))) == 1


def test_overrides_replace_masks_in_memory_only(data: Path, tmp_path: Path) -> None:
    ds = open_dataset(data)
    name = ds.names[0]
    empty = np.zeros((3, 48, 48), bool)
    ts = load_training_set(ds, SIZE, overrides={name: empty}, cache_dir=tmp_path / "c")
    assert ts.masks[[0]].sum() == 0 and ts.masks[[1]].sum() > 0
    plain = load_training_set(ds, SIZE, cache_dir=tmp_path / "c")
    assert plain.masks[[0]].sum() > 0  # the cache holds the files' masks


def test_prefetched_batches_are_the_asked_ones(data: Path, tmp_path: Path) -> None:
    ts = load_training_set(open_dataset(data), SIZE, cache_dir=tmp_path / "c")
    ts.prefetch(torch.tensor([4, 1]))
    ts.prefetch(torch.tensor([0, 2]))
    a_img, a_msk = ts.batch(torch.tensor([0, 2]))
    b_img, b_msk = ts.batch(torch.tensor([4, 1]))
    torch.testing.assert_close(a_img, ts.images[[0, 2]])
    torch.testing.assert_close(b_msk, ts.masks[[4, 1]].float())
    assert not ts._pending


def test_training_from_the_cache_matches_training_from_tensors(data: Path, tmp_path) -> None:
    from napari_pal.data.trainset import TrainingSet

    ts = load_training_set(open_dataset(data), SIZE, cache_dir=tmp_path / "c")
    dense = TrainingSet(ts.names, ts.classes, ts.frames, ts.images[:], ts.masks[:])
    config = TrainConfig(epochs=2, size=SIZE, batch_size=2, width=4, depth=2, qam_width=4,
                         warmup_epochs=1, precision="fp32", threads=1)
    losses = []
    for d, out in ((ts, "cached"), (dense, "dense")):
        losses.append([e.loss for e in Trainer(d, config, tmp_path / out).run()
                       if e.state == "running"])
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_scoring_streams_image_by_image(data: Path, tmp_path: Path, monkeypatch) -> None:
    """The first score comes after reading one batch of images, not the whole folder."""
    from napari_pal.data.dataset import Dataset
    from napari_pal.method.inference import TrainedModel
    from napari_pal.scoring.quality import analyse

    ds = open_dataset(data)
    config = TrainConfig(epochs=1, size=SIZE, batch_size=5, width=4, depth=2, qam_width=4,
                         warmup_epochs=0, precision="fp32", threads=1)
    list(Trainer(load_training_set(ds, SIZE, cache_dir=tmp_path / "c"), config,
                 tmp_path / "run").run())
    model = TrainedModel.load(tmp_path / "run")
    reads: list[int] = []
    real = Dataset.read_image
    monkeypatch.setattr(Dataset, "read_image", lambda self, i: reads.append(i) or real(self, i))
    scores = analyse(model, ds, maps=True, batch=2)
    first = next(scores)
    assert first.score.name == ds.names[0] and first.probs.shape[0] == 3
    assert len(reads) == 2  # one batch
    assert len(list(scores)) == 4 and len(reads) == 5
