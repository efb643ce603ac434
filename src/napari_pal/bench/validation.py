"""Honest choice of λ: chosen on a validation part of the training split, never on test.

``python -m napari_pal.bench.validation --folder SPOILT --out DIR`` holds out a seeded
share (``--holdout``, default 20 %) of SPOILT's training images, trains one model per λ
(``--lams``) on the rest with their (spoilt) masks, and measures each model's Dice on the
held-out images against their true masks (from the clean folder, ``--clean``: an annotator
who checked a small validation set by hand). The λ with the best mean validation Dice is the
choice; the test Dice (the clean test part) is reported beside it for information only and
plays no part in the choice. DIR/lambda.csv and DIR/lambda.md hold the table.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_pal.atomic import write_text
from napari_pal.errors import PalError


def holdout_indices(n: int, share: float, seed: int) -> np.ndarray:
    """Sorted, seeded positions of the validation images (at least one, never all)."""
    if not 0.0 < share < 1.0:
        raise PalError(f"--holdout {share}: give a share between 0 and 1, e.g. 0.2")
    k = min(n - 2, max(1, round(share * n)))
    return np.sort(np.random.default_rng(seed + 4_242).permutation(n)[:k])


def grid_dice(model, images, truth: np.ndarray) -> np.ndarray:
    """(N, C) Dice of thresholded grid predictions vs true grid masks."""
    import torch

    from napari_pal.scoring.metrics import dice

    rows = []
    for start in range(0, len(images), 16):
        probs, _ = model.predict_grid(torch.as_tensor(images[start:start + 16]))
        for k, p in enumerate(probs):
            t = truth[start + k]
            rows.append([dice(p[c] > 0.5, t[c]) for c in range(t.shape[0])])
    return np.asarray(rows, np.float64)


def choose(rows: Sequence[dict]) -> dict:
    """The row with the best validation Dice (ties: the smaller λ, the milder bound)."""
    return max(rows, key=lambda r: (r["val_dice"], -r["lam"]))


def table(rows: Sequence[dict], default: float = 1.0) -> str:
    best = choose(rows)
    lines = ["| λ | validation Dice (chooses) | test Dice (reported only) | train s |",
             "|---|---|---|---|"]
    for r in rows:
        mark = " **chosen**" if r is best else ""
        mark += " (default)" if r["lam"] == default else ""
        lines.append(f"| {r['lam']:g}{mark} | {r['val_dice']:.4f} | {r['test_dice']:.4f} | "
                     f"{r['train_s']:.0f} |")
    return "\n".join(lines) + "\n"


def run(a: argparse.Namespace) -> int:
    from napari_pal.bench.annotator import load_loop
    from napari_pal.bench.benchmark import test_dice
    from napari_pal.bench.detection import subset
    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.trainset import TrainingSet
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.inference import TrainedModel
    from napari_pal.method.training import Trainer

    folder, clean, out = Path(a.folder), Path(a.clean), Path(a.out)
    loop = load_loop(folder, clean, a.size)
    data = TrainingSet(loop.names, loop.classes, loop.frames, loop.images, loop.given)
    held = holdout_indices(len(data), a.holdout, a.seed)
    keep = np.setdiff1d(np.arange(len(data)), held)
    write_text(out / "validation.txt", "\n".join(loop.names[i] for i in held) + "\n")
    test_split = clean / "split.csv"
    test = (open_dataset(clean, split=f"{test_split}:test", classes=loop.classes)
            if test_split.is_file() and not a.no_test else None)
    rows = []
    for lam in a.lams:
        run_dir = out / f"lam{lam:g}"
        cfg = TrainConfig(size=a.size, epochs=a.epochs, seed=a.seed, threads=a.threads, lam=lam,
                          **({"width": a.width} if a.width else {}))
        seconds = 0.0
        for ev in Trainer(subset(data, keep), cfg, run_dir, resume=True).run():
            seconds = ev.elapsed_s
        model = TrainedModel.load(run_dir)
        val = grid_dice(model, loop.images[held], loop.clean[held].numpy().astype(bool))
        rows.append({"lam": lam, "val_dice": float(val.mean()), "train_s": seconds,
                     "test_dice": float(test_dice(model, test).mean()) if test is not None
                     else float("nan")})
        print(f"  λ {lam:g}: validation Dice {rows[-1]['val_dice']:.4f}", file=sys.stderr,
              flush=True)
        write_text(out / "lambda.md", table(rows))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["lam", "val_dice", "test_dice", "train_s"],
                       lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out / "lambda.csv", buf.getvalue())
    text = (f"{len(keep)} training / {len(held)} validation images; "
            f"chosen λ = {choose(rows)['lam']:g}\n\n{table(rows)}")
    write_text(out / "lambda.md", text)
    print(text)
    return 0


def parser() -> argparse.ArgumentParser:
    from napari_pal.bench.args import spoilt_folder_parser

    p = spoilt_folder_parser("python -m napari_pal.bench.validation", __doc__,
                             "folder for lamX/ runs and lambda.csv/.md")
    p.add_argument("--lams", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    p.add_argument("--holdout", type=float, default=0.2, help="validation share of training")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--width", type=int, default=0, help="U-Net width (0: train's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-test", action="store_true", help="skip the test Dice")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    from napari_pal.bench.args import run_or_report

    return run_or_report("validation", run, a)


if __name__ == "__main__":
    sys.exit(main())
