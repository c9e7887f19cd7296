"""Scale-out on Dask: the model work of every reverse step on dask.distributed workers, on one machine or many.

`--dask ADDRESS` runs a scene on an existing cluster (a scheduler address or a scheduler file: a Pangeo
deployment, dask-jobqueue on SLURM or PBS, Kubernetes) or on a LocalCluster of worker processes (`local:N`).
An address is checked before the run uses it (check_scheduler): its scheme, its host and port, and one Dask
handshake, all within CONNECT_TIMEOUT_S (5 s), so a wrong address is one line at once, never a wait without end.
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

import asyncio
import json
import socket
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

import numpy as np
import torch
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker
from distributed.comm import connect as comm_connect, inproc, registry
from distributed.comm.addressing import parse_host_port
from distributed.scheduler import KilledWorker
from distributed.security import Security

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
CONNECT_TIMEOUT_S = 5.0  # to reach a scheduler: its TCP connection and Dask's handshake together (check_scheduler)
SCHEDULER_PORT = 8786  # where `dask scheduler` listens unless told otherwise
SOCKET_SCHEMES = ("tcp", "tls", "ws", "wss")  # HOST:PORT addresses, reached by a plain TCP connection first
ENCRYPTED_SCHEMES = ("tls", "wss")  # need the cluster's certificates (Dask's TLS configuration)
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


def check_scheduler(address: str, shown: str) -> None:
    """Refuse, within CONNECT_TIMEOUT_S and in one line, an address where no Dask scheduler answers.

    Dask's client has no bound on its handshake (a web server that waits for a request line holds it forever),
    reads any reply as a frame length (an HTTP answer asks for exabytes), retries a refused connection for its whole
    timeout and fails with a TypeError on a scheme it cannot use. So the address is taken apart here first, the host
    reached with a plain TCP connection, then one Dask handshake made, all within CONNECT_TIMEOUT_S: a scheduler
    answers in milliseconds, and a slower network than that is not one a run's tasks could use either.
    """
    scheme, location = _scheme_and_location(address, shown)
    if scheme == "inproc":
        _check_in_process(location, shown)
        return
    connection_args = _connection_args(scheme, shown)
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    if scheme in SOCKET_SCHEMES:
        _reach(*_host_and_port(location, shown), shown, deadline)
    _handshake(f"{scheme}://{location}", connection_args, shown, deadline)


def _scheme_and_location(address: str, shown: str) -> tuple[str, str]:
    """The scheme (tcp when none is given, as Dask reads it) and the rest; one line for a scheme Dask does not have."""
    scheme, _, location = address.rpartition("://")
    scheme = scheme.lower() or "tcp"
    if scheme in ("http", "https"):
        raise InfSceneError(f"--dask {shown} is a web address (the dashboard's?): give the scheduler's address, "
                            f"tcp://HOST:{SCHEDULER_PORT} (the line `Scheduler at:` that `dask scheduler` prints)")
    try:
        registry.get_backend(scheme)
    except ValueError as exc:
        raise InfSceneError(f"--dask {shown}: Dask has no {scheme}:// connections (it knows "
                            f"{', '.join(s + '://' for s in sorted(registry.backends))}); give the scheduler's "
                            f"address, e.g. tcp://10.0.0.5:{SCHEDULER_PORT}") from exc
    return scheme, location


def _connection_args(scheme: str, shown: str) -> dict[str, Any]:
    """What Dask's connector needs for `scheme` (the TLS context of Dask's config); one line where it has none."""
    try:
        registry.get_backend(scheme).get_connector()
    except Exception as exc:  # ucx:// is an abstract stub without the distributed-ucxx package: a TypeError
        raise InfSceneError(f"--dask {shown}: this machine's Dask cannot open {scheme}:// connections "
                            f"({_first_line(exc)}); install the package that provides them (distributed-ucxx for "
                            "UCX), or give the scheduler's tcp:// address") from exc
    connection_args = Security().get_connection_args("client")
    if scheme in ENCRYPTED_SCHEMES and connection_args["ssl_context"] is None:
        raise InfSceneError(f"--dask {shown}: {scheme}:// needs the cluster's certificates in Dask's configuration "
                            "(distributed.comm.tls.ca-file, .client.cert and .client.key, in ~/.config/dask/ or as "
                            "DASK_DISTRIBUTED__COMM__TLS__... variables)")
    return connection_args


def _host_and_port(location: str, shown: str) -> tuple[str, int]:
    """HOST:PORT of a socket address, its port a TCP port; one line for anything else."""
    try:
        host, port = parse_host_port(location)
        port = int(port)
    except ValueError as exc:
        raise InfSceneError(f"--dask {shown}: give the scheduler's host and port, e.g. tcp://10.0.0.5:"
                            f"{SCHEDULER_PORT} ({_first_line(exc)})") from exc
    if not host or not 1 <= port <= 65535:
        raise InfSceneError(f"--dask {shown}: give the scheduler's host and port (1-65535), e.g. tcp://10.0.0.5:"
                            f"{SCHEDULER_PORT}")
    return host, port


def _reach(host: str, port: int, shown: str, deadline: float) -> None:
    """A plain TCP connection to the scheduler's host, which tells a refused port, an unknown name and an address
    that never answers apart, each in one line."""
    where = f"{host}:{port}"
    try:
        socket.create_connection((host, port), timeout=max(0.0, deadline - time.monotonic())).close()
    except ConnectionRefusedError as exc:
        raise InfSceneError(f"cannot reach the Dask scheduler at {shown}: nothing listens at {where} (connection "
                            "refused); start the scheduler, or check the address") from exc
    except socket.gaierror as exc:
        raise InfSceneError(f"cannot reach the Dask scheduler at {shown}: the host name {host} is not known "
                            f"({exc.strerror}); check the address") from exc
    except TimeoutError as exc:
        raise InfSceneError(f"cannot reach the Dask scheduler at {shown}: {where} gave no answer within "
                            f"{CONNECT_TIMEOUT_S:g} s (an unroutable address, or a firewall dropping the connection); "
                            "check the address and that this machine may reach it") from exc
    except OSError as exc:
        raise InfSceneError(f"cannot reach the Dask scheduler at {shown}: {where}: {exc.strerror or exc}; check the "
                            "address") from exc


def _handshake(address: str, connection_args: dict[str, Any], shown: str, deadline: float) -> None:
    """One Dask handshake with `address` before the deadline, then closed: proof that a Dask server answers there.

    It runs on an event loop of its own in a thread, whatever loop the caller runs (a notebook's). Whatever the peer
    sends that Dask cannot decode fails in Dask's reader with any exception (a MemoryError for an HTTP reply), so
    every exception here means the same: not a Dask scheduler.
    """
    seconds = max(0.001, deadline - time.monotonic())

    async def exchange() -> None:
        comm = await asyncio.wait_for(comm_connect(address, timeout=seconds, **connection_args), seconds)
        await comm.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(asyncio.run, exchange()).result()
        except Exception as exc:
            reason = (f"gave no Dask handshake within {CONNECT_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError)
                      else "answers, but not in Dask's protocol")
            raise InfSceneError(f"cannot reach the Dask scheduler at {shown}: the service there {reason}; give the "
                                f"scheduler's own port (usually {SCHEDULER_PORT}; the dashboard's, 8787, is a web "
                                "page)") from exc


def _check_in_process(location: str, shown: str) -> None:
    """An inproc:// address names a scheduler inside this Python process (a LocalCluster of threads): it is there,
    or the address is one line."""
    try:
        listener = inproc.global_manager.get_listener_for(location)
    except ValueError as exc:
        raise InfSceneError(f"--dask {shown}: not an inproc:// address ({_first_line(exc)})") from exc
    if listener is None:
        raise InfSceneError(f"cannot reach the Dask scheduler at {shown}: no scheduler of this process has that "
                            "address (inproc:// addresses live only inside the Python process that made them); give "
                            f"the scheduler's tcp:// address")


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
            check_scheduler(target, address)
            client = Client(target, timeout=CONNECT_TIMEOUT_S)
        else:
            check_scheduler(scheduler, address)
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
