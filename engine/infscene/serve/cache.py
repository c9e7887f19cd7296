"""The layer's disk cache: super-resolved blocks and encoded tiles, bounded in size, least recently used first out.

One folder per cache key (source.py: source identity, model weights, options, engine version) under the
cache root; the size bound covers the whole root, so layers over other rasters share it. Every entry
appears whole or not at all: tiles are written in this process's run folder under the cache
(raster/workspace.py: removed on exit, and removed by the next start when a killed server left it) and
renamed into place; blocks are `super_resolve` outputs, which appear only complete. A hit refreshes the
entry's mtime, so the order survives a restart. Paths are built from integers only (tile and block
numbers), never from request text, so nothing outside the cache folder is ever read or written.

A cache that cannot be written (read-only, full, a file in the way) is not an error: the server says so in
one line and goes on serving without it.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional

from ..raster.workspace import Workspace
from .blocks import BlockId

PROBE_FILE = ".write-probe"


class DiskCache:
    """Entries under `root/key`; `limit_bytes` bounds the whole root. `enabled` is False once it cannot be written."""

    def __init__(self, root: Path, key: str, limit_bytes: int, workspace: Workspace, log: Callable[[str], None]) -> None:
        self.root, self.folder, self.limit = root, root / key, limit_bytes
        self._workspace, self._log = workspace, log
        self._index: OrderedDict[Path, int] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        self.enabled = limit_bytes > 0
        if not self.enabled:
            return
        problem = self.problem()
        if problem:
            self.disable(problem)
            return
        self._scan()
        self._evict()

    def problem(self) -> Optional[str]:
        """Why the cache folder cannot take an entry now (None when it can): tried with a real write."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write_atomically(self.folder / PROBE_FILE, b"ok")
            (self.folder / PROBE_FILE).unlink()
        except OSError as exc:
            return f"{exc.strerror or exc}"
        return None

    def disable(self, reason: str) -> None:
        if self.enabled:
            self.enabled = False
            self._log(f"cache folder {self.folder} cannot be written ({reason}): serving without a disk cache")

    def block_path(self, block: BlockId) -> Path:
        return self.folder / "blocks" / f"{block[0]}_{block[1]}.tif"

    def tile_path(self, zoom: int, x: int, y: int) -> Path:
        return self.folder / "tiles" / str(zoom) / str(x) / f"{y}.png"

    def read(self, path: Path) -> Optional[bytes]:
        """An entry's bytes (refreshed as recently used), or None when it is not in the cache."""
        if not self.enabled:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            self._forget(path)
            return None
        self.touch(path)
        return data

    def has(self, path: Path) -> bool:
        """Whether an entry is there now (refreshed as recently used if so)."""
        if self.enabled and path.is_file():
            self.touch(path)
            return True
        return False

    def touch(self, path: Path) -> None:
        try:
            os.utime(path)
        except OSError:
            pass  # evicted meanwhile, or a read-only entry: the in-memory order still counts
        with self._lock:
            if path in self._index:
                self._index.move_to_end(path)

    def write(self, path: Path, data: bytes) -> None:
        """Store an entry (whole or not at all); a failure disables the cache, it does not fail the tile."""
        if not self.enabled:
            return
        try:
            self._write_atomically(path, data)
        except OSError as exc:
            self.disable(exc.strerror or str(exc))
            return
        self.added(path)

    def added(self, path: Path) -> None:
        """Count an entry written in place (a block run's output), then evict down to the bound."""
        try:
            size = path.stat().st_size
        except OSError:
            return
        with self._lock:
            self._total += size - self._index.pop(path, 0)
            self._index[path] = size
        self._evict()

    def _write_atomically(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._workspace.folder_in(self.folder) / f"{path.name}.{threading.get_ident()}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._total -= self._index.pop(path, 0)

    def _scan(self) -> None:
        """Index the entries already under the root (every key's), oldest first."""
        found = []
        for kind, pattern in (("blocks", "*.tif"), ("tiles", "*/*/*.png")):
            for path in self.root.glob(f"*/{kind}/{pattern}"):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                found.append((stat.st_mtime_ns, path, stat.st_size))
        for _, path, size in sorted(found):
            self._index[path] = size
            self._total += size

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self._total <= self.limit or not self._index:
                    return
                path, size = self._index.popitem(last=False)
                self._total -= size
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.disable(f"cannot evict {path.name}: {exc.strerror or exc}")
                return
