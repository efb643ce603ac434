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

COLUMNS = ("wall_s", "train_s", "epoch", "epochs", "size", "score_s", "auc", "ap", "top_changed",
           "final", "live_auc", "live_ap")


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


def detection(scores, ranked: bool, truth: dict[str, bool]) -> tuple[float, float]:
    """ROC AUC and AP of the ranking against the known bad masks (NaN when no class is
    learnt yet: the widget shows no ranking then, so there is nothing to measure)."""
    from napari_pal.scoring.detection import average_precision, roc_auc

    if not ranked:
        return float("nan"), float("nan")
    is_bad = [truth.get(s.name, False) for s in scores]
    badness = [-s.quality for s in scores]  # over the classes learnt so far
    return roc_auc(is_bad, badness), average_precision(is_bad, badness)


def rank_as_table(scores, classes) -> tuple[list, bool]:
    """Scores ranked over the classes learnt so far, as a refresh ranks them, and whether
    any class is learnt."""
    from napari_pal.scoring import reliability

    verdicts = reliability.assess(scores, classes)
    return (reliability.rank_by_reliable(scores, verdicts),
            any(v.reliable for v in verdicts.values()))


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
    from napari_pal.scoring.anytime import refresh_size, score_now, train_with_refreshes

    data = Path(a.data) if a.data else default_data()
    out = Path(a.out)
    folder = noisy_copy(data, out, a.fraction, tuple(a.pixels), a.seed, a.ops)
    truth = read_corruption_csv(folder / "corruption.csv")
    dev.set_threads(a.threads)
    info = machine_info(a.threads or None)

    # --- what pressing Train does: open, calibrate, plan, load, train with refreshes ---
    start = time.perf_counter()
    ds = open_dataset(folder, split=f"{folder / 'split.csv'}:train")
    base = TrainConfig(threads=a.threads, precision=a.precision, seed=a.seed, device=a.device,
                       **({} if a.ramp is None else {"ramp_epochs": a.ramp}))
    if a.size:  # settings by hand: no calibration
        import dataclasses

        from napari_pal.method.schedule import plan_text as stages_text

        config = dataclasses.replace(base, size=a.size, epochs=a.epochs or base.epochs,
                                     stages=a.stages)
        plan_text = f"by hand: {stages_text(config)}, ramp {config.ramp} epochs"
    else:
        rates = calibrate(ds, base, minutes=a.minutes)
        plan = plan_for_minutes(a.minutes, len(ds), rates, base)
        config = plan.config
        plan_text = plan.describe() + " (images/s measured: " + ", ".join(
            f"{s} px {r:.1f}" for s, r in sorted(rates.items())) + ")"
    calibrated_s = time.perf_counter() - start
    print(f"plan: {plan_text} (calibration and opening took {calibrated_s:.0f} s)",
          file=sys.stderr)
    data_t = load_training_set(ds, config.size)
    stages = config.stages.replace(":", "x").replace(",", "-")
    run_dir = out / "runs" / (f"{folder.name}-{stages + '-' if stages else ''}{config.size}px-"
                              f"{config.epochs}ep-r{config.ramp}-a{a.average:g}-s{a.seed}")
    if (run_dir / "checkpoint.pt").exists():
        from napari_pal.errors import PalError

        raise PalError(f"{run_dir} holds an earlier run: remove it or choose another --out")
    trainer = Trainer(data_t, config, run_dir, truth=truth)
    rows = []
    for ev in train_with_refreshes(trainer, ds, every_s=a.every,
                                   average_epochs=a.average or None):
        if not hasattr(ev, "scores"):
            continue
        wall_s = time.perf_counter() - start
        auc, ap = detection(ev.scores, ev.ranked, truth)
        live = (np.nan, np.nan)
        if a.compare_live and not ev.final:  # the networks of the moment, for comparison
            live = detection(*rank_as_table(score_now(trainer, ds), ds.classes), truth)
        row = {"wall_s": round(wall_s, 1), "train_s": round(ev.train_s, 1),
               "epoch": ev.epoch, "epochs": ev.epochs,
               "size": config.size if ev.final else refresh_size(trainer),
               "score_s": round(ev.score_s, 1), "auc": round(auc, 4), "ap": round(ap, 4),
               "top_changed": "" if ev.top_changed is None else round(ev.top_changed, 3),
               "final": int(ev.final), "live_auc": round(live[0], 4),
               "live_ap": round(live[1], 4)}
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


def stays_from(rows: list[dict], auc: float) -> float | None:
    """When the ranking reached ``auc`` for good: the first refresh after which none fell
    below it (None when the last one is below)."""
    at = None
    for r in rows:
        if not r["auc"] >= auc:  # NaN counts as below
            at = None
        elif at is None:
            at = r["wall_s"]
    return at


def markdown(result: dict) -> str:
    rows, info = result["rows"], result["info"]
    live = any(r["live_auc"] == r["live_auc"] for r in rows)  # NaN != NaN
    lines = [f"Noise: {result['noise']}; {result['images']} training images; "
             f"plan: {result['plan']}.", "",
             "| minutes from Train | epoch | px | ROC AUC | AP | top-k changed | scoring s |"
             + (" live ROC AUC |" if live else ""),
             "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if live else "")]
    for r in rows:
        lines.append(f"| {r['wall_s'] / 60:.1f} | {r['epoch']}/{r['epochs']}"
                     f"{' (final)' if r['final'] else ''} | {r['size']} | {_num(r['auc'])} | "
                     f"{_num(r['ap'])} | "
                     f"{r['top_changed'] if r['top_changed'] != '' else '-'} | {r['score_s']} |"
                     + (f" {_num(r['live_auc'])} |" if live else ""))
    t95 = first_at(rows, 0.95)
    settled = stays_from(rows, 0.95)
    d = result["test_dice"]
    lines += ["", f"ROC AUC >= 0.95 first at {t95 / 60:.1f} min" if t95 is not None
              else "ROC AUC never reached 0.95",
              f"ROC AUC >= 0.95 at every refresh from {settled / 60:.1f} min on"
              if settled is not None else "ROC AUC below 0.95 at the end",
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
    p.add_argument("--stages", default="", help="with --size: progressive resizing, "
                   "SIZE:EPOCHS,... before the epochs at --size")
    p.add_argument("--ramp", type=int, default=None, help="epochs of the weighting ramp "
                   "(default: the training default)")
    p.add_argument("--average", type=float, default=1.0, help="refreshes score the average "
                   "of the networks over this many epochs (0: the networks of the moment)")
    p.add_argument("--compare-live", action="store_true", help="also score the networks of "
                   "the moment at each refresh (the live_auc column; adds to the wall time)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
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
