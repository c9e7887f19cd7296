"""Checksums of files: what a checkpoint (a run's, a trainer's) records of its own files and checks on resume."""
from __future__ import annotations

import hashlib
from pathlib import Path

READ_BLOCK = 1 << 20  # bytes read at a time: a file of any size hashes in bounded memory


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
