"""Resuming a run: its state at the last finished step, kept on disk until the output is written.

Every run to an output keeps a checkpoint folder in its work folder, `OUTPUT_NAME.KEY.infscene-checkpoint`:
a zarr store (store.py) with the state after the last finished transition of the step loop (and,
with --samples, the finished samples' running statistics) and a manifest that says how far the run
got and which run it is. KEY is a digest of the run's fingerprint (the output's absolute path, the
input, the model and every option that changes the output), so a folder belongs to one run: runs
that share a work folder never meet in one, and none of them removes another's. After a crash, a
kill, a full disk or a cancel the folder stays, and the same command with `--resume` continues from
the last finished step with the same output, bitwise, as an uninterrupted run; it is removed once
the output is written. With Dask the store is also where
the workers keep the state, so it must be on a filesystem every worker reaches.

A checkpoint is never reused silently: its manifest holds the run's fingerprint, and a resume with
another is refused, naming what differs. A run without --resume that finds its own refuses too,
unless told to start over (--restart), so a long run is never thrown away by a rerun. A run that
finds the checkpoint of another run of its output (the same path, another input, model or options)
is refused as well, naming what differs, and `--restart` starts it afresh beside that checkpoint,
never removing it: it may be hours of someone else's work. A lock file held for the run's life keeps
two runs from sharing one checkpoint, or two runs of one output from running at once. Checkpoints
of the engine before keys (`OUTPUT_NAME.infscene-checkpoint`, which did not record their output's
folder) are never resumed nor removed: a --resume that finds none of its own names them.

A checkpoint also proves itself, because a damaged one resumed into an output that differs from the
uninterrupted run's by up to 244 DN, with exit 0: the manifest holds the sha256 of every file of the
arrays a resume reads (their metadata and chunks; a chunk zarr left unwritten because it is all zeros
is recorded as absent) and its own sha256; the position is checked against the run's steps and
samples; and the input is known by the content of its window (a hash of the pixels the run reads), not
only by path, size and time. A checkpoint that fails any check is refused in one line naming what is
damaged, before any of it is read into the run, and kept for the user to look at or discard (--restart).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..checksums import file_damage, file_sha256
from ..diffusion.canvas import Canvas
from ..errors import InfSceneError
from ..raster.blocks import blocks
from ..raster.workspace import try_lock
from .store import RunStore, StoreCanvas

CHECKPOINT_SUFFIX = ".infscene-checkpoint"
KEY_DIGITS = 16  # hex digits of the run's key in its folder's name: 64 bits, so no two runs of a work folder share one
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "lock"
FORMAT = 2  # 2: checksums of the manifest and of the saved arrays' files, the input's content
STORE_CHUNK = 512  # rows and columns of one chunk of the checkpoint's arrays
STORE_METADATA = "zarr.json"  # the store's group metadata, at its root
PARTIAL_SUFFIX = ".partial"  # zarr writes a chunk to NAME.<uuid>.partial and renames it: a kill may leave one
STATE_PREFIX = "state"
SAMPLE_ARRAYS = ("first", "mean", "squares")  # the running statistics of --samples (run._sample_with_spread)


def _json_sha256(value: Any) -> str:
    """sha256 of a JSON value written canonically (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _output_name(fingerprint: dict[str, Any]) -> str:
    return Path(fingerprint["output_path"]).name


def checkpoint_folder(work_dir: Path, fingerprint: dict[str, Any]) -> Path:
    """Where the run of `fingerprint` (plan.run_fingerprint) keeps its checkpoint: named for its output, so a user
    sees whose it is, and keyed by the whole fingerprint, so two runs share one only when they are the same run.
    Named by the output's file name alone, a job writing b/y.tif was told that "an interrupted run of this output"
    left the checkpoint of a job writing a/y.tif in the same work folder, and its --restart deleted it."""
    return Path(work_dir) / f"{_output_name(fingerprint)}.{_json_sha256(fingerprint)[:KEY_DIGITS]}{CHECKPOINT_SUFFIX}"


def legacy_folder(work_dir: Path, fingerprint: dict[str, Any]) -> Path:
    """Where the engine before keys kept the checkpoint of an output of this file name, whichever its folder."""
    return Path(work_dir) / f"{_output_name(fingerprint)}{CHECKPOINT_SUFFIX}"


@dataclass
class Position:
    """How far a run got: finished samples, and finished transitions of the sample under way."""

    samples_done: int = 0
    transitions_done: int = 0  # the initial noise, then each reverse step (an independent run's tiles: one)

    def steps_done(self, steps: int, independent: bool) -> int:
        """Reverse steps finished in the sample under way, of `steps`."""
        if independent:  # its one transition is every tile's whole chain
            return steps * min(1, self.transitions_done)
        return max(0, self.transitions_done - 1)  # the initial noise is the first transition

    def describe(self, fingerprint: dict[str, Any]) -> str:
        """Where the run stopped, in the user's terms: its sample and reverse steps."""
        steps, samples = fingerprint.get("steps", 0), fingerprint.get("samples", 1)
        done = self.steps_done(steps, fingerprint.get("mode") == "independent")
        return f"sample {self.samples_done + 1} of {samples}, {done} of {steps} steps done"


def _saved_position(saved: dict[str, Any]) -> Position:
    """The position a manifest records."""
    return Position(saved["samples_done"], saved["transitions_done"])


def store_files(root: Path, arrays: Iterable[str]) -> dict[str, str]:
    """sha256 of the store's group metadata and of every file of the named arrays (metadata and chunks), by path
    under the store. A chunk that is all zeros is not written by zarr, so its absence is part of what is recorded."""
    files = {}
    if (root / STORE_METADATA).is_file():
        files[STORE_METADATA] = file_sha256(root / STORE_METADATA)
    for name in arrays:
        for path in sorted((root / name).rglob("*")):
            if path.is_file() and not path.name.endswith(PARTIAL_SUFFIX):
                files[path.relative_to(root).as_posix()] = file_sha256(path)
    return files


def _body_sha256(body: dict[str, Any]) -> str:
    """The manifest's own checksum: sha256 of its other fields as canonical JSON."""
    return _json_sha256({key: value for key, value in body.items() if key != "sha256"})


def transitions_of(fingerprint: dict[str, Any]) -> int:
    """How many transitions one sample of the run has: the initial noise and each reverse step, or one per tile's
    whole chain (independent), or none (a family with no reverse steps)."""
    steps = int(fingerprint.get("steps", 0))
    if not steps:
        return 0
    return 1 if fingerprint.get("mode") == "independent" else steps + 1


def _needed_arrays(position: Position, fingerprint: dict[str, Any]) -> list[str]:
    """The arrays a resume from `position` reads: the state of the last finished transition, and the finished
    samples' statistics."""
    slots = 1 if fingerprint.get("mode") == "independent" else 2
    needed = [f"{STATE_PREFIX}{position.transitions_done % slots}"] if position.transitions_done else []
    if position.samples_done:
        needed += [f"{name}{position.samples_done % 2}" for name in SAMPLE_ARRAYS]
    return needed


def _position_problem(saved: dict[str, Any], fingerprint: dict[str, Any]) -> Optional[str]:
    """Why the saved position cannot be a position of this run (None when it can)."""
    position = _saved_position(saved)
    samples, transitions = int(fingerprint.get("samples", 1)), transitions_of(fingerprint)
    if not 0 <= position.samples_done <= samples:
        return f"it says {position.samples_done} samples are done, of {samples}"
    if not 0 <= position.transitions_done <= transitions or (position.samples_done == samples and position.transitions_done):
        return f"it says {position.transitions_done} transitions are done, of {transitions} ({fingerprint.get('steps')} steps)"
    absent = [name for name in _needed_arrays(position, fingerprint) if name not in saved["arrays"]]
    return f"it records no {absent[0]}, which its position needs" if absent else None


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(now))
    return [f"{key}: {saved.get(key)!r} there, {now.get(key)!r} now" for key in keys if saved.get(key) != now.get(key)]


