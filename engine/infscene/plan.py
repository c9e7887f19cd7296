"""Planning one super-resolution run: every check that can be made before any work, and every decision.

`plan_run` checks the file, the outputs, the extent, the bands, the scale, the patch size, the steps,
the devices and the disks, and decides the whole run: the family's share (registry -> ModelFamily.plan:
state grid, reverse steps, finishing work, canvas bytes), the devices, the backend (those devices or a Dask
cluster), the checkpoint and, with --resume, the position the run goes on from. The returned SRPlan is what
run.py carries out and what the CLI's `plan` event reports, so nothing is decided twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from . import __version__
from .checksums import file_sha256
from .diffusion.canvas import DEFAULT_MEMMAP_ABOVE_BYTES
from .diffusion.fusion import FusionMode
from .diffusion.grid import PatchGrid
from .diffusion.schedule import ReverseStep
from .errors import InfSceneError
from .execution.backend import Backend, DaskBackend, LocalBackend, plan_backend
from .execution.checkpoint import Position, check_checkpoint, checkpoint_folder
from .execution.determinism import one_thread_per_call
from .execution.devices import resolve_devices
from .modelformat.contract import ModelContract
from .models.family import FamilyPlan, ModelFamily, Region, SceneRequest
from .modelformat.files import DEFAULT_MODEL_DIR, WEIGHTS_FILE
from .models.precision import resolve_precision
from .models.registry import check_model, family_of, load_model, model_notes
from .protocol import PROTOCOL_VERSION, Plan, dask_address_problem
from .raster.anchor import Anchor, anchor_window, unanchored
from .raster.atomic import check_free_space, check_output_path, refuse_overwriting_input, same_file
from .raster.geometry import plan_geometry
from .raster.io import BandLayout, local_file_of, open_raster, profile_bytes, written_bytes
from .raster.window_input import FileIdentity
from .sr_options import OPTION, RUN, options_in

SMALL_PATCH_FRACTION = 4  # patches under a quarter of the model's training size: warned as slow
TIMING_BATCH = 4  # patches per timed call: enough to amortise overheads, bounded whatever --batch-size says


def _default(name: str) -> Any:
    """An SROptions field's default: the option table's (sr_options.OPTIONS), where the plugin reads it too."""
    return field(default=OPTION[name].default)


@dataclass
class SROptions:
    """Everything a user can choose about a run; None means the model's or the engine's default.

    Each field but `memmap_above_bytes` is a RUN option of the table in sr_options.py, which holds its default,
    range, help and flag (a test keeps the two in step); `_check_options` checks the ranges the table gives.
    """

    scale: Optional[float] = _default("scale")
    target_res: Optional[float] = _default("target_res")
    bounds: Optional[Sequence[float]] = _default("bounds")
    bands: Optional[Sequence[int]] = _default("bands")
    steps: Optional[int] = _default("steps")  # the family's default
    patch: Optional[int] = _default("patch")
    overlap: Optional[int] = _default("overlap")
    mode: FusionMode = FusionMode(OPTION["mode"].default)
    seed: int = _default("seed")
    device: str = _default("device")
    batch_size: int = _default("batch_size")
    lr_consistency: bool = _default("lr_consistency")
    model_dir: Optional[Path] = _default("model_dir")
    work_dir: Optional[Path] = _default("work_dir")
    memmap_above_bytes: int = DEFAULT_MEMMAP_ABOVE_BYTES
    detail: Optional[float] = _default("detail")  # e2diffsr: 0 faithful .. 1 detailed; None: the model's default
    precision: str = _default("precision")  # fp32, bf16 (autocast), or auto (models/precision.py)
    samples: int = _default("samples")  # seeds seed..seed+samples-1; with more than one, the spread is written too
    spread_path: Optional[Path] = _default("spread_path")  # None: OUTPUT_spread.tif
    resume: bool = _default("resume")  # continue the interrupted run of this output from its checkpoint
    restart: bool = _default("restart")  # discard such a checkpoint and start over
    checkpoint: bool = _default("checkpoint")  # keep the last finished step on disk until the output is written
    dask: Optional[str] = _default("dask")  # a Dask scheduler, or local:N worker processes (scaleout.py)
    threads_per_worker: int = _default("threads_per_worker")  # threads of each local:N worker
    margin: Optional[int] = _default("margin")  # input pixels of context around the extent; None: default_margin
    self_ensemble: bool = _default("self_ensemble")  # e2diffsr at detail 0: the mean of 8 decodes under flips and rotations

    def __post_init__(self) -> None:
        """A mode named as the table and the command line name it ("vcf") is that FusionMode; any other value is
        left for _check_options to refuse by name."""
        if isinstance(self.mode, str) and self.mode in OPTION["mode"].values:
            self.mode = FusionMode(self.mode)


@dataclass(frozen=True)
class SRPlan:
    """A whole run, decided before any work: what `run.run_plan` carries out and the `plan` event reports."""

    input_path: str  # GDAL's name of the input, as given: a /vsi path is no file system path (never Path()-normalised)
    output_path: Optional[Path]  # None: a plan that only sizes the run
    options: SROptions
    config: ModelContract
    family: str
    layout: BandLayout
    extent: Window  # the input pixels whose output is written
    anchor: Anchor  # the context sampled around them: anchor.context is what the run reads
    height: int  # the output: the extent's pixels, `scale` times smaller
    width: int
    transform: Affine
    scale: float  # the mean of the two axes' factors: what the model is conditioned on
    family_plan: FamilyPlan  # the family's decisions: state grid and channels, reverse steps, finishing work
    devices: tuple[torch.device, ...]  # this process's: where the estimate times the model, and a local run's lanes
    backend: Backend  # where the model work goes: these devices, or a Dask cluster (execution/backend.py)
    precision: str  # fp32 or bf16, decided from --precision and the devices
    canvas_bytes: int
    canvases_on_disk: bool
    work_dir: Path
    profile: dict = field(repr=False)
    warnings: tuple[str, ...] = ()
    # Set by plan_run with an output (a plan that only sizes the run has none of them):
    model_sha256: str = ""  # of the weights, for the checkpoint and the outputs' tags
    input_identity: Optional[FileIdentity] = None  # the input file as planned: the run checks it has not changed
    checkpoint_dir: Optional[Path] = None  # where the run keeps its checkpoint (its key: run_fingerprint)
    resume_at: Optional[Position] = None  # --resume: the checkpoint's position, found by plan_run (None: from the start)

    @property
    def window(self) -> Window:
        """The input pixels the run reads and samples: the extent with its context margin (raster/anchor.py)."""
        return self.anchor.context

    @property
    def context_size(self) -> tuple[int, int]:
        """(rows, cols) of the context's output: the canvas the step loop and the finishing step fill."""
        return context_output(self.anchor.context, self.extent, (self.height, self.width))

    @property
    def kept(self) -> Region:
        """The output pixels written, in the context's output (what the finishing step must make)."""
        return kept_region(self.anchor, (self.height, self.width))

    @property
    def model_family(self) -> ModelFamily:
        return family_of(self.config)

    @property
    def grid(self) -> PatchGrid:
        """The state's grid: output pixels, or a family's latent pixels."""
        return self.family_plan.grid

    @property
    def reverse_steps(self) -> tuple[ReverseStep, ...]:
        return self.family_plan.reverse_steps

    @property
    def finishing_units(self) -> int:
        """The family's finishing units per sample (decode tiles; 0 where the sampled state is the output)."""
        return self.family_plan.finishing_units

    @property
    def steps(self) -> int:
        return len(self.reverse_steps)

    @property
    def total_work(self) -> int:
        """Patch-steps (one model evaluation of one patch) and finishing units (decode tiles), over every sample."""
        return self.options.samples * (len(self.grid) * self.steps + self.finishing_units)

    @property
    def state_channels(self) -> int:
        """Channels of the state the step loop denoises."""
        return self.family_plan.state_channels

    @property
    def work_per_sample(self) -> int:
        return len(self.grid) * self.steps + self.finishing_units

    @property
    def checkpoint_bytes(self) -> int:
        """Disk the checkpoint takes: two states (and, with --samples, five output-grid canvases), and with Dask
        also the condition, the LR, the per-patch slots and the result that the workers share."""
        state = 4 * self.state_channels * self.grid.height * self.grid.width
        out = 4 * 3 * self.grid.height * self.grid.width * self.cond_factor**2
        total = 2 * state + (5 * out if self.options.samples > 1 else 0)
        if isinstance(self.backend, DaskBackend):
            slots = 4 * self.state_channels * self.grid.patch**2 * len(self.grid)
            total += 2 * out + slots + 4 * 3 * self.window.height * self.window.width
        return total

    @property
    def cond_factor(self) -> int:
        """Output pixels per state pixel: the condition and result canvases are the grid times this."""
        return self.family_plan.cond_factor

    @property
    def spread_path(self) -> Optional[Path]:
        return spread_path_for(self.options, self.output_path)

    @property
    def output_bytes(self) -> int:
        return profile_bytes(self.profile)

    @property
    def resume_steps_done(self) -> int:
        """Reverse steps already done in the sample a resumed run goes on in (0 when it starts afresh)."""
        if self.resume_at is None:
            return 0
        return self.resume_at.steps_done(self.steps, self.options.mode is FusionMode.INDEPENDENT)

    def event(self, estimated_s: Optional[float] = None) -> Plan:
        """The protocol's `plan` event for this plan."""
        return Plan(output_width=self.width, output_height=self.height, patches=len(self.grid), steps=self.steps,
                    total=self.total_work, output_bytes=self.output_bytes, canvas_bytes=self.canvas_bytes,
                    estimated_s=None if estimated_s is None else round(estimated_s, 1), protocol=PROTOCOL_VERSION,
                    backend=self.backend.describe(), workers=self.backend.workers or 0,
                    resume_sample=0 if self.resume_at is None else self.resume_at.samples_done + 1,
                    resume_steps_done=self.resume_steps_done)


