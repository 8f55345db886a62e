"""A clean stop on Ctrl-C or SIGTERM: the trainer finishes its optimizer step and saves.

The first SIGINT or SIGTERM only sets a flag that the loop reads after each optimizer step (and
shares across ranks), so the resume state is written at a step boundary and the resumed run equals
the uninterrupted one. A second SIGINT raises ``KeyboardInterrupt`` at once for a user who cannot
wait. Handlers are installed only on the main thread (Python allows no other), so a run started
from a worker thread (the HPO driver, tests) simply cannot be stopped by a signal.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopRequest:
    """First SIGINT/SIGTERM asks for a clean stop; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstop requested: finishing this step and saving the resume state "
            "(Ctrl-C again to abort).",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
