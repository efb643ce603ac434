"""``napari-pal benchmark``: the paper's Table 1 grid on JSRT, plus detection and Fig. 4.

Every run: corrupt a fraction of the TRAINING masks in memory (the rule of
``corruption.corrupt_dataset``), train one strategy to the end (same epochs, schedule and
seed for every strategy; the final model, never one chosen on test images), then
- Dice per class on the clean TEST masks, at each image's own size;
- detection of the corrupted training masks by napari-pal's quality score, the QAM score
  and cleanlab's softmin score, all from the same predictions;
- RUN/fig4.png: mean weight of clean vs corrupted masks per epoch (the paper's Fig. 4).
Results go to OUT/results.csv (rewritten atomically after each run; finished runs are
skipped when the command is started again) and OUT/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_pal.atomic import write_text
from napari_pal.bench import report
from napari_pal.errors import PalError

PROTOCOLS = {
    # fits the 2-core CPU: ~3 min per run on both cores (see benchmarks/README.md); at 40
    # epochs the clavicles were not learned yet
    "cpu": {"size": 128, "epochs": 60, "batch_size": 16, "lr": 1e-3},
    # the paper's settings, for a GPU (the paper gives no epoch count; Fig. 3 runs ~160k
    # iterations, i.e. far more; 300 epochs of 165 images = ~1.5k iterations at batch 32)
    "paper": {"size": 256, "epochs": 300, "batch_size": 32, "lr": 1e-4},
}
LEVELS = {"1-8": (1, 8), "5-13": (5, 13)}


@dataclass(frozen=True)
class Setting:
    ops: tuple[str, ...]
    fraction: int  # percent of training images corrupted
    level: str  # "1-8", "5-13" or "none"
    strategy: str
    seed: int

    @property
    def ops_label(self) -> str:
        return "+".join(self.ops)


def default_data() -> Path:
    here = Path("../shared/data/jsrt256")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "jsrt256"


def parse_level(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split("-"))
    except ValueError:
        raise PalError(f"noise level {text!r} is not LO-HI, e.g. 5-13") from None
    if not 1 <= lo <= hi:
        raise PalError(f"noise level {text!r}: need 1 <= LO <= HI")
    return lo, hi


def make_grid(fractions: Sequence[int], levels: Sequence[str], strategies: Sequence[str],
              seeds: Sequence[int], ops_sets: Sequence[tuple[str, ...]]) -> list[Setting]:
    """All settings; 0 % noise needs no level and no operation, so it is run once."""
    out: list[Setting] = []
    for ops in ops_sets:
        for level in levels:
            for frac in fractions:
                if frac == 0:
                    continue
                out += [Setting(ops, frac, level, s, seed) for s in strategies for seed in seeds]
    if 0 in fractions:
        zero = [Setting(ops_sets[0], 0, "none", s, seed) for s in strategies for seed in seeds]
        out = zero + out
    return out


def corrupt_in_memory(ds, fraction: float, pixels: tuple[int, int], seed: int,
                      ops: Sequence[str]) -> dict[str, np.ndarray]:
    """Corrupted masks (name -> bool (C, H, W)) of the images picked, by the same rule and
    random stream as ``corrupt_dataset(..., split=<ds's split>)``; clean images are absent."""
    from napari_pal.data.corruption import corrupt_mask

    rng = np.random.default_rng(seed)
    k = int(round(fraction * len(ds)))
    picked = set(rng.choice(np.array(ds.names, dtype=object), size=k, replace=False).tolist())
    lo, hi = pixels
    out = {}
    for i, name in enumerate(ds.names):
        if name not in picked:
            continue
        masks = ds.read_masks(i).copy()
        for c in range(len(ds.classes)):
            op, r = str(ops[int(rng.integers(len(ops)))]), int(rng.integers(lo, hi + 1))
            masks[c] = corrupt_mask(masks[c], op, r)
        out[name] = masks
    return out


def test_dice(model, ds, batch: int = 16) -> np.ndarray:
    """(N, C) Dice of thresholded predictions vs the dataset's masks, at each image's size."""
    from napari_pal.data.geometry import Frame
    from napari_pal.data.grid import grid_image
    from napari_pal.scoring.metrics import dice

    rows = []
    for start in range(0, len(ds), batch):
        idx = range(start, min(start + batch, len(ds)))
        imgs = [ds.read_image(i) for i in idx]
        frames = [Frame(im.shape[0], im.shape[1], model.config.size) for im in imgs]
        grid = torch.from_numpy(np.stack([grid_image(im, f) for f, im in zip(frames, imgs)]))
        probs, _ = model.predict_grid(grid[:, None])
        for k, i in enumerate(idx):
            pred, truth = frames[k].from_square(probs[k]) > 0.5, ds.read_masks(i)
            rows.append([dice(pred[c], truth[c]) for c in range(len(ds.classes))])
    return np.asarray(rows, np.float64)


def method_settings(proto: dict, strategy: str) -> dict:
    """The protocol as a run records it: λ means nothing without the OCM, nor the QAM's
    loss without a QAM, so such runs are shared by every variant of the same protocol."""
    if strategy == "baseline":
        return dict(proto, lam="-", qam_loss="-")
    return dict(proto, lam="-") if strategy == "qam" else dict(proto)


def _train(data, cfg, run_dir: Path, truth: dict[str, bool], args):
    """Train (or resume, or reuse a finished) run and return it loaded."""
    from napari_pal.method.inference import TrainedModel
    from napari_pal.method.training import Trainer

    trainer = Trainer(data, cfg, run_dir, truth=truth, resume=True)
    for ev in trainer.run():
        if ev.epoch_end and (ev.epoch % args.log_every == 0 or ev.epoch == ev.epochs):
            w = "" if ev.clean_weight is None or not ev.weighting else (
                f", weight clean {ev.clean_weight:.2f} / corrupted "
                f"{ev.corrupt_weight if ev.corrupt_weight is not None else float('nan'):.2f}")
            print(f"  {run_dir.name} epoch {ev.epoch}/{ev.epochs} loss {ev.epoch_loss:.4f}{w}",
                  file=sys.stderr)
    return TrainedModel.load(run_dir, device=args.device)


def run_one(st: Setting, proto: dict, train_ds, test_ds, out: Path, args) -> dict:
    from napari_pal.bench.detection import detect_in_sample, detect_out_of_fold
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.config import TrainConfig

    lo_hi = (0, 0) if st.level == "none" else parse_level(st.level)
    bad = corrupt_in_memory(train_ds, st.fraction / 100, lo_hi, st.seed, st.ops) \
        if st.fraction else {}
    data = load_training_set(train_ds, proto["size"], overrides=bad)
    cfg = TrainConfig(strategy=st.strategy, epochs=proto["epochs"], size=proto["size"],
                      batch_size=proto["batch_size"], lr=proto["lr"], seed=st.seed,
                      lam=proto["lam"], qam_loss=proto["qam_loss"],
                      device=args.device, precision=args.precision, threads=args.threads)
    method = {"baseline": "plain", "qam": proto["qam_loss"]}.get(
        st.strategy, f"lam{proto['lam']:g}_{proto['qam_loss']}")
    tag = (f"{args.protocol}_s{proto['size']}_e{proto['epochs']}_b{proto['batch_size']}"
           f"_lr{proto['lr']:g}_{method}_{st.ops_label}_{st.fraction}_{st.level}"
           f"_{st.strategy}_{st.seed}")
    run_dir = out / "runs" / tag
    truth = {n: n in bad for n in data.names}
    t0 = time.perf_counter()
    model = _train(data, cfg, run_dir, truth, args)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = test_dice(model, test_ds)
    row: dict = {"protocol": args.protocol, **method_settings(proto, st.strategy),
                 "ops": st.ops_label,
                 "fraction": st.fraction, "level": st.level, "strategy": st.strategy,
                 "seed": st.seed, "n_train": len(train_ds), "n_test": len(test_ds),
                 "n_corrupt": len(bad), "device": str(model.device)}
    order = [c for c in report.PAPER_CLASSES if c in test_ds.classes]
    for cls in order + [c for c in test_ds.classes if c not in order]:
        row[f"dice_{cls}"] = round(float(scores[:, test_ds.classes.index(cls)].mean()), 5)
    row["dice_mean"] = round(float(scores.mean()), 5)
    hist = report.read_history(run_dir)
    # summed over sessions when the run was resumed (the wall time covers only the last)
    row["train_s"] = round(hist[-1]["elapsed_s"] if hist else train_s, 1)
    row.update({k: round(v, 5) for k, v in detect_in_sample(model, data, set(bad)).items()})
    row["eval_s"] = round(time.perf_counter() - t0, 1)
    if args.oof_folds > 1 and bad:
        t0 = time.perf_counter()
        oof = detect_out_of_fold(data, set(bad), args.oof_folds, st.seed,
                                 lambda sub, d: _train(sub, cfg, d, truth, args), run_dir)
        row.update({k: round(v, 5) for k, v in oof.items()})
        row["oof_folds"], row["oof_s"] = args.oof_folds, round(time.perf_counter() - t0, 1)
    if hist:
        row["last_clean_weight"] = hist[-1].get("clean_weight", "")
        row["last_corrupt_weight"] = hist[-1].get("corrupt_weight", "")
    if st.fraction and st.strategy != "baseline":
        report.plot_fig4({st.strategy: hist}, run_dir / "fig4.png",
                         f"{st.fraction} % {st.level} px ({st.ops_label}), seed {st.seed}")
    row["run_dir"] = str(run_dir)
    return row


def fig4_summary(rows: Sequence[dict], out: Path, proto: dict) -> Path | None:
    """OUT/fig4.png: the paper's setting (50 %, 5-13 px) if run, else every weighted run,
    of this protocol and λ / QAM-loss variant."""
    def pick(r):
        recorded = method_settings(proto, r["strategy"])  # as this variant records a run
        same = all(str(r.get(k, "")) == str(v) for k, v in recorded.items())
        return same and r["strategy"] != "baseline" and int(r["fraction"]) > 0
    chosen = [r for r in rows if pick(r) and int(r["fraction"]) == 50 and r["level"] == "5-13"]
    chosen = chosen or [r for r in rows if pick(r)]
    curves = {f"{r['strategy']} {r['fraction']}% {r['level']} {r['ops']} s{r['seed']}":
              report.read_history(Path(r["run_dir"])) for r in chosen}
    return report.plot_fig4(curves, out / "fig4.png", "Fig. 4: mean weight, clean vs corrupted")


def cmd_benchmark(a: argparse.Namespace) -> int:
    from napari_pal.data.corruption import OPS
    from napari_pal.data.dataset import open_dataset
    from napari_pal.method.config import STRATEGIES

    data = Path(a.data) if a.data else default_data()
    split = Path(a.split) if a.split else data / "split.csv"
    if not split.is_file():
        raise PalError(f"no split file {split}: give --split FILE (columns name,split)")
    from napari_pal.method.config import TrainConfig

    proto = dict(PROTOCOLS[a.protocol], lam=TrainConfig.lam, qam_loss=TrainConfig.qam_loss)
    for k in ("size", "epochs", "batch_size", "lr", "lam", "qam_loss"):
        if getattr(a, k) is not None:
            proto[k] = getattr(a, k)
    bad = [s for s in a.strategies if s not in STRATEGIES]
    if bad:
        raise PalError(f"unknown strategies {bad}: choose among {STRATEGIES}")
    for lv in a.levels:
        parse_level(lv)
    ops_sets = [tuple(o for o in a.ops.split(",") if o)]
    if a.one_sided and ops_sets[0] != ("dilate",):
        ops_sets.append(("dilate",))
    if any(not s or any(o not in OPS for o in s) for s in ops_sets):
        raise PalError(f"--ops {a.ops!r}: a comma list of {', '.join(OPS)}")
    if any(not 0 <= f <= 100 for f in a.fractions):
        raise PalError("--fractions are percentages in 0..100")
    train_ds = open_dataset(data, split=f"{split}:train")
    test_ds = open_dataset(data, split=f"{split}:test", classes=train_ds.classes)
    if a.limit_train:
        train_ds = train_ds.subset(train_ds.names[: a.limit_train])
    if a.limit_test:
        test_ds = test_ds.subset(test_ds.names[: a.limit_test])
    out = Path(a.out)
    if out.resolve() == data.resolve() or data.resolve() in out.resolve().parents:
        raise PalError(f"--out {out} lies inside the data folder {data}; choose another")
    csv_path = out / "results.csv"
    rows = report.read_rows(csv_path)
    if a.oof_folds > 1:  # runs without the out-of-fold columns are done again (training is reused)
        rows = [r for r in rows if int(r["fraction"]) == 0 or r.get("auc_quality_oof", "") != ""]
    done = {report.row_key(r) for r in rows}
    grid = make_grid(a.fractions, a.levels, a.strategies, a.seeds, ops_sets)
    print(f"benchmark: {len(grid)} runs, protocol {a.protocol} {proto}, "
          f"{len(train_ds)} train / {len(test_ds)} test images -> {out}", file=sys.stderr)
    for n, st in enumerate(grid, 1):
        key_row = {"protocol": a.protocol, **method_settings(proto, st.strategy),
                   "ops": st.ops_label,
                   "fraction": st.fraction, "level": st.level, "strategy": st.strategy,
                   "seed": st.seed}
        if report.row_key(key_row) in done:
            print(f"[{n}/{len(grid)}] {st} already in {csv_path}: skipped", file=sys.stderr)
            continue
        print(f"[{n}/{len(grid)}] {st}", file=sys.stderr)
        row = run_one(st, proto, train_ds, test_ds, out, a)
        rows = report.add_row(csv_path, row)
        write_text(out / "results.md", report.markdown(rows))
        print(f"[{n}/{len(grid)}] dice mean {row['dice_mean']:.4f}, train {row['train_s']} s",
              file=sys.stderr)
    rows = report.read_rows(csv_path)  # with the rows of processes sharing this folder
    write_text(out / "results.md", report.markdown(rows))
    fig = fig4_summary(rows, out, proto)
    print(f"wrote {csv_path}, {out / 'results.md'}{', ' + str(fig) if fig else ''}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from napari_pal.method.config import QAM_LOSSES, STRATEGIES

    b = sub.add_parser(
        "benchmark", help="the paper's Table 1 grid on JSRT: Dice, detection, Fig. 4",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--data", help="JSRT folder (default ../shared/data/jsrt256)")
    b.add_argument("--split", help="split CSV with parts train and test (default DATA/split.csv)")
    b.add_argument("--out", required=True, help="folder for results.csv, results.md, runs/")
    b.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu",
                   help="cpu: 128 px, 60 epochs, batch 16, lr 1e-3; paper: 256 px, 300 "
                   "epochs, batch 32, lr 1e-4")
    b.add_argument("--fractions", type=int, nargs="+", default=[0, 25, 50, 75],
                   help="percent of training masks corrupted")
    b.add_argument("--levels", nargs="+", default=list(LEVELS), help="radius ranges LO-HI px")
    b.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    b.add_argument("--ops", default="erode,dilate", help="comma list of erode, dilate")
    b.add_argument("--one-sided", action="store_true",
                   help="also run every noisy row with dilation only")
    b.add_argument("--seeds", type=int, nargs="+", default=[0])
    b.add_argument("--epochs", type=int)
    b.add_argument("--size", type=int)
    b.add_argument("--batch-size", type=int)
    b.add_argument("--lr", type=float)
    b.add_argument("--lam", type=float, help="OCM bound λ (default: train's)")
    b.add_argument("--qam-loss", choices=QAM_LOSSES,
                   help="loss the quality module ranks (default: train's)")
    b.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    b.add_argument("--device", default="auto")
    b.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    b.add_argument("--limit-train", type=int, default=0, help="first N training images only")
    b.add_argument("--limit-test", type=int, default=0, help="first N test images only")
    b.add_argument("--oof-folds", type=int, default=0,
                   help="also detect from K-fold out-of-sample predictions (K more trainings "
                   "on (K-1)/K of the data per noisy run; 0: off)")
    b.add_argument("--log-every", type=int, default=5, help="print every N epochs")
    b.set_defaults(func=cmd_benchmark)


__all__ = ["PROTOCOLS", "Setting", "add_parser", "corrupt_in_memory", "make_grid"]
