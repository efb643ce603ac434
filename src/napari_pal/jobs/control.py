"""How a caller stops a job and learns that its thread has left it.

A job is a generator; it checks ``control.stop`` between steps. ``supervised`` runs a job and
sets ``control.done`` however it ends (finished, stopped, failed), so that a closing viewer
can wait for the worker thread without polling Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobControl:
    """One per job: a late Stop of an old job never reaches the next one."""

    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


def supervised(job: Callable[..., Iterator[Any]], control: JobControl, *args: Any
               ) -> Iterator[Any]:
    """Run generator ``job(*args, control.stop)`` and set ``control.done`` when it ends."""
    try:
        yield from job(*args, control.stop)
    finally:
        control.done.set()
