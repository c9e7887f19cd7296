"""The engine-plugin contract, written once: JSON-lines events, limits, choices and tags.

The QGIS plugin runs the engine as a subprocess (`--progress json`) and must agree with it on
every event's name and fields, on the limits it offers in its forms and on the tags it reads
back from outputs. This module is that agreement. It uses the standard library only, because
the plugin ships a byte-identical copy (infscene_qgis/protocol.py, kept identical by a test)
and must never import torch, rasterio or the engine into QGIS's Python. It keeps to Python 3.7
syntax for the same reason (QGIS builds ship older interpreters).
"""
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Type, Union

# Raised whenever an event, a limit or a tag changes meaning; the plugin compares it with the plan's.
PROTOCOL_VERSION = 3

# Limits and choices of `infscene sr`.
MAX_STEPS = 2000  # the paper's full chain, T = 2000 (diffusion/schedule.py: PAPER_T)
SCALE_MIN_EXCLUSIVE = 1.0
SCALE_MAX = 16.0
MAX_PATCH = 512  # output pixels per patch side (4x the bundled model's; attention memory grows as its square)
MAX_BATCH = 4096  # patches per model call
MAX_SAMPLES = 64  # --samples: seeds whose spread is mapped (each costs a whole run)
MAX_THREADS_PER_WORKER = 256  # --threads-per-worker of a local:N Dask cluster
LOCAL_CLUSTER_PREFIX = "local:"  # --dask local:N: a cluster of N worker processes on this machine
MAX_LOCAL_WORKERS = 256
MODES: Tuple[str, ...] = ("vcf", "average", "independent")
PRECISIONS: Tuple[str, ...] = ("auto", "fp32", "bf16")
PROGRESS_KINDS: Tuple[str, ...] = ("bar", "json", "none")

# Tags the engine writes on its outputs.
SOURCE_BAND_TAG = "SOURCE_BAND"  # per output band: the 1-based input band it was made from
PROVENANCE_PREFIX = "INFSCENE_"  # dataset tags: INFSCENE_VERSION, INFSCENE_MODEL_SHA256, ...


@dataclass(frozen=True)
class Plan:
    """First event: what the run will produce and cost (the only one with --dry-run)."""

    output_width: int
    output_height: int
    patches: int
    steps: int
    total: int
    output_bytes: int
    canvas_bytes: int
    estimated_s: Optional[float]
    protocol: int = 1  # engines before this module sent no version; this one sends PROTOCOL_VERSION
    backend: str = ""  # where the model work runs, e.g. "cpu x4", "cuda:0, cuda:1", "Dask local:4" ("": not said)
    workers: int = 0  # model calls side by side: devices, CPU lanes or local:N's workers (0: not known before it runs)
    resume_sample: int = 0  # a resumed run: the sample it goes on in, from 1 (0: the run starts afresh)
    resume_steps_done: int = 0  # a resumed run: the reverse steps of that sample already done


@dataclass(frozen=True)
class Progress:
    """Units of work done so far; `fraction` drives a progress bar, `eta_s` an ETA label."""

    done: int
    total: int
    fraction: float
    rate: float
    eta_s: Optional[float]


@dataclass(frozen=True)
class RunWarning:
    """Something the user should know that does not stop the run (one line)."""

    message: str


@dataclass(frozen=True)
class Done:
    """Last event of a successful run: the files now complete on disk."""

    outputs: Tuple[str, ...]


@dataclass(frozen=True)
class Failure:
    """Last event of a failed run: one line that says what is wrong and what to do."""

    message: str


@dataclass(frozen=True)
class Cancelled:
    """Last event of a cancelled run: nothing was written."""

    message: str


@dataclass(frozen=True)
class Serving:
    """`infscene serve` is ready: the XYZ URL template QGIS adds as a layer, and the zoom levels it serves."""

    url: str  # http://127.0.0.1:PORT/{z}/{x}/{y}.png
    port: int
    min_zoom: int  # coarser levels are not served (the layer's zmin)
    max_zoom: int  # the zoom whose pixels are the target resolution: the layer's zmax
    native_zoom: int  # the finest zoom served from the source alone (coarser than the model's useful range)


@dataclass(frozen=True)
class TileActivity:
    """`infscene serve` at work: tiles waiting, being super-resolved, and finished since it started (for a status bar)."""

    queued: int
    rendering: int
    done: int
    cached: int  # of `done`, served from the disk cache


@dataclass(frozen=True)
class ModelSummary:
    """What the panel needs to know of a model folder, read from its config.json alone (no weights loaded)."""

    path: str
    name: str
    family: str
    trained: bool
    patch_size: int
    scale_min: float
    scale_max: float
    texture_head: bool  # an e2diffsr model that draws texture: any detail from 0 to 1, not only the two ends
    default_detail: float  # the detail a run without --detail uses
    diffusion_steps: Optional[int] = None
    train_pixel_size_m: Optional[float] = None


