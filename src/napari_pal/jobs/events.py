"""What a background job tells its caller: one small dataclass per kind of news.

The widget dispatches on the type (``isinstance``), the tests read the fields; nothing here
imports torch, Qt or napari, so the GUI can import the types at start-up for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.training import Progress
    from napari_pal.scoring.anytime import RankingRefresh
    from napari_pal.scoring.quality import Analysis, ImageScore
    from napari_pal.scoring.reliability import ClassReliability


@dataclass(frozen=True)
class JobStatus:
    """A phase starts or ends ("reading images", "scoring", "scoring stopped")."""

    text: str


@dataclass(frozen=True)
class TrainingEvent:
    """A record of the trainer (its :class:`Progress`); the subclass says which kind."""

    progress: Progress


class TrainingProgress(TrainingEvent):
    """One training step done (``progress.state == "running"``)."""


class TrainingStopped(TrainingEvent):
    """Training stopped on request; its checkpoint is saved."""


class TrainingFinished(TrainingEvent):
    """Training ran every epoch; scoring follows in the same job."""


@dataclass(frozen=True)
class Planned:
    """The time budget's calibration chose these settings (``text``: what the panel shows)."""

    config: TrainConfig
    text: str


@dataclass(frozen=True)
class RankingUpdated:
    """A ranking refresh while training runs: every annotated image re-scored on the current
    model (``scores`` are ranked over the reliable classes only, see ``reliability``)."""

    refresh: RankingRefresh
    scores: dict[str, ImageScore]
    reliability: dict[str, ClassReliability]


@dataclass(frozen=True)
class ImageScored:
    """Image ``index`` (of the dataset's order) is scored, with its maps."""

    index: int
    total: int
    analysis: Analysis


@dataclass(frozen=True)
class DraftPredicted:
    """Image ``index`` has no masks (a draft): its predicted masks, (C, H, W) probabilities."""

    index: int
    total: int
    probs: Any


@dataclass(frozen=True)
class ScoresReady:
    """Every image is scored with the model of ``run_dir``."""

    run_dir: Path
    scores: dict[str, ImageScore]
    #: per class: may its scores be read as a ranking (empty: not assessed)
    reliability: dict[str, ClassReliability] = field(default_factory=dict)
    #: after training, the final refresh (how much the top changed since the last one)
    refresh: RankingRefresh | None = None


@dataclass(frozen=True)
class JobFailed:
    """The job ended with an error the user can act on (its message names the fix)."""

    error: BaseException

    @property
    def message(self) -> str:
        return str(self.error)


JobEvent = (JobStatus | TrainingProgress | TrainingStopped | TrainingFinished | Planned
            | RankingUpdated | ImageScored | DraftPredicted | ScoresReady | JobFailed)


def training_event(progress: Any) -> TrainingProgress | TrainingStopped | TrainingFinished:
    """The typed event of one of the trainer's :class:`Progress` records."""
    kind = {"running": TrainingProgress, "stopped": TrainingStopped,
            "finished": TrainingFinished}[progress.state]
    return kind(progress)
