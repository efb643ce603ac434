"""A ranking that arrives while training runs: the folder re-scored on the current model.

An annotator should start on the worst masks minutes after pressing Train, not when
training ends. :func:`train_with_refreshes` passes the trainer's progress events through
and, at epoch ends, re-scores the folder with a snapshot of the networks (same thread, so
no second copy of the work competes for the cores), yielding a :class:`RankingRefresh`
that says how settled the ranking is: how much of its top changed since the last refresh.
Refreshes are spaced so that scoring takes at most ``max_share`` of the time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_pal.data.dataset import Dataset
from napari_pal.scoring import reliability
from napari_pal.scoring.quality import ImageScore, analyse, score_from_grid


@dataclass
class RankingRefresh:
    """The folder's ranking on the model of one moment of training."""

    epoch: int  # epochs completed when the snapshot was taken
    epochs: int
    step: int
    train_s: float  # training time so far (scoring excluded)
    score_s: float  # how long this refresh took
    scores: list[ImageScore]
    top_k: int
    top_changed: float | None = None  # share of the top-k new since the last refresh
    rank_correlation: float | None = None  # Spearman's rho against the last refresh
    final: bool = False
    worst: list[str] = field(default_factory=list)  # the top-k names, worst first
    reliable: dict[str, bool] = field(default_factory=dict)  # per class: learnt yet?

    @property
    def ranked(self) -> bool:
        """False while no class is learnt: the scores are then no ranking at all."""
        return any(self.reliable.values()) if self.reliable else True

    @property
    def settled(self) -> bool:
        """True when the top of the list barely moved (at most one name in ten changed)."""
        return self.top_changed is not None and self.top_changed <= 0.1


def top_k_of(n: int) -> int:
    """How many masks count as "the top of the list": a tenth of the folder, 5 to 50."""
    return max(1, min(n, max(5, min(50, math.ceil(n / 10)))))


def order_of(scores: Sequence[ImageScore]) -> list[str]:
    """Names worst first (ties by name, as in scores.csv)."""
    return [s.name for s in sorted(scores, key=lambda s: (s.quality, s.name))]


def compare(previous: Sequence[str], current: Sequence[str], k: int
            ) -> tuple[float | None, float | None]:
    """(share of the current top-k absent from the previous top-k, Spearman's rho over the
    names both rankings hold); None where there is no previous ranking."""
    if not previous:
        return None, None
    changed = len(set(current[:k]) - set(previous[:k])) / max(1, min(k, len(current)))
    common = [n for n in current if n in set(previous)]
    if len(common) < 3:
        return changed, None
    rank_prev = {n: i for i, n in enumerate(n for n in previous if n in set(common))}
    a = np.arange(len(common), dtype=float)
    b = np.array([rank_prev[n] for n in common], dtype=float)
    rho = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None
    return changed, rho


class Averaged:
    """An exponential moving average of the trainer's networks (weights and batch-norm
    statistics), updated after every step, with a time constant of ``epochs`` epochs.

    Why: a refresh scored the networks of one moment, and early in training, while the
    learning rate is high, they swing from step to step; so did the ranking (ROC AUC 0.98,
    0.86, 0.93 three epochs apart). Scored both ways at every refresh of four runs (JSRT,
    50 % of the masks moved by 5-13 px), the lowest AUC from epoch 9 on was 0.925-0.954 on
    the average against 0.677-0.926 on the networks of the moment; the average lags at the
    very start (epoch 7: 0.84-0.89 against 0.90-0.94). One update: 3 ms for the 2.2 M
    parameters on one CPU thread, under 1 % of a 128-px training step.
    """

    def __init__(self, trainer, epochs: float = 1.0):
        import copy

        self.trainer, self.epochs, self.updates = trainer, epochs, 0
        self.nets = [copy.deepcopy(n).eval() for n in (trainer.segmenter, trainer.qam)]
        for net in self.nets:
            net.requires_grad_(False)

    def update(self, steps_per_epoch: int) -> None:
        import torch

        self.updates += 1
        decay = math.exp(-1.0 / max(1e-9, self.epochs * steps_per_epoch))
        decay = min(decay, (1 + self.updates) / (10 + self.updates))  # warm start
        with torch.no_grad():
            for avg, live in zip(self.nets, (self.trainer.segmenter, self.trainer.qam)):
                for a, b in zip(avg.state_dict().values(), live.state_dict().values()):
                    if a.dtype.is_floating_point:
                        a.lerp_(b.detach(), 1.0 - decay)
                    else:
                        a.copy_(b)

    def model(self):
        """The average as a :class:`TrainedModel` (no copy: score it before the next step)."""
        from napari_pal.method.inference import TrainedModel

        t = self.trainer
        return TrainedModel(t.config, list(t.data.classes), self.nets[0], self.nets[1],
                            t.device, t.amp, int(t.epoch))


def refresh_size(trainer) -> int:
    """The grid a refresh scores at: the size the last epoch trained at (progressive
    resizing: the model knows its objects at that scale), the run's size at the end."""
    from napari_pal.method.schedule import grid_size

    return grid_size(trainer.config, max(0, trainer.epoch - 1))


