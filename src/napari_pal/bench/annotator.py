"""The annotator's loop, simulated: review the k worst masks, trust them, retrain, re-rank.

``python -m napari_pal.bench.annotator --folder SPOILT --out DIR`` trains on SPOILT's
training part (a folder written by ``napari-pal corrupt --split ...:train``, truth in its
corruption.csv), ranks the training images with napari-pal's quality (worst first), and
then, round after round, plays the annotator: the k worst images not yet reviewed get their
true masks back (from the clean JSRT folder, ``--clean``) and are marked reviewed, so the
trainer treats them as trusted (never down-weighted); the model goes on training
(``--round-epochs`` more epochs from the last round's checkpoint; ``--scratch``: a new
model for ``--epochs`` each round) and the images are ranked again. Per round it writes a
row to DIR/rounds.csv and DIR/rounds.md: detection ROC AUC / AP of the quality and of the
QAM's score over the images not yet reviewed, how many spoilt masks remain among them, and
the test Dice on the clean test part. This answers how many reviewed masks it takes to turn
a ranking that inverts (most masks wrong in the same way) the right way round.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_pal.atomic import write_text
from napari_pal.errors import PalError

COLUMNS = ["round", "reviewed", "epochs", "unreviewed", "bad_left", "auc_quality",
           "ap_quality", "auc_qam", "ap_qam", "test_dice", "train_s"]


@dataclass
class Loop:
    """The state the simulated annotator carries from round to round."""

    names: list[str]
    classes: list[str]
    bad: np.ndarray  # (N,) bool: the image's given mask is spoilt (truth)
    images: object  # (N, 1, S, S) float32 tensor
    given: object  # (N, C, S, S) uint8 tensor: the folder's masks
    clean: object  # (N, C, S, S) uint8 tensor: the true masks
    frames: list  # each image's Frame (grid placement)
    reviewed: np.ndarray  # (N,) bool
    stored: object  # the spoilt folder's training part (Dataset): masks as stored
    stored_clean: object  # the clean folder's training part (Dataset)
    clean_index: list  # image i's position in stored_clean

    def stored_masks(self, i: int) -> np.ndarray:
        """Image i's masks as stored, as the annotator left them (true once reviewed)."""
        if self.reviewed[i]:
            return self.stored_clean.read_masks(self.clean_index[i])
        return self.stored.read_masks(i)

    def training_set(self):
        """The training set as the annotator left it: reviewed images carry true masks."""
        import torch

        from napari_pal.data.trainset import TrainingSet

        masks = self.given.clone()
        rows = torch.as_tensor(np.flatnonzero(self.reviewed))
        if len(rows):
            masks[rows] = self.clean[rows]
        return TrainingSet(list(self.names), list(self.classes), list(self.frames),
                           self.images, masks)

    def review(self, quality: np.ndarray, k: int) -> list[str]:
        """Mark the k worst (lowest quality) unreviewed images reviewed; their names."""
        order = [i for i in np.argsort(quality, kind="stable") if not self.reviewed[i]][:k]
        self.reviewed[order] = True
        return [self.names[i] for i in order]


def load_loop(folder: Path, clean: Path, size: int) -> Loop:
    """The spoilt folder's training part and the same images' true masks, in the grid."""
    from napari_pal.bench.errorkinds import load
    from napari_pal.data.corruption import read_corruption_csv
    from napari_pal.data.dataset import open_dataset

    folder = Path(folder)
    if not (folder / "corruption.csv").is_file():
        raise PalError(f"{folder} has no corruption.csv. Fix: give a folder written by "
                       "'napari-pal corrupt --split SPLIT:train'.")

    split = folder / "split.csv"
    spec = f"{split}:train" if split.is_file() else None
    spoilt = load(folder, spec, size)
    clean_spec = f"{clean / 'split.csv'}:train" if (clean / "split.csv").is_file() else None
    truth = load(clean, clean_spec, size, spoilt.classes)
    where = {n: i for i, n in enumerate(truth.names)}
    missing = [n for n in spoilt.names if n not in where]
    if missing:
        raise PalError(f"{clean} lacks {len(missing)} of {folder}'s training images "
                       f"(e.g. {missing[0]}). Fix: give --clean the folder that was spoilt.")
    order = [where[n] for n in spoilt.names]
    bad_map = read_corruption_csv(folder / "corruption.csv")
    loop = Loop(list(spoilt.names), list(spoilt.classes),
                np.array([bool(bad_map.get(n, False)) for n in spoilt.names]),
                spoilt.images[:], spoilt.masks[:], truth.masks[order], list(spoilt.frames),
                np.zeros(len(spoilt), bool),
                open_dataset(folder, split=spec, classes=spoilt.classes),
                open_dataset(clean, split=clean_spec, classes=spoilt.classes), order)
    return loop


