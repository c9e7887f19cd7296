"""Outputs that appear only when complete: write to a temporary file beside the target, rename.

A cancelled, failed or killed run therefore never leaves a partial file at the output path,
and an existing file at that path is replaced only by a finished one.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import InfSceneError


def check_output_path(path: str | os.PathLike, needed_bytes: int = 0) -> Path:
    """Refuse an output whose folder is missing or unwritable, or whose disk is too full."""
    out = Path(path)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InfSceneError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise InfSceneError(f"output folder is not writable: {folder}")
    if out.is_dir():
        raise InfSceneError(f"output path is a folder, not a file: {out}")
    if needed_bytes:
        free = shutil.disk_usage(folder).free
        if free < needed_bytes:
            raise InfSceneError(
                f"not enough disk space in {folder}: need about {needed_bytes / 1e9:.2f} GB, "
                f"{free / 1e9:.2f} GB free"
            )
    return out


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to `path` only on success."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp.tif")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".aux.xml"), tmp.with_name(tmp.name + ".msk")):
            leftover.unlink(missing_ok=True)
        raise
