"""A checkpoint belongs to one job (issue 35): keyed by the run's fingerprint (the output's path, the input, the model
and the options), so jobs sharing a --work-dir never meet in one folder and no advice or --restart removes another
job's work.

Before the key, checkpoints were named by the output's file name only: job A (a crop -> a/y.tif) was interrupted, and
job B (another input -> b/y.tif, the same work folder) was told that "an interrupted run of this output left a
checkpoint"; following the advice, `--restart` deleted A's checkpoint.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio

from infscene.checksums import file_sha256
from infscene.errors import InfSceneError
from infscene.execution.checkpoint import CHECKPOINT_SUFFIX, LOCK_FILE, MANIFEST_FILE, _body_sha256, legacy_folder
from infscene.plan import SROptions, plan_run
from infscene.raster.workspace import try_lock
from infscene.run import super_resolve

from scenes import FIXTURES
from test_checkpoint_trust import interrupt_half_way

CROP = FIXTURES / "naip_nd_5m_64.tif"  # job A's input: a 64 x 64 crop of a real NAIP scene
OTHER = FIXTURES / "planet_sn7_48.tif"  # job B's: another real scene
MODEL_OPTIONS = {"scale": 2.0, "steps": 4, "patch": 32, "overlap": 8, "batch_size": 4, "bands": [1, 2, 3], "device": "cpu"}


def _options(model: Path, work_dir: Path, **changes: object) -> SROptions:
    return SROptions(model_dir=model, work_dir=work_dir, **{**MODEL_OPTIONS, **changes})  # type: ignore[arg-type]


def _cli(source: Path, output: Path, model: Path, work_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    """`infscene sr` with the options of `_options`."""
    command = [sys.executable, "-m", "infscene", "sr", str(source), str(output), "--scale", "2", "--steps", "4",
               "--patch", "32", "--overlap", "8", "--batch-size", "4", "--bands", "1,2,3", "--device", "cpu",
               "--model", str(model), "--work-dir", str(work_dir), "--progress", "none", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)




def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder, by relative path: what "left untouched" means."""
    return {path.relative_to(folder).as_posix(): file_sha256(path) for path in folder.rglob("*") if path.is_file()}


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def _checkpoints(work_dir: Path) -> list[Path]:
    return sorted(path for path in work_dir.iterdir() if path.name.endswith(CHECKPOINT_SUFFIX))