def rank(model, data, loop: Loop) -> tuple[np.ndarray, np.ndarray]:
    """napari-pal's image quality and the QAM's score (nan without a QAM) of every image,
    scored as the product does (brush strokes measured on the masks as stored)."""
    from napari_pal.bench.errorkinds import predict
    from napari_pal.data.partcounts import usual_part_counts
    from napari_pal.scoring.quality import score_from_grid
    from napari_pal.scoring.strokes import grid_stroke_percents

    probs, t = predict(model, data, range(len(data)))
    masks = data.masks[:].numpy()
    usual = usual_part_counts(masks, data.classes)  # as this round's training records them
    quality, qam = np.empty(len(data)), np.full(len(data), np.nan)
    for i in range(len(data)):
        strokes = grid_stroke_percents(loop.stored_masks(i), probs[i])
        s = score_from_grid(data.names[i], data.classes, masks[i], probs[i], 1.0,
                            None if t is None else float(t[i]), model.config.lam, strokes,
                            usual)
        quality[i] = s.quality
        qam[i] = s.signals.get("qam", np.nan)
    return quality, qam


def round_row(loop: Loop, quality: np.ndarray, qam: np.ndarray) -> dict:
    """Detection over the images not yet reviewed (the ones the ranking still has to sort)."""
    from napari_pal.scoring.detection import average_precision, roc_auc

    left = ~loop.reviewed
    y = loop.bad[left]
    row = {"unreviewed": int(left.sum()), "bad_left": int(y.sum())}
    for name, s in (("quality", quality), ("qam", qam)):
        ok = y.any() and (~y).any() and not np.isnan(s).all()
        row[f"auc_{name}"] = roc_auc(y, -s[left]) if ok else float("nan")
        row[f"ap_{name}"] = average_precision(y, -s[left]) if ok else float("nan")
    return row


def train_round(data, run_dir: Path, a: argparse.Namespace, epochs: int, trusted: list[str],
                start_from: Path | None) -> float:
    """Train (or continue training from ``start_from``'s checkpoint) with ``trusted``;
    returns the training seconds of this round."""
    from napari_pal.method.checkpoint import CHECKPOINT_NAME
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Trainer

    if start_from is not None and not (run_dir / CHECKPOINT_NAME).exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in (CHECKPOINT_NAME, "history.json", "history.csv"):
            if (start_from / name).exists():
                shutil.copy2(start_from / name, run_dir / name)
    cfg = TrainConfig(size=a.size, epochs=epochs, seed=a.seed, threads=a.threads,
                      lam=a.lam, anchor=0.0 if a.no_anchor else 1.0,
                      **({"width": a.width} if a.width else {}))
    trainer = Trainer(data, cfg, run_dir, trusted=trusted, resume=True)
    seconds = 0.0
    for ev in trainer.run():
        seconds = ev.elapsed_s
        if ev.epoch_end and (ev.epoch % 10 == 0 or ev.epoch == ev.epochs):
            print(f"  {run_dir.name} epoch {ev.epoch}/{ev.epochs} loss {ev.epoch_loss:.4f}",
                  file=sys.stderr)
    return seconds


def table(rows: Sequence[dict]) -> str:
    head = ("| round | reviewed (trusted) | epochs | unreviewed | bad left | quality AUC / AP | "
            "QAM AUC / AP | test Dice |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['round']} | {r['reviewed']} | {r['epochs']} | {r['unreviewed']} | "
                     f"{r['bad_left']} | {_pair(r, 'quality')} | {_pair(r, 'qam')} | "
                     f"{r['test_dice']:.4f} |")
    return "\n".join(lines) + "\n"


