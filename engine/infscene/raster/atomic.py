"""Outputs that appear only complete, and never over the input.

Every output path is checked before any work: it must not be the input (or resolve to it through
a symlink or a hard link), two outputs must not share a path, its folder must exist and be
writable, and the disks that will hold the output and the work files must have the room. The
file is then written inside the run's folder beside the target (workspace.py, on the same
filesystem) and renamed over the target only when the writer has verified it, so a cancelled,
failed or killed run never leaves a partial file at the output path, and an existing file there is
replaced only by a finished one.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence, Union

from ..errors import InfSceneError
from ..protocol import format_bytes
from .workspace import Workspace

PathLike = Union[str, "os.PathLike[str]"]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: equal after resolving symlinks, or (both existing) one inode."""
    pa, pb = Path(a), Path(b)
    if pa.resolve() == pb.resolve():
        return True
    try:
        return os.path.samefile(pa, pb)
    except OSError:
        return False


def refuse_overwriting_input(input_path: PathLike, outputs: Mapping[str, Optional[PathLike]]) -> None:
    """One line, before any work, if an output (named by its role) is the input or another output."""
    seen: dict[str, Path] = {}
    for role, path in outputs.items():
        if path is None:
            continue
        if same_file(input_path, path):
            raise InfSceneError(f"the {role} {path} would overwrite the input (it is the same file); choose another path")
        for other_role, other in seen.items():
            if same_file(other, path):
                raise InfSceneError(f"the {role} and the {other_role} are the same file ({path}); give each its own path")
        seen[role] = Path(path)


# What each kind of output is written as, and the file name endings that say so: a name that promises another
# format (out.png for the GeoTIFF, out.jpg) would otherwise hold a file its extension misnames.
OUTPUT_SUFFIXES = {"GeoTIFF": (".tif", ".tiff"), "PNG": (".png",)}


def check_output_path(path: PathLike, kind: str = "GeoTIFF") -> Path:
    """Refuse, in one line, an output that could not be written as it is named: a name ending in a separator (a
    folder), an extension of another format than `kind`, a missing or unwritable folder, a folder, a name longer
    than the file system allows, or an existing path that is not a regular file (a device such as /dev/null, a FIFO,
    a socket: replacing it by a renamed temporary file would destroy it)."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)):
        raise InfSceneError(f"output path ends in a separator, so it names a folder: give a file name, e.g. {text}out{OUTPUT_SUFFIXES[kind][0]}")
    out = Path(text)
    if out.suffix.lower() not in OUTPUT_SUFFIXES[kind]:
        raise InfSceneError(f"output {out.name} must be a {kind} file named {' or '.join(OUTPUT_SUFFIXES[kind])}; "
                            f"other formats are not written (convert with gdal_translate)")
    folder = out.parent
    if not folder.is_dir():
        raise InfSceneError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise InfSceneError(f"output folder is not writable: {folder}")
    if len(os.fsencode(out.name)) > os.pathconf(folder, "PC_NAME_MAX"):
        raise InfSceneError(f"output file name is longer than {folder}'s file system allows "
                            f"({os.pathconf(folder, 'PC_NAME_MAX')} bytes): {out.name[:40]}...")
    if out.is_dir():
        raise InfSceneError(f"output path is a folder, not a file: {out}")
    if out.exists() and not out.is_file():
        raise InfSceneError(f"output {out} exists and is not a regular file (a device, FIFO or socket): refusing to replace it")
    return out


def check_free_space(needs: Sequence[tuple[Path, int]]) -> None:
    """Refuse a run whose files do not fit: needs are (folder, bytes), summed per filesystem."""
    per_device: dict[int, tuple[Path, int]] = {}
    for folder, count in needs:
        device = os.stat(folder).st_dev
        first, total = per_device.get(device, (folder, 0))
        per_device[device] = (first, total + count)
    for folder, total in per_device.values():
        free = shutil.disk_usage(folder).free
        if free < total:
            raise InfSceneError(
                f"not enough disk space in {folder}: the run needs about {format_bytes(total)}, {format_bytes(free)} free"
            )


@contextmanager
def atomic_output(path: PathLike, workspace: Workspace) -> Iterator[Path]:
    """Yield a temporary path in the run's folder beside `path`; rename it to `path` only on success.

    The caller writes and verifies the file inside the block; on any error the file stays in the
    run folder, which the workspace removes.
    """
    target = Path(path)
    tmp = workspace.folder_in(target.parent) / target.name
    yield tmp
    os.replace(tmp, target)
