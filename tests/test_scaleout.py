"""Scale-out on Dask and resuming (issue 10): the same output, bitwise, however and wherever the work runs.

A LocalCluster of 2 worker processes (1 thread each) against the single-process engine run with one
torch thread (a model call's float rounding depends on its thread count, see docs/scale-out.md), on
the real NAIP fixture, for both model families and every mode; then the faults: a worker killed
mid-run, the client killed at step k and resumed, a cancel through the cluster, and bad input.
"""
from __future__ import annotations

import errno
import http.server
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import rasterio
import torch
from distributed import Client, LocalCluster

from infscene.execution import scaleout
from infscene.execution.checkpoint import CHECKPOINT_SUFFIX, MANIFEST_FILE
from infscene.errors import Cancelled, InfSceneError
from infscene.diffusion.fusion import FusionMode
from infscene.plan import plan_run, SROptions
from infscene.run import super_resolve
from infscene.sr_options import OPTION
from infscene.progress import Progress
from infscene.execution.store import RunStore

REPO = Path(__file__).resolve().parents[1]
E2DIFFSR = REPO / "resources" / "models" / "e2diffsr"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Client]:
    """A cluster the tests reach by its scheduler address, as a user reaches theirs: 2 processes of 1 thread."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local, \
            Client(local) as client:
        yield client


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def _sr3(tiny_model_dir: Path, **changes: object) -> SROptions:
    base = SROptions(scale=4, bands=[1, 2, 3], model_dir=tiny_model_dir, steps=3, patch=32, overlap=8, batch_size=3)
    return replace(base, **changes)


def _e2diffsr(**changes: object) -> SROptions:
    return replace(SROptions(scale=4, bands=[1, 2, 3], model_dir=E2DIFFSR, patch=64, overlap=16, batch_size=3), **changes)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".infscene") or p.name.endswith(CHECKPOINT_SUFFIX))


@pytest.mark.parametrize("mode", list(FusionMode))
def test_two_worker_processes_give_the_single_process_output_sr3(cluster: Client, tiny_model_dir: Path,
                                                                  naip: Path, tmp_path: Path, mode: FusionMode) -> None:
    options = _sr3(tiny_model_dir, mode=mode)
    alone = super_resolve(naip, tmp_path / "alone.tif", options)
    spread = super_resolve(naip, tmp_path / "dask.tif", replace(options, dask=cluster.scheduler.address))
    assert np.array_equal(_read(alone), _read(spread))
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", list(FusionMode))
def test_two_worker_processes_give_the_single_process_output_e2diffsr(cluster: Client, naip: Path,
                                                                      tmp_path: Path, mode: FusionMode) -> None:
    options = _e2diffsr(mode=mode, samples=2 if mode is FusionMode.VCF else 1)
    alone = super_resolve(naip, tmp_path / "alone.tif", options)
    spread = super_resolve(naip, tmp_path / "dask.tif", replace(options, dask=cluster.scheduler.address))
    assert np.array_equal(_read(alone), _read(spread))
    if mode is FusionMode.VCF:  # the --samples spread raster too
        assert np.array_equal(_read(tmp_path / "alone_spread.tif"), _read(tmp_path / "dask_spread.tif"))
    assert _leftovers(tmp_path) == []


def test_fusing_regions_are_as_large_as_leave_enough_tasks_and_do_not_change_the_output(
        cluster: Client, tiny_model_dir: Path, naip: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    canvas = RunStore(tmp_path / "store").canvas("state", 3, 256, 288, chunk=32)  # 8 x 9 chunks
    for workers, side in ((1, 4), (2, 2), (5, 2), (20, 1), (100, 1)):
        assert scaleout.fuse_region_side(256, 288, canvas.chunk, workers) == side
        covered = np.zeros((256, 288), int)
        for rows, cols in canvas.regions(side):
            covered[rows, cols] += 1
        assert (covered == 1).all()
    options = _sr3(tiny_model_dir)
    alone = _read(super_resolve(naip, tmp_path / "alone.tif", options))
    monkeypatch.setattr(scaleout, "FUSE_TASKS_PER_WORKER", 0)  # one region of 8 x 8 chunks: the whole canvas
    whole = _read(super_resolve(naip, tmp_path / "dask.tif", replace(options, dask=cluster.scheduler.address)))
    assert np.array_equal(alone, whole)


def _page_faults_of_reused_blocks() -> int:
    """Minor page faults of allocating, filling and freeing an 8 MB block 20 times: few when freed blocks are
    reused from the heap, hundreds per block when each is mapped afresh."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = np.ones(2 * 1024**2, dtype=np.float32)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_workers_keep_large_blocks_for_the_next_model_call(tiny_model_dir: Path) -> None:
    """Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which maps every tensor afresh (model calls measured
    up to 2.4x slower); the worker plugin undoes it."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as local, \
            Client(local) as client:
        assert min(client.run(_page_faults_of_reused_blocks).values()) > 5_000  # as Dask starts them (measured 10,320)
        client.register_plugin(scaleout.ModelPlugin(str(tiny_model_dir)), name=scaleout.PLUGIN_NAME)
        assert max(client.run(_page_faults_of_reused_blocks).values()) < 1_000  # measured 482


def test_a_local_cluster_of_its_own(tiny_model_dir: Path, naip: Path, tmp_path: Path) -> None:
    """--dask local:2 starts (and stops) a LocalCluster of two worker processes itself."""
    options = _sr3(tiny_model_dir)
    alone = super_resolve(naip, tmp_path / "alone.tif", options)
    spread = super_resolve(naip, tmp_path / "dask.tif", replace(options, dask="local:2"))
    assert np.array_equal(_read(alone), _read(spread))


def test_a_scheduler_file_reaches_the_cluster(cluster: Client, tiny_model_dir: Path, naip: Path,
                                             tmp_path: Path) -> None:
    """As on HPC, where `dask scheduler --scheduler-file` or dask-mpi leave the address in a file.

    The file holds what a scheduler writes first (its type and address): Client.write_scheduler_file dumps the whole
    scheduler_info, which fails (tuple keys) once the workers have run tasks, as they have after the module's other
    tests in a shuffled order."""
    (tmp_path / "scheduler.json").write_text(json.dumps({"type": "Scheduler", "address": cluster.scheduler.address}))
    options = _sr3(tiny_model_dir, steps=2)
    alone = super_resolve(naip, tmp_path / "alone.tif", options)
    spread = super_resolve(naip, tmp_path / "dask.tif", replace(options, dask=str(tmp_path / "scheduler.json")))
    assert np.array_equal(_read(alone), _read(spread))
    with pytest.raises(InfSceneError, match="no such scheduler file"):
        super_resolve(naip, tmp_path / "x.tif", replace(options, dask=str(tmp_path / "missing.json")))


def test_a_worker_killed_mid_run_changes_nothing(cluster: Client, tiny_model_dir: Path, naip: Path,
                                                 tmp_path: Path) -> None:
    options = _sr3(tiny_model_dir, steps=6)
    alone = super_resolve(naip, tmp_path / "alone.tif", options)
    pids = list(cluster.run(os.getpid).values())
    killed: list[int] = []

    def kill_one_worker(p: Progress) -> None:
        if not killed and p.done >= p.total // 3:
            os.kill(pids[0], signal.SIGKILL)  # the nanny starts a new worker; Dask reruns the lost tasks
            killed.append(pids[0])

    spread = super_resolve(naip, tmp_path / "dask.tif", replace(options, dask=cluster.scheduler.address),
                           progress=kill_one_worker)
    assert killed and np.array_equal(_read(alone), _read(spread))
    cluster.wait_for_workers(2, timeout=60)


def _kill_after(command: list[str], manifest: Path, transitions: int, env: dict[str, str]) -> None:
    """Start the engine, SIGKILL it once its checkpoint records `transitions` finished transitions."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {process.stderr.read().decode()[-500:]}")
        try:
            if json.loads(manifest.read_text())["transitions_done"] >= transitions:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _cli(naip: Path, output: Path, options: list[str]) -> list[str]:
    return [sys.executable, "-m", "infscene", "sr", str(naip), str(output), "--scale", "4", "--bands", "1,2,3", *options]


