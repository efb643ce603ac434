"""The Training panel: the settings form, Train/Stop, Retrain (reviewed = trusted), Score
from checkpoint, the progress bar and the live plot. It runs the engine's jobs
(``napari_pal.jobs``) through a :class:`JobRunner` and turns their typed events into
progress here and results in the shared state (the Review panel shows those)."""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_pal._napari import notify
from napari_pal._napari.job_runner import JobRunner
from napari_pal._napari.plot import TrainingPlot
from napari_pal._napari.state import REVIEWED, ReviewState
from napari_pal._napari.training_form import TrainingForm
from napari_pal.errors import PalError
from napari_pal.jobs.events import (
    DraftPredicted,
    ImageScored,
    JobFailed,
    JobStatus,
    Planned,
    RankingUpdated,
    ScoresReady,
    TrainingFinished,
    TrainingProgress,
    TrainingStopped,
)
from napari_pal.jobs.score import score_job
from napari_pal.jobs.train import Budget, train_job

#: the time budget's default, in minutes (issue 12: the main training knob)
DEFAULT_MINUTES = 15.0


def fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "--:--"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class TrainingPanel(QWidget):
    #: the jobs this panel runs (instance attributes may replace them, as tests do)
    train_job = staticmethod(train_job)
    score_job = staticmethod(score_job)

    def __init__(self, state: ReviewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.runs_dir: Path | None = None  # None: a per-dataset folder in the user cache
        #: sizes the budget's calibration tries (() = method.budget.SIZES; tests use tiny ones)
        self.budget_sizes: tuple[int, ...] = ()
        #: the ranking is refreshed after an epoch when this much training time has passed
        #: and a refresh costs at most ``refresh_max_share`` of it (scoring.anytime)
        self.refresh_every_s = 30.0
        self.refresh_max_share = 0.25
        self.last_event = None  # the trainer's last Progress record
        self.runner = JobRunner(self)
        self.runner.event.connect(self._on_event)
        self.runner.failed.connect(self._on_failed)
        self.runner.finished.connect(self._on_finished)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        budget_row = QFormLayout()
        budget_row.setContentsMargins(0, 0, 0, 0)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.1, 24 * 60)
        self.minutes.setDecimals(1)
        self.minutes.setValue(DEFAULT_MINUTES)
        self.minutes.setToolTip("Train picks size and epochs to fit this time on this machine "
                                "(a few seconds of calibration first)")
        self.by_hand = QCheckBox("set by hand (use the size and epochs below)")
        self.by_hand.toggled.connect(self.minutes.setDisabled)
        budget_row.addRow("time budget (minutes)", self.minutes)
        budget_row.addRow(self.by_hand)
        lay.addLayout(budget_row)
        self.plan_label = QLabel("")
        self.plan_label.setWordWrap(True)
        lay.addWidget(self.plan_label)
        self.form = TrainingForm()
        common, advanced = self.form.native_widgets()
        lay.addWidget(common)
        from superqt import QCollapsible

        self.advanced = QCollapsible("advanced settings")
        self.advanced.addWidget(advanced)
        lay.addWidget(self.advanced)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self._train_clicked)
        self.retrain_button = QPushButton("Retrain (reviewed = trusted)")
        self.retrain_button.setToolTip("train again; reviewed masks are never down-weighted")
        self.retrain_button.clicked.connect(lambda: self.start_training(trusted_reviewed=True))
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.retrain_button)
        lay.addLayout(buttons)
        self.score_button = QPushButton("Score from checkpoint…")
        self.score_button.clicked.connect(self._score_clicked)
        lay.addWidget(self.score_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_label = QLabel("idle")
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_label)
        self.plot = TrainingPlot()
        lay.addWidget(self.plot)

    # --- starting and stopping ----------------------------------------------------------------
    def run_folder(self) -> Path:
        from napari_pal.review.export import default_runs_dir

        base = Path(self.runs_dir) if self.runs_dir else default_runs_dir(self.state.meta["root"])
        return base / time.strftime("%Y%m%d-%H%M%S")

    def _train_clicked(self) -> None:
        if self.runner.running:
            self.stop_training()
        else:
            self.start_training()

    def start_training(self, trusted_reviewed: bool = False) -> None:
        if self.runner.running:
            return
        state = self.state
        try:
            masks = state.layer_masks()
            config = self.form.config()
            run_dir = self.run_folder()
        except PalError as err:
            notify.error(err)
            return
        trusted = [n for n, s in state.status.items() if s == REVIEWED] if trusted_reviewed \
            else []
        state.last_run = run_dir
        self.plot.clear()
        self.progress.setRange(0, 0)
        self.progress_label.setText("starting…")
        budget = None if self.by_hand.isChecked() else Budget(self.minutes.value(),
                                                              tuple(self.budget_sizes))
        self.plan_label.setText("" if budget is None else "calibrating…")
        job = functools.partial(self.train_job, budget=budget,
                                refresh_every_s=self.refresh_every_s,
                                refresh_max_share=self.refresh_max_share)
        self._start(job, state.meta, masks, config, run_dir, trusted)

    def stop_training(self) -> None:
        """Ask the running job to stop (training saves a checkpoint first)."""
        if not self.runner.stop():
            return
        self.train_button.setText("Stopping…")
        self.train_button.setEnabled(False)  # enabled again when the worker has finished
        self.progress_label.setText(self.progress_label.text() + " · stopping…")

    def score_checkpoint(self, run_dir: str | Path) -> None:
        """Predict and score every image with a saved run (no training)."""
        if self.runner.running:
            return
        try:
            masks = self.state.layer_masks()
        except PalError as err:
            notify.error(err)
            return
        self.state.last_run = Path(run_dir)
        self.progress.setRange(0, 0)
        self._start(self.score_job, self.state.meta, masks, Path(run_dir))

    def _score_clicked(self) -> None:
        meta = self.state.meta
        if meta is None:
            notify.error(PalError("open a dataset folder first"))
            return
        from napari_pal.review.export import default_runs_dir

        start = self.state.last_run or (Path(self.runs_dir) if self.runs_dir
                                        else default_runs_dir(meta["root"]))
        path = QFileDialog.getExistingDirectory(self, "Run folder (holds checkpoint.pt)",
                                                str(start))
        if path:
            self.score_checkpoint(path)

    def _start(self, job, *args) -> None:
        for b in (self.retrain_button, self.score_button):
            b.setEnabled(False)
        self.train_button.setText("Stop")
        self.train_button.setEnabled(True)
        self.state.set_busy(True)
        self.runner.start(job, *args)

    # --- the job's events ---------------------------------------------------------------------
    def _on_event(self, ev) -> None:
        if isinstance(ev, TrainingProgress):
            self._on_progress(ev.progress)
        elif isinstance(ev, TrainingStopped):
            p = self.last_event = ev.progress
            self.progress_label.setText(
                f"stopped at epoch {p.epoch}, step {p.step}/{p.steps}; checkpoint saved: "
                "'Score from checkpoint' reviews with it")
        elif isinstance(ev, TrainingFinished):
            p = self.last_event = ev.progress
            self.progress.setValue(p.step)
            self.progress_label.setText(f"trained {p.epochs} epochs in "
                                        f"{fmt_time(p.elapsed_s)}; scoring…")
        elif isinstance(ev, ImageScored):
            if self.progress.maximum() != ev.total:
                self.progress.setRange(0, ev.total)
            self.state.add_analysis(ev.index, ev.analysis)
            self.progress.setValue(ev.index + 1)
            self.progress_label.setText(f"scoring {ev.index + 1}/{ev.total}")
        elif isinstance(ev, DraftPredicted):
            self.state.add_draft(ev.index, ev.probs)
            self.progress_label.setText(f"predicting the drafts: {ev.index + 1}/{ev.total}")
        elif isinstance(ev, RankingUpdated):
            self.state.update_ranking(ev.scores, ev.reliability, ev.refresh)
        elif isinstance(ev, Planned):
            self.plan_label.setText(ev.text)
            self.form["size"].value = ev.config.size  # shown; "set by hand" keeps them
            self.form["epochs"].value = ev.config.epochs
            self.form["stages"].value = ev.config.stages
        elif isinstance(ev, ScoresReady):
            self.state.finish_scoring(ev.run_dir, ev.reliability, ev.refresh, ev.scores)
            self.progress_label.setText(f"scored {len(ev.scores)} images with {ev.run_dir}")
        elif isinstance(ev, JobFailed):
            self._on_failed(ev.error)
        elif isinstance(ev, JobStatus):
            self.progress_label.setText(ev.text)

    def _on_progress(self, p) -> None:
        self.last_event = p
        if self.progress.maximum() != p.steps:
            self.progress.setRange(0, p.steps)
        self.progress.setValue(p.step)
        w = f" · weights {min(p.weights):.2f}–{max(p.weights):.2f}" if p.weighting else ""
        self.progress_label.setText(
            f"epoch {p.epoch}/{p.epochs} · step {p.step}/{p.steps} · loss {p.loss:.4f}"
            f"{w} · {fmt_time(p.eta_s)} left")
        self.plot.add(p.step, p.steps, p.loss, p.weights)

    def _on_failed(self, err: BaseException) -> None:
        notify.error(err)
        first = (str(err).splitlines() or [type(err).__name__])[0]
        self.progress_label.setText(f"error: {first[:120]}")

    def _on_finished(self) -> None:
        self.train_button.setText("Train")
        self.train_button.setEnabled(True)
        for b in (self.retrain_button, self.score_button):
            b.setEnabled(True)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.state.set_busy(False)