def _check_options(options: SROptions) -> None:
    """The choices that are wrong whatever the raster and the model: the table's ranges and choices, and the
    combinations it cannot say."""
    for option in options_in(RUN):
        problem = option.problem(getattr(options, option.name))
        if problem is not None:
            raise InfSceneError(problem)
    if options.resume and options.restart:
        raise InfSceneError("--resume continues a checkpoint and --restart discards it: give one of them")
    if options.resume and not options.checkpoint:
        raise InfSceneError("--resume continues from a checkpoint: it cannot go with --no-checkpoint")
    if options.dask is not None and dask_address_problem(options.dask):
        raise InfSceneError(dask_address_problem(options.dask))
    if not isinstance(options.memmap_above_bytes, int) or options.memmap_above_bytes < 0:
        raise InfSceneError(f"memmap_above_bytes must be a whole number of bytes, 0 or more, got {options.memmap_above_bytes!r}")


def _check_family_options(options: SROptions, family: str) -> None:
    """An option that only one family takes (the table's `family`), given to a model of another: one line naming it."""
    for option in options_in(RUN):
        given = getattr(options, option.name) != option.default
        problem = option.family_problem(family) if option.family and given else None
        if problem is not None:
            raise InfSceneError(problem)


def _patch_geometry(options: SROptions, config: ModelContract, notes: list[str]) -> tuple[int, int]:
    patch = options.patch or config.patch_size
    if patch < config.size_multiple or patch % config.size_multiple:
        raise InfSceneError(f"patch size must be a multiple of {config.size_multiple}, got {patch}")
    if patch * SMALL_PATCH_FRACTION < config.patch_size:
        notes.append(f"patches of {patch} px are far smaller than the model's {config.patch_size} px: "
                     "many more model calls (slow) and less context per patch")
    if options.mode is FusionMode.INDEPENDENT:
        return patch, 0
    overlap = patch // 4 if options.overlap is None else options.overlap
    if not 0 < overlap <= patch // 2:
        raise InfSceneError(f"overlap must be between 1 and half the patch ({patch // 2}) for {options.mode.value}, got {overlap}")
    if overlap % config.size_multiple:
        raise InfSceneError(f"overlap must be a multiple of {config.size_multiple} for this model, got {overlap}")
    return patch, overlap