def _pair(row: dict, signal: str) -> str:
    """"AUC / AP", or "-" where undefined (no clean or no spoilt image left unreviewed)."""
    auc, ap = row[f"auc_{signal}"], row[f"ap_{signal}"]
    return "-" if np.isnan(auc) else f"{auc:.3f} / {ap:.3f}"


def setting(a: argparse.Namespace) -> str:
    """One line saying how the rounds were run."""
    how = (f"{a.epochs} epochs from scratch each round" if a.scratch else
           f"{a.epochs} epochs, then {a.round_epochs} more per round continuing the last model")
    return (f"k = {a.k} reviewed per round; {how}; {a.size} px, λ {a.lam:g}; trusted-mask "
            f"anchor {'off' if a.no_anchor else 'on'}\n\n")


def rows_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def run(a: argparse.Namespace) -> int:
    from napari_pal.bench.benchmark import test_dice
    from napari_pal.data.dataset import open_dataset
    from napari_pal.method.inference import TrainedModel

    folder, clean, out = Path(a.folder), Path(a.clean), Path(a.out)
    loop = load_loop(folder, clean, a.size)
    test_split = clean / "split.csv"
    test = (open_dataset(clean, split=f"{test_split}:test", classes=loop.classes)
            if test_split.is_file() and not a.no_test else None)
    rows: list[dict] = []
    prev, epochs = (Path(a.start) if a.start else None), a.epochs
    for r in range(a.rounds + 1):
        run_dir = out / f"round{r}"
        data = loop.training_set()
        trusted = [n for n, t in zip(loop.names, loop.reviewed) if t]
        if r == 0 and prev is not None:
            run_dir = prev  # round 0 given: the run trained on the spoilt folder as it is
            seconds = 0.0
        else:
            if r > 0 and not a.scratch:
                epochs = a.epochs + r * a.round_epochs
            seconds = train_round(data, run_dir, a, epochs, trusted,
                                  None if (a.scratch or r == 0) else prev)
        model = TrainedModel.load(run_dir)
        quality, qam = rank(model, data, loop)
        row = {"round": r, "reviewed": int(loop.reviewed.sum()), "epochs": model.epoch,
               "train_s": round(seconds, 1), **round_row(loop, quality, qam)}
        row["test_dice"] = float(test_dice(model, test).mean()) if test is not None \
            else float("nan")
        rows.append(row)
        write_text(out / "rounds.csv", rows_csv(rows))
        write_text(out / "rounds.md", setting(a) + table(rows))
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        if r < a.rounds:
            picked = loop.review(quality, a.k)
            write_text(out / f"reviewed{r + 1}.txt", "\n".join(picked) + "\n")
        prev = run_dir
    print(table(rows))
    return 0


def parser() -> argparse.ArgumentParser:
    from napari_pal.bench.args import spoilt_folder_parser

    p = spoilt_folder_parser("python -m napari_pal.bench.annotator", __doc__,
                             "folder for roundN/ runs and rounds.csv/.md")
    p.add_argument("--k", type=int, default=10, help="masks reviewed per round")
    p.add_argument("--rounds", type=int, default=3, help="review rounds after the first ranking")
    p.add_argument("--epochs", type=int, default=60, help="epochs of the first training")
    p.add_argument("--round-epochs", type=int, default=10,
                   help="further epochs per round, continuing from the last round's model")
    p.add_argument("--scratch", action="store_true",
                   help="train a new model for --epochs each round instead of continuing")
    p.add_argument("--start", help="a run already trained on the spoilt folder (round 0)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--width", type=int, default=0, help="U-Net width (0: train's default)")
    p.add_argument("--lam", type=float, default=1.0, help="OCM bound λ")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-test", action="store_true", help="skip the test Dice")
    p.add_argument("--no-anchor", action="store_true",
                   help="trusted masks only weighted, not anchoring the quality module (the "
                        "method before the anchor, for comparison)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.k < 1 or a.rounds < 0:
        print("annotator: error: --k must be at least 1 and --rounds at least 0",
              file=sys.stderr)
        return 2
    from napari_pal.bench.args import run_or_report

    return run_or_report("annotator", run, a)


if __name__ == "__main__":
    sys.exit(main())
