"""The layers' disk cache: super-resolved blocks and encoded tiles, one bound on the whole folder, oldest out first.

One folder per cache key (source.py: source identity, model weights, options, engine version) under the cache
root, `KEY/blocks/ROW_COL.tif` and `KEY/tiles/Z/X/Y.png`. The bound covers the root's real contents, whoever
wrote them: every server over the folder (several may share it), every key, and the partial files of a server
killed mid-write. A process cannot see another's writes in memory, so the servers keep the count together on
disk: USAGE_FILE holds the folder's bytes, and every entry is renamed into place and counted there under an
exclusive lock on LOCK_FILE. When the count passes the bound, the writer holding the lock scans the folder
(the truth: entries by their mtime, since a hit refreshes it; run folders, counted, and removed when their
server is gone) and evicts the oldest entries down to LOW_WATER of the bound, so a full cache is scanned once
per tenth of its bound written rather than at every write. The start scans too, which mends a count left wrong
by a server killed between a rename and its count.

Every entry appears whole or not at all: it is staged in this server's run folder under the root (same
filesystem; raster/workspace.py removes it on exit, and a later scan removes the run folder of a killed
server) and renamed into place. Paths are built from integers and the hex key only, never from request text,
so nothing outside the cache folder is ever read or written.

A cache that cannot be written (read-only, full, a file in the way) is not an error: the server says so in
one line and goes on serving without it. Blocks are made outside the cache (tiles.py), so a full cache disk
never fails a tile.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..raster.workspace import RUN_PREFIX, Workspace, remove_leftovers
from .blocks import BlockId

try:
    import fcntl
except ImportError:  # Windows: the lock holds between threads only; servers in separate processes may then lose
    # each other's counts until the next scan mends them
    fcntl = None  # type: ignore[assignment]

USAGE_FILE = ".usage"  # the folder's bytes as the servers counted them (a decimal number)
LOCK_FILE = ".lock"  # held (flock) while an entry is added or the folder scanned
LOW_WATER = 0.9  # an eviction goes down to this share of the bound, so the next scan is a tenth of it away
KEY_FOLDER = re.compile(r"[0-9a-f]{16,64}")  # a cache key (source.py: a hex digest)
ENTRY = re.compile(r"blocks/[0-9]+_[0-9]+\.tif|tiles/[0-9]+/[0-9]+/[0-9]+\.png")  # below a key folder


@dataclass
class FolderContents:
    """What a scan of the cache root found: evictable entries (mtime, path, bytes), oldest first, and every byte."""

    entries: list[tuple[int, Path, int]] = field(default_factory=list)
    total: int = 0


class DiskCache:
    """Entries under `root`, all keys' and all servers'; `limit_bytes` bounds the folder. `enabled` is False once
    it cannot be written."""

    def __init__(self, root: Path, limit_bytes: int, workspace: Workspace, log: Callable[[str], None]) -> None:
        self.root, self.limit = root, limit_bytes
        self._workspace, self._log = workspace, log
        self._thread_lock = threading.Lock()  # flock does not exclude threads that share one open file
        self.enabled = limit_bytes > 0
        if self.enabled:
            with self._storing():  # the first count is a real write: a folder that cannot take one is found here
                self.root.mkdir(parents=True, exist_ok=True)
                with self._locked():
                    self._scan_and_evict(self.limit)

    def disable(self, reason: str) -> None:
        if self.enabled:
            self.enabled = False
            self._log(f"cache folder {self.root} cannot be written ({reason}): serving without a disk cache")

    def block_path(self, key: str, block: BlockId) -> Path:
        return self.root / key / "blocks" / f"{block[0]}_{block[1]}.tif"

    def tile_path(self, key: str, zoom: int, x: int, y: int) -> Path:
        return self.root / key / "tiles" / str(zoom) / str(x) / f"{y}.png"

    def read(self, path: Path) -> Optional[bytes]:
        """An entry's bytes (refreshed as recently used), or None when it is not in the cache."""
        if not self.enabled:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        touch(path)
        return data

    def has(self, path: Path) -> bool:
        """Whether an entry is there now (refreshed as recently used if so)."""
        if self.enabled and path.is_file():
            touch(path)
            return True
        return False

    def write(self, path: Path, data: bytes) -> None:
        """Store `data` as the entry `path` (whole or not at all); a failure disables the cache, not the tile."""
        if not self.enabled:
            return
        with self._storing():
            if not self._reserve(len(data)):
                return
            staged = self._staging_path(path)
            try:
                staged.write_bytes(data)
                self._admit(staged, path)
            finally:
                staged.unlink(missing_ok=True)

    def store(self, path: Path, made: Path) -> None:
        """Move the finished file `made` (a block run's output, outside the cache) in as the entry `path`; it is
        removed either way. A failure disables the cache, not the tile."""
        if not self.enabled:
            made.unlink(missing_ok=True)
            return
        with self._storing():
            if not self._reserve(made.stat().st_size):
                made.unlink()
                return
            staged = self._staging_path(path)
            try:
                shutil.move(made, staged)  # a rename on one filesystem, else a copy
                self._admit(staged, path)
            finally:
                staged.unlink(missing_ok=True)
                made.unlink(missing_ok=True)

    @contextmanager
    def _storing(self) -> Iterator[None]:
        """Whatever fails on the cache's disk (full, read-only, gone) turns the cache off in one line."""
        try:
            yield
        except OSError as exc:
            self.disable(exc.strerror or str(exc))

    def _staging_path(self, path: Path) -> Path:
        """A unique name in this server's run folder under the root (one filesystem with the entry: a rename)."""
        return self._workspace.folder_in(self.root) / f"{uuid.uuid4().hex}{path.suffix}"

    def _reserve(self, size: int) -> bool:
        """Count `size` bytes for the folder before they are written, so that a server killed while it writes them
        leaves its partial file inside the count (the next scan removes it); past the bound, evict first. False
        (nothing counted) for an entry larger than the whole bound: it is not kept."""
        if size > self.limit:
            return False
        with self._locked():
            usage = self._usage()
            if usage is None or usage + size > self.limit:
                usage = self._scan_and_evict(int(self.limit * LOW_WATER) - size)
            self._set_usage(usage + size)
        return True

    def _admit(self, staged: Path, path: Path) -> None:
        """Rename `staged` (counted by `_reserve`) to `path`; the entry it replaces, if any, is counted out."""
        with self._locked():  # an eviction prunes empty folders under the same lock
            path.parent.mkdir(parents=True, exist_ok=True)
            replaced = file_size(path)
            os.replace(staged, path)
            usage = self._usage()
            if replaced and usage is not None:
                self._set_usage(max(usage - replaced, 0))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The folder's lock: one writer at a time among this process's threads and every other server's."""
        with self._thread_lock, open(self.root / LOCK_FILE, "a") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield  # closing the file releases the flock

    def _usage(self) -> Optional[int]:
        """The folder's bytes as counted (None when never counted, or the count is unreadable: a scan mends it)."""
        try:
            return int((self.root / USAGE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _set_usage(self, usage: int) -> None:
        """Record the count whole (staged, then renamed): a server killed meanwhile leaves the previous one."""
        staged = self._staging_path(self.root / USAGE_FILE)
        try:
            staged.write_text(str(usage))
            os.replace(staged, self.root / USAGE_FILE)
        finally:
            staged.unlink(missing_ok=True)

    def _scan_and_evict(self, target: int) -> int:
        """Under the lock: count the folder as it is, remove the oldest entries until it holds at most `target`
        bytes, record what is left and return it."""
        contents = scan(self.root)
        for _, path, size in contents.entries:
            if contents.total <= target:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            contents.total -= size
            prune_empty_folders(path.parent, self.root)
        self._set_usage(contents.total)
        return contents.total


def scan(root: Path) -> FolderContents:
    """What the cache holds under `root`: every file of its key folders and run folders counted, entries listed
    oldest first. Run folders of servers that are gone (killed mid-write) are removed first; those of live servers
    are counted, never evicted (their files are being written). Anything else in the folder is not the cache's:
    neither counted nor touched."""
    contents = FolderContents()
    remove_leftovers(root)
    for top in sorted(root.iterdir()):
        is_key = KEY_FOLDER.fullmatch(top.name) is not None
        if not (is_key or top.name.startswith(RUN_PREFIX)) or not top.is_dir():
            continue
        for folder, subfolders, files in os.walk(top):
            if any(name.startswith(RUN_PREFIX) for name in subfolders):
                removed = {path.name for path in remove_leftovers(Path(folder))}
                subfolders[:] = [name for name in subfolders if name not in removed]
            for name in files:
                path = Path(folder, name)
                try:
                    stat = path.stat()
                except OSError:
                    continue  # removed meanwhile by a server that does not hold the lock (a run folder's own cleanup)
                contents.total += stat.st_size
                if is_key and ENTRY.fullmatch(path.relative_to(top).as_posix()):
                    contents.entries.append((stat.st_mtime_ns, path, stat.st_size))
    contents.entries.sort()
    return contents


def prune_empty_folders(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents up to (not including) `root` while they are empty: evicted keys leave none."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or gone
        folder = folder.parent


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def touch(path: Path) -> None:
    """Refresh an entry as recently used (its mtime: the order every server and the next start see)."""
    try:
        os.utime(path)
    except OSError:
        pass  # evicted meanwhile, or a read-only entry
