"""Export (Qt-free part of the plugin): originals are overwritten only on request, with a backup."""

from pathlib import Path

import numpy as np
import pytest

from napari_pal.data.dataset import open_dataset
from napari_pal.data.synthetic import make_sample_dataset
from napari_pal.errors import DatasetError
from napari_pal.review.export import export_masks
from napari_pal.review.stack import LayerMasks, mask_stacks, open_folder


@pytest.fixture
def data(tmp_path: Path) -> Path:
    make_sample_dataset(tmp_path / "data", n=3, size=64, seed=2)
    return tmp_path / "data"


def test_export_refuses_the_input_folder_unless_asked_and_then_backs_up(data, tmp_path,
                                                                      tree_hash):
    ds, meta = open_folder(data)
    stacks = mask_stacks(ds, meta)
    stacks[0][0, :5, :5] = 1  # an annotator's correction in the first image
    masks = LayerMasks(meta, list(stacks))
    before = tree_hash(data)
    for target in (data, data / "masks" / "inside"):
        with pytest.raises(DatasetError, match="input folder"):
            export_masks(target, meta, masks)
    assert tree_hash(data) == before

    out = tmp_path / "corrected"
    export_masks(out, meta, masks)
    again = open_dataset(out)
    assert again.names == ds.names
    assert np.array_equal(again.read_masks(0), masks.masks(0))
    assert tree_hash(data) == before

    original = (data / "masks" / ds.classes[0] / f"{ds.names[0]}.png").read_bytes()
    written = export_masks(data, meta, masks, overwrite_originals=True)
    backup = [p for p in written if p.name.startswith("masks.backup-")]
    assert len(backup) == 1
    assert (backup[0] / ds.classes[0] / f"{ds.names[0]}.png").read_bytes() == original
    assert np.array_equal(open_dataset(data).read_masks(0), masks.masks(0))
