"""``napari-pal train``: its options are built from TrainConfig.settings(), so one place
defines a setting, its default and its help (the widget's form reads the same list)."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from pathlib import Path

from napari_pal.cli.console import plural, say
from napari_pal.errors import PalError
from napari_pal.outputs import outside

#: setting name -> the flag the CLI has always used for it
FLAGS = {"warmup_epochs": "--warmup"}


def flag(name: str) -> str:
    if name == "augment":
        return "--no-augment"
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def add_parser(sub: argparse._SubParsersAction, common) -> None:
    from napari_pal.method.config import TrainConfig

    t = sub.add_parser(
        "train", help="train a segmenter (and quality module) on DATA",
        description="Train on a dataset folder; writes RUN/checkpoint.pt, RUN/config.json and "
        "RUN/history.csv (per epoch: loss and, when DATA/corruption.csv or --truth gives the "
        "truth, the mean weight of clean and corrupted masks). Images without masks are "
        "skipped (and counted).")
    t.add_argument("data", help="dataset folder (images/ and masks/)")
    t.add_argument("--out", required=True, help="run folder to create")
    for s in TrainConfig.settings():
        # default None: with --resume, a value the user did not give is the run's own
        if s.type is bool:
            t.add_argument(flag(s.name), dest=s.name, action="store_const", const=not s.default,
                           default=None, help=f"turn off: {s.help}")
        else:
            t.add_argument(flag(s.name), dest=s.name, type=s.type, choices=s.choices,
                           default=None, metavar=None if s.choices else s.name.upper(),
                           help=f"{s.help} (default: {s.default})")
    t.add_argument("--truth", help="corruption.csv with the known bad masks, for the log "
                   "(default: DATA/corruption.csv if present)")
    t.add_argument("--minutes", type=float, metavar="M",
                   help="time budget: measure this machine's speed (a few seconds), then pick "
                   "--size and --epochs so that training takes about M minutes (not with "
                   "--size, --epochs or --resume)")
    t.add_argument("--score-every", type=float, default=0, metavar="SECONDS",
                   help="anytime ranking: re-score the folder on the current model at the "
                   "first epoch end after each SECONDS of training (scoring kept under a "
                   "quarter of the time) and at the end, into RUN/ranking.csv (0: off)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its own settings (RUN/config.json); "
                   "--epochs may extend it")
    common(t)
    t.set_defaults(func=run)


def _config(a: argparse.Namespace, out: Path):
    """The run's settings: fresh from the flags, or (with --resume) the run's own."""
    from napari_pal.method.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import resume_config

    given = {s.name: getattr(a, s.name) for s in TrainConfig.settings()
             if getattr(a, s.name) is not None}
    if (out / CHECKPOINT_NAME).exists() and not a.resume:
        raise PalError(f"{out} already holds a trained run; pass --resume to continue it or "
                       f"choose a new --out folder")
    if a.minutes is not None and (a.resume or {"size", "epochs", "stages"} & set(given)):
        raise PalError("--minutes picks --size, --epochs and --stages for a new run: give "
                       "either --minutes or --size/--epochs/--stages (and not with --resume)")
    if not a.resume:
        return TrainConfig(**given), []
    if not (out / CHECKPOINT_NAME).exists():
        raise PalError(f"--resume: {out} holds no run ({CHECKPOINT_NAME} is missing); leave "
                       "out --resume to start one")
    state = load_checkpoint(out / CHECKPOINT_NAME)
    saved = TrainConfig.from_dict(state["config"])
    return resume_config(saved, given, int(state["epoch"]), label=flag)


def run(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_pal.data.corruption import read_corruption_csv
    from napari_pal.data.dataset import open_dataset
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.training import Trainer

    out = Path(a.out)
    outside(out, Path(a.data))
    config, notes = _config(a, out)
    for note in notes:
        say(note)
    ds = open_dataset(Path(a.data), split=a.split, unannotated=True)
    skipped = ds.unannotated_names
    ds = ds.annotated()
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        say(f"skipping {plural(len(skipped), 'image')} without masks ({shown}): training uses "
            f"the {plural(len(ds), 'annotated image')}; 'predict' drafts their masks")
    if len(ds) < 2:
        raise PalError(f"{a.data}: {plural(len(ds), 'image')} with masks; training needs at "
                       "least two annotated images (masks/ as in the README)")
    if a.minutes is not None:
        config = _plan(a.minutes, ds, config)
    truth_file = Path(a.truth) if a.truth else Path(a.data) / "corruption.csv"
    truth = read_corruption_csv(truth_file) if truth_file.is_file() else None
    with tqdm(total=len(ds), desc="reading", unit="img", leave=False) as bar:
        data = load_training_set(ds, config.size, progress=lambda i, n: bar.update(i - bar.n))
    trainer = Trainer(data, config, out, truth=truth, resume=a.resume)
    previous = signal.signal(signal.SIGINT, lambda *_: trainer.stop())
    amp = f" with {str(trainer.amp).replace('torch.', '')}" if trainer.amp else ""
    start = f" from epoch {trainer.epoch + 1}" if trainer.epoch else ""
    say(f"training {config.strategy} on {plural(len(ds), 'image')} ({', '.join(ds.classes)}) "
        f"at {config.size} px, {plural(config.epochs, 'epoch')}{start}, on {trainer.device}"
        f"{amp}; Ctrl-C stops and saves")
    stopped = False
    try:
        with tqdm(unit="step", dynamic_ncols=True) as bar:
            for ev in _events(trainer, ds, a.score_every):
                if hasattr(ev, "scores"):
                    _write_ranking(out / "ranking.csv", ev, ds.classes, bar)
                    continue
                bar.total = ev.steps
                bar.n = ev.step
                bar.set_description(f"epoch {ev.epoch}/{ev.epochs}")
                if not math.isnan(ev.loss):
                    bar.set_postfix(loss=f"{ev.loss:.4f}", refresh=False)
                bar.refresh()
                if ev.epoch_end and ev.clean_weight is not None:
                    bar.write(f"epoch {ev.epoch}: loss {ev.epoch_loss:.4f}, mean weight clean "
                              f"{ev.clean_weight:.2f} / corrupted {ev.corrupt_weight or 0:.2f}",
                              file=sys.stderr)
                if ev.state == "stopped":
                    stopped = True
                    break
    finally:
        signal.signal(signal.SIGINT, previous)
    if stopped:  # after the bar has closed: the line stands on its own
        print(f"stopped; resume with: napari-pal train {a.data} --out {out} --resume",
              file=sys.stderr)
        return 130
    print(f"saved {trainer.checkpoint_path}; next: napari-pal score {out} {a.data} "
          f"--out scores.csv", file=sys.stderr)
    return 0


def _plan(minutes: float, ds, config):
    """--minutes: calibrate this machine, then the size and epochs that fit the budget."""
    from napari_pal.method.budget import calibrate, plan_for_minutes

    say(f"measuring this machine's training speed for a {minutes:g}-minute budget ...")
    plan = plan_for_minutes(minutes, len(ds), calibrate(ds, config, minutes=minutes), config)
    say(f"planned: {plan.describe()}")
    return plan.config


def _events(trainer, ds, every_s: float):
    """The trainer's progress events, with the anytime ranking's refreshes when asked."""
    if every_s <= 0:
        return trainer.run()
    from napari_pal.scoring.anytime import train_with_refreshes

    return train_with_refreshes(trainer, ds, every_s=every_s)


def _write_ranking(path: Path, refresh, classes, bar) -> None:
    """RUN/ranking.csv (the scores.csv table of this moment) and one line on how settled."""
    from napari_pal.atomic import write_text
    from napari_pal.cli.score import score_table

    text, verdicts = score_table(refresh.scores, classes, [], warn=refresh.final)
    write_text(path, text)
    moved = ("no class learnt yet: no ranking" if not refresh.ranked else
             "first ranking" if refresh.top_changed is None else
             f"{round(refresh.top_changed * refresh.top_k)} of the top {refresh.top_k} changed"
             + (" (settled)" if refresh.settled else ""))
    unreliable = [c for c, v in verdicts.items() if not v.reliable]
    note = f"; not yet reliable: {', '.join(unreliable)}" if unreliable else ""
    worst = f"; worst: {', '.join(refresh.worst[:5])}" if refresh.worst else ""
    bar.write(f"ranking {'(final) ' if refresh.final else ''}at epoch {refresh.epoch}/"
              f"{refresh.epochs}: {moved}{note}{worst} -> {path}", file=sys.stderr)
