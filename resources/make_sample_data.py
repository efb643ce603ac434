"""Regenerate resources/sample: 36 synthetic chest radiographs (256 px, seed 0) with masks.

Run from anywhere: ``python resources/make_sample_data.py``.  About a third of the images
have deliberately wrong masks; resources/sample/corruption.csv says which and how.
tests/test_synthetic.py checks that the committed files match a fresh regeneration.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from napari_pal.data.synthetic import make_sample_dataset

SAMPLE = Path(__file__).resolve().parent / "sample"
# 12 of the 36 are bad; the PNGs are committed (about 2 MB)
PARAMS = {"n": 36, "size": 256, "seed": 0, "bad_fraction": 0.33}


def main() -> None:
    if SAMPLE.exists():
        shutil.rmtree(SAMPLE)
    rows = make_sample_dataset(SAMPLE, **PARAMS)
    bad = sorted({name for name, _, op, _ in rows if op != "none"})
    print(f"wrote {PARAMS['n']} images to {SAMPLE} ({len(bad)} with corrupted masks)")


if __name__ == "__main__":
    main()
