"""The scoring job: predict and score every image of a dataset with a saved run."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from napari_pal.errors import PalError
from napari_pal.jobs.events import ImageScored, JobEvent, JobFailed, JobStatus, ScoresReady


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
    from napari_pal.review.stack import dataset_from_meta
    from napari_pal.scoring.quality import analyse

    yield JobStatus("scoring")
    model = TrainedModel.load(run_dir)
    if list(model.classes) != list(meta["classes"]):
        raise PalError(f"the checkpoint in {run_dir} was trained on classes {model.classes}, "
                       f"these layers hold {meta['classes']}: open the matching folder")
    ds = dataset_from_meta(meta)
    total = len(ds)
    scores = {}
    for i, a in enumerate(analyse(model, ds, maps=True, overrides=overrides)):
        scores[a.score.name] = a.score
        yield ImageScored(i, total, a)
        if stop.is_set():
            yield JobStatus("scoring stopped")
            return
    yield ScoresReady(run_dir, scores)
