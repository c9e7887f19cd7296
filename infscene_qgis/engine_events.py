"""The engine's JSON-lines progress protocol (`--progress json`), parsed into typed events.

Kept separate from the process handling so the protocol is defined in one place and both the
dock's task and the Processing algorithms see the same objects.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Tuple, Union


@dataclass(frozen=True)
class Plan:
    """First event: what the run will produce and cost (the only one with --dry-run)."""

    output_width: int
    output_height: int
    patches: int
    steps: int
    total: int
    output_bytes: int
    estimated_s: Optional[float]


@dataclass(frozen=True)
class Progress:
    """Patch-steps done so far; `fraction` drives the progress bar, `eta_s` the ETA label."""

    done: int
    total: int
    fraction: float
    rate: float
    eta_s: Optional[float]


@dataclass(frozen=True)
class Done:
    """Last event of a successful run: the files now complete on disk."""

    outputs: Tuple[str, ...]


@dataclass(frozen=True)
class Failure:
    """Last event of a failed run: one line that says what is wrong and what to do."""

    message: str


Event = Union[Plan, Progress, Done, Failure]


def parse_event(line: str) -> Optional[Event]:
    """Turn one stdout line into an event; None for anything that is not a protocol line.

    Libraries inside the engine may print to stdout; such lines must not break a run, so they
    are ignored rather than treated as errors.
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    kind = data.get("event") if isinstance(data, dict) else None
    try:
        if kind == "plan":
            return Plan(
                output_width=int(data["output_width"]),
                output_height=int(data["output_height"]),
                patches=int(data["patches"]),
                steps=int(data["steps"]),
                total=int(data["total"]),
                output_bytes=int(data["output_bytes"]),
                estimated_s=_optional_float(data.get("estimated_s")),
            )
        if kind == "progress":
            return Progress(
                done=int(data["done"]),
                total=int(data["total"]),
                fraction=float(data["fraction"]),
                rate=float(data.get("rate") or 0.0),
                eta_s=_optional_float(data.get("eta_s")),
            )
        if kind == "done":
            return Done(outputs=tuple(str(p) for p in data["outputs"]))
        if kind == "error":
            return Failure(message=str(data["message"]))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _optional_float(value: object) -> Optional[float]:
    return None if value is None else float(value)


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


def format_bytes(count: int) -> str:
    """Human-readable file size for the disk estimate."""
    size = float(count)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