def make_plan(ds: rasterio.DatasetReader, output_path: Optional[Path], options: SROptions, config: ModelContract) -> SRPlan:
    """Validate the options against the raster and the model; decide the run."""
    _check_options(options)
    _check_family_options(options, config.family)
    if config.channels != 3:
        raise InfSceneError(f"the model expects {config.channels} bands; this engine drives RGB models")
    geometry = plan_geometry(ds, options.bounds, options.bands, options.scale, options.target_res, config)
    if output_path is not None:  # an output that cannot fit is refused before the grid and its tiles are planned
        check_free_space([(output_path.parent, written_bytes(geometry.profile, options.samples > 1))])
    notes = list(geometry.notes)
    layout, extent, transform = geometry.layout, geometry.window, geometry.transform
    height, width = geometry.height, geometry.width
    patch, overlap = _patch_geometry(options, config, notes)
    anchor = _anchor(ds, extent, (height, width), patch, overlap, options.margin, notes)
    window = anchor.context
    request = SceneRequest(options.steps, options.mode, options.detail, (int(window.height), int(window.width)),
                           context_output(window, extent, (height, width)), patch, overlap, anchor.key_origin,
                           kept_region(anchor, (height, width)), options.self_ensemble)
    family_plan = family_of(config).plan(config, request)
    grid, factor = family_plan.grid, family_plan.cond_factor
    spread_bands = 2 * 3 if options.samples > 1 else 0  # the running mean and squares of --samples, on the output grid
    canvas_bytes = (family_plan.canvas_bytes + 4 * spread_bands * grid.height * grid.width * factor**2
                    + 4 * 3 * int(window.height) * int(window.width))  # the visible bands of the window, in model units
    work_dir = Path(options.work_dir or (output_path.parent if output_path is not None else "."))
    if not work_dir.is_dir():
        raise InfSceneError(f"work folder does not exist: {work_dir}")
    devices = tuple(resolve_devices(options.device))
    backend = plan_backend(options.dask, options.threads_per_worker, devices)
    return SRPlan(
        input_path=ds.name, output_path=output_path, options=options, config=config, family=config.family,
        layout=layout, extent=extent, anchor=anchor, height=height, width=width, transform=transform, scale=geometry.scale,
        family_plan=family_plan, devices=devices, backend=backend, precision=resolve_precision(options.precision, devices),
        canvas_bytes=canvas_bytes, canvases_on_disk=canvas_bytes > options.memmap_above_bytes, work_dir=work_dir,
        profile=geometry.profile, warnings=tuple(notes),
    )


