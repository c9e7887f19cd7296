"""Scale-out on Dask: the model work of every reverse step on dask.distributed workers, on one machine or many.

`--dask ADDRESS` runs a scene on an existing cluster (a scheduler address or a scheduler file: a Pangeo
deployment, dask-jobqueue on SLURM or PBS, Kubernetes) or on a LocalCluster of worker processes (`local:N`).
InfScene does not schedule anything itself: each reverse step is a set of Dask tasks.

Why a shared store and not workers owning strips (docs/scale-out.md): the state of every step lives
in the run's zarr store (store.py), which every worker reaches. A step is two waves of stateless
tasks: one per fixed batch of patches reads its patches' windows, runs the model and writes each
patch's contribution into that patch's slot; one per chunk of the next state sums the slots that
overlap it, in grid order, and writes the chunk whole. No process holds a scene-sized array, no
task depends on a particular worker being alive (Dask reruns a lost task elsewhere, and rerunning
one writes the same bytes), and the store after each step is the checkpoint that `--resume`
continues from (checkpoint.py). Every worker loads the model once (a worker plugin); GPUs are Dask
resources: when workers advertise `GPU`, model tasks ask for one.
"""
from __future__ import annotations

import json
import socket
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

import numpy as np
import torch
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker
from distributed.scheduler import KilledWorker

from ..diffusion.canvas import Canvas
from ..diffusion.executor import Combine, PatchWork
from ..diffusion.grid import Patch, PatchGrid
from ..diffusion.schedule import Denoiser
from ..errors import InfSceneError
from ..models.registry import load_model
from ..progress import ProgressTracker
from ..protocol import dask_address_problem
from . import allocator
from .backend import parse_address
from .checkpoint import STORE_CHUNK
from .local import DenoiserSpec
from .store import RunStore, SlotArray, StoreCanvas

Item = TypeVar("Item")
Result = TypeVar("Result")

PLUGIN_NAME = "infscene-model"
CONNECT_TIMEOUT_S = 20
PROBE_TIMEOUT_S = 1.0  # a first TCP connection: a refused one fails here at once, not after CONNECT_TIMEOUT_S of retries
WORKER_WAIT_S = 60
POLL_S = 0.05  # how often a wait looks for finished tasks and at the cancel flag
TASKS_IN_FLIGHT_PER_WORKER = 2
GPU_RESOURCE = "GPU"
FUSE_TASKS_PER_WORKER = 4  # fusing tasks per worker at least, so that the wave spreads evenly
FUSE_REGION_SIDES = (8, 4, 2, 1)  # a fusing task writes k x k state chunks, the largest k that leaves enough tasks


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_scheduler_file(path: Path) -> str:
    """The scheduler address a scheduler file holds (as `dask scheduler --scheduler-file` and dask-mpi write it); one
    line for a file that is not one."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InfSceneError(f"--dask {path}: not a Dask scheduler file ({_first_line(exc)})") from exc
    address = content.get("address") if isinstance(content, dict) else None
    if not isinstance(address, str) or dask_address_problem(address):
        raise InfSceneError(f"--dask {path}: not a Dask scheduler file (it holds no scheduler address)")
    return address


def probe_scheduler(address: str, shown: str) -> None:
    """Refuse at once a tcp:// (or host:port) address where nothing listens: Dask's client retries a refused connection
    until its timeout (23 s). A probe that only times out proves nothing (a slow network), so the client tries then."""
    host_port = address.split("://", 1)[1] if "://" in address else address
    if "://" in address and not address.startswith("tcp://"):
        return  # tls://, ucx://, inproc://: Dask's own connection does the checking
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except ConnectionRefusedError as exc:
        raise InfSceneError(f"cannot reach the Dask scheduler at {shown}: nothing listens at {host_port} (connection "
                            "refused); start the scheduler, or check the address") from exc
    except OSError:  # a timeout, a name that does not resolve yet: left to the client and its timeout
        pass


@contextmanager
def connect(address: str, threads_per_worker: int = 1) -> Iterator[Any]:
    """A dask.distributed Client on the cluster `address` (a LocalCluster for local:N), closed on exit."""
    count, scheduler = parse_address(address)
    cluster = None
    try:
        if count is not None:
            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
            cluster = LocalCluster(n_workers=count, threads_per_worker=threads_per_worker, processes=True,
                                   dashboard_address=":0", resources={GPU_RESOURCE: 1} if gpus else None)
            client = Client(cluster)
        elif scheduler.endswith(".json"):  # a scheduler file, as `dask scheduler --scheduler-file` and dask-mpi write
            if not Path(scheduler).is_file():
                raise InfSceneError(f"--dask {address}: no such scheduler file")
            target = read_scheduler_file(Path(scheduler))
            probe_scheduler(target, address)
            client = Client(target, timeout=CONNECT_TIMEOUT_S)
        else:
            probe_scheduler(scheduler, address)
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise InfSceneError(f"cannot reach the Dask scheduler at {address}: {_first_line(exc)}") from exc
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (TimeoutError, OSError) as exc:
            raise InfSceneError(f"the Dask cluster at {address} has no worker (waited {WORKER_WAIT_S} s): start workers "
                                "with `dask worker ADDRESS`") from exc
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class ModelPlugin(WorkerPlugin):
    """A worker plugin: the model loaded once per worker, shared by its threads.

    A worker with N threads runs N tasks side by side, each model call on one thread, as the single-process
    engine runs its CPU lanes (determinism.py): the bytes do not depend on how many threads or workers there are.
    """

    name = PLUGIN_NAME

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir
        self.model: Optional[torch.nn.Module] = None

    def setup(self, worker: Any) -> None:
        allocator.for_model_work()  # Dask's nanny started the worker with the opposite (allocator.py)
        torch.set_num_threads(1)  # one thread per model call, the worker's threads side by side (determinism.py)
        self.model = load_model(self.model_dir, _worker_device(worker))

    def teardown(self, worker: Any) -> None:
        self.model = None


def _worker_device(worker: Any) -> torch.device:
    """The worker's GPU when it has one (workers named 0, 1, ... take turns on the GPUs they see), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = int(worker.name) % torch.cuda.device_count() if str(worker.name).isdigit() else 0
    return torch.device(f"cuda:{index}")