def grid_scores(model, data, names: Sequence[str], size: int,
                overrides: Mapping[str, np.ndarray] | None = None, batch: int = 16,
                ) -> list[ImageScore]:
    """Scores of ``names`` from the training set's grid (held by the trainer: no image is
    read from disk again) resized to ``size``; an image in ``overrides`` is scored
    against those masks (e.g. what the annotator has painted since Train was pressed)."""
    import torch

    from napari_pal.method.schedule import resize_batch

    where = {n: i for i, n in enumerate(data.names)}
    out = []
    for start in range(0, len(names), batch):
        chunk = list(names[start:start + batch])
        pos = [where[n] for n in chunk]
        images, masks = data.images[pos], data.masks[pos].clone()
        for k, name in enumerate(chunk):
            painted = None if overrides is None else overrides.get(name)  # read once
            if painted is not None:
                square = data.frames[pos[k]].to_square(np.asarray(painted, bool), binary=True)
                masks[k] = torch.from_numpy(square)
        images, masks = resize_batch(images, masks.float(), size)
        probs, t = model.predict_grid(images, masks)
        grid = masks.numpy() > 0.5
        for k, name in enumerate(chunk):
            scale = data.frames[pos[k]].side / size
            out.append(score_from_grid(name, model.classes, grid[k], probs[k], scale,
                                       None if t is None else float(t[k]), model.config.lam,
                                       usual_parts=model.usual_parts))
    return out


def score_now(trainer, dataset: Dataset,
              overrides: Mapping[str, np.ndarray] | None = None, *, model=None,
              size: int | None = None) -> list[ImageScore]:
    """Scores of every image of ``dataset`` on ``model`` (default: a snapshot of the
    trainer's current networks) at ``size`` (default: :func:`refresh_size`), from the
    trainer's grid when it holds every image, else read from the folder."""
    from napari_pal.method.inference import TrainedModel

    model = model or TrainedModel.snapshot(trainer)
    size = size or refresh_size(trainer)
    if set(dataset.names) <= set(trainer.data.names):
        return grid_scores(model, trainer.data, dataset.names, size, overrides)
    if size != model.config.size:
        import dataclasses

        model = dataclasses.replace(model, config=dataclasses.replace(model.config, size=size,
                                                                      stages=""))
    return [a.score for a in analyse(model, dataset, maps=False, overrides=overrides)]


def train_with_refreshes(trainer, dataset: Dataset, *, every_s: float = 60.0,
                         max_share: float = 0.25, first_epoch: int = 1,
                         overrides: Mapping[str, np.ndarray] | None = None,
                         average_epochs: float | None = 1.0,
                         ) -> Iterator[object]:
    """Run ``trainer`` and yield its progress events, plus a :class:`RankingRefresh` at the
    first epoch end at or after ``first_epoch``, then at each epoch end when ``every_s``
    seconds of training have passed since the last one and that one took at most
    ``max_share`` of them, and always once when training finishes (``final=True``; not
    when it is stopped: the caller scores the saved checkpoint then).

    ``dataset`` is what gets ranked: the training folder itself (the annotated images).
    Intermediate refreshes score an :class:`Averaged` copy of the networks over the last
    ``average_epochs`` epochs (None: the networks of the moment); the final one scores the
    trained networks, as saved.
    """
    average = Averaged(trainer, average_epochs) if average_epochs else None
    previous: list[str] = []
    last_at = -math.inf  # training time of the last refresh
    last_cost = 0.0
    scoring_s = 0.0
    start = time.perf_counter()
    k = top_k_of(len(dataset))

    def refresh(ev, final: bool) -> RankingRefresh:
        nonlocal previous, last_at, last_cost, scoring_s
        t0 = time.perf_counter()
        train_s = t0 - start - scoring_s
        model = average.model() if average is not None and not final else None
        scores = score_now(trainer, dataset, overrides, model=model,
                           size=trainer.config.size if final else None)
        # ranked as the user sees it: over the classes the model has learnt so far (early
        # on, an unlearnt class gives every image quality ~0 and ties the whole folder)
        verdicts = reliability.assess(scores, dataset.classes)
        scores = reliability.rank_by_reliable(scores, verdicts)
        ranked = any(v.reliable for v in verdicts.values())
        order = order_of(scores) if ranked else []
        changed, rho = compare(previous, order, k) if ranked else (None, None)
        last_cost = time.perf_counter() - t0
        scoring_s += last_cost
        previous, last_at = order, train_s
        return RankingRefresh(epoch=trainer.epoch, epochs=ev.epochs, step=ev.step,
                              train_s=train_s, score_s=last_cost, scores=scores, top_k=k,
                              top_changed=changed, rank_correlation=rho, final=final,
                              worst=order[:k],
                              reliable={c: v.reliable for c, v in verdicts.items()})

    last_ev = None
    for ev in trainer.run():
        if average is not None and ev.state == "running":
            average.update(max(1, ev.steps // max(1, ev.epochs)))
        yield ev
        last_ev = ev
        if (ev.state != "running" or not ev.epoch_end or trainer.epoch < first_epoch
                or trainer.epoch >= ev.epochs):  # the last epoch's refresh is the final one
            continue
        train_s = time.perf_counter() - start - scoring_s
        since = train_s - last_at
        if since >= every_s and last_cost <= max_share * since:
            yield refresh(ev, final=False)
    if last_ev is not None and last_ev.state == "finished":
        yield refresh(last_ev, final=True)
