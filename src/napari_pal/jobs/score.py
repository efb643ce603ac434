"""The scoring job: predict and score every image of a dataset with a saved run.

Annotated images are scored (quality, predicted masks, disagreement map); images without
masks (drafts) are only predicted: their predicted masks are offered as draft masks and they
are never scored as if they were annotations. Each class's reliability is assessed on the
scores, and the overall quality is the mean over the reliable classes only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_pal.errors import PalError
from napari_pal.jobs.events import (
    DraftPredicted,
    ImageScored,
    JobEvent,
    JobFailed,
    JobStatus,
    ScoresReady,
)


def score_job(meta: Mapping[str, Any], overrides: Mapping[str, Any] | None, run_dir: Path,
              stop: threading.Event) -> Iterator[JobEvent]:
    """Score every image of the stack ``meta`` (masks from ``overrides`` where given) with
    the checkpoint in ``run_dir``. Errors the user can fix come as one :class:`JobFailed`."""
    try:
        yield from _score(meta, overrides, Path(run_dir), stop)
    except (PalError, OSError) as err:
        yield JobFailed(err)


def _score(meta, overrides, run_dir: Path, stop: threading.Event) -> Iterator[JobEvent]:
    from napari_pal.method.inference import TrainedModel

    yield JobStatus("scoring")
    model = TrainedModel.load(run_dir)
    if list(model.classes) != list(meta["classes"]):
        raise PalError(f"the checkpoint in {run_dir} was trained on classes {model.classes}, "
                       f"these layers hold {meta['classes']}: open the matching folder")
    yield from score_all(model, meta, overrides, run_dir, stop)


def score_all(model, meta: Mapping[str, Any], overrides: Mapping[str, Any] | None,
              run_dir: Path, stop: threading.Event, previous: Sequence[str] = (),
              refresh_info: Mapping[str, Any] | None = None) -> Iterator[JobEvent]:
    """Score the annotated images and predict the drafts with ``model``; end with one
    :class:`ScoresReady` (with a final :class:`RankingRefresh` compared to ``previous``,
    the last refresh's order, when ``refresh_info`` gives its epoch/step/times)."""
    import time

    from napari_pal.review.stack import dataset_from_meta
    from napari_pal.scoring.quality import analyse
    from napari_pal.scoring.reliability import assess, rank_by_reliable

    t0 = time.perf_counter()
    ds = dataset_from_meta(meta)
    index = {n: i for i, n in enumerate(meta["names"])}
    total = len(ds)
    done = 0
    raw = []
    for a in analyse(model, ds.annotated(), maps=True, overrides=overrides):
        raw.append(a.score)
        yield ImageScored(index[a.score.name], total, a)
        done += 1
        if stop.is_set():
            yield JobStatus("scoring stopped")
            return
    for name in ds.unannotated_names:
        i = index[name]
        yield DraftPredicted(i, total, model.predict(ds.read_image(i)))
        if stop.is_set():
            yield JobStatus("scoring stopped")
            return
    verdicts = assess(raw, list(meta["classes"])) if raw else {}
    scores = {s.name: s for s in rank_by_reliable(raw, verdicts)}
    refresh = None
    if refresh_info is not None:
        refresh = final_refresh(list(scores.values()), previous,
                                time.perf_counter() - t0, refresh_info,
                                ranked=any(v.reliable for v in verdicts.values()))
    yield ScoresReady(run_dir, scores, verdicts, refresh)


def final_refresh(scores, previous: Sequence[str], score_s: float, info: Mapping[str, Any],
                  *, ranked: bool = True):
    """The end-of-training scoring, described as the last :class:`RankingRefresh`
    (``ranked`` False: no class is learnt, so there is no order to compare)."""
    from napari_pal.scoring.anytime import RankingRefresh, compare, order_of, top_k_of

    k = top_k_of(len(scores))
    order = order_of(scores) if ranked else []
    changed, rho = compare(list(previous), order, k) if ranked else (None, None)
    return RankingRefresh(epoch=info["epoch"], epochs=info["epochs"], step=info["step"],
                          train_s=info["train_s"], score_s=score_s, scores=list(scores),
                          top_k=k, top_changed=changed, rank_correlation=rho, final=True,
                          worst=order[:k])
