"""A run's temporary state, owned: one folder named for the run in each place it writes.

A run writes its partial output beside the final one (a rename across filesystems would be a
copy) and its memory-mapped canvases in the work folder. Both live in a `.infscene-run-<pid>-<id>`
folder that the run removes when it ends, however it ends (success, error, Ctrl-C, SIGTERM turned
into an exception by the CLI). A run killed outright (kill -9, power cut) cannot clean up, so
every run first removes the run folders in the same place whose owner is gone: each folder holds
a lock file that its run keeps locked (fcntl.flock) for as long as it lives, and a lock that can be
taken means a dead owner. Where flock does not exist (Windows) leftovers are left alone rather
than risk removing a live run's files.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO, Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

RUN_PREFIX = ".infscene-run-"
LOCK_FILE = "lock"
UNLOCKED_GRACE_S = 600  # a folder without its lock file may be a run between mkdir and lock


def try_lock(path: Path) -> Optional[IO[str]]:
    """Open `path` (made if missing) and take its exclusive lock without waiting; None while a live process holds it.

    The lock lasts as long as the returned handle stays open (or its process lives).
    """
    handle = open(path, "a")
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
    return handle


def _owner_is_gone(folder: Path) -> bool:
    """True when no live process holds the folder's lock (so its run was killed)."""
    if fcntl is None:
        return False
    if not (folder / LOCK_FILE).exists():
        return time.time() - folder.stat().st_mtime > UNLOCKED_GRACE_S
    handle = try_lock(folder / LOCK_FILE)
    if handle is None:
        return False
    handle.close()
    return True


def remove_leftovers(parent: Path) -> list[Path]:
    """Remove the run folders in `parent` left by killed runs; returns what was removed."""
    removed = []
    for folder in parent.glob(f"{RUN_PREFIX}*"):
        try:
            if folder.is_dir() and _owner_is_gone(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:
            continue  # another run removed it first, or it is not ours to read
    return removed


class Workspace:
    """The run folders of one run; `folder_in(parent)` makes one on first use; all are removed on exit."""

    def __init__(self) -> None:
        self.name = f"{RUN_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._folders: dict[Path, Path] = {}
        self._stack = ExitStack()

    def folder_in(self, parent: Path) -> Path:
        key = parent.resolve()
        if key not in self._folders:
            remove_leftovers(key)
            folder = key / self.name
            folder.mkdir()
            self._stack.callback(shutil.rmtree, folder, True)
            lock = self._stack.enter_context(open(folder / LOCK_FILE, "w"))
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            self._folders[key] = folder
        return self._folders[key]

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, kind: Optional[type], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        self._stack.close()