def _copy(source: Any, target: Any, height: int, width: int) -> None:
    """Copy a (C, H, W) array into another of that shape in row blocks (bounded memory)."""
    for rows, cols in blocks(height, width):
        target[:, rows, cols] = source[:, rows, cols]


def _damaged(folder: Path, what: str) -> str:
    """The one line for a checkpoint that failed a check: what is damaged, and what to do."""
    return (f"the checkpoint in {folder} is damaged ({what}), so it is not used: rerun with --restart to discard it "
            "and start over")


MANIFEST_FIELDS: dict[str, Any] = {"fingerprint": dict, "samples_done": int, "transitions_done": int,
                                   "input_content": (str, type(None)), "arrays": list, "files": dict, "sha256": str}


def _check_fields(saved: dict[str, Any]) -> None:
    """Every field of a manifest is there with its type (ValueError naming the first that is not)."""
    for key, kind in MANIFEST_FIELDS.items():
        if not isinstance(saved.get(key), kind) or isinstance(saved.get(key), bool):
            raise ValueError(f"{key} is missing or of the wrong type")
    if not all(isinstance(name, str) for name in saved["arrays"]) or \
            not all(isinstance(v, str) for v in saved["files"].values()):
        raise ValueError("arrays or files of the wrong type")


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, its format and its own checksum checked."""
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
        if saved.get("format") != FORMAT:
            raise ValueError(f"format {saved.get('format')!r}, this engine writes {FORMAT}")
        _check_fields(saved)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InfSceneError(f"the checkpoint manifest {path} is unreadable ({exc}): use --restart to discard it") from exc
    if saved.get("sha256") != _body_sha256(saved):
        raise InfSceneError(_damaged(path.parent, f"{path.name} does not match its checksum"))
    return saved


def _problem(folder: Path, fingerprint: dict[str, Any], resume: bool, restart: bool) -> Optional[str]:
    """Why a run with this fingerprint cannot go ahead with the checkpoints of its work folder as they are: its own
    (`folder`), or, where it has none, another run's of the same output. None when it can."""
    if (folder / MANIFEST_FILE).is_file():
        return _own_problem(folder, fingerprint, resume, restart)
    other = _other_run_of_output(folder, fingerprint)  # none of its own, or a run killed before its first save
    if other is not None and (resume or not restart):
        return _other_run_problem(*other, fingerprint, resume)
    return _nothing_to_resume(folder, fingerprint) if resume else None


