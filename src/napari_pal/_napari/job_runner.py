"""Runs one engine job (a generator of typed events, ``napari_pal.jobs``) at a time in a
napari thread worker and hands its events to the GUI thread as Qt signals.

Closing: ``shutdown`` asks the job to stop (training saves its checkpoint first) and waits
for the worker thread, at most ``timeout_s``; late signals of the worker reach nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from qtpy.QtCore import QObject, Signal

from napari_pal.jobs.control import JobControl, supervised


class JobRunner(QObject):
    """``event`` carries each yielded event, ``failed`` an exception the job raised (a bug:
    the jobs turn the errors a user can fix into ``JobFailed`` events), ``finished`` the
    end of the job however it ended."""

    event = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = None
        self.control: JobControl | None = None
        self.closed = False

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, job: Callable[..., Iterator[Any]], *args: Any) -> bool:
        """Run ``job(*args, stop)`` in a worker thread; False while another job runs."""
        if self.worker is not None or self.closed:
            return False
        from napari.qt.threading import GeneratorWorker

        self.control = JobControl()
        worker = GeneratorWorker(supervised, job, self.control, *args)
        worker.yielded.connect(self._on_yielded)
        # errors go to _on_errored only: not re-raised in the GUI thread nor shown twice by
        # napari's relay of worker errors
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        relay = getattr(worker, "_relay_error", None)
        if relay is not None:
            try:
                worker.errored.disconnect(relay)
            except (TypeError, RuntimeError):
                pass
        self.worker = worker
        worker.start()
        return True

    def stop(self) -> bool:
        """Ask the running job to stop at its next step; False when there is none (or it was
        already asked)."""
        if self.worker is None or self.control is None or self.control.stop.is_set():
            return False
        self.control.stop.set()
        return True

    @property
    def stopping(self) -> bool:
        return self.control is not None and self.control.stop.is_set()

    def _on_yielded(self, ev: Any) -> None:
        if not self.closed:
            self.event.emit(ev)

    def _on_errored(self, err: BaseException) -> None:
        if not self.closed:
            self.failed.emit(err)

    def _on_finished(self) -> None:
        if self.closed:
            return
        self.worker = None
        self.finished.emit()

    def shutdown(self, timeout_s: float) -> bool:
        """Stop the job and wait for its thread; True when no job is left running."""
        worker, control = self.worker, self.control
        self.closed = True
        if worker is None or control is None:
            return True
        control.stop.set()
        done = control.done.wait(timeout_s)
        for sig, slot in ((worker.yielded, self._on_yielded),
                          (worker.errored, self._on_errored),
                          (worker.finished, self._on_finished)):
            try:
                sig.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        deadline = time.monotonic() + 2.0  # the runnable returns right after the job
        while done and worker.is_running and time.monotonic() < deadline:
            time.sleep(0.005)
        if not done:
            print(f"napari-pal: the worker did not stop within {timeout_s:.0f} s; "
                  "it stops at its next step")
        self.worker = None
        return done and not worker.is_running
