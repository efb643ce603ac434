"""Error-kind benchmark: does each signal find each kind of annotator error?

``python -m napari_pal.bench.errorkinds --out DIR`` spoils one or two classes of a fraction
of JSRT's training masks with the kinds of ``data.errorkinds`` (DIR/data, truth in
DIR/data/corruption.csv), trains one model on them (DIR/run; or takes ``--run``), predicts
every training image once and scores it with every signal from those same predictions:
napari-pal's quality, the quality before this change (mask outline distance, class mean),
Dice, the QAM's score and cleanlab's softmin (default in sample: the model has seen the
masks it judges; ``--oof-folds K``: out of fold, each image scored by a model that did not
see it). It writes DIR/scores.csv (one row per image and class) and DIR/table.md: per kind,
ROC AUC / AP of each signal, for class masks (the kind's spoilt class masks against every
clean class mask) and for images (images with the kind against wholly clean images).
``--folder`` scores a folder spoilt elsewhere (e.g. by ``napari-pal corrupt``).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_pal.atomic import write_text
from napari_pal.errors import PalError

#: signal -> what the table calls it; every one is "higher = better mask"
SIGNALS = {"quality": "napari-pal quality", "outline": "mask outline distance (before)",
           "dice": "Dice", "qam": "QAM score", "cleanlab": "cleanlab softmin"}


@dataclass
class Scored:
    """Per image (N) and class (C): truth and every signal, same predictions for all."""

    names: list[str]
    classes: list[str]
    kinds: np.ndarray  # (N, C) str: the error kind or "none"
    per_class: dict[str, np.ndarray]  # signal -> (N, C)
    per_image: dict[str, np.ndarray]  # signal -> (N,)


def read_truth(path: Path) -> dict[tuple[str, str], str]:
    """(name, class) -> kind ("none" for a clean mask) from a corruption.csv."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise PalError(f"cannot read '{path}' ({err}). Fix: give a folder with the "
                       "corruption.csv of the corrupt command.") from err
    return {(r["name"], r["class"]): (r["operation"] or "none").strip() for r in rows}


def load(folder: Path, split: str | None, size: int, classes=None):
    """The folder's (training part's) images and given masks in the training grid."""
    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.trainset import load_training_set

    return load_training_set(open_dataset(folder, split=split, classes=classes), size)


