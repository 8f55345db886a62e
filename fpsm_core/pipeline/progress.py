"""Progress of a batch run on stderr: files done, rate and time left.

On a terminal a tqdm bar redraws in place; into a file or a pipe (a cluster job's log) one plain line
is written every ``every_s`` seconds and a last one at the end of a run that wrote any, so logs show the rate without carriage-return
noise. The rate counts this run's files only (files a resumed run skipped are not work done).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Reports (done, total) calls as a bar on a terminal, else as periodic lines.

    Args:
        total: files this run will process.
        label: the line's prefix (``fpsm infer``, ``[rank 1]``).
        stream: where to write (stderr by default).
        every_s: seconds between plain lines.
    """

    def __init__(
        self, total: int, *, label: str = "", stream: TextIO | None = None, every_s: float = 10.0
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.done = 0
        self._t0 = time.perf_counter()
        self._last_line = self._t0
        self._lines = 0
        self._bar: Any = None
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit="img", file=self.stream, leave=False, desc=label or None
            )

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = format_eta(left) if rate > 0 else "?"
        prefix = f"{self.label}: " if self.label else ""
        return f"{prefix}{self.done}/{self.total} files, {rate:.1f} files/s, ETA {eta}"

    def update_to(self, done: int, total: int) -> None:
        self.done = done
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every_s and done < self.total:
            self._last_line = now
            self._lines += 1
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._lines:  # a short run stays quiet, as a short run's bar does
            elapsed = time.perf_counter() - self._t0
            prefix = f"{self.label}: " if self.label else ""
            print(
                f"{prefix}{self.done}/{self.total} files in {format_eta(elapsed)} "
                f"({self.rate:.1f} files/s)",
                file=self.stream,
                flush=True,
            )
