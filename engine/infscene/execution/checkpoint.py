"""Resuming a run: its state at the last finished step, kept on disk until the output is written.

Every run to an output keeps a checkpoint folder in its work folder, `OUTPUT_NAME.infscene-checkpoint`:
a zarr store (store.py) with the state after the last finished transition of the step loop (and,
with --samples, the finished samples' running statistics) and a manifest that says how far the run
got and which run it is. After a crash, a kill, a full disk or a cancel the folder stays, and the
same command with `--resume` continues from the last finished step with the same output, bitwise,
as an uninterrupted run; it is removed once the output is written. With Dask the store is also where
the workers keep the state, so it must be on a filesystem every worker reaches.

A checkpoint is never reused silently: its manifest holds the run's fingerprint (engine version,
model weights, input file, window, bands, every option that changes the output) and a resume with
another fingerprint is refused, naming what differs. A run without --resume that finds one refuses
too, unless told to start over (--restart), so a long run is never thrown away by a rerun. A lock
file held for the run's life keeps two runs from sharing one checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..diffusion.canvas import Canvas
from ..errors import InfSceneError
from ..raster.resample import row_blocks
from ..raster.workspace import try_lock
from .store import RunStore, StoreCanvas

CHECKPOINT_SUFFIX = ".infscene-checkpoint"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "lock"
FORMAT = 1
STORE_CHUNK = 512  # rows and columns of one chunk of the checkpoint's arrays


def checkpoint_folder(output_path: Path, work_dir: Path) -> Path:
    """Where the run writing `output_path` keeps its checkpoint."""
    return Path(work_dir) / f"{Path(output_path).name}{CHECKPOINT_SUFFIX}"


@dataclass
class Position:
    """How far a run got: finished samples, and finished transitions of the sample under way."""

    samples_done: int = 0
    transitions_done: int = 0  # the initial noise, then each reverse step (an independent run's tiles: one)

    def describe(self, fingerprint: dict[str, Any]) -> str:
        """Where the run stopped, in the user's terms: its sample and reverse steps."""
        steps, samples = fingerprint.get("steps", 0), fingerprint.get("samples", 1)
        if fingerprint.get("mode") == "independent":  # its one transition is every tile's whole chain
            done = steps * min(1, self.transitions_done)
        else:  # the initial noise is the first transition
            done = max(0, self.transitions_done - 1)
        return f"sample {self.samples_done + 1} of {samples}, {done} of {steps} steps done"


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(now))
    return [f"{key}: {saved.get(key)!r} there, {now.get(key)!r} now" for key in keys if saved.get(key) != now.get(key)]


def _copy(source: Any, target: Any, height: int, width: int) -> None:
    """Copy a (C, H, W) array into another of that shape in row blocks (bounded memory)."""
    for r0, r1 in row_blocks(height, width):
        target[:, r0:r1, :] = source[:, r0:r1, :]


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
        if saved.get("format") != FORMAT or not isinstance(saved.get("fingerprint"), dict):
            raise ValueError("unknown format")
        Position(int(saved["samples_done"]), int(saved["transitions_done"]))
        return saved
    except (OSError, ValueError, KeyError) as exc:
        raise InfSceneError(f"the checkpoint manifest {path} is unreadable ({exc}): use --restart to discard it") from exc


def _problem(folder: Path, fingerprint: dict[str, Any], resume: bool, restart: bool) -> Optional[str]:
    """Why a run with this fingerprint cannot go ahead with the checkpoint folder as it is; None when it can."""
    manifest = folder / MANIFEST_FILE
    if not folder.exists() or not manifest.is_file():  # none, or a run killed before its first save: start afresh
        if resume:
            return (f"--resume: there is no checkpoint to continue in {folder} (it is removed when a run finishes; "
                    "--work-dir must be the one the interrupted run used)")
        return None
    saved = _read_manifest(manifest) if resume or not restart else None
    if resume:
        differences = _differences(saved["fingerprint"], fingerprint)
        if differences:
            return (f"the checkpoint in {folder} is of another run ({'; '.join(differences[:3])}): rerun with the same "
                    "input, model and options, or use --restart to discard it")
        return None
    if not restart:
        where = Position(saved["samples_done"], saved["transitions_done"]).describe(saved["fingerprint"])
        return (f"an interrupted run of this output left a checkpoint in {folder} ({where}): add --resume to continue it, "
                "or --restart to discard it")
    return None


def check_checkpoint(folder: Path, fingerprint: dict[str, Any], resume: bool, restart: bool) -> None:
    """Before any work: refuse, in one line, a run that the checkpoint folder would stop (run_plan opens it later)."""
    if folder.exists():
        lock = Checkpoint._take_lock(folder)
        lock.close()
    problem = _problem(folder, fingerprint, resume, restart)
    if problem:
        raise InfSceneError(problem)