def _own_problem(folder: Path, fingerprint: dict[str, Any], resume: bool, restart: bool) -> Optional[str]:
    """Why the run cannot go ahead with its own checkpoint as it is (None when it can)."""
    saved = _read_manifest(folder / MANIFEST_FILE) if resume or not restart else None
    if resume:
        differences = _differences(saved["fingerprint"], fingerprint)
        if differences:
            return (f"the checkpoint in {folder} is of another run ({'; '.join(differences[:3])}): rerun with the same "
                    "input, model and options, or use --restart to discard it")
        position = _position_problem(saved, fingerprint)
        if position:
            return _damaged(folder, f"{MANIFEST_FILE}: {position}")
        return None
    if not restart:
        where = _saved_position(saved).describe(saved["fingerprint"])
        return (f"an interrupted run of this output left a checkpoint in {folder} ({where}): add --resume to continue it, "
                "or --restart to discard it")
    return None


def _other_run_of_output(folder: Path, fingerprint: dict[str, Any]) -> Optional[tuple[Path, dict[str, Any]]]:
    """The newest checkpoint in the work folder of another run writing the same output (another input, model or
    options), with its manifest; refused in one line while one is in use (two runs would race to one output).
    Checkpoints whose manifest cannot say which output they are of (damaged, or of the engine before keys, which
    did not record it) are not taken for this output's."""
    found = []
    for other in folder.parent.iterdir():
        if other == folder or not (other.name.startswith(f"{_output_name(fingerprint)}.")
                                   and other.name.endswith(CHECKPOINT_SUFFIX)):
            continue
        try:
            saved, written = _read_manifest(other / MANIFEST_FILE), (other / MANIFEST_FILE).stat().st_mtime_ns
        except (InfSceneError, OSError):
            continue  # damaged, of the engine before keys, or removed by its run as it finished
        if saved["fingerprint"].get("output_path") != fingerprint["output_path"]:
            continue
        if _in_use(other):
            raise _busy(other)
        found.append((written, other, saved))
    if not found:
        return None
    _, newest, saved = max(found, key=lambda item: item[0])
    return newest, saved


