"""The engine's JSON-lines events (`--progress json`) as the plugin sees them.

The events, their parser and the limits are defined once, in protocol.py: a byte-identical copy of
the engine's `infscene/protocol.py` (a test keeps them identical), so the plugin and the engine
cannot drift apart and the plugin imports neither torch nor rasterio. This module adds what only
the plugin needs: durations for labels.
"""
from __future__ import annotations

from typing import Optional

from .protocol import (  # noqa: F401 - re-exported for the task, the runner and the algorithms
    PROTOCOL_VERSION,
    Cancelled,
    Done,
    Event,
    Failure,
    ModelSummary,
    Plan,
    Progress,
    QuickPlan,
    RunWarning,
    format_bytes,
    parse_event,
)


def format_duration(seconds: Optional[float]) -> str:
    """Human-readable duration for ETA and estimate labels ("1 h 05 min", "42 s", "unknown")."""
    if seconds is None:
        return "unknown"
    total = int(round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