def context_output(context: Window, extent: Window, out_size: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) of the context's output at the extent's scale (an integer scale wherever they differ: exact)."""
    return (round(context.height * out_size[0] / extent.height), round(context.width * out_size[1] / extent.width))


def kept_region(anchor: Anchor, out_size: tuple[int, int]) -> Region:
    """The output pixels a run writes, as rows and columns of its context's output."""
    (top, left), (height, width) = anchor.crop, out_size
    return (top, top + height), (left, left + width)


def default_margin(patch: int, height: int, extent: Window) -> int:
    """Input pixels of context on each side when --margin is not given: one patch's side, in input pixels."""
    return -(-patch * int(extent.height) // height)


def _anchor(ds: rasterio.DatasetReader, extent: Window, out_size: tuple[int, int], patch: int, overlap: int,
            margin: Optional[int], notes: list[str]) -> Anchor:
    """The extent's map-anchored context (raster/anchor.py), or the extent alone at a non-integer scale."""
    margin = default_margin(patch, out_size[0], extent) if margin is None else margin
    anchor = anchor_window((ds.height, ds.width), extent, out_size, patch - overlap, margin)
    if anchor is not None:
        return anchor
    notes.append(f"scale {out_size[1] / extent.width:.4g} x {out_size[0] / extent.height:.4g} is not a whole number: the run "
                 "keeps its own patch grid, so a run of a neighbouring extent will not join it without a seam (use an "
                 "integer --scale, or a --target-res that divides the input's pixel size)")
    return unanchored(extent)


def plan_run(input_path: str | Path, options: SROptions, output_path: Optional[str | Path] = None) -> SRPlan:
    """Check the input, the options, the output path and the disks; return the run's plan. Writes nothing.

    Without `output_path` the plan only sizes the run (its output checks are left out and it
    cannot be carried out).
    """
    _check_options(options)  # before any value is used: a value of the wrong type is one line naming its option
    out = None
    if output_path is not None:
        spread = spread_path_for(options, Path(output_path))
        refuse_overwriting_input(input_path, {"output": output_path, "spread": spread})
        if spread is not None and same_file(spread, output_path):
            raise InfSceneError(f"the spread raster would overwrite the output: {spread}")
        out = check_output_path(output_path)
        if spread is not None:
            check_output_path(spread)
    config = check_model(options.model_dir)
    with open_raster(input_path) as ds:
        local = local_file_of(ds.name)  # None for a remote input: known by its name alone
        identity = FileIdentity.of(local) if out is not None and local is not None else None  # before any pixel is read
        plan = make_plan(ds, out, options, config)
    plan = replace(plan, warnings=plan.warnings + model_notes(options.model_dir))  # a model its card cannot vouch for
    if out is None:
        return plan
    plan = replace(plan, model_sha256=model_checksum(options.model_dir), input_identity=identity)
    fingerprint = run_fingerprint(plan)
    folder = checkpoint_folder(plan.work_dir, fingerprint)
    plan = replace(plan, checkpoint_dir=folder)
    if options.checkpoint:
        plan = replace(plan, resume_at=check_checkpoint(folder, fingerprint, options.resume, options.restart))
        local_canvases = plan.canvases_on_disk and isinstance(plan.backend, LocalBackend)
        work_bytes = plan.checkpoint_bytes + (plan.canvas_bytes if local_canvases else 0)
        outputs_bytes = written_bytes(plan.profile, plan.spread_path is not None)
        check_free_space([(out.parent, outputs_bytes), (plan.work_dir, work_bytes)])
    return plan


def spread_path_for(options: SROptions, output_path: Optional[Path]) -> Optional[Path]:
    """Where the per-pixel spread of several samples goes: --spread, else OUTPUT_spread.tif; None for one sample."""
    if options.samples <= 1 or output_path is None:
        return None
    return Path(options.spread_path) if options.spread_path else output_path.with_name(f"{output_path.stem}_spread.tif")


def model_checksum(model_dir: Optional[Path]) -> str:
    """sha256 of the model's weights, so an output names exactly the model that made it."""
    return file_sha256(Path(model_dir or DEFAULT_MODEL_DIR) / WEIGHTS_FILE)


def estimate_seconds(plan: SRPlan) -> float:
    """The run's wall time, from timing the family's model calls on the first device, allocating little whatever
    --batch-size and --patch say (ModelFamily.unit_seconds): divided by the number of devices the work is spread over."""
    model = load_model(plan.options.model_dir, plan.devices[0])
    batch = min(plan.options.batch_size, len(plan.grid), TIMING_BATCH)
    with one_thread_per_call():  # as the run makes its calls: one thread each, the lanes side by side
        per_patch, per_unit = plan.model_family.unit_seconds(model, plan.family_plan, plan.scale, batch, plan.precision)
    per_sample = per_patch * len(plan.grid) * plan.steps + per_unit * plan.finishing_units
    return plan.options.samples * per_sample / len(plan.devices)


def run_fingerprint(plan: SRPlan) -> dict[str, object]:
    """What makes a run what it is: the output it writes and what makes that output's pixels. A checkpoint is kept
    under this fingerprint's key (execution/checkpoint.py) and resumed only by a run with the same fingerprint."""
    if plan.output_path is None:
        raise ValueError("a plan made without an output path is no run to fingerprint; pass one to plan_run")
    o, w, identity = plan.options, plan.window, plan.input_identity
    return {
        "engine": __version__, "output_path": str(plan.output_path.resolve()), "model_sha256": plan.model_sha256,
        "family": plan.family, "input": str(identity.path.resolve()) if identity else plan.input_path,
        "input_member": plan.input_path, "input_bytes": identity and identity.size,
        "input_mtime_ns": identity and identity.mtime_ns,
        "window": [int(w.col_off), int(w.row_off), int(w.width), int(w.height)], "crop": list(plan.anchor.crop),
        "key_origin": list(plan.anchor.key_origin),
        "bands": [*plan.layout.visible, *plan.layout.extra], "output": [plan.height, plan.width], "scale": repr(plan.scale),
        "grid": [plan.grid.height, plan.grid.width, plan.grid.patch, plan.grid.overlap], "steps": plan.steps,
        "mode": o.mode.value, "seed": o.seed, "samples": o.samples, "batch_size": o.batch_size,
        "lr_consistency": o.lr_consistency, "detail": plan.family_plan.detail, "precision": plan.precision,
        "self_ensemble": plan.family_plan.self_ensemble,
    }