def _other_run_problem(other: Path, saved: dict[str, Any], fingerprint: dict[str, Any], resume: bool) -> str:
    """The one line for a run that found the checkpoint of another run of its output: what differs, and what to do
    (never --restart to discard it: it is not this run's)."""
    differences = "; ".join(_differences(saved["fingerprint"], fingerprint)[:3])
    if resume:
        return (f"the checkpoint in {other} is of another run of this output ({differences}): rerun with that run's "
                "input, model and options to continue it, or delete that folder to discard it")
    where = _saved_position(saved).describe(saved["fingerprint"])
    return (f"the checkpoint in {other} is of another interrupted run of this output ({differences}; {where}): rerun "
            "with that run's input, model and options and --resume to continue it, or add --restart to start this run "
            "afresh beside it (delete that folder to discard it)")


def _nothing_to_resume(folder: Path, fingerprint: dict[str, Any]) -> str:
    """The one line for a --resume that finds no checkpoint of its run, naming a checkpoint of the engine before keys
    where one of this output's name is there."""
    message = (f"--resume: there is no checkpoint to continue in {folder.parent} for this output (it is removed when a "
               "run finishes; --work-dir must be the one the interrupted run used)")
    legacy = legacy_folder(folder.parent, fingerprint)
    if legacy.is_dir():
        message += (f"; {legacy} was left by an earlier engine, which named checkpoints by the output's file name only, "
                    "and cannot be resumed (delete it once it is no longer needed)")
    return message


def _busy(folder: Path) -> InfSceneError:
    return InfSceneError(f"another run of this output is using the checkpoint {folder}: wait for it or stop it")


def _take_lock(folder: Path) -> Any:
    """The checkpoint folder's lock, held until the returned handle is closed; refused in one line while a live run
    holds it."""
    lock = try_lock(folder / LOCK_FILE)
    if lock is None:
        raise _busy(folder)
    return lock


def _in_use(folder: Path) -> bool:
    """Whether a live run holds the checkpoint folder's lock (not one whose run removed it as it finished)."""
    try:
        lock = try_lock(folder / LOCK_FILE)
    except OSError:
        return False
    if lock is not None:
        lock.close()
    return lock is None


def check_checkpoint(folder: Path, fingerprint: dict[str, Any], resume: bool, restart: bool) -> Optional[Position]:
    """Before any work: refuse, in one line, a run that the checkpoint folder would stop; with `resume`, the position
    the run will go on from (the plan carries it, and Checkpoint.open checks that it still holds)."""
    if folder.exists():
        _take_lock(folder).close()
    problem = _problem(folder, fingerprint, resume, restart)
    if problem:
        raise InfSceneError(problem)
    return _saved_position(_read_manifest(folder / MANIFEST_FILE)) if resume else None