def _plugin() -> ModelPlugin:
    return get_worker().plugins[PLUGIN_NAME]


def run_on_worker(spec: DenoiserSpec, work: Callable[[Denoiser, Item], Result], item: Item) -> Result:
    """A task: work(denoiser, item) with this worker's model."""
    return work(spec.build(_plugin().model), item)


def write_pieces(spec: DenoiserSpec, work: PatchWork, slots: SlotArray, batch: list[Patch]) -> None:
    """A task: one fixed batch of a transition, each patch's piece left in its slot."""
    pieces = run_on_worker(spec, work, batch)
    for patch, piece in zip(batch, pieces):
        slots.write(work.grid.index(patch), piece)


def fuse_region_side(height: int, width: int, chunk: tuple[int, int], workers: int) -> int:
    """The side k, in chunks, of the k x k chunks of the next state that one fusing task writes: as large as leaves
    FUSE_TASKS_PER_WORKER tasks per worker. Large regions mean fewer tasks (the scheduler spends about a
    millisecond on each: 15,000 regions of 2 x 2 SR3 chunks per step at a gigapixel) and fewer reads of the slots
    that straddle region borders. The output does not depend on k: every pixel sums its patches in grid order."""
    for side in FUSE_REGION_SIDES:
        if fuse_region_count(height, width, chunk, side) >= FUSE_TASKS_PER_WORKER * workers:
            return side
    return FUSE_REGION_SIDES[-1]