def predict(model, data, idx: Sequence[int], batch: int = 16
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (n, C, S, S) of ``data[idx]`` and the QAM's raw scores t (or None)."""
    import torch

    idx = list(idx)
    probs, ts = [], []
    for start in range(0, len(idx), batch):
        part = torch.as_tensor(idx[start:start + batch])
        p, t = model.predict_grid(data.images[part], data.masks[part])
        probs.append(p)
        ts.append(t)
    return np.concatenate(probs), None if ts[0] is None else np.concatenate(ts)


def out_of_fold(data, folds: int, out: Path, a: argparse.Namespace, truth: dict[str, bool]
                ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Probabilities and QAM scores of every image from the fold model that did not see it
    (K models, each trained on the other K-1 folds in OUT/foldKofN, for K/(K-1) times the
    epochs: as many steps as the one model, else the folds' models are the weaker judges;
    at 60 epochs on half of JSRT the clavicles were not learned)."""
    from napari_pal.bench.detection import fold_indices, subset
    from napari_pal.method.inference import TrainedModel

    n = len(data)
    probs, t, lam = None, np.full(n, np.nan), 2.0
    for f, held in enumerate(fold_indices(n, folds, a.seed)):
        fold_dir = out / f"fold{f + 1}of{folds}"
        train(subset(data, np.setdiff1d(np.arange(n), held)), fold_dir, a, truth,
              epochs=math.ceil(a.epochs * folds / (folds - 1)))
        model = TrainedModel.load(fold_dir)
        p, tt = predict(model, data, held)
        if probs is None:
            probs = np.zeros((n, *p.shape[1:]), np.float32)
        probs[held] = p
        if tt is not None:
            t[held] = tt
        lam = model.config.lam
    return probs, None if np.isnan(t).all() else t, lam


def score(data, probs: np.ndarray, t: np.ndarray | None, lam: float,
          truth: dict[tuple[str, str], str], strokes: np.ndarray | None = None) -> Scored:
    """Every signal of every image and class from one set of predictions (``strokes``:
    (N, C) brush-stroke heights from the stored masks, as the product scores; the usual
    part counts from the grid masks, as training records them)."""
    from napari_pal.data.partcounts import usual_part_counts
    from napari_pal.scoring.detection import cleanlab_quality
    from napari_pal.scoring.quality import class_quality, score_from_grid

    masks = data.masks.numpy().astype(bool)
    usual = usual_part_counts(masks, data.classes)
    n, c = masks.shape[:2]
    size = masks.shape[-1]
    pc = {k: np.full((n, c), np.nan) for k in SIGNALS}
    for i in range(n):
        s = score_from_grid(data.names[i], data.classes, masks[i], probs[i], 1.0,
                            None if t is None else float(t[i]), lam,
                            None if strokes is None else strokes[i], usual)
        for j, cls in enumerate(data.classes):
            pc["quality"][i, j] = s.per_class[cls]
            pc["outline"][i, j] = class_quality(100.0 * s.signals[f"dist_{cls}"] / size)
            pc["dice"][i, j] = s.signals[f"dice_{cls}"]
            pc["qam"][i, j] = s.signals.get("qam", np.nan)
    for j in range(c):
        pc["cleanlab"][:, j] = cleanlab_quality(masks[:, j:j + 1], probs[:, j:j + 1])
    # napari-pal's image quality is its worst class's; the others as they were: class means
    per_image = {k: v.min(axis=1) if k == "quality" else v.mean(axis=1) for k, v in pc.items()}
    kinds = np.array([[truth.get((nm, cls), "none") for cls in data.classes]
                      for nm in data.names], dtype=object)
    return Scored(list(data.names), list(data.classes), kinds, pc, per_image)


def kind_metrics(sc: Scored, kind: str | None, level: str) -> dict[str, tuple[float, float, int]]:
    """signal -> (ROC AUC, AP, number of spoilt cases) for one kind (None: all kinds).

    level "class": the kind's spoilt class masks against every clean class mask;
    "image": images with the kind in some class against wholly clean images.
    """
    from napari_pal.scoring.detection import average_precision, roc_auc

    spoilt = sc.kinds != "none" if kind is None else sc.kinds == kind
    clean = sc.kinds == "none"
    out = {}
    for sig in SIGNALS:
        if level == "class":
            keep = spoilt | clean
            y, s = spoilt[keep], -sc.per_class[sig][keep]
        else:
            pos, neg = spoilt.any(axis=1), clean.all(axis=1)
            keep = pos | neg
            y, s = pos[keep], -sc.per_image[sig][keep]
        if np.isnan(s).all():
            out[sig] = (math.nan, math.nan, int(y.sum()))
        else:
            out[sig] = (roc_auc(y, s), average_precision(y, s), int(y.sum()))
    return out


def markdown(sc: Scored, level: str) -> str:
    """One row per kind (and one for all kinds): ROC AUC / AP of every signal."""
    present = [k for k in _kind_order(sc) if (sc.kinds == k).any()]
    unit = "class masks" if level == "class" else "images"
    head = f"| kind | n ({unit}) | " + " | ".join(SIGNALS.values()) + " |"
    lines = [head, "|" + "---|" * (2 + len(SIGNALS))]
    for kind in [*present, None]:
        m = kind_metrics(sc, kind, "class" if level == "class" else "image")
        cells = [f"{a:.3f} / {p:.3f}" if not math.isnan(a) else "-" for a, p, _ in m.values()]
        n = next(iter(m.values()))[2]
        lines.append(f"| {kind or '**all**'} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def per_class_markdown(sc: Scored, signal: str = "quality") -> str:
    """ROC AUC of one signal per kind and class (spoilt vs clean masks of that class)."""
    from napari_pal.scoring.detection import roc_auc

    lines = ["| kind | " + " | ".join(sc.classes) + " |", "|" + "---|" * (1 + len(sc.classes))]
    for kind in [k for k in _kind_order(sc) if (sc.kinds == k).any()]:
        cells = []
        for j in range(len(sc.classes)):
            pos, neg = sc.kinds[:, j] == kind, sc.kinds[:, j] == "none"
            keep = pos | neg
            a = roc_auc(pos[keep], -sc.per_class[signal][keep, j]) if pos.any() else math.nan
            cells.append("-" if math.isnan(a) else f"{a:.3f} (n={int(pos.sum())})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def effort_markdown(sc: Scored, out: Path | None = None, title: str = "") -> str:
    """Images an annotator reviews to find 50 / 90 / 100 % of the spoilt ones, in each
    signal's order (worst first) and in a random order; ``out``: also the curve, a PNG
    (``title``: the plot's, default the counts)."""
    from napari_pal.scoring.effort import SHARES, plot_effort, random_reviews, reviews_to_find

    bad = (sc.kinds != "none").any(axis=1)
    orders = {SIGNALS[k]: -sc.per_image[k] for k in ("quality", "cleanlab", "qam", "dice")
              if not np.isnan(sc.per_image[k]).all()}
    head = "| order | " + " | ".join(f"{int(sh * 100)} % found" for sh in SHARES) + " |"
    lines = [head, "|" + "---|" * (1 + len(SHARES))]
    for name, s in orders.items():
        r = reviews_to_find(bad, s)
        lines.append(f"| {name} | " + " | ".join(str(r[sh]) for sh in SHARES) + " |")
    r = random_reviews(int(bad.sum()), bad.size)
    lines.append("| random (expected) | " + " | ".join(f"{r[sh]:.0f}" for sh in SHARES) + " |")
    if out is not None:
        plot_effort(bad, orders, out, title or f"{int(bad.sum())} spoilt images of {bad.size}",
                    unit="images")
    return "\n".join(lines) + "\n"


def _kind_order(sc: Scored) -> list[str]:
    from napari_pal.data.errorkinds import KINDS

    seen = sorted({str(k) for k in sc.kinds.ravel()} - {"none"} - set(KINDS))
    return [*KINDS, *seen]


def scores_csv(sc: Scored) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "class", "kind", *SIGNALS])
    for i, name in enumerate(sc.names):
        for j, cls in enumerate(sc.classes):
            w.writerow([name, cls, sc.kinds[i, j],
                        *(f"{sc.per_class[k][i, j]:.6g}" for k in SIGNALS)])
    return buf.getvalue()


def train(data, run_dir: Path, a: argparse.Namespace, truth: dict[str, bool],
          epochs: int | None = None) -> None:
    """Train one model (or finish / reuse the one in run_dir), train's defaults otherwise."""
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Trainer

    cfg = TrainConfig(size=a.size, epochs=epochs or a.epochs, seed=a.seed, threads=a.threads,
                      **({"width": a.width} if a.width else {}))
    trainer = Trainer(data, cfg, run_dir, truth=truth, resume=True)
    for ev in trainer.run():
        if ev.epoch_end and (ev.epoch % 10 == 0 or ev.epoch == ev.epochs):
            print(f"  {run_dir.name} epoch {ev.epoch}/{ev.epochs} loss {ev.epoch_loss:.4f}",
                  file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    from napari_pal.bench.args import run_or_report

    return run_or_report("errorkinds", run, a)


def run(a: argparse.Namespace) -> int:
    from napari_pal.data.corruption import corrupt_dataset
    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.errorkinds import KINDS
    from napari_pal.scoring.strokes import strokes_of

    out = Path(a.out)
    if a.folder:
        folder = Path(a.folder)
    else:
        data = Path(a.data)
        split_file = Path(a.split) if a.split else data / "split.csv"
        folder = out / "data"
        kinds = [k for k in a.kinds.split(",") if k]
        if any(k not in KINDS for k in kinds):
            raise PalError(f"--kinds {a.kinds!r}: a comma list of {', '.join(KINDS)}")
        if not (folder / "corruption.csv").is_file():
            corrupt_dataset(data, folder, fraction=a.fraction, pixels=tuple(a.pixels),
                            seed=a.seed, ops=kinds,
                            split=f"{split_file}:train" if split_file.is_file() else None,
                            classes_per_image=(1, 2))
    if not (folder / "corruption.csv").is_file():
        raise PalError(f"{folder} has no corruption.csv. Fix: give a folder written by "
                       "'napari-pal corrupt' (or leave --folder out to build one).")
    split = f"{folder / 'split.csv'}:train" if (folder / "split.csv").is_file() else None
    from napari_pal.data.corruption import read_corruption_csv
    from napari_pal.method.inference import TrainedModel

    bad = read_corruption_csv(folder / "corruption.csv")
    if a.oof_folds > 1:
        data = load(folder, split, a.size)
        probs, t, lam = out_of_fold(data, a.oof_folds, out, a, bad)
        how = f"out of fold: {a.oof_folds} models, each scoring the images it did not see"
    else:
        run_dir = Path(a.run) if a.run else out / "run"
        if not a.run:
            train(load(folder, split, a.size), run_dir, a, bad)
        model = TrainedModel.load(run_dir)
        data = load(folder, split, model.config.size, model.classes)
        probs, t = predict(model, data, range(len(data)))
        lam = model.config.lam
        how = f"in sample: run {run_dir} scores the masks it trained on"
    stored = open_dataset(folder, split=split, classes=data.classes)
    sc = score(data, probs, t, lam, read_truth(folder / "corruption.csv"),
               strokes_of(stored, probs))
    write_text(out / "scores.csv", scores_csv(sc))
    text = (f"Class masks ({how}):\n\n{markdown(sc, 'class')}\n"
            f"Images:\n\n{markdown(sc, 'image')}\n"
            f"napari-pal quality, ROC AUC per class:\n\n{per_class_markdown(sc)}\n"
            f"Images reviewed to find the spoilt ones ({out / 'effort.png'}):\n\n"
            f"{effort_markdown(sc, out / 'effort.png')}")
    write_text(out / "table.md", text)
    print(text)
    return 0


def parser() -> argparse.ArgumentParser:
    from napari_pal.bench.benchmark import default_data
    from napari_pal.data.errorkinds import KINDS

    p = argparse.ArgumentParser(prog="python -m napari_pal.bench.errorkinds",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for data/, run/, scores.csv, table.md")
    p.add_argument("--data", default=str(default_data()), help="clean JSRT folder")
    p.add_argument("--split", help="split CSV (default DATA/split.csv; its train part is spoilt)")
    p.add_argument("--folder", help="score this spoilt folder instead of building one")
    p.add_argument("--run", help="a trained run to score with (default: train one in OUT/run)")
    p.add_argument("--fraction", type=float, default=0.4, help="share of images spoilt")
    p.add_argument("--pixels", type=int, nargs=2, default=(5, 13), metavar=("LO", "HI"))
    p.add_argument("--kinds", default=",".join(KINDS), help="comma list of error kinds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--width", type=int, default=0, help="U-Net width (0: train's default)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--oof-folds", type=int, default=0,
                   help="score out of fold with K models (K trainings on (K-1)/K of the "
                   "images; 0: one model, in sample)")
    return p


if __name__ == "__main__":
    sys.exit(main())
