"""``napari-pal evaluate`` and ``corrupt``: commands on dataset folders (no trained run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_pal.cli.console import plural
from napari_pal.outputs import check_file, outside


def add_parsers(sub: argparse._SubParsersAction, common) -> None:
    e = sub.add_parser("evaluate", help="Dice per class of predicted masks against REF")
    e.add_argument("pred", help="folder written by 'predict'")
    e.add_argument("ref", help="dataset folder with the reference masks")
    e.add_argument("--out", help="CSV to write (per image and mean)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    common(e)
    e.set_defaults(func=run_evaluate)

    from napari_pal.data.errorkinds import KINDS

    c = sub.add_parser("corrupt", help="spoil a fraction of the masks (the paper's "
                       "erode/dilate, or annotator error kinds)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("data", help="dataset folder whose masks are copied and spoilt")
    c.add_argument("out", help="new folder for the corrupted copy (with corruption.csv)")
    c.add_argument("--fraction", type=float, default=0.5, help="fraction of images spoilt")
    c.add_argument("--pixels", type=int, nargs=2, default=(5, 13), metavar=("LO", "HI"),
                   help="radius range in pixels of the stored masks (corruption.csv's "
                   "'pixels' column is the radius drawn)")
    c.add_argument("--seed", type=int, default=0, help="random seed")
    c.add_argument("--ops", default="erode,dilate",
                   help=f"comma list of error kinds, one drawn per spoilt class: "
                   f"{', '.join(KINDS)} (the paper's noise: erode,dilate)")
    c.add_argument("--classes-per-image", type=int, nargs=2, metavar=("LO", "HI"),
                   help="spoil LO..HI classes of each picked image (default: every class, "
                   "the paper's rule)")
    common(c)
    c.set_defaults(func=run_corrupt)


def run_evaluate(a: argparse.Namespace) -> int:
    from napari_pal.atomic import write_text
    from napari_pal.data.dataset import open_dataset
    from napari_pal.scoring.metrics import evaluate

    if a.out:
        check_file(Path(a.out), a.overwrite)
    ref = open_dataset(Path(a.ref), split=a.split)
    result = evaluate(Path(a.pred), ref)
    print(result.table())
    if a.out:
        write_text(a.out, result.to_csv())
        print(f"wrote {a.out}")
    return 0


def run_corrupt(a: argparse.Namespace) -> int:
    from napari_pal.data.corruption import corrupt_dataset

    outside(Path(a.out), Path(a.data))
    ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    records = corrupt_dataset(Path(a.data), Path(a.out), fraction=a.fraction,
                              pixels=(a.pixels[0], a.pixels[1]), seed=a.seed, ops=ops,
                              split=a.split, classes_per_image=(
                                  tuple(a.classes_per_image) if a.classes_per_image else None))
    bad = {r.name for r in records if r.operation != "none"}
    print(f"corrupted {len(bad)} of {plural(len({r.name for r in records}), 'image')}; truth "
          f"in {Path(a.out) / 'corruption.csv'}")
    return 0
