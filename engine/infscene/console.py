"""What every subcommand shares on the console: JSON-lines events, warnings, progress display, band lists."""
from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

from . import protocol
from .progress import Progress
from .sr_options import band_numbers


def emit(event: protocol.Event) -> None:
    """One protocol event as a JSON line on stdout, flushed at once so a reading process sees it now."""
    print(protocol.event_line(event), flush=True)


def warn(messages: Sequence[str], json_events: bool) -> None:
    """Each warning as one line on stderr and, for the plugin, a `warning` event."""
    for message in messages:
        if json_events:
            emit(protocol.RunWarning(message))
        print(f"infscene: warning: {message}", file=sys.stderr)


@contextmanager
def warnings_as_lines(json_events: bool) -> Iterator[None]:
    """Inside: a Python warning that reaches the command line (a library's, not filtered where it arises) is one line
    like the engine's own warnings (and a `warning` event), not Python's file, line number and source line."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None,
             line: Optional[str] = None) -> None:
        warn([(str(message).strip().splitlines() or [category.__name__])[0]], json_events)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def plan_line(plan: protocol.Plan) -> str:
    """The `plan` event as the CLI's one line, e.g. `512x384 output, 25 patches x 4 steps, resuming at sample 2, step 3
    of 4, on Dask local:4`: made from the event alone, so the line and the plugin say the same."""
    line = f"{plan.output_width}x{plan.output_height} output, {plan.patches} patches x {plan.steps} steps"
    if plan.resume_sample:
        step = (f"step {plan.resume_steps_done + 1} of {plan.steps}" if plan.resume_steps_done < plan.steps
                else f"after its {plan.steps} steps")
        line += f", resuming at sample {plan.resume_sample}, {step}"
    return f"{line}, on {plan.backend}" if plan.backend else line


def band_list(text: str) -> list[int]:
    """--bands as argparse's type: the option table's reading of "3,2,1,4"."""
    bands = band_numbers(text)
    if bands is None:
        raise argparse.ArgumentTypeError(f"bands must be comma-separated band numbers such as 3,2,1,4, got {text!r}")
    return list(bands)


def progress_reporter(kind: str, total: int) -> tuple[Optional[Callable[[Progress], None]], Callable[[], None]]:
    """A callback for the chosen progress display and a function that closes it."""
    if kind == "json":
        def report(p: Progress) -> None:
            emit(protocol.Progress(done=p.done, total=p.total, fraction=round(p.fraction, 5), rate=round(p.rate, 4),
                                   eta_s=None if p.eta_s is None else round(p.eta_s, 1)))
        return report, lambda: None
    if kind == "bar":
        from tqdm import tqdm

        bar = tqdm(total=total, unit=" work units", file=sys.stderr, dynamic_ncols=True)

        def advance(p: Progress) -> None:
            bar.update(p.done - bar.n)

        return advance, bar.close
    return None, lambda: None
