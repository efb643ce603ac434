"""The ``napari-pal`` command line: train, score, predict, evaluate, corrupt."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_pal.atomic import write_text
from napari_pal.errors import PalError

DESCRIPTION = """Pick-and-Learn for radiographs: train a segmenter that is not fooled by bad
masks, and rank every mask of a folder from the worst up."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", metavar="FILE:PART",
                   help="work on one part of a split file, e.g. DATA/split.csv:train")


def _outside(out: Path, data: Path) -> None:
    """Nothing napari-pal does writes into a user's input folder."""
    out, data = out.resolve(), data.resolve()
    if out == data or data in out.parents:
        raise PalError(f"{out} lies inside the input folder {data}; napari-pal never writes "
                       f"into an input folder: choose --out elsewhere")


def _open(data: str, split: str | None, classes: Sequence[str] | None = None):
    from napari_pal.data.dataset import open_dataset

    return open_dataset(Path(data), split=split, classes=classes)


def cmd_train(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_pal.data.corruption import read_corruption_csv
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.checkpoint import CHECKPOINT_NAME
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Trainer

    out = Path(a.out)
    _outside(out, Path(a.data))
    if (out / CHECKPOINT_NAME).exists() and not a.resume:
        raise PalError(f"{out} already holds a trained run; pass --resume to continue it or "
                       f"choose a new --out folder")
    config = TrainConfig(strategy=a.strategy, epochs=a.epochs, size=a.size,
                         batch_size=a.batch_size, lr=a.lr, lam=a.lam, seed=a.seed,
                         width=a.width, qam_input=a.qam_input,
                         qam_loss=a.qam_loss, warmup_epochs=a.warmup,
                         augment=not a.no_augment, precision=a.precision, device=a.device,
                         threads=a.threads)
    ds = _open(a.data, a.split)
    truth_file = Path(a.truth) if a.truth else Path(a.data) / "corruption.csv"
    truth = read_corruption_csv(truth_file) if truth_file.is_file() else None
    with tqdm(total=len(ds), desc="reading", unit="img", leave=False) as bar:
        data = load_training_set(ds, config.size, progress=lambda i, n: bar.update(1))
    trainer = Trainer(data, config, out, truth=truth, resume=a.resume)
    previous = signal.signal(signal.SIGINT, lambda *_: trainer.stop())
    print(f"training {config.strategy} on {len(ds)} images ({', '.join(ds.classes)}) "
          f"at {config.size} px, {config.epochs} epochs, on {trainer.device}"
          f"{' with ' + str(trainer.amp).replace('torch.', '') if trainer.amp else ''}; "
          f"Ctrl-C stops and saves", file=sys.stderr)
    try:
        with tqdm(unit="step", dynamic_ncols=True) as bar:
            for ev in trainer.run():
                bar.total = ev.steps
                bar.n = ev.step
                bar.set_description(f"epoch {ev.epoch}/{ev.epochs}")
                if not math.isnan(ev.loss):
                    bar.set_postfix(loss=f"{ev.loss:.4f}", refresh=False)
                bar.refresh()
                if ev.epoch_end and ev.clean_weight is not None:
                    bar.write(f"epoch {ev.epoch}: loss {ev.epoch_loss:.4f}, mean weight clean "
                              f"{ev.clean_weight:.2f} / corrupted {ev.corrupt_weight or 0:.2f}")
                if ev.state == "stopped":
                    print(f"stopped; resume with: napari-pal train {a.data} --out {out} --resume",
                          file=sys.stderr)
                    return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"saved {trainer.checkpoint_path}; next: napari-pal score {out} {a.data} "
          f"--out scores.csv", file=sys.stderr)
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_pal.method.inference import TrainedModel
    from napari_pal.scoring.quality import analyse, scores_csv

    model = TrainedModel.load(a.run)
    ds = _open(a.data, a.split, model.classes)
    out = Path(a.out)
    _outside(out, Path(a.data))
    maps = Path(a.maps) if a.maps else None
    if maps:
        _outside(maps, Path(a.data))
    scores = []
    for r in tqdm(analyse(model, ds, maps=maps is not None), total=len(ds), desc="scoring",
                  unit="img"):
        scores.append(r.score)
        if maps is not None:
            from napari_pal.data.imagefiles import write_tiff

            write_tiff(maps / f"{r.score.name}.tif", r.disagreement.astype("float32"))
    text = scores_csv(scores, model.classes)
    write_text(out, text)
    lines = text.splitlines()
    print(f"wrote {out} ({len(scores)} images); the worst:")
    for line in lines[: min(len(lines), 11)]:
        print("  " + ", ".join(line.split(",")[: 2 + len(model.classes)]))
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_pal.data.dataset import write_classes_txt, write_masks
    from napari_pal.method.inference import TrainedModel

    model = TrainedModel.load(a.run)
    ds = _open(a.data, a.split, model.classes)
    out = Path(a.out)
    _outside(out, Path(a.data))
    for i in tqdm(range(len(ds)), desc="predicting", unit="img"):
        probs = model.predict(ds.read_image(i))
        suffix = ds.items[i].mask_paths[0].suffix
        write_masks(out, ds.layout, ds.classes, ds.names[i], probs > 0.5, suffix=suffix)
    write_classes_txt(out, ds.classes)
    print(f"wrote masks for {len(ds)} images to {out / 'masks'}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from napari_pal.scoring.metrics import evaluate

    ref = _open(a.ref, a.split)
    result = evaluate(Path(a.pred), ref)
    print(result.table())
    if a.out:
        write_text(a.out, result.to_csv())
        print(f"wrote {a.out}")
    return 0


def cmd_corrupt(a: argparse.Namespace) -> int:
    from napari_pal.data.corruption import corrupt_dataset

    ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    records = corrupt_dataset(Path(a.data), Path(a.out), fraction=a.fraction,
                              pixels=(a.pixels[0], a.pixels[1]), seed=a.seed, ops=ops,
                              split=a.split)
    bad = {r.name for r in records if r.operation != "none"}
    print(f"corrupted {len(bad)} of {len({r.name for r in records})} images; truth in "
          f"{Path(a.out) / 'corruption.csv'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from napari_pal.method.config import QAM_INPUTS, QAM_LOSSES, STRATEGIES, TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(prog="napari-pal", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a segmenter (and quality module) on DATA",
                       description="Train on a dataset folder; writes RUN/checkpoint.pt, "
                       "RUN/history.csv (per epoch: loss and, when DATA/corruption.csv or "
                       "--truth gives the truth, the mean weight of clean and corrupted masks)")
    t.add_argument("data", help="dataset folder (images/ and masks/)")
    t.add_argument("--out", required=True, help="run folder to create")
    t.add_argument("--strategy", choices=STRATEGIES, default=d.strategy)
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--size", type=int, default=d.size, help="square training size in px")
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--lam", type=float, default=d.lam, help="OCM bound λ in λ·tanh(t)")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--width", type=int, default=d.width, help="U-Net base width")
    t.add_argument("--qam-input", choices=QAM_INPUTS, default=d.qam_input)
    t.add_argument("--qam-loss", choices=QAM_LOSSES, default=d.qam_loss,
                   help="per-sample loss the quality module learns to rank")
    t.add_argument("--warmup", type=int, default=d.warmup_epochs,
                   help="epochs before re-weighting starts (-1: a fifth of --epochs)")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d.precision)
    t.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, mps")
    t.add_argument("--threads", type=int, default=d.threads, help="CPU threads (0: all)")
    t.add_argument("--truth", help="corruption.csv with the known bad masks (for logging)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    _common(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("score", help="rank every mask of DATA by quality, worst first")
    s.add_argument("run", help="run folder from 'train'")
    s.add_argument("data")
    s.add_argument("--out", required=True, help="CSV to write")
    s.add_argument("--maps", metavar="DIR", help="also write each image's per-pixel "
                   "disagreement map (float32 TIFF, 0 agree .. 1 confident conflict) to DIR")
    _common(s)
    s.set_defaults(func=cmd_score)

    pr = sub.add_parser("predict", help="write predicted masks in DATA's layout and sizes")
    pr.add_argument("run")
    pr.add_argument("data")
    pr.add_argument("--out", required=True, help="folder for the predicted masks")
    _common(pr)
    pr.set_defaults(func=cmd_predict)

    e = sub.add_parser("evaluate", help="Dice per class of predicted masks against REF")
    e.add_argument("pred", help="folder written by 'predict'")
    e.add_argument("ref", help="dataset folder with the reference masks")
    e.add_argument("--out", help="CSV to write (per image and mean)")
    _common(e)
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("corrupt", help="erode/dilate a fraction of the masks (the paper's noise)")
    c.add_argument("data")
    c.add_argument("out", help="new folder for the corrupted copy")
    c.add_argument("--fraction", type=float, default=0.5)
    c.add_argument("--pixels", type=int, nargs=2, default=(5, 13), metavar=("LO", "HI"),
                   help="radius range in pixels of the stored masks")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--ops", default="erode,dilate", help="comma list of erode, dilate")
    _common(c)
    c.set_defaults(func=cmd_corrupt)

    from napari_pal.bench import benchmark, speed

    benchmark.add_parser(sub)
    speed.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PalError as exc:
        print(f"napari-pal: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
