"""Issue 11, defects 1-3 and 9: the input is never overwritten, a failed write leaves nothing, a full work
folder is a one-line error (not SIGBUS), and a run's temporary folder is removed however the run ends,
even by the next run after a kill -9."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from infscene.raster import atomic
from infscene.diffusion import canvas
from infscene.commands import main as cli
from infscene.errors import InfSceneError
from infscene.plan import SROptions
from infscene.run import super_resolve
from infscene.raster.workspace import RUN_PREFIX, Workspace, remove_leftovers

from scenes import FIXTURES

NAIP = FIXTURES / "naip_nd_5m_64.tif"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sr_args(src: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["sr", str(src), str(out), "--scale", "2", "--steps", "2", "--patch", "32", "--model", str(model),
            "--progress", "none", *extra]


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    """A private copy of the NAIP fixture, so a test that destroys its input destroys only this."""
    return Path(shutil.copy(NAIP, tmp_path / "scene.tif"))


@pytest.mark.parametrize("link", ["same path", "symlink", "hard link", "relative path"])
def test_the_output_can_never_be_the_input(link: str, scene: Path, tiny_model_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    before = _sha(scene)
    out = {"same path": scene, "symlink": tmp_path / "link.tif", "hard link": tmp_path / "hard.tif",
           "relative path": Path("scene.tif")}[link]
    if link == "symlink":
        out.symlink_to(scene)
    elif link == "hard link":
        os.link(scene, out)
    monkeypatch.chdir(tmp_path)
    assert cli.main(_sr_args(scene, out, tiny_model_dir)) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "would overwrite the input" in err and err.count("\n") == 1
    assert _sha(scene) == before


@pytest.mark.parametrize("side", ["--preview", "--iceplant"])
def test_a_preview_or_iceplant_output_can_never_be_the_input(side: str, scene: Path, tiny_model_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    before = _sha(scene)
    assert cli.main(_sr_args(scene, tmp_path / "sr.tif", tiny_model_dir, side, str(scene))) == cli.EXIT_ERROR
    assert "would overwrite the input" in capsys.readouterr().err
    assert _sha(scene) == before and not (tmp_path / "sr.tif").exists()


def test_two_outputs_cannot_share_a_path(scene: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sr.tif"
    assert cli.main(_sr_args(scene, out, tiny_model_dir, "--iceplant", str(out))) == cli.EXIT_ERROR
    assert "are the same file" in capsys.readouterr().err and not out.exists()


def test_the_library_refuses_it_too(scene: Path, tiny_model_dir: Path) -> None:
    before = _sha(scene)
    with pytest.raises(InfSceneError, match="would overwrite the input"):
        super_resolve(scene, scene, SROptions(scale=2, steps=2, patch=32, model_dir=tiny_model_dir))
    assert _sha(scene) == before


def test_a_missing_preview_folder_is_refused_before_any_work(scene: Path, tiny_model_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    code = cli.main(_sr_args(scene, tmp_path / "sr.tif", tiny_model_dir, "--preview", str(tmp_path / "no" / "p.png")))
    assert code == cli.EXIT_ERROR and "output folder does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def _limit_file_size(limit: int):
    def set_limit() -> None:  # as if the disk filled up at `limit` bytes (Python ignores SIGXFSZ: writes fail)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_a_disk_that_fills_during_the_write_leaves_nothing_and_exits_non_zero(tiny_model_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "sr.tif").write_bytes(b"previous result")
    # no checkpoint: its store would meet the file-size limit first, and this is about the output's writer
    args = [sys.executable, "-m", "infscene", *_sr_args(NAIP, out_dir / "sr.tif", tiny_model_dir, "--progress", "json",
                                                        "--no-checkpoint")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(30_000))
    assert result.returncode == cli.EXIT_ERROR, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("infscene: writing") and "failed" in last and "Nothing was written there" in last
    assert json.loads(result.stdout.splitlines()[-1])["event"] == "error"
    assert sorted(p.name for p in out_dir.iterdir()) == ["sr.tif"]
    assert (out_dir / "sr.tif").read_bytes() == b"previous result"


def test_a_full_work_folder_is_one_line_before_sampling(naip: Path, tiny_model_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(canvas.os, "posix_fallocate", disk_full)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(InfSceneError, match="not enough disk space in the work folder .* canvas"):
        super_resolve(naip, tmp_path / "sr.tif", SROptions(scale=2, steps=2, patch=32, model_dir=tiny_model_dir,
                                                           work_dir=work, memmap_above_bytes=0))
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_memory_mapped_canvases_are_allocated_not_sparse(tmp_path: Path) -> None:
    made = canvas.Canvas(3, 64, 64, tmp_path, "c")
    assert os.stat(tmp_path / "c.f32").st_blocks * 512 >= made.data.nbytes


@pytest.mark.parametrize("free, needed", [(500_000, "965.3 KB"), (5000, "149.3 KB")])
def test_free_space_counts_the_work_folder_and_speaks_human_units(naip: Path, tiny_model_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, free: int,
                                                                  needed: str) -> None:
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**9, 10**9 - free, free))
    with pytest.raises(InfSceneError) as err:
        super_resolve(naip, tmp_path / "sr.tif", SROptions(scale=2, steps=2, patch=32, model_dir=tiny_model_dir,
                                                           memmap_above_bytes=0))
    # The outputs: 64 KB of pixels, written as an uncompressed working file and its compressed copy with overviews,
    # counted as if nothing compressed: 64 + 64 x 4/3 = 149.3 KB, refused as soon as the output grid is known when
    # they alone do not fit. Then the whole run on one disk: those, canvases 2 states x 3 bands x 128 x 128 x 4 B =
    # 384 KB and the input's 3 x 64 x 64 x 4 B = 48 KB, and the states' checkpoint 384 KB.
    shown_free = f"{free / 1024:.1f} KB"
    assert str(err.value) == f"not enough disk space in {tmp_path}: the run needs about {needed}, {shown_free} free"


def test_a_run_removes_its_folder_on_success_and_failure(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    options = SROptions(scale=2, steps=2, patch=32, model_dir=tiny_model_dir, memmap_above_bytes=0)
    super_resolve(naip, tmp_path / "sr.tif", options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif"]
    with pytest.raises(InfSceneError):
        super_resolve(naip, tmp_path / "sr2.tif", options, is_cancelled=lambda: len(list(tmp_path.iterdir())) > 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif"]


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from infscene.raster.workspace import Workspace
ws = Workspace().__enter__()
(ws.folder_in(Path(sys.argv[1])) / "canvas1.f32").write_bytes(b"x" * 1000)
print("ready", flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run_but_a_live_run_is_left_alone(tmp_path: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path), "kill"], timeout=60)
    assert killed.returncode == -signal.SIGKILL and len(list(tmp_path.glob(f"{RUN_PREFIX}*/canvas1.f32"))) == 1
    live = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path), "live"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "ready"
        # the next run (here the live one) removed the killed run's folder; a third run leaves the live one alone
        assert [p.name.split("-")[2] for p in tmp_path.glob(f"{RUN_PREFIX}*")] == [str(live.pid)]
        with Workspace() as workspace:
            mine = workspace.folder_in(tmp_path)
            others = [p for p in tmp_path.glob(f"{RUN_PREFIX}*") if p != mine]
            assert len(others) == 1 and f"{RUN_PREFIX}{live.pid}-" in others[0].name
    finally:
        live.communicate("", timeout=60)
    # the "live" run ended without cleaning up (like a kill -9): its folder is now a leftover too
    assert [p.name.split("-")[2] for p in remove_leftovers(tmp_path)] == [str(live.pid)]
    assert list(tmp_path.iterdir()) == []


def ignore_sigint() -> None:
    """What a non-interactive shell does to the commands it starts in the background."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig, started_ignoring_sigint", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)])
def test_sigterm_and_sigint_remove_the_run_folder(sig: signal.Signals, started_ignoring_sigint: bool, tiny_model_dir: Path,
                                                   tmp_path: Path) -> None:
    args = [sys.executable, "-m", "infscene", "sr", str(NAIP), str(tmp_path / "sr.tif"), "--scale", "2", "--steps", "500",
            "--patch", "32", "--model", str(tiny_model_dir), "--progress", "json", "--work-dir", str(tmp_path)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ignore_sigint if started_ignoring_sigint else None)
    for line in process.stdout:
        if json.loads(line)["event"] == "progress":
            break
    assert list(tmp_path.glob(f"{RUN_PREFIX}*"))  # the run's folder exists while it runs
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    assert process.returncode == (cli.EXIT_TERMINATED if sig == signal.SIGTERM else cli.EXIT_CANCELLED), err
    assert json.loads(out.splitlines()[-1])["event"] == "cancelled"
    assert list(tmp_path.iterdir()) == []