@pytest.mark.parametrize("where", ["single-process", "dask"])
def test_a_client_killed_at_step_k_resumes_to_the_same_output(cluster: Client, tiny_model_dir: Path,
                                                               naip: Path, tmp_path: Path, where: str) -> None:
    options = _sr3(tiny_model_dir, steps=12)  # killed after 4 transitions: 8 left to kill it in
    reference = super_resolve(naip, tmp_path / "reference.tif", options)
    output = tmp_path / "resumed.tif"
    flags = ["--model", str(tiny_model_dir), "--steps", "12", "--patch", "32", "--overlap", "8", "--batch-size", "3"]
    if where == "dask":
        flags += ["--dask", cluster.scheduler.address]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    manifest = plan_run(naip, options, output).checkpoint_dir / MANIFEST_FILE
    _kill_after(_cli(naip, output, flags), manifest, transitions=4, env=env)
    assert not output.exists()
    done = json.loads(manifest.read_text())["transitions_done"]
    assert 4 <= done < 13

    again = subprocess.run(_cli(naip, output, flags), env=env, capture_output=True, text=True)
    assert again.returncode == 1 and "--resume" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    resumed = subprocess.run(_cli(naip, output, [*flags, "--resume", "--progress", "json"]), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    planned = next(json.loads(line) for line in resumed.stdout.splitlines() if '"plan"' in line)
    assert (planned["resume_sample"], planned["resume_steps_done"]) == (1, done - 1)  # the plan says where it goes on
    assert (planned["backend"] == f"Dask {cluster.scheduler.address}") == (where == "dask")
    first_progress = next(json.loads(line) for line in resumed.stdout.splitlines() if '"progress"' in line)
    patches = len(plan_run(naip, options).grid)
    assert first_progress["done"] > (done - 1) * patches  # it went on from the checkpoint (the initial noise counts 0)
    assert np.array_equal(_read(reference), _read(output))
    assert _leftovers(tmp_path) == []  # the checkpoint went with the success


def test_progress_and_cancel_work_through_the_cluster(cluster: Client, tiny_model_dir: Path, naip: Path,
                                                      tmp_path: Path) -> None:
    options = _sr3(tiny_model_dir, steps=4, dask=cluster.scheduler.address)
    checkpoint = plan_run(naip, options, tmp_path / "out.tif").checkpoint_dir
    seen: list[Progress] = []
    with pytest.raises(Cancelled):
        super_resolve(naip, tmp_path / "out.tif", options, progress=seen.append,
                      is_cancelled=lambda: bool(seen) and seen[-1].done >= seen[-1].total // 2)
    assert not (tmp_path / "out.tif").exists()
    done = [p.done for p in seen]
    assert done == sorted(done) and seen[-1].total // 2 <= done[-1] < seen[-1].total
    assert _leftovers(tmp_path) == [checkpoint.name]  # kept on purpose: --resume goes on from it

    finished: list[Progress] = []
    out = super_resolve(naip, tmp_path / "out.tif", replace(options, resume=True), progress=finished.append)
    assert finished[-1].done == finished[-1].total and finished[0].resumed_at > 0
    reference = super_resolve(naip, tmp_path / "reference.tif", replace(options, dask=None))
    assert np.array_equal(_read(reference), _read(out))


def test_a_bad_scheduler_address_is_one_line(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, naip: Path,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr(scaleout, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(InfSceneError, match=r"^cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9") as error:
        super_resolve(naip, tmp_path / "out.tif", _sr3(tiny_model_dir, dask="tcp://127.0.0.1:9"))
    assert "\n" not in str(error.value)
    with pytest.raises(InfSceneError, match="local:N needs N between 1 and"):
        super_resolve(naip, tmp_path / "out.tif", _sr3(tiny_model_dir, dask="local:0"))
    assert list(tmp_path.iterdir()) == []


class _AnswersHttpAtOnce(socketserver.BaseRequestHandler):
    """A service that greets every connection with an HTTP reply before reading anything."""

    def handle(self) -> None:
        self.request.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@contextmanager
def _serving(server: socketserver.TCPServer) -> Iterator[str]:
    """`server` answering on a thread of this process; its tcp:// address."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("service, reason", [
    (lambda: http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler),
     "gave no Dask handshake within 1 s"),  # waits for a request line that never comes: Dask's client waited forever
    (lambda: socketserver.ThreadingTCPServer(("127.0.0.1", 0), _AnswersHttpAtOnce),
     "answers, but not in Dask's protocol"),  # read as a frame length: an internal MemoryError of 3 EiB
])
def test_a_service_that_is_not_a_dask_scheduler_is_one_line_within_the_timeout(
        monkeypatch: pytest.MonkeyPatch, service: Callable[[], socketserver.TCPServer], reason: str) -> None:
    monkeypatch.setattr(scaleout, "CONNECT_TIMEOUT_S", 1)
    with _serving(service()) as address:
        with pytest.raises(InfSceneError, match=f"^cannot reach the Dask scheduler at {address}: the service there "
                                                f"{reason}; give the scheduler's own port") as error:
            with scaleout.connect(address):
                pass
    assert "\n" not in str(error.value)


def test_a_web_server_as_scheduler_writes_nothing(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, naip: Path,
                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(scaleout, "CONNECT_TIMEOUT_S", 1)
    with _serving(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _AnswersHttpAtOnce)) as address:
        with pytest.raises(InfSceneError, match="not in Dask's protocol"):
            super_resolve(naip, tmp_path / "out.tif", _sr3(tiny_model_dir, dask=address))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("address, message", [
    ("http://127.0.0.1:8787", r"^--dask http://127\.0\.0\.1:8787 is a web address \(the dashboard's\?\): give the "
                              r"scheduler's address, tcp://HOST:8786"),
    ("gopher://10.0.0.5:8786", r"^--dask gopher://10\.0\.0\.5:8786: Dask has no gopher:// connections \(it knows .*"
                               r"tcp://"),
    ("ucx://10.0.0.5:8786", r"^--dask ucx://10\.0\.0\.5:8786: this machine's Dask cannot open ucx:// connections .*"
                            r"distributed-ucxx"),  # an internal TypeError before
    ("tls://10.0.0.5:8786", r"^--dask tls://10\.0\.0\.5:8786: tls:// needs the cluster's certificates in Dask's "
                            r"configuration"),  # an internal TypeError before
    ("tcp://10.0.0.5", r"^--dask tcp://10\.0\.0\.5: give the scheduler's host and port, e.g\. tcp://10\.0\.0\.5:8786 "
                       r"\(missing port number"),
    ("tcp://10.0.0.5:99999", r"^--dask tcp://10\.0\.0\.5:99999: give the scheduler's host and port \(1-65535\)"),
    ("tcp://[::1", r"^--dask tcp://\[::1: give the scheduler's host and port"),
    ("tcp://scheduler.invalid:8786", r"^cannot reach the Dask scheduler at tcp://scheduler\.invalid:8786: the host name "
                                     r"scheduler\.invalid is not known"),  # RFC 6761: never resolves
    ("inproc://x", r"^--dask inproc://x: not an inproc:// address"),
])
def test_an_address_dask_cannot_use_is_one_line_at_once(address: str, message: str) -> None:
    with pytest.raises(InfSceneError, match=message) as error:
        scaleout.check_scheduler(address, address)
    assert "\n" not in str(error.value)


def test_an_address_that_never_answers_is_one_line_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unroutable address (or a firewall that drops packets) waited for Dask's 20 s of retries. No packet leaves
    this sandbox, so the TCP connection's timeout is what the test gives; the bound passed to it is checked."""
    bounds = []

    def never_answers(where: tuple[str, int], timeout: float) -> socket.socket:
        bounds.append(timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(scaleout.socket, "create_connection", never_answers)
    with pytest.raises(InfSceneError, match=r"^cannot reach the Dask scheduler at tcp://10\.255\.255\.1:8786: "
                                            r"10\.255\.255\.1:8786 gave no answer within 5 s \(an unroutable address"):
        scaleout.check_scheduler("tcp://10.255.255.1:8786", "tcp://10.255.255.1:8786")
    assert len(bounds) == 1 and 0 < bounds[0] <= scaleout.CONNECT_TIMEOUT_S


def test_the_help_says_the_bound() -> None:
    assert f"within {scaleout.CONNECT_TIMEOUT_S:g} s" in OPTION["dask"].help


def test_a_scheduler_passes_the_check(cluster: Client) -> None:
    scaleout.check_scheduler(cluster.scheduler.address, cluster.scheduler.address)
    scaleout.check_scheduler(cluster.scheduler.address.removeprefix("tcp://"), "as HOST:PORT")


def test_a_cluster_without_workers_is_one_line(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, naip: Path,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(scaleout, "WORKER_WAIT_S", 1)
    with LocalCluster(n_workers=0, dashboard_address=":0") as empty:
        with pytest.raises(InfSceneError, match="has no worker"):
            super_resolve(naip, tmp_path / "out.tif", _sr3(tiny_model_dir, dask=empty.scheduler_address))
    assert list(tmp_path.iterdir()) == []


def test_a_worker_that_cannot_load_the_model_is_one_line(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path,
                                                         naip: Path, tmp_path: Path) -> None:
    """As on a machine where the model folder is missing: the worker's own error, in one line, nothing written."""

    def missing(folder: object, device: object) -> None:
        raise InfSceneError(f"model folder not found: {folder}")

    monkeypatch.setattr(scaleout, "load_model", missing)
    threads = torch.get_num_threads()
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as threaded:  # workers in this process
        with pytest.raises(InfSceneError, match="^a Dask worker cannot load the model .*model folder not found") as error:
            super_resolve(naip, tmp_path / "out.tif", _sr3(tiny_model_dir, dask=threaded.scheduler_address))
    torch.set_num_threads(threads)
    assert "\n" not in str(error.value) and list(tmp_path.iterdir()) == []


def test_resume_refuses_a_missing_or_foreign_checkpoint(tiny_model_dir: Path, naip: Path, tmp_path: Path) -> None:
    options = _sr3(tiny_model_dir, steps=4)
    with pytest.raises(InfSceneError, match="--resume: there is no checkpoint to continue"):
        super_resolve(naip, tmp_path / "out.tif", replace(options, resume=True))
    seen: list[Progress] = []
    with pytest.raises(Cancelled):
        super_resolve(naip, tmp_path / "out.tif", options, progress=seen.append,
                      is_cancelled=lambda: bool(seen) and seen[-1].done > seen[-1].total // 2)  # after step 2 of 4
    seed_0 = _leftovers(tmp_path)
    with pytest.raises(InfSceneError, match=r"is of another run of this output \(seed: 0 there, 1 now\)"):
        super_resolve(naip, tmp_path / "out.tif", replace(options, seed=1, resume=True))
    with pytest.raises(InfSceneError, match="of another interrupted run of this output .*--resume to continue it, or add --restart"):
        super_resolve(naip, tmp_path / "out.tif", replace(options, seed=1))
    fresh = super_resolve(naip, tmp_path / "out.tif", replace(options, seed=1, restart=True))
    assert fresh.exists() and _leftovers(tmp_path) == seed_0  # --restart starts this run afresh: the other's work stays


def test_a_full_disk_while_checkpointing_is_one_line(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, naip: Path,
                                                     tmp_path: Path) -> None:
    import zarr.storage._local as local_store

    put, writes = local_store._put, []

    def fills_up(path: object, value: object, exclusive: bool = False) -> int:
        writes.append(path)
        if len(writes) > 12:  # the store is made, a few steps are saved, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return put(path, value, exclusive=exclusive)

    monkeypatch.setattr(local_store, "_put", fills_up)
    checkpoint = plan_run(naip, _sr3(tiny_model_dir, steps=20), tmp_path / "out.tif").checkpoint_dir
    with pytest.raises(InfSceneError, match="is full .*--work-dir on a larger disk, then rerun with --resume") as error:
        super_resolve(naip, tmp_path / "out.tif", _sr3(tiny_model_dir, steps=20))
    assert "\n" not in str(error.value) and not (tmp_path / "out.tif").exists()
    assert _leftovers(tmp_path) == [checkpoint.name]  # the steps saved before are kept for --resume
