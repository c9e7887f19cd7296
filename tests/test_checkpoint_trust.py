"""A resumed run is the run it claims to be (issue 22): a damaged checkpoint or a swapped input is refused in one
line, and the checkpoint is never used; a healthy one resumes to the uninterrupted run's bytes.

Before the checksums, a state chunk garbled in place resumed to an output up to 244 DN off with exit 0, a
deleted chunk to one 2 DN off, `transitions_done` 999 to one 241 DN off, and another raster written over the
input with its time restored to the output of the old one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import rasterio
import torch

from infscene.checksums import file_sha256
from infscene.console import plan_line
from infscene.errors import Cancelled, InfSceneError
from infscene.execution.backend import DaskBackend, LocalBackend
from infscene.execution.checkpoint import MANIFEST_FILE, Position, _body_sha256, checkpoint_folder
from infscene.plan import SROptions, plan_run
from infscene.progress import Progress
from infscene.protocol import event_line, parse_event
from infscene.raster.io import window_sha256
from infscene.run import run_plan, super_resolve

from scenes import FIXTURES

NAIP = FIXTURES / "naip_nd_5m_64.tif"


def _options(model: Path, **changes: object) -> SROptions:
    base = SROptions(scale=2.0, steps=4, patch=32, overlap=8, batch_size=4, model_dir=model, device="cpu", bands=[1, 2, 3])
    return replace(base, **changes)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def interrupt_half_way(source: Path, output: Path, options: SROptions) -> Path:
    """A run cancelled once half its steps are finished; returns its checkpoint folder."""
    folder = plan_run(source, options, output).checkpoint_dir
    seen: list[Progress] = []
    with pytest.raises(Cancelled):
        super_resolve(source, output, options, progress=seen.append,
                      is_cancelled=lambda: bool(seen) and seen[-1].done >= seen[-1].total // 2)
    assert json.loads((folder / MANIFEST_FILE).read_text())["transitions_done"] >= 2
    return folder


def _copy_for(checkpoint: Path, output: Path) -> Path:
    """A copy of the interrupted run's checkpoint as the same run writing `output` would have left it: a checkpoint is
    keyed by its output's path, so each test gets its own from the module's one interrupted run."""
    manifest = json.loads((checkpoint / MANIFEST_FILE).read_text())
    manifest["fingerprint"]["output_path"] = str(output.resolve())
    manifest["sha256"] = _body_sha256(manifest)
    copy = checkpoint_folder(output.parent, manifest["fingerprint"])
    shutil.copytree(checkpoint, copy)
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    return copy


def _chunk(checkpoint: Path, name: str = "0/0/0") -> Path:
    """A chunk of the state array the checkpoint's position needs (the whole state is one chunk here)."""
    state = next(array for array in json.loads((checkpoint / MANIFEST_FILE).read_text())["arrays"])
    return checkpoint / "store" / state / "c" / name


