"""Checksums of files: what a checkpoint (a run's, a trainer's) records of its own files and checks on resume."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

READ_BLOCK = 1 << 20  # bytes read at a time: a file of any size hashes in bounded memory


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_damage(saved: dict[str, str], now: dict[str, str]) -> Optional[str]:
    """What differs between the checksums a checkpoint recorded of its files and those of the files there now, by
    name, as a few words (None: nothing): a missing file first, then a changed one, then one it never wrote."""
    missing = sorted(set(saved) - set(now))
    if missing:
        return f"{missing[0]} is missing"
    changed = sorted(name for name in saved if saved[name] != now[name])
    if changed:
        return f"{changed[0]} does not match its checksum"
    extra = sorted(set(now) - set(saved))
    return f"{extra[0]} was not written by the run" if extra else None
