"""Review effort of a spoilt folder: masks reviewed, worst first, to find the bad ones.

``python -m napari_pal.bench.review_effort --folder SPOILT --run RUN --out OUT`` scores
every training image of a folder spoilt by ``napari-pal corrupt`` (its corruption.csv is
the truth) with a trained run, once, and writes OUT/effort.md (per order: image ROC AUC /
AP and the images reviewed to find 50 / 90 / 100 % of the spoilt ones) and OUT/effort.png
(the curve). Orders: napari-pal's quality, cleanlab's softmin, the QAM's score and Dice,
all from the same predictions, and the random order's expectation. The run scores the
masks it trained on (in sample), as ``napari-pal score`` does; cleanlab's method assumes
out-of-sample probabilities, which ``python -m napari_pal.bench.errorkinds --oof-folds K``
provides at the price of K trainings. ``--reviewed FILE...`` (the annotator benchmark's
reviewedN.txt, one name a line) puts the images reviewed in earlier rounds first, in that
order, and ranks only the rest: the effort of the loop's order, with RUN its last round.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_pal.atomic import write_text
from napari_pal.errors import PalError


def auc_markdown(sc, skip: Sequence[str] = ()) -> str:
    """Image ROC AUC / AP of each order (spoilt images against clean ones), over the
    images not in ``skip`` (those reviewed already)."""
    from napari_pal.bench.errorkinds import SIGNALS
    from napari_pal.scoring.detection import average_precision, roc_auc

    keep = ~np.isin(np.array(sc.names), list(skip))
    bad = (sc.kinds != "none").any(axis=1)[keep]
    cells = []
    for k in ("quality", "cleanlab", "qam", "dice"):
        s = -sc.per_image[k][keep]
        if np.isnan(s).all():
            continue
        cells.append(f"{SIGNALS[k]} {roc_auc(bad, s):.3f} / {average_precision(bad, s):.3f}")
    where = f" ({int(keep.sum())} images not reviewed)" if len(skip) else ""
    return f"Image ROC AUC / AP{where}: " + "; ".join(cells) + ".\n"


def reviewed_first(sc, files: Sequence[str]) -> list[str]:
    """Put the names listed in ``files`` (in order) ahead of every other image in every
    order: their per-image scores become the lowest, earliest reviewed lowest."""
    names: list[str] = []
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8")
        except OSError as err:
            raise PalError(f"cannot read '{f}' ({err}). Fix: give the reviewedN.txt files "
                           "of an annotator benchmark run.") from err
        names += [n.strip() for n in text.splitlines() if n.strip() and n.strip() not in names]
    unknown = sorted(set(names) - set(sc.names))
    if unknown:
        raise PalError(f"{', '.join(unknown[:3])} in --reviewed are not images of the folder. "
                       "Fix: give the reviewed lists of a run on this folder.")
    for pos, name in enumerate(names):
        i = sc.names.index(name)
        for k in sc.per_image:
            sc.per_image[k][i] = -1e9 + pos
    return names


def run(a: argparse.Namespace) -> int:
    from napari_pal.bench.errorkinds import effort_markdown, load, predict, read_truth, score
    from napari_pal.data.dataset import open_dataset
    from napari_pal.method.inference import TrainedModel
    from napari_pal.scoring.strokes import strokes_of

    folder, run_dir, out = Path(a.folder), Path(a.run), Path(a.out)
    if not (folder / "corruption.csv").is_file():
        raise PalError(f"{folder} has no corruption.csv. Fix: give a folder written by "
                       "'napari-pal corrupt' (its truth file says which masks are spoilt).")
    if not (run_dir / "checkpoint.pt").is_file():
        raise PalError(f"{run_dir} has no checkpoint.pt. Fix: give a run folder written by "
                       "'napari-pal train' on this folder.")
    split = f"{folder / 'split.csv'}:train" if (folder / "split.csv").is_file() else None
    model = TrainedModel.load(run_dir)
    data = load(folder, split, model.config.size, model.classes)
    probs, t = predict(model, data, range(len(data)))
    stored = open_dataset(folder, split=split, classes=data.classes)
    sc = score(data, probs, t, model.config.lam, read_truth(folder / "corruption.csv"),
               strokes_of(stored, probs))
    reviewed = reviewed_first(sc, a.reviewed) if a.reviewed else []
    bad = (sc.kinds != "none").any(axis=1)
    title = a.title or f"{folder.name}: {int(bad.sum())} spoilt images of {bad.size}"
    table = effort_markdown(sc, out / "effort.png", title=title)
    how = f"in sample: run {run_dir} scores the masks it trained on"
    if reviewed:
        how += f"; the {len(reviewed)} images reviewed in earlier rounds come first"
    text = f"{title} ({how}; {out / 'effort.png'})\n\n{table}\n{auc_markdown(sc, reviewed)}"
    write_text(out / "effort.md", text)
    print(text)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m napari_pal.bench.review_effort",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", required=True, help="spoilt folder with corruption.csv")
    p.add_argument("--run", required=True, help="a run trained on it (napari-pal train)")
    p.add_argument("--out", required=True, help="folder for effort.md and effort.png")
    p.add_argument("--reviewed", nargs="+", default=[], metavar="FILE",
                   help="reviewedN.txt files of earlier rounds: those images come first")
    p.add_argument("--title", default="", help="the plot's title (default: folder, counts)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from napari_pal.bench.args import run_or_report

    return run_or_report("review_effort", run, parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
