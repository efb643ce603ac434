"""napari sample data: the bundled synthetic chest set, opened like a dropped folder."""

from __future__ import annotations

from pathlib import Path


def sample_folder() -> Path:
    """The bundled sample (resources/sample), else one generated once into the user cache."""
    here = Path(__file__).resolve().parent
    for cand in (here / "resources" / "sample", here.parents[1] / "resources" / "sample"):
        if (cand / "images").is_dir() and (cand / "masks").is_dir():
            return cand
    from platformdirs import user_cache_dir

    out = Path(user_cache_dir("napari-pal")) / "sample"
    if (out / "classes.txt").is_file():
        return out
    tmp = out.with_name(out.name + ".part")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    from napari_pal.data.synthetic import make_sample_dataset

    make_sample_dataset(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def make_sample_data():
    from napari_pal._napari.reader import layer_data_for

    return layer_data_for(sample_folder())
