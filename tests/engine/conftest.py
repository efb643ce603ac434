"""Fixtures shared by the engine tests."""

import pytest

from napari_pal.data.dataset import open_dataset


@pytest.fixture(scope="module")
def small(sample_dir):
    """The first 8 images of the bundled sample."""
    ds = open_dataset(sample_dir)
    return ds.subset(ds.names[:8])