@dataclass(frozen=True)
class QuickPlan:
    """The torch-free planning call's answer (`python -m infscene.quick_plan`): the run's checks and sizes before Run.

    `problems` stop the run, `warnings` are for the user to know, `unavailable` maps an option ("iceplant",
    "detail") to why it cannot apply to this input or model. The sizes are absent (None, 0) where a problem came first.
    """

    problems: Tuple[str, ...]
    warnings: Tuple[str, ...]
    unavailable: Dict[str, str]
    model: Optional[ModelSummary] = None
    georeferenced: Optional[bool] = None
    input_size: Optional[Tuple[int, ...]] = None  # (width, height)
    dtype: str = ""
    window: Optional[Tuple[int, ...]] = None  # the input window read: (col_off, row_off, width, height)
    output_size: Optional[Tuple[int, ...]] = None  # (width, height)
    scale: Optional[float] = None
    output_pixel_size: Optional[float] = None
    output_bytes: int = 0
    spread_bytes: int = 0
    disk_free: Optional[int] = None
    seconds: float = 0.0  # the call's own time


Event = Union[Plan, Progress, RunWarning, Done, Failure, Cancelled, Serving, TileActivity, QuickPlan]
EVENT_NAMES: Dict[Type[Any], str] = {
    Plan: "plan", Progress: "progress", RunWarning: "warning", Done: "done", Failure: "error", Cancelled: "cancelled",
    Serving: "serving", TileActivity: "tiles", QuickPlan: "quick_plan",
}
_EVENT_TYPES = {name: kind for kind, name in EVENT_NAMES.items()}


def event_line(event: Event) -> str:
    """The JSON line of an event, as the engine prints it on stdout."""
    fields = dataclasses.asdict(event)
    return json.dumps({"event": EVENT_NAMES[type(event)], **{k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in fields.items()}})


_OPTIONAL = {Optional[float]: float, Optional[int]: int, Optional[bool]: bool, Optional[Tuple[int, ...]]: Tuple[int, ...],
             Optional[ModelSummary]: ModelSummary}


def _convert(kind: Any, value: Any) -> Any:
    if kind in _OPTIONAL:
        return None if value is None else _convert(_OPTIONAL[kind], value)
    if kind in (int, float, str):
        return kind(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if kind in (Tuple[str, ...], Tuple[int, ...]):
        if not isinstance(value, list):
            raise TypeError("expected a list")
        return tuple((str if kind == Tuple[str, ...] else int)(v) for v in value)
    if kind == Dict[str, str]:
        if not isinstance(value, dict):
            raise TypeError("expected an object")
        return {str(k): str(v) for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise TypeError("expected an object")
        return _build(kind, value)
    raise TypeError(f"no converter for {kind}")


def _build(kind: Any, data: Dict[str, Any]) -> Any:
    """A dataclass of `kind` from a JSON object's fields (TypeError where one is missing or of the wrong type)."""
    values = {}
    for f in dataclasses.fields(kind):
        if f.name in data:
            values[f.name] = _convert(f.type, data[f.name])
        elif f.default is dataclasses.MISSING:
            raise TypeError(f"missing field {f.name}")
    return kind(**values)


def parse_event(line: str) -> Optional[Event]:
    """Turn one stdout line into an event; None for anything that is not a well-formed protocol line.

    Libraries inside the engine may print to stdout; such lines must not break a run, so they
    are ignored rather than treated as errors.
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    kind = _EVENT_TYPES.get(data.get("event")) if isinstance(data, dict) else None
    if kind is None:
        return None
    try:
        return _build(kind, data)
    except (TypeError, ValueError, OverflowError):
        return None


def dask_address_problem(address: str) -> Optional[str]:
    """Why `address` is not a --dask value (local:N, a scheduler address such as tcp://10.0.0.5:8786, or a scheduler
    file ending in .json); None if it is."""
    text = address.strip()
    if text.startswith(LOCAL_CLUSTER_PREFIX):
        count = text[len(LOCAL_CLUSTER_PREFIX):]
        if not count.isdigit() or not 1 <= int(count) <= MAX_LOCAL_WORKERS:
            return f"--dask {address}: local:N needs N between 1 and {MAX_LOCAL_WORKERS} worker processes, e.g. local:2"
        return None
    if not text or any(c.isspace() for c in text):
        return f"--dask {address!r}: give a scheduler address such as tcp://10.0.0.5:8786, or local:N"
    return None


def format_bytes(count: float) -> str:
    """A size in human units (B, KB, MB, GB, TB; powers of 1024), for plans and disk-space messages."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024 or not math.isfinite(size):
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
