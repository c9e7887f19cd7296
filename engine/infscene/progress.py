"""Progress reporting and cancellation shared by the step loop, the run and the CLI.

Work is counted in work units: patch-steps (one model evaluation of one patch) and, for e2diffsr, decode
tiles, which is what dominates run time, so the fraction, rate and ETA are meaningful on any scene size.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    elapsed_s: float
    resumed_at: int = 0  # work a resumed run found already done (not counted in its rate)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def rate(self) -> float:
        """Units of work per second so far."""
        return (self.done - self.resumed_at) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> Optional[float]:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


class ProgressTracker:
    """Counts finished work, calls the user's callback and enforces cancellation.

    `advance` is called after every unit batch; it raises `Cancelled` when `is_cancelled()`
    turns true, so a cancel is honoured within one batch of one step. It may be called from the
    threads of several devices: counts and callbacks are serialised.
    """

    def __init__(
        self,
        total: int,
        callback: Optional[ProgressCallback] = None,
        is_cancelled: Optional[CancelCheck] = None,
    ) -> None:
        self.total = total
        self.done = 0
        self.resumed_at = 0
        self._callback = callback
        self._is_cancelled = is_cancelled
        self._start = time.monotonic()
        self._lock = threading.Lock()

    def check_cancel(self) -> None:
        if self._is_cancelled is not None and self._is_cancelled():
            raise Cancelled()

    def advance(self, units: int = 1) -> None:
        """Count finished work (nothing is reported for none) and honour a cancel."""
        with self._lock:
            self.done += units
            if self._callback is not None and units:
                self._callback(Progress(self.done, self.total, time.monotonic() - self._start, self.resumed_at))
        self.check_cancel()

    def skip(self, units: int) -> None:
        """Count work a resumed run finds already done: it moves the fraction, not the rate."""
        if units:
            with self._lock:
                self.done += units
                self.resumed_at += units
