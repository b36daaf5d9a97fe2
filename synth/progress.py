"""Progress for long work: a rich bar on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Self


def on_terminal() -> bool:
    return sys.stderr.isatty()


def note(message: str) -> None:
    """One line of news on stderr, in the progress lines' form."""
    print(f"[synth] {message}", file=sys.stderr, flush=True)


def duration_text(seconds: float) -> str:
    """A duration as a person reads it: ``45s``, ``12m 05s``, ``3h 07m``."""
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Counts units of work towards a total.

    On a terminal: a rich progress bar (count, rate, ETA). Otherwise (CI, a
    cluster's job logs): one line on stderr every ``interval_s`` seconds and at
    the end.
    """

    def __init__(self, description: str, total: int, unit: str, interval_s: float = 10.0, extra: str = ""):
        self.description, self.total, self.unit = description, total, unit
        self.interval_s = interval_s
        self.done = 0
        self.extra = extra
        self.start = self.last_line = time.perf_counter()
        self._bar = None
        self._first: tuple[int, float] | None = None
        if on_terminal():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total, rate="", extra=extra)

    def rate(self) -> float:
        """Units per second since the first progress was seen (start-up time excluded)."""
        if self._first is None:
            return 0.0
        return (self.done - self._first[0]) / max(time.perf_counter() - self._first[1], 1e-9)

    def update(self, n: int = 0, extra: str | None = None, completed: int | None = None) -> None:
        """Advance by ``n`` (or to ``completed``); the first change only sets the baseline of the rate."""
        before = self.done
        self.done = completed if completed is not None else self.done + n
        if self._first is None and self.done != before:
            self._first = (self.done, time.perf_counter())  # rates count from here: start-up excluded
        if extra is not None:
            self.extra = extra
        rate = self._rate_text()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=rate, extra=self.extra)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.interval_s:
            self.last_line = now
            self._line(rate)

    def _rate_text(self) -> str:
        """The rate, or nothing until two updates have given one."""
        rate = self.rate()
        if rate <= 0:
            return ""
        return f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2g} {self.unit}/s"

    def _line(self, rate: str) -> None:
        pct = 100.0 * self.done / max(self.total, 1)
        eta = f"eta {duration_text((self.total - self.done) / self.rate())}" if self.rate() > 0 else ""
        parts = [f"{self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%)", rate, self.extra, eta]
        print(f"[synth] {self.description}: " + " ".join(p for p in parts if p), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        else:
            self._line(self._rate_text())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