@pytest.fixture()
def jobs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The output folders of jobs A and B, and the work folder they share."""
    folders = tuple(tmp_path / name for name in ("a", "b", "work"))
    for folder in folders:
        folder.mkdir()
    return folders  # type: ignore[return-value]


def test_two_jobs_sharing_a_work_folder_keep_their_own_checkpoints(tiny_model_dir: Path, jobs: tuple[Path, Path, Path],
                                                                   tmp_path: Path) -> None:
    a, b, work = jobs
    reference = _read(super_resolve(CROP, tmp_path / "reference.tif", _options(tiny_model_dir, tmp_path)))
    checkpoint_a = interrupt_half_way(CROP, a / "y.tif", _options(tiny_model_dir, work))
    assert checkpoint_a.name.startswith("y.tif.") and checkpoint_a.parent == work
    saved = _files(checkpoint_a)

    job_b = _cli(OTHER, b / "y.tif", tiny_model_dir, work)  # was: refused, "an interrupted run of this output ..."
    assert job_b.returncode == 0, job_b.stderr
    restarted_b = _cli(OTHER, b / "y.tif", tiny_model_dir, work, "--restart")  # was: A's checkpoint deleted
    assert restarted_b.returncode == 0, restarted_b.stderr
    assert (b / "y.tif").is_file() and _checkpoints(work) == [checkpoint_a] and _files(checkpoint_a) == saved

    rerun_a = _cli(CROP, a / "y.tif", tiny_model_dir, work)  # A's own checkpoint: A's own advice
    assert rerun_a.returncode == 1 and len(rerun_a.stderr.strip().splitlines()) == 1
    assert rerun_a.stderr.startswith(f"infscene: an interrupted run of this output left a checkpoint in {checkpoint_a} "
                                     "(sample 1 of 1, ")
    assert rerun_a.stderr.rstrip().endswith("add --resume to continue it, or --restart to discard it")

    resumed_a = _cli(CROP, a / "y.tif", tiny_model_dir, work, "--resume")
    assert resumed_a.returncode == 0, resumed_a.stderr
    assert np.array_equal(_read(a / "y.tif"), reference) and _checkpoints(work) == []


def test_another_run_of_the_same_output_is_refused_and_its_restart_keeps_that_checkpoint(
        tiny_model_dir: Path, jobs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, work = jobs
    options = _options(tiny_model_dir, work)
    reference = _read(super_resolve(CROP, tmp_path / "reference.tif", replace(options, work_dir=tmp_path)))
    checkpoint = interrupt_half_way(CROP, a / "y.tif", options)
    saved = _files(checkpoint)
    other = replace(options, seed=1)

    with pytest.raises(InfSceneError, match=rf"^the checkpoint in {checkpoint} is of another interrupted run of this "
                                            r"output \(seed: 0 there, 1 now; sample 1 of 1, \d of 4 steps done\): rerun "
                                            "with that run's input, model and options and --resume to continue it, or "
                                            "add --restart to start this run afresh beside it"):
        super_resolve(CROP, a / "y.tif", other)
    with pytest.raises(InfSceneError, match=rf"^the checkpoint in {checkpoint} is of another run of this output "
                                            r"\(seed: 0 there, 1 now\): .*or delete that folder to discard it$"):
        super_resolve(CROP, a / "y.tif", replace(other, resume=True))
    super_resolve(CROP, a / "y.tif", replace(other, restart=True))  # this run afresh: the other one's work stays
    assert _checkpoints(work) == [checkpoint] and _files(checkpoint) == saved

    super_resolve(CROP, a / "y.tif", replace(options, resume=True))
    assert np.array_equal(_read(a / "y.tif"), reference) and _checkpoints(work) == []


def test_a_run_of_the_same_output_waits_for_a_live_one_and_a_run_of_another_output_does_not(
        tiny_model_dir: Path, jobs: tuple[Path, Path, Path]) -> None:
    a, b, work = jobs
    options = _options(tiny_model_dir, work)
    checkpoint = interrupt_half_way(CROP, a / "y.tif", options)
    live = try_lock(checkpoint / LOCK_FILE)  # as the run holding it would
    assert live is not None
    try:
        for run in (options, replace(options, seed=1), replace(options, seed=1, restart=True)):
            with pytest.raises(InfSceneError, match=rf"^another run of this output is using the checkpoint {checkpoint}: "
                                                    "wait for it or stop it$"):
                super_resolve(CROP, a / "y.tif", run)
        assert super_resolve(OTHER, b / "y.tif", options).is_file()
    finally:
        live.close()
    assert checkpoint.is_dir()


def test_a_checkpoint_of_the_engine_before_keys_is_named_never_resumed_nor_removed(
        tiny_model_dir: Path, jobs: tuple[Path, Path, Path]) -> None:
    """OUTPUT_NAME.infscene-checkpoint did not record its output's folder: it may be another job's, so no run takes it."""
    a, b, work = jobs
    options = _options(tiny_model_dir, work)
    checkpoint = interrupt_half_way(CROP, a / "y.tif", options)
    manifest = json.loads((checkpoint / MANIFEST_FILE).read_text())
    del manifest["fingerprint"]["output_path"]  # as the engine before keys wrote it
    manifest["sha256"] = _body_sha256(manifest)
    legacy = legacy_folder(work, {"output_path": str(a / "y.tif")})
    checkpoint.rename(legacy)
    (legacy / MANIFEST_FILE).write_text(json.dumps(manifest))
    saved = _files(legacy)

    with pytest.raises(InfSceneError, match=rf"^--resume: there is no checkpoint to continue in {work} for this output "
                                            rf".*; {legacy} was left by an earlier engine, .* and cannot be resumed"):
        super_resolve(CROP, a / "y.tif", replace(options, resume=True))
    super_resolve(OTHER, b / "y.tif", replace(options, restart=True))
    super_resolve(CROP, a / "y.tif", options)
    assert _checkpoints(work) == [legacy] and _files(legacy) == saved


def test_the_key_follows_the_output_path_the_input_and_the_options(tiny_model_dir: Path, tmp_path: Path) -> None:
    options = _options(tiny_model_dir, tmp_path)
    shutil.copy(CROP, tmp_path / "copy.tif")
    (tmp_path / "elsewhere").mkdir()
    folders = [plan_run(source, run, tmp_path / output).checkpoint_dir
               for source, run, output in [(CROP, options, "y.tif"), (CROP, options, "y.tif"), (CROP, options, "z.tif"),
                                           (tmp_path / "copy.tif", options, "y.tif"), (CROP, replace(options, seed=1), "y.tif"),
                                           (CROP, replace(options, work_dir=tmp_path / "elsewhere"), "y.tif")]]
    assert folders[0] == folders[1] and len(set(folders[1:5])) == 4  # one run, one folder; any change, another
    assert folders[5] == tmp_path / "elsewhere" / folders[0].name  # a work folder can move: it is not part of the run