@pytest.fixture(scope="module")
def interrupted(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """The uninterrupted run's pixels, and a folder holding the checkpoint of the same run cancelled at step 3."""
    folder = tmp_path_factory.mktemp("interrupted")
    reference = _read(super_resolve(NAIP, folder / "reference.tif", _options(tiny_model_dir)))
    return reference, interrupt_half_way(NAIP, folder / "out.tif", _options(tiny_model_dir))


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(255 - b for b in data[len(data) // 2: len(data) // 2 + 64])
    path.write_bytes(bytes(data))


def _set_transitions(path: Path, recompute: bool) -> None:
    manifest = json.loads(path.read_text())
    manifest["transitions_done"] = 999
    if recompute:  # as if the checksum were forged too: the position check still refuses it
        manifest["sha256"] = _body_sha256(manifest)
    path.write_text(json.dumps(manifest))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "state chunk garbled in place": (lambda c: _garble(_chunk(c)), r"state\d/c/0/0/0 does not match its checksum"),
    "state chunk deleted": (lambda c: _chunk(c).unlink(), r"state\d/c/0/0/0 is missing"),
    "state chunk truncated": (lambda c: _chunk(c).write_bytes(_chunk(c).read_bytes()[:1000]),
                              r"state\d/c/0/0/0 does not match its checksum"),
    "array metadata garbled": (lambda c: (_chunk(c).parents[3] / "zarr.json").write_text("{garbage"),
                               r"state\d/zarr.json does not match its checksum"),
    "store metadata garbled": (lambda c: (c / "store/zarr.json").write_text("{garbage"),
                               r"zarr.json does not match its checksum"),
    "transitions_done 999": (lambda c: _set_transitions(c / MANIFEST_FILE, False), r"manifest.json does not match its checksum"),
    "transitions_done 999, checksum forged": (lambda c: _set_transitions(c / MANIFEST_FILE, True),
                                              r"it says 999 transitions are done, of 5 \(4 steps\)"),
    "a chunk the run did not write": (lambda c: shutil.copy(_chunk(c), _chunk(c, "0/0/1")),
                                      r"state\d/c/0/0/1 was not written by the run"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_checkpoint_is_refused_in_one_line_and_never_used(case: str, interrupted: tuple[np.ndarray, Path],
                                                                    tiny_model_dir: Path, tmp_path: Path) -> None:
    reference, checkpoint = interrupted
    copy = _copy_for(checkpoint, tmp_path / "out.tif")
    damage, message = DAMAGE[case]
    damage(copy)
    with pytest.raises(InfSceneError, match=rf"^the checkpoint in \S+ is damaged \((manifest\.json: )?{message}\), so it is not used: .*--restart") as error:
        super_resolve(NAIP, tmp_path / "out.tif", _options(tiny_model_dir, resume=True))
    assert "\n" not in str(error.value) and not (tmp_path / "out.tif").exists()
    assert copy.is_dir()  # kept: the user decides (--restart)
    restarted = super_resolve(NAIP, tmp_path / "out.tif", _options(tiny_model_dir, restart=True))
    assert np.array_equal(_read(restarted), reference)


def test_a_healthy_checkpoint_resumes_to_the_same_bytes(interrupted: tuple[np.ndarray, Path], tiny_model_dir: Path,
                                                        tmp_path: Path) -> None:
    reference, checkpoint = interrupted
    _copy_for(checkpoint, tmp_path / "out.tif")
    resumed = super_resolve(NAIP, tmp_path / "out.tif", _options(tiny_model_dir, resume=True))
    assert np.array_equal(_read(resumed), reference)


def test_the_plan_carries_the_resume_position_and_the_backend_and_the_run_holds_to_them(
        interrupted: tuple[np.ndarray, Path], tiny_model_dir: Path, tmp_path: Path) -> None:
    reference, checkpoint = interrupted
    done = json.loads((_copy_for(checkpoint, tmp_path / "out.tif") / MANIFEST_FILE).read_text())["transitions_done"]
    plan = plan_run(NAIP, _options(tiny_model_dir, resume=True, device="cpu,cpu"), tmp_path / "out.tif")
    assert plan.resume_at == Position(0, done) and plan.backend == LocalBackend((torch.device("cpu"),) * 2)
    event = plan.event()
    assert (event.resume_sample, event.resume_steps_done, event.backend, event.workers) == (1, done - 1, "cpu x2", 2)
    assert plan_line(event).endswith(f"resuming at sample 1, step {done} of 4, on cpu x2")
    assert parse_event(event_line(event)) == event

    dask = plan_run(NAIP, _options(tiny_model_dir, dask="local:3", threads_per_worker=2))  # nothing is started
    assert dask.backend == DaskBackend("local:3", 2, 3) and dask.resume_at is None
    assert plan_line(dask.event()).endswith("patches x 4 steps, on Dask local:3")

    with pytest.raises(InfSceneError, match="moved on since the run was planned"):
        run_plan(replace(plan, resume_at=Position(0, done - 1)))  # the checkpoint is not where the plan found it
    assert np.array_equal(_read(run_plan(plan)), reference)


def test_a_swapped_input_with_its_time_restored_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.tif"
    with rasterio.open(NAIP) as src, rasterio.open(source, "w", **{**src.profile, "compress": None}) as dst:
        dst.write(src.read())  # uncompressed: other pixels written over it keep its size
    options = _options(tiny_model_dir)
    checkpoint = interrupt_half_way(source, tmp_path / "out.tif", options)
    stat = source.stat()
    with rasterio.open(source, "r+") as ds:  # the same size, other pixels
        ds.write(255 - ds.read())
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.stat().st_size == stat.st_size
    with pytest.raises(InfSceneError, match=r"^the input is not the one the checkpoint in .* was made from .*--restart"):
        super_resolve(source, tmp_path / "out.tif", replace(options, resume=True))
    assert checkpoint.is_dir()


def test_the_window_hash_follows_the_pixels_and_the_window(tmp_path: Path) -> None:
    with rasterio.open(NAIP) as ds:
        whole = window_sha256(ds, rasterio.windows.Window(0, 0, 64, 64), [1, 2, 3], None)
        part = window_sha256(ds, rasterio.windows.Window(0, 0, 32, 64), [1, 2, 3], None)
        bands = window_sha256(ds, rasterio.windows.Window(0, 0, 64, 64), [3, 2, 1], None)
    assert len({whole, part, bands}) == 3
    assert file_sha256(NAIP) == hashlib.sha256(NAIP.read_bytes()).hexdigest()  # read in blocks, the same digest
