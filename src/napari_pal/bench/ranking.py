"""Time to a trustworthy ranking: detection quality against wall-clock time, from "Train".

``python -m napari_pal.bench.ranking --out bench/ranking --minutes 15`` makes (or reuses)
a copy of JSRT's training split with a fraction of the masks eroded or dilated, then does
what pressing Train in the widget does on the default settings: calibrates this machine,
plans size and epochs for the budget, trains with the anytime ranking on, and at every
refresh records ROC AUC / AP of the quality score against the known bad masks. At the end
it measures the final model's Dice on the 82 clean test images. Writes ``ranking.csv``,
``ranking.md`` (table + machine) and ``ranking.png`` (AUC and AP against minutes).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_pal.atomic import atomic_path, write_text

COLUMNS = ("wall_s", "train_s", "epoch", "epochs", "auc", "ap", "top_changed", "final")


def noisy_copy(data: Path, out: Path, fraction: float, pixels: tuple[int, int], seed: int,
               ops: str) -> Path:
    """The corrupted training split (made once; a finished copy holds corruption.csv)."""
    from napari_pal.data.corruption import corrupt_dataset

    folder = out / f"noisy-{int(fraction * 100)}-{pixels[0]}-{pixels[1]}-{ops.replace(',', '')}"
    if not (folder / "corruption.csv").is_file():
        corrupt_dataset(data, folder, fraction=fraction, pixels=pixels, seed=seed,
                        ops=ops.split(","), split=f"{data / 'split.csv'}:train")
    return folder


def mean_test_dice(model, test_ds) -> dict[str, float]:
    """Mean Dice per class (and over classes) of the model on clean test images."""
    from napari_pal.bench.benchmark import test_dice

    per_class = dict(zip(test_ds.classes, test_dice(model, test_ds).mean(axis=0).tolist()))
    return {**per_class, "mean": float(np.mean(list(per_class.values())))}


def run(a: argparse.Namespace) -> dict:
    from napari_pal.bench.benchmark import default_data
    from napari_pal.bench.machine import machine_info
    from napari_pal.data.corruption import read_corruption_csv
    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method import device as dev
    from napari_pal.method.budget import calibrate, plan_for_minutes
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.inference import TrainedModel
    from napari_pal.method.training import Trainer
    from napari_pal.scoring.anytime import train_with_refreshes
    from napari_pal.scoring.detection import average_precision, roc_auc

    data = Path(a.data) if a.data else default_data()
    out = Path(a.out)
    folder = noisy_copy(data, out, a.fraction, tuple(a.pixels), a.seed, a.ops)
    truth = read_corruption_csv(folder / "corruption.csv")
    dev.set_threads(a.threads)
    info = machine_info(a.threads or None)

    # --- what pressing Train does: open, calibrate, plan, load, train with refreshes ---
    start = time.perf_counter()
    ds = open_dataset(folder, split=f"{folder / 'split.csv'}:train")
    base = TrainConfig(threads=a.threads, precision=a.precision, seed=a.seed)
    if a.size:  # settings by hand: no calibration
        import dataclasses

        config = dataclasses.replace(base, size=a.size, epochs=a.epochs or base.epochs)
        plan_text = f"by hand: {config.size} px, {config.epochs} epochs"
    else:
        plan = plan_for_minutes(a.minutes, len(ds), calibrate(ds, base), base)
        config = plan.config
        plan_text = plan.describe()
    calibrated_s = time.perf_counter() - start
    print(f"plan: {plan_text} (calibration and opening took {calibrated_s:.0f} s)",
          file=sys.stderr)
    data_t = load_training_set(ds, config.size)
    run_dir = out / "runs" / f"{folder.name}-{config.size}px-{config.epochs}ep-s{a.seed}"
    if (run_dir / "checkpoint.pt").exists():
        from napari_pal.errors import PalError

        raise PalError(f"{run_dir} holds an earlier run: remove it or choose another --out")
    trainer = Trainer(data_t, config, run_dir, truth=truth)
    rows = []
    is_bad = None
    for ev in train_with_refreshes(trainer, ds, every_s=a.every):
        if not hasattr(ev, "scores"):
            continue
        names = [s.name for s in ev.scores]
        is_bad = [truth.get(n, False) for n in names]
        badness = [-s.quality for s in ev.scores]  # over the classes learnt so far
        # no class learnt yet: the widget shows no ranking, so there is nothing to measure
        auc = roc_auc(is_bad, badness) if ev.ranked else float("nan")
        ap = average_precision(is_bad, badness) if ev.ranked else float("nan")
        row = {"wall_s": round(time.perf_counter() - start, 1), "train_s": round(ev.train_s, 1),
               "epoch": ev.epoch, "epochs": ev.epochs,
               "auc": round(auc, 4), "ap": round(ap, 4),
               "top_changed": "" if ev.top_changed is None else round(ev.top_changed, 3),
               "final": int(ev.final)}
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), file=sys.stderr)
    total_s = time.perf_counter() - start
    model = TrainedModel.load(run_dir)
    test_ds = open_dataset(data, split=f"{data / 'split.csv'}:test")
    dice = mean_test_dice(model, test_ds)
    return {"info": info, "plan": plan_text, "config": config.to_dict(), "rows": rows,
            "total_s": round(total_s, 1), "calibration_s": round(calibrated_s, 1),
            "test_dice": dice, "noise": {"fraction": a.fraction, "pixels": list(a.pixels),
                                         "ops": a.ops}, "images": len(ds)}


def _num(x: float) -> str:
    return "no class learnt yet" if x != x else f"{x:.3f}"


def first_at(rows: list[dict], auc: float) -> float | None:
    hit = [r["wall_s"] for r in rows if r["auc"] >= auc]  # NaN (no ranking) never counts
    return hit[0] if hit else None


def markdown(result: dict) -> str:
    rows, info = result["rows"], result["info"]
    lines = [f"Noise: {result['noise']}; {result['images']} training images; "
             f"plan: {result['plan']}.", "",
             "| minutes from Train | epoch | ROC AUC | AP | top-k changed |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['wall_s'] / 60:.1f} | {r['epoch']}/{r['epochs']}"
                     f"{' (final)' if r['final'] else ''} | {_num(r['auc'])} | {_num(r['ap'])} | "
                     f"{r['top_changed'] if r['top_changed'] != '' else '-'} |")
    t95 = first_at(rows, 0.95)
    d = result["test_dice"]
    lines += ["", f"ROC AUC >= 0.95 first at {t95 / 60:.1f} min" if t95 is not None
              else "ROC AUC never reached 0.95",
              f"Whole run (calibration, training, refreshes, final scoring): "
              f"{result['total_s'] / 60:.1f} min. Test Dice (82 clean images): "
              + ", ".join(f"{k} {v:.3f}" for k, v in d.items()) + ".", "",
              "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + "."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    minutes = [r["wall_s"] / 60 for r in rows]
    ax.plot(minutes, [r["auc"] for r in rows], "o-", label="ROC AUC")
    ax.plot(minutes, [r["ap"] for r in rows], "s-", label="AP")
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("minutes since Train")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m napari_pal.bench.ranking",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the noisy copy, runs and results")
    p.add_argument("--data", help="JSRT folder (default ../shared/data/jsrt256)")
    p.add_argument("--minutes", type=float, default=15.0, help="the time budget")
    p.add_argument("--every", type=float, default=30.0, help="seconds between refreshes")
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--pixels", type=int, nargs=2, default=(5, 13), metavar=("LO", "HI"))
    p.add_argument("--ops", default="erode,dilate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--size", type=int, default=0, help="skip the plan: this size (px)")
    p.add_argument("--epochs", type=int, default=0, help="with --size: this many epochs")
    a = p.parse_args(argv)
    result = run(a)
    out = Path(a.out)
    tag = f"{int(a.fraction * 100)}-{a.pixels[0]}-{a.pixels[1]}-s{a.seed}"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(result["rows"])
    write_text(out / f"ranking-{tag}.csv", buf.getvalue())
    write_text(out / f"ranking-{tag}.json", json.dumps(result, indent=2))
    text = markdown(result)
    write_text(out / f"ranking-{tag}.md", text)
    plot(result["rows"], out / f"ranking-{tag}.png",
         f"{result['noise']} — {result['plan']}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