class Checkpoint:
    """One run's checkpoint folder, locked for the life of the run; `remove()` once the output is written."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any], position: Position, lock: Any, keep: bool = True,
                 arrays: Optional[dict[str, None]] = None, input_content: Optional[str] = None) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.position = position
        self.store = RunStore(folder / "store")
        self.keep = keep
        self.arrays: dict[str, None] = dict(arrays or {})  # the saved arrays a resume reads (an ordered set)
        self.input_content = input_content  # the input window's content hash (raster.io.window_sha256)
        self._lock = lock

    @classmethod
    def scratch(cls, folder: Path) -> Checkpoint:
        """No checkpoint (--no-checkpoint): a store in the run's own folder, for Dask workers, that nothing is saved to
        and that goes with the run."""
        return cls(folder, {}, Position(), None, keep=False)

    @classmethod
    def open(cls, folder: Path, fingerprint: dict[str, Any], resume_at: Optional[Position], restart: bool) -> Checkpoint:
        """The run's checkpoint, locked: resumed from the planned position `resume_at` (refused if the checkpoint is no
        longer there), or new (an old one is removed only with `restart`)."""
        resume = resume_at is not None
        if folder.exists():
            lock = _take_lock(folder)
            problem = _problem(folder, fingerprint, resume, restart)
            if problem:
                lock.close()
                raise InfSceneError(problem)
            if resume:
                try:
                    saved = cls._verified(folder)
                    if _saved_position(saved) != resume_at:
                        raise InfSceneError(f"the checkpoint in {folder} moved on since the run was planned (another run "
                                            f"resumed it: {_saved_position(saved).describe(fingerprint)}): rerun to plan again")
                except BaseException:
                    lock.close()
                    raise
                return cls(folder, fingerprint, _saved_position(saved), lock,
                           arrays=dict.fromkeys(saved["arrays"]), input_content=saved["input_content"])
            lock.close()
            shutil.rmtree(folder)
        elif problem := _problem(folder, fingerprint, resume, restart):
            raise InfSceneError(problem)
        try:
            folder.mkdir()
        except OSError as exc:
            raise InfSceneError(f"cannot make the checkpoint folder {folder}: {exc.strerror}") from exc
        try:
            checkpoint = cls(folder, fingerprint, Position(), _take_lock(folder))
            checkpoint._write_manifest()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return checkpoint

    @staticmethod
    def _verified(folder: Path) -> dict[str, Any]:
        """The manifest of a checkpoint to resume, after checking that the store's files are the ones it records
        (before the store is opened: zarr would fail on damaged metadata, or read a damaged chunk as it is)."""
        saved = _read_manifest(folder / MANIFEST_FILE)
        damage = file_damage(saved["files"], store_files(folder / "store", saved["arrays"]))
        if damage:
            raise InfSceneError(_damaged(folder, damage))
        return saved

    def check_input(self, content: str) -> None:
        """Record the input window's content hash in a new checkpoint; refuse to resume a checkpoint made from other
        pixels (a file rewritten with its size and time kept has the same fingerprint)."""
        if self.input_content is None:
            self.input_content = content
            self._write_manifest()
        elif self.input_content != content:
            raise InfSceneError(f"the input is not the one the checkpoint in {self.folder} was made from (its pixels "
                                "differ, though its path, size and time do not): rerun with that input, or use --restart "
                                "to discard the checkpoint")

    def _write_manifest(self) -> None:
        """Record the position, the checksums of the arrays it needs and its own checksum, atomically (a temporary
        file renamed over the manifest)."""
        if not self.keep:
            return
        body = {"format": FORMAT, "fingerprint": self.fingerprint, "samples_done": self.position.samples_done,
                "transitions_done": self.position.transitions_done, "input_content": self.input_content,
                "arrays": list(self.arrays), "files": store_files(self.store.root, self.arrays)}
        body["sha256"] = _body_sha256(body)
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
        names = [f"{name}{samples_done % 2}" for name in canvases]
        for name, canvas in zip(names, canvases.values()):
            self.save(canvas, name)
        self._commit(Position(samples_done, 0), names)

    def _commit(self, position: Position, arrays: Iterable[str]) -> None:
        """The run is at `position`, and `arrays` (saved whole) are what a resume from it reads."""
        self.position = position
        self.arrays = dict.fromkeys(arrays)
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
    """The step loop's view of the checkpoint (diffusion/loop.py: StateCheckpoint) for one sample."""

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
            self.checkpoint.load(states[done % self._slots], f"{STATE_PREFIX}{done % self._slots}")
        return done

    def commit(self, done: int, state: Canvas) -> None:
        name = f"{STATE_PREFIX}{done % self._slots}"
        self.checkpoint.save(state, name)
        samples = [array for array in self.checkpoint.arrays if not array.startswith(STATE_PREFIX)]
        self.checkpoint._commit(Position(self.sample, done), [*samples, name])
