"""Runs the engine as a subprocess and turns its stdout into events.

Used from worker threads (QgsTask.run, Processing algorithms), so it touches no QObject: it
reports through plain callbacks and polls a plain cancel predicate. Cancel sends SIGTERM; the
engine then deletes its temporary file, so no partial output is ever left at the output path.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import threading
from typing import IO, Callable, Dict, List, Optional, Sequence

from .engine_events import PROTOCOL_VERSION, Cancelled, Done, Event, Failure, Plan, RunWarning, parse_event

EventCallback = Callable[[Event], None]
CancelCheck = Callable[[], bool]
StartCallback = Callable[[int], None]

# Variables QGIS sets for its own Python, PROJ and GDAL; inherited, they make the engine's
# interpreter import QGIS's packages or make rasterio read another PROJ database.
_QGIS_ONLY_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH")
_POLL_S = 0.1
_TERMINATE_GRACE_S = 15.0
_INFO_TIMEOUT_S = 180.0
# Keeps Windows from flashing a console window for each run (0, a no-op, elsewhere).
_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0)


class EngineError(Exception):
    """The engine failed; the message is the engine's own one-line explanation."""


class EngineCancelled(Exception):
    """The run was cancelled and the engine exited; nothing was written."""


def engine_environment() -> Dict[str, str]:
    """The current environment minus what only makes sense inside QGIS, with unbuffered output."""
    env = {k: v for k, v in os.environ.items() if k not in _QGIS_ONLY_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _popen(command: Sequence[str]) -> "subprocess.Popen[str]":
    try:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=engine_environment(),
            creationflags=_NO_WINDOW,
        )
    except OSError as exc:
        raise EngineError(f"cannot start the engine {command[0]}: {exc.strerror or exc}") from exc


class EngineRunner:
    """Runs `<python> -m infscene ...` for one interpreter.

    `terminate_grace_s` is how long a cancelled engine may take to exit after SIGTERM before it is killed: a run
    needs time to delete its partial files, a tile server (`infscene serve`) has nothing to clean up.
    """

    def __init__(self, python: str, terminate_grace_s: float = _TERMINATE_GRACE_S) -> None:
        self.python = python
        self.terminate_grace_s = terminate_grace_s

    def command(self, arguments: Sequence[str]) -> List[str]:
        """The full command line, for running and for the log."""
        return [self.python, "-m", "infscene", *arguments]

    def run(
        self,
        arguments: Sequence[str],
        on_event: EventCallback,
        is_cancelled: CancelCheck,
        on_started: Optional[StartCallback] = None,
    ) -> List[str]:
        """Run to the end and return the output paths from the `done` event.

        Raises EngineCancelled when `is_cancelled()` turned true (checked every 0.1 s, so a
        cancel is honoured within one engine step), EngineError with the engine's message otherwise.
        `on_started(pid)` is called once the process exists, before its first event.
        """
        process = _popen(self.command(arguments))
        if on_started is not None:
            on_started(process.pid)
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        stderr_tail: "collections.deque[str]" = collections.deque(maxlen=20)
        readers = [
            threading.Thread(target=_pump, args=(process.stdout, lines.put), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, stderr_tail.append), daemon=True),
        ]
        for reader in readers:
            reader.start()
        outcome: Optional[Event] = None
        stdout_open = True
        while stdout_open:
            if is_cancelled():
                _terminate(process, self.terminate_grace_s)
                raise EngineCancelled()
            try:
                line = lines.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if line is None:
                stdout_open = False
                continue
            event = parse_event(line)
            if event is None:
                continue
            if isinstance(event, (Done, Failure, Cancelled)):
                outcome = event
            on_event(event)
            if isinstance(event, Plan) and event.protocol != PROTOCOL_VERSION:
                on_event(RunWarning(f"the engine speaks protocol {event.protocol}, this plugin {PROTOCOL_VERSION}: "
                                    "update the engine and the plugin together"))
        returncode = process.wait()
        readers[1].join(timeout=5)
        if is_cancelled() or isinstance(outcome, Cancelled):
            raise EngineCancelled()
        if isinstance(outcome, Failure):
            raise EngineError(outcome.message)
        if returncode != 0:
            raise EngineError(_stderr_message(stderr_tail, returncode))
        return list(outcome.outputs) if isinstance(outcome, Done) else []

    def info(self, model_dir: Optional[str] = None) -> Dict[str, object]:
        """`infscene info --json`: versions, devices, GPU and model status, for the "check" button."""
        arguments = ["info", "--json", *(["--model", model_dir] if model_dir else [])]
        try:
            completed = subprocess.run(
                self.command(arguments),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=_INFO_TIMEOUT_S,
                env=engine_environment(),
                creationflags=_NO_WINDOW,
            )
        except OSError as exc:
            raise EngineError(f"cannot start the engine {self.python}: {exc.strerror or exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"the engine did not answer within {_INFO_TIMEOUT_S:.0f} s") from exc
        if completed.returncode != 0:
            raise EngineError(_stderr_message(completed.stderr.splitlines(), completed.returncode))
        for line in reversed(completed.stdout.splitlines()):
            if line.strip().startswith("{"):
                try:
                    return dict(json.loads(line))
                except ValueError:
                    break
        raise EngineError("the engine's 'info --json' printed no JSON object")


def _pump(stream: Optional[IO[str]], sink: Callable[[Optional[str]], None]) -> None:
    """Copy a pipe line by line into `sink`, then send None, so the reader never blocks the poll loop."""
    if stream is not None:
        for line in stream:
            sink(line)
        stream.close()
    sink(None)


def _terminate(process: "subprocess.Popen[str]", grace_s: float) -> None:
    """SIGTERM so the engine can delete its temporary file; SIGKILL if it does not exit within `grace_s`."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stderr_message(lines: "Sequence[str] | collections.deque[str]", returncode: int) -> str:
    """The engine's last stderr line (its one-line error) or, failing that, the exit status."""
    meaningful = [line.strip() for line in lines if line and line.strip()]
    if meaningful:
        return meaningful[-1]
    return f"the engine exited with status {returncode} and no message"
