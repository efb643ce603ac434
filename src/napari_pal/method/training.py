"""The one training loop, shared by the command line and the napari widget.

It is a generator of :class:`Progress` events (one per step), so a caller can show
progress, plot the quality weights, or stop it between any two steps.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from napari_pal.atomic import write_text
from napari_pal.data.partcounts import usual_part_counts
from napari_pal.data.trainset import TrainingSet, augment
from napari_pal.errors import CheckpointError, PalError, TrainingError
from napari_pal.method import device as dev
from napari_pal.method import distributed, schedule
from napari_pal.method.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from napari_pal.method.config import TrainConfig
from napari_pal.method.models import QualityNet, UNet
from napari_pal.method.weighting import loss_terms, sample_weights, weighted_loss


@dataclass
class Progress:
    """One training step (or the end of training)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # global, 1-based
    steps: int  # total planned
    loss: float
    elapsed_s: float
    eta_s: float
    names: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # N·w: batch mean is 1
    weighting: bool = False  # past warm-up: the quality module is re-weighting
    epoch_end: bool = False
    epoch_loss: float | None = None
    clean_weight: float | None = None  # mean weight of known-clean samples this epoch
    corrupt_weight: float | None = None
    state: str = "running"  # running | finished | stopped


#: settings a resumed run may change: they decide where it runs, not what it learns
RUNTIME_SETTINGS = ("device", "threads", "precision")


def resume_config(saved: TrainConfig, given: Mapping[str, object], epochs_done: int, *,
                  label: Callable[[str], str] = str) -> tuple[TrainConfig, list[str]]:
    """The settings a resumed run continues with: the run's own, except ``epochs`` (to
    extend it; never below what it has trained) and RUNTIME_SETTINGS. Any other setting in
    ``given`` (what the user set explicitly) that differs is an error naming it (``label``
    turns a setting name into the flag or field the user knows). Returns the config and
    the plain sentences that say what changed."""
    conflicts, notes, changes = [], [], {}
    for name, value in given.items():
        old = getattr(saved, name)
        if value == old:
            continue
        if name == "epochs":
            if int(value) <= epochs_done:
                raise PalError(f"{label(name)} {value}: the run has already trained "
                               f"{_n(epochs_done, 'epoch')}; give "
                               f"more than {epochs_done} to extend it, or start a new run")
            verb = "extending" if int(value) > old else "shortening"
            notes.append(f"{verb} the run from {old} to {_n(int(value), 'epoch')} "
                         "(the learning-rate schedule follows the new length)")
        elif name in RUNTIME_SETTINGS:
            notes.append(f"{label(name)} {value} for this session (the run used {old})")
        else:
            conflicts.append(f"{label(name)} {value} (the run has {old})")
            continue
        changes[name] = value
    if conflicts:
        raise PalError("a resumed run keeps the settings it was started with, and these "
                       f"contradict them: {'; '.join(conflicts)}. Fix: leave them out to "
                       "continue the run, or start a new run elsewhere")
    config = replace(saved, **changes)
    if config.epochs <= epochs_done:
        raise PalError(f"the run has finished {_n(config.epochs, 'epoch')}; give "
                       f"{label('epochs')} N with N > {config.epochs} to extend it")
    return config, notes


def build_networks(config: TrainConfig, classes: int) -> tuple[UNet, QualityNet]:
    torch.manual_seed(config.seed)
    segmenter = UNet(1, classes, config.width, config.depth)
    qam_in = 1 + classes * (2 if config.qam_input.endswith("prediction") else 1)
    return segmenter, QualityNet(qam_in, config.qam_width)


def quality_input(images: torch.Tensor, masks: torch.Tensor, logits: torch.Tensor | None,
                  config: TrainConfig) -> torch.Tensor:
    """What the quality module sees: the image, its masks and, by default, the
    segmenter's current (detached) prediction, so it can learn from their disagreement."""
    parts = [images, masks.to(images.dtype)]
    if config.qam_input.endswith("prediction"):
        parts.append(torch.sigmoid(logits.detach()).to(images.dtype))
    return torch.cat(parts, dim=1)