def fuse_region_count(height: int, width: int, chunk: tuple[int, int], side: int) -> int:
    """How many regions of side x side chunks cover the canvas: the fusing tasks of one step."""
    return -(-height // (side * chunk[0])) * -(-width // (side * chunk[1]))


def fuse_region(combine: Combine, grid: PatchGrid, slots: SlotArray, target: StoreCanvas, rows: slice, cols: slice) -> None:
    """A task: one chunk of the next state, its patches' pieces combined in grid order, written whole."""
    buffer = np.zeros((target.shape[0], rows.stop - rows.start, cols.stop - cols.start), np.float32)
    for patch in grid.overlapping(rows, cols):
        r0, r1 = max(rows.start, patch.y0), min(rows.stop, patch.y0 + patch.size)
        c0, c1 = max(cols.start, patch.x0), min(cols.stop, patch.x0 + patch.size)
        piece = slots.read(grid.index(patch), slice(r0 - patch.y0, r1 - patch.y0), slice(c0 - patch.x0, c1 - patch.x0))
        combine.into(buffer[:, r0 - rows.start : r1 - rows.start, c0 - cols.start : c1 - cols.start], piece)
    target.data[:, rows, cols] = buffer


def _check_worker(root: str, dask_worker: Any = None) -> str:
    """Run on every worker (client.run) before any work: the model is loaded and the run's store is reachable."""
    plugin = dask_worker.plugins[PLUGIN_NAME]
    if plugin.model is None:
        raise InfSceneError("the model is not loaded")
    if not Path(root).is_dir():
        raise InfSceneError(f"cannot see the work folder {Path(root).parent.parent}: give --work-dir on a filesystem every "
                            "worker mounts")
    return str(next(plugin.model.parameters()).device)


class DaskExecutor:
    """The Executor (diffusion/executor.py) on a Dask cluster; the run's canvases live in `store`."""

    def __init__(self, client: Any, store: RunStore, spec: DenoiserSpec, model_dir: Path, state_channels: int) -> None:
        self.client = client
        self.store = store
        self.spec = spec
        self.state_channels = state_channels
        self._install(str(Path(model_dir).resolve()))
        workers = client.scheduler_info()["workers"]
        self.workers = len(workers)
        gpu = any(w.get("resources", {}).get(GPU_RESOURCE) for w in workers.values())
        self._resources = {GPU_RESOURCE: 1} if gpu else None

    def _install(self, model_dir: str) -> None:
        """Load the model on every worker (a worker plugin, also run on workers that join later), then check that
        each worker can do the run."""
        try:
            self.client.register_plugin(ModelPlugin(model_dir), name=PLUGIN_NAME)
        except Exception as exc:  # whatever a worker raised while loading, as one line
            raise InfSceneError(f"a Dask worker cannot load the model {model_dir}: {_first_line(exc)}") from exc
        try:
            self.client.run(_check_worker, str(self.store.root))
        except Exception as exc:
            raise InfSceneError(f"a Dask worker cannot do this run: {_first_line(exc)}") from exc

    def make_canvas(self, channels: int, height: int, width: int, name: str, chunk: Optional[int] = None) -> Canvas:
        return self.store.canvas(name, channels, height, width, chunk=chunk or STORE_CHUNK)

    def _submit(self, function: Callable[..., Any], *args: Any, model: bool = True) -> Any:
        return self.client.submit(function, *args, pure=False, resources=self._resources if model else None)

    def _wait(self, futures: Sequence[Any], tracker: ProgressTracker, on_done: Callable[[Any], None]) -> None:
        """Wait for every future, calling on_done as each finishes; a cancel cancels what is left.

        One as_completed iterator, polled: a wait with a timeout per poll would leave a waiter on every
        pending future behind each time, and the client's memory would grow with the run.
        """
        finished = as_completed(futures)
        try:
            while not finished.is_empty():
                tracker.check_cancel()
                batch = finished.next_batch(block=False)
                if not batch:
                    time.sleep(POLL_S)
                for future in batch:
                    _result(future)
                    on_done(future)
        except BaseException:
            self.client.cancel(list(futures))
            raise

    def map(self, work: Callable[[Denoiser, Item], Result], items: Sequence[Item]) -> Iterator[Result]:
        """Results in the order of `items`; a few tasks per worker in flight, so the client holds little."""
        pending: deque[Any] = deque()
        ahead = TASKS_IN_FLIGHT_PER_WORKER * max(1, self.workers)
        try:
            for item in items:
                pending.append(self._submit(run_on_worker, self.spec, work, item))
                if len(pending) >= ahead:
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
        finally:
            if pending:
                self.client.cancel(list(pending))

    def fuse(self, work: PatchWork, batches: list[list[Patch]], target: Canvas, tracker: ProgressTracker) -> None:
        if not isinstance(target, StoreCanvas):
            raise TypeError("a DaskExecutor fuses into its store's canvases")
        grid = work.grid
        slots = self.store.slots("pieces", len(grid), target.shape[0], grid.patch)
        units = {}
        for batch in batches:
            units[self._submit(write_pieces, self.spec, work, slots, batch)] = work.units(batch)
        self._wait(list(units), tracker, lambda future: tracker.advance(units[future]))
        regions = [self._submit(fuse_region, work.combine, grid, slots, target, rows, cols, model=False)
                   for rows, cols in target.regions(fuse_region_side(*target.shape[1:], target.chunk, self.workers))]
        self._wait(regions, tracker, lambda future: None)


def _result(future: Any) -> Any:
    """A task's result; a worker that kept dying is one line."""
    try:
        return future.result()
    except KilledWorker as exc:
        raise InfSceneError(f"Dask workers kept dying while running a task ({_first_line(exc)}): see the workers' logs "
                            "(out of memory?)") from exc