class Checkpoint:
    """One run's checkpoint folder, locked for the life of the run; `remove()` once the output is written."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any], position: Position, lock: Any, keep: bool = True) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.position = position
        self.store = RunStore(folder / "store")
        self.keep = keep
        self._lock = lock

    @classmethod
    def scratch(cls, folder: Path) -> Checkpoint:
        """No checkpoint (--no-checkpoint): a store in the run's own folder, for Dask workers, that nothing is saved to
        and that goes with the run."""
        return cls(folder, {}, Position(), None, keep=False)

    @classmethod
    def open(cls, folder: Path, fingerprint: dict[str, Any], resume: bool, restart: bool) -> Checkpoint:
        """The run's checkpoint, locked: resumed (`resume`), or new (an old one is removed only with `restart`)."""
        if folder.exists():
            lock = cls._take_lock(folder)
            problem = _problem(folder, fingerprint, resume, restart)
            if problem:
                lock.close()
                raise InfSceneError(problem)
            if resume:
                saved = _read_manifest(folder / MANIFEST_FILE)
                return cls(folder, fingerprint, Position(saved["samples_done"], saved["transitions_done"]), lock)
            lock.close()
            shutil.rmtree(folder)
        elif resume:
            raise InfSceneError(_problem(folder, fingerprint, resume, restart))
        try:
            folder.mkdir()
        except OSError as exc:
            raise InfSceneError(f"cannot make the checkpoint folder {folder}: {exc.strerror}") from exc
        try:
            checkpoint = cls(folder, fingerprint, Position(), cls._take_lock(folder))
            checkpoint._write_manifest()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return checkpoint

    @staticmethod
    def _take_lock(folder: Path) -> Any:
        lock = try_lock(folder / LOCK_FILE)
        if lock is None:
            raise InfSceneError(f"another run is using the checkpoint {folder} (the same output): wait for it or stop it")
        return lock

    def _write_manifest(self) -> None:
        """Record the position atomically (a temporary file renamed over the manifest)."""
        if not self.keep:
            return
        body = {"format": FORMAT, "fingerprint": self.fingerprint, "samples_done": self.position.samples_done,
                "transitions_done": self.position.transitions_done}
        tmp = self.folder / f"{MANIFEST_FILE}.tmp"
        with open(tmp, "w") as handle:
            json.dump(body, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.folder / MANIFEST_FILE)

    def _array(self, canvas: Canvas, name: str) -> StoreCanvas:
        """The store's array `name` for a canvas of that shape."""
        return self.store.canvas(name, *canvas.shape, chunk=STORE_CHUNK)

    def _is_saved_as(self, canvas: Canvas, name: str) -> bool:
        return isinstance(canvas, StoreCanvas) and canvas.root == self.store.root and canvas.name == name

    def save(self, canvas: Canvas, name: str) -> None:
        if self.keep and not self._is_saved_as(canvas, name):
            _copy(canvas.data, self._array(canvas, name).data, *canvas.shape[1:])

    def load(self, canvas: Canvas, name: str) -> None:
        if not self._is_saved_as(canvas, name):
            _copy(self._array(canvas, name).data, canvas.data, *canvas.shape[1:])

    def for_sample(self, sample: int) -> SampleCheckpoint:
        """The step loop's checkpoint for sample `sample` (0-based)."""
        return SampleCheckpoint(self, sample)

    def commit_sample(self, samples_done: int, canvases: dict[str, Canvas]) -> None:
        """Record a finished sample with the canvases that carry the samples so far (ping-pong, so a crash mid-save
        leaves the previous ones whole)."""
        for name, canvas in canvases.items():
            self.save(canvas, f"{name}{samples_done % 2}")
        self.position = Position(samples_done, 0)
        self._write_manifest()

    def restore_sample(self, canvases: dict[str, Canvas]) -> int:
        """Fill the canvases of the finished samples; returns how many samples are done."""
        if self.position.samples_done:
            for name, canvas in canvases.items():
                self.load(canvas, f"{name}{self.position.samples_done % 2}")
        return self.position.samples_done

    def release(self) -> None:
        """Keep the checkpoint for a later --resume; let other runs take it."""
        if self._lock is not None:
            self._lock.close()

    def remove(self) -> None:
        """The output is written (or nothing worth resuming was done): the checkpoint has served."""
        if self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.release()


class SampleCheckpoint:
    """The step loop's view of the checkpoint (joint.StateCheckpoint) for one sample."""

    def __init__(self, checkpoint: Checkpoint, sample: int) -> None:
        self.checkpoint = checkpoint
        self.sample = sample
        self._slots = 1

    def _current(self) -> bool:
        return self.checkpoint.position.samples_done == self.sample

    def restore(self, states: Sequence[Canvas]) -> int:
        self._slots = len(states)
        done = self.checkpoint.position.transitions_done if self._current() else 0
        if done:
            self.checkpoint.load(states[done % self._slots], f"state{done % self._slots}")
        return done

    def commit(self, done: int, state: Canvas) -> None:
        self.checkpoint.save(state, f"state{done % self._slots}")
        self.checkpoint.position = Position(self.sample, done)
        self.checkpoint._write_manifest()