class Trainer:
    """Trains a segmenter (and, unless ``baseline``, a quality module) on a TrainingSet."""

    def __init__(self, data: TrainingSet, config: TrainConfig, run_dir: str | Path, *,
                 truth: Mapping[str, bool] | None = None, trusted: Iterable[str] = (),
                 resume: bool = False, group: distributed.RankGroup | None = None,
                 checkpoint_every_s: float = 30.0):
        if len(data) < 2:
            raise TrainingError("need at least two images to train")
        self.data, self.config, self.run_dir = data, config, Path(run_dir)
        config.part_count_classes(list(data.classes))  # a class it names must exist: now
        self.truth = dict(truth or {})
        trusted = set(trusted)
        self.trusted = torch.tensor([n in trusted for n in data.names])
        # data-parallel: this rank's place among the ranks (None: one process, as before)
        self.group = group if group is not None else distributed.current()
        self.device = (self.group.start(config.device) if self.group
                       else dev.pick_device(config.device))
        self.amp = dev.autocast_dtype(self.device, config.precision)
        self._stop = threading.Event()
        # epoch ends save the checkpoint at most this often (and always at the last epoch)
        self.checkpoint_every_s, self._saved_at = checkpoint_every_s, time.perf_counter()
        self.segmenter, self.qam = build_networks(config, len(data.classes))
        # on the device before the optimizer restores its state: Adam's moments follow
        # their parameters' device when loaded (resuming a GPU run kept them on the CPU)
        for net in (self.segmenter, self.qam):
            net.to(self.device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(
            list(self.segmenter.parameters()) + list(self.qam.parameters()), lr=config.lr)
        self.epoch, self.step_in_epoch, self.history = 0, 0, []
        self._usual_parts: dict[str, int] | None = None
        if resume and (self.run_dir / CHECKPOINT_NAME).exists():
            self._restore(load_checkpoint(self.run_dir / CHECKPOINT_NAME))
        if self.epoch > config.epochs:
            raise TrainingError(f"{self.checkpoint_path} has trained "
                                f"{_n(self.epoch, 'epoch')}, more than the {config.epochs} "
                                "asked for")
        # what runs forward: the networks, or their DDP wrappers (checkpoints save the former)
        self._nets = ((self.segmenter, self.qam) if self.group is None else
                      (self.group.wrap(self.segmenter), self.group.wrap(self.qam)))

    # --- public -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop; it does so before the next step and saves a checkpoint."""
        self._stop.set()

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    @property
    def usual_parts(self) -> dict[str, int]:
        """The training masks' usual part count per class (``data.partcounts``), counted
        once on the grid masks, a chunk at a time; the checkpoint keeps it for scoring."""
        if self._usual_parts is None:
            judged = self.config.part_count_classes(list(self.data.classes))
            n, masks = len(self.data), self.data.masks
            chunks = (masks[list(range(s, min(s + 64, n)))].numpy() for s in range(0, n, 64))
            usual = usual_part_counts((m for chunk in chunks for m in chunk),
                                      self.data.classes) if judged else {}
            self._usual_parts = {c: k for c, k in usual.items() if c in judged}
        return self._usual_parts

    def run(self) -> Iterator[Progress]:
        cfg = self.config
        if cfg.device in ("auto", "cpu"):
            dev.set_threads(cfg.threads or (self.group.cpu_threads() if self.group else 0))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.group is None or self.group.is_main:
            write_text(self.run_dir / "config.json", json.dumps(
                {"config": cfg.to_dict(), "classes": self.data.classes}, indent=2))
        per_epoch = len(self._batches(0))
        if self.group is not None:
            self.group.check_batches(min(map(len, self._batches(0))), cfg.batch_size)
        total = per_epoch * cfg.epochs
        start, done_at_start = time.perf_counter(), self.epoch * per_epoch + self.step_in_epoch
        # history's elapsed_s is the training time summed over resumed sessions
        earlier_s = self.history[-1]["elapsed_s"] if self.history else 0.0
        for epoch in range(self.epoch, cfg.epochs):
            batches = self._batches(epoch)
            sums = {"loss": 0.0, "n": 0, "clean": [], "corrupt": []}
            for b in range(self.step_in_epoch, len(batches)):
                if self._stopping():
                    self.epoch, self.step_in_epoch = epoch, b
                    self._save()
                    yield self._event(epoch, b, per_epoch, total, start, done_at_start,
                                      math.nan, state="stopped")
                    return
                if b + 1 < len(batches):  # read the next batch while this step computes
                    self.data.prefetch(self._share(batches[b + 1])[0])
                loss, weights, names, weighting = self._step(epoch, b, per_epoch, total, batches[b])
                sums["loss"] += loss
                sums["n"] += 1
                for name, w in zip(names, weights):
                    if name in self.truth:
                        sums["corrupt" if self.truth[name] else "clean"].append(w)
                ev = self._event(epoch, b + 1, per_epoch, total, start, done_at_start, loss,
                                 names=names, weights=weights, weighting=weighting)
                if b + 1 == len(batches):
                    ev.epoch_end = True
                    ev.epoch_loss = sums["loss"] / sums["n"]
                    ev.clean_weight = _mean(sums["clean"])
                    ev.corrupt_weight = _mean(sums["corrupt"])
                    self.epoch, self.step_in_epoch = epoch + 1, 0
                    self.history.append({"epoch": epoch + 1, "loss": ev.epoch_loss,
                                         "weighting": int(weighting),
                                         "clean_weight": ev.clean_weight,
                                         "corrupt_weight": ev.corrupt_weight,
                                         "elapsed_s": round(earlier_s + ev.elapsed_s, 2)})
                    if self._checkpoint_due(epoch + 1 == cfg.epochs):
                        self._save()
                yield ev
            self.step_in_epoch = 0
        yield self._event(cfg.epochs - 1, per_epoch, per_epoch, total, start, done_at_start,
                          self.history[-1]["loss"] if self.history else math.nan,
                          state="finished")

    # --- internals ----------------------------------------------------------------------
    def _batches(self, epoch: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.data), generator=gen)
        batches = list(order.split(self.config.batch_size))
        if len(batches) > 1 and len(batches[-1]) < 2:  # batch norm needs two samples
            batches[-2] = torch.cat([batches[-2], batches.pop()])
        return batches

    def _share(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        """One process: the whole batch; data-parallel: this rank's slice of the global
        batch and where it starts."""
        return (idx, 0) if self.group is None else self.group.share(idx)

    def _lr(self, step: int, total: int) -> float:
        """Cosine decay from lr to lr/100 over the whole run (a function of the step, so
        a resumed run follows the same schedule)."""
        return self.config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / total)))

    def _step(self, epoch: int, b: int, per_epoch: int, total: int,
              idx: torch.Tensor) -> tuple[float, list[float], list[str], bool]:
        cfg = self.config
        step = epoch * per_epoch + b
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(step, total)
        mine, offset = self._share(idx)
        images, masks = self.data.batch(mine)
        # to the device first: resizing and the augmentation's resampling run there (on a
        # GPU the CPU would otherwise hold every step up)
        images, masks = images.to(self.device), masks.to(self.device)
        images, masks = schedule.resize_batch(images, masks, schedule.grid_size(cfg, epoch))
        if cfg.augment:
            gen = torch.Generator().manual_seed(cfg.seed * 7_919 + step * 104_729 + 1)
            images, masks = augment(images, masks, gen, offset, len(idx))
        # masks in the networks' layout too: the quality module's input is concatenated in
        # it and the loss reads logits and masks alike, instead of converting the larger
        # concatenation (measured on a CPU: +5-7 % images/s at 256 px, none at 128 px)
        images = images.contiguous(memory_format=torch.channels_last)
        masks = masks.contiguous(memory_format=torch.channels_last)
        weighting = epoch >= cfg.warmup
        lam = schedule.lam_at(cfg, step, per_epoch)
        self.segmenter.train()
        self.qam.train()
        with dev.autocast(self.device, self.amp):
            logits = self._nets[0](images)
            scores = (self._nets[1](quality_input(images, masks, logits, cfg)).float()
                      if weighting else None)
        bce, dice = loss_terms(logits, masks)
        losses = bce + dice
        if scores is None:
            weights = torch.full_like(losses, 1.0 / len(idx))
            shown = torch.full((len(idx),), 1.0 / len(idx))
        elif self.group is None:
            weights = shown = sample_weights(scores, cfg.strategy, lam,
                                             self.trusted[idx].to(self.device), cfg.anchor)
        else:  # the softmax over the global batch (Eq. 1), not over this rank's slice
            weights, shown = self.group.batch_weights(scores, len(idx), cfg.strategy, lam,
                                                      self.trusted[idx].to(self.device),
                                                      cfg.anchor)
        loss = weighted_loss(weights, bce, dice, cfg.qam_loss)
        total, mean_loss = loss.detach(), losses.detach().mean()
        if self.group is not None:  # the global batch's loss, for the log and the NaN check
            total, loss_sum = self.group.sum(torch.stack([total, losses.detach().sum()]))
            mean_loss = loss_sum / len(idx)
            loss = loss * self.group.loss_scale()
        if not torch.isfinite(total):
            kept = (f"the last good checkpoint {self.checkpoint_path} was kept"
                    if self.checkpoint_path.exists() else "no checkpoint had been saved yet")
            raise TrainingError(
                f"the loss became {total.item()} at epoch {epoch + 1}, step {b + 1}; training "
                f"stopped and {kept}. Try a lower --lr (now {cfg.lr}) or --precision fp32")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        names = [self.data.names[i] for i in idx.tolist()]
        batch_weights = (shown.detach() * len(idx)).tolist()
        return float(mean_loss), batch_weights, names, weighting

    def _event(self, epoch: int, b: int, per_epoch: int, total: int, start: float,
               done_at_start: int, loss: float, **kw) -> Progress:
        step = epoch * per_epoch + b
        elapsed = time.perf_counter() - start
        ran = step - done_at_start
        eta = elapsed / ran * (total - step) if ran > 0 else math.nan
        return Progress(epoch=min(epoch + 1, self.config.epochs), epochs=self.config.epochs,
                        step=step, steps=total, loss=loss, elapsed_s=elapsed, eta_s=eta, **kw)

    def _checkpoint_due(self, last: bool) -> bool:
        """Save at the last epoch, else at most every ``checkpoint_every_s`` seconds: a
        GPU epoch can take less time than writing the checkpoint (27 MB at the defaults).
        A stop always saves (see run); data-parallel ranks agree (any rank due: all save)."""
        now = time.perf_counter()
        due = last or now - self._saved_at >= self.checkpoint_every_s
        if self.group is not None:
            due = self.group.any(due)
        if due:
            self._saved_at = now
        return due

    def _stopping(self) -> bool:
        """A stop asked for here (or, data-parallel, on any rank): all ranks stop together."""
        stop = self._stop.is_set()
        return stop if self.group is None else self.group.any(stop)

    def _save(self) -> None:
        """Write the checkpoint and history (data-parallel: rank 0 writes, the others wait
        until it has, so none exits while the checkpoint is half-way)."""
        if self.group is not None and not self.group.is_main:
            self.group.barrier()
            return
        save_checkpoint(self.checkpoint_path, {
            "segmenter": self.segmenter.state_dict(),
            "qam": self.qam.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config": self.config.to_dict(),
            "classes": list(self.data.classes),
            "names": list(self.data.names),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "usual_parts": self.usual_parts,
        })
        write_text(self.run_dir / "history.csv", _history_csv(self.history))
        write_text(self.run_dir / "history.json", json.dumps(self.history))
        if self.group is not None:
            self.group.barrier()

    def _restore(self, state: dict) -> None:
        if list(state["classes"]) != list(self.data.classes):
            raise CheckpointError(
                f"{self.checkpoint_path}: trained on classes {state['classes']}, but the data has "
                f"{self.data.classes}; use a new --out folder to start afresh")
        self.segmenter.load_state_dict(state["segmenter"])
        self.qam.load_state_dict(state["qam"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        hist = self.run_dir / "history.json"
        self.history = json.loads(hist.read_text()) if hist.exists() else []
        self.history = [h for h in self.history if h["epoch"] <= self.epoch]


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _history_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = ["epoch", "loss", "weighting", "clean_weight", "corrupt_weight", "elapsed_s"]
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
