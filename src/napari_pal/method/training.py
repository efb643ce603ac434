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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from napari_pal.atomic import write_text
from napari_pal.data.trainset import TrainingSet, augment
from napari_pal.errors import CheckpointError, TrainingError
from napari_pal.method import device as dev
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
                 resume: bool = False):
        if len(data) < 2:
            raise TrainingError("need at least two images to train")
        self.data, self.config, self.run_dir = data, config, Path(run_dir)
        self.truth = dict(truth or {})
        trusted = set(trusted)
        self.trusted = torch.tensor([n in trusted for n in data.names])
        self.device = dev.pick_device(config.device)
        self.amp = dev.autocast_dtype(self.device, config.precision)
        self._stop = threading.Event()
        self.segmenter, self.qam = build_networks(config, len(data.classes))
        self.optimizer = torch.optim.Adam(
            list(self.segmenter.parameters()) + list(self.qam.parameters()), lr=config.lr)
        self.epoch, self.step_in_epoch, self.history = 0, 0, []
        if resume and (self.run_dir / CHECKPOINT_NAME).exists():
            self._restore(load_checkpoint(self.run_dir / CHECKPOINT_NAME))
        for net in (self.segmenter, self.qam):
            net.to(self.device, memory_format=torch.channels_last)

    # --- public -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to stop; it does so before the next step and saves a checkpoint."""
        self._stop.set()

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def run(self) -> Iterator[Progress]:
        cfg = self.config
        if cfg.device in ("auto", "cpu"):
            dev.set_threads(cfg.threads)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.run_dir / "config.json", json.dumps(
            {"config": cfg.to_dict(), "classes": self.data.classes}, indent=2))
        per_epoch = len(self._batches(0))
        total = per_epoch * cfg.epochs
        start, done_at_start = time.perf_counter(), self.epoch * per_epoch + self.step_in_epoch
        # history's elapsed_s is the training time summed over resumed sessions
        earlier_s = self.history[-1]["elapsed_s"] if self.history else 0.0
        for epoch in range(self.epoch, cfg.epochs):
            batches = self._batches(epoch)
            sums = {"loss": 0.0, "n": 0, "clean": [], "corrupt": []}
            for b in range(self.step_in_epoch, len(batches)):
                if self._stop.is_set():
                    self.epoch, self.step_in_epoch = epoch, b
                    self._save()
                    yield self._event(epoch, b, per_epoch, total, start, done_at_start,
                                      math.nan, state="stopped")
                    return
                if b + 1 < len(batches):
                    self.data.prefetch(batches[b + 1])  # read it while this step computes
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
        images, masks = self.data.batch(idx)
        if cfg.augment:
            gen = torch.Generator().manual_seed(cfg.seed * 7_919 + step * 104_729 + 1)
            images, masks = augment(images, masks, gen)
        images = images.to(self.device).contiguous(memory_format=torch.channels_last)
        masks = masks.to(self.device)
        weighting = epoch >= cfg.warmup
        self.segmenter.train()
        self.qam.train()
        with dev.autocast(self.device, self.amp):
            logits = self.segmenter(images)
            scores = (self.qam(quality_input(images, masks, logits, cfg)).float()
                      if weighting else None)
        bce, dice = loss_terms(logits, masks)
        losses = bce + dice
        if scores is None:
            weights = torch.full_like(losses, 1.0 / len(losses))
        else:
            weights = sample_weights(scores, cfg.strategy, cfg.lam,
                                     self.trusted[idx].to(self.device))
        loss = weighted_loss(weights, bce, dice, cfg.qam_loss)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss.item()} at epoch {epoch + 1}, step {b + 1}; training "
                f"stopped and the last good checkpoint {self.checkpoint_path} was kept. "
                f"Try a lower --lr (now {cfg.lr}) or --precision fp32")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        names = [self.data.names[i] for i in idx.tolist()]
        batch_weights = (weights.detach() * len(idx)).tolist()
        return float(losses.detach().mean()), batch_weights, names, weighting

    def _event(self, epoch: int, b: int, per_epoch: int, total: int, start: float,
               done_at_start: int, loss: float, **kw) -> Progress:
        step = epoch * per_epoch + b
        elapsed = time.perf_counter() - start
        ran = step - done_at_start
        eta = elapsed / ran * (total - step) if ran > 0 else math.nan
        return Progress(epoch=min(epoch + 1, self.config.epochs), epochs=self.config.epochs,
                        step=step, steps=total, loss=loss, elapsed_s=elapsed, eta_s=eta, **kw)

    def _save(self) -> None:
        save_checkpoint(self.checkpoint_path, {
            "segmenter": self.segmenter.state_dict(),
            "qam": self.qam.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config": self.config.to_dict(),
            "classes": list(self.data.classes),
            "names": list(self.data.names),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
        })
        write_text(self.run_dir / "history.csv", _history_csv(self.history))
        write_text(self.run_dir / "history.json", json.dumps(self.history))

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


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _history_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = ["epoch", "loss", "weighting", "clean_weight", "corrupt_weight", "elapsed_s"]
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
