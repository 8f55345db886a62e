"""An event-loop stall probe: how long the GUI thread went without running its timers.

A zero-work ``QTimer`` fires every ``interval_ms``; the longest gap between two firings, minus the
interval, is the longest time the event loop could not respond (a frozen GUI shows up here first).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


class StallProbe(QObject):
    """Measures the longest event-loop stall while running.

    Attributes:
        max_stall_ms: longest gap beyond the interval seen since :meth:`start`.
        ticks: timer firings seen.
    """

    def __init__(self, interval_ms: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._last = 0.0
        self.max_stall_ms = 0.0
        self.ticks = 0
        self.gaps: list[float] = []

    def start(self) -> None:
        self.max_stall_ms = 0.0
        self.ticks = 0
        self.gaps = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> float:
        self._timer.stop()
        return self.max_stall_ms

    def _on_timer_timeout(self) -> None:
        now = time.perf_counter()
        gap = (now - self._last) * 1e3 - self.interval_ms
        self._last = now
        self.ticks += 1
        self.gaps.append(gap)
        if gap > self.max_stall_ms:
            self.max_stall_ms = gap
