"""One super-resolution run: input window -> patch grid -> step loop -> canvas -> GeoTIFF.

`plan_run` checks everything that can be checked before any work (file, outputs, extent, bands,
scale, patch size, steps, devices, disk space) and decides the whole run: the returned SRPlan is
what `run_plan` carries out, and what the CLI's `plan` event reports, so nothing is decided twice.
`super_resolve` is the two in one call. The model-specific part of a run (building the denoisers
and running the step loop) is `_sample`, the one function a second model family replaces. The
output appears at its path only when complete and verified.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from contextlib import ExitStack, contextmanager
from functools import partial
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from . import __version__
from .raster.atomic import atomic_output, check_free_space, check_output_path, refuse_overwriting_input, same_file
from .diffusion.canvas import DEFAULT_MEMMAP_ABOVE_BYTES, Canvas, CanvasFactory
from .execution.checkpoint import Checkpoint, Position, check_checkpoint, checkpoint_folder
from .errors import InfSceneError, InfSceneWarning
from .diffusion.fusion import FusionMode
from .diffusion.grid import PatchGrid
from .execution.local import DenoiserSpec, Executor, LocalExecutor
from .diffusion.loop import SamplingJob, StateCheckpoint, sample_canvas
from .models.contract import ModelContract
from .models.e2diffsr import run as e2diffsr_run
from .models.e2diffsr.run import decode_tile_count, latent_grid
from .models.e2diffsr.denoiser import LatentPatchDenoiser
from .models.e2diffsr.network import LATENT_FACTOR, E2DiffSRConfig
from .models.sr3.network import WEIGHTS_FILE, DEFAULT_MODEL_DIR, check_model, load_model, resolve_devices
from .progress import CancelCheck, ProgressCallback, ProgressTracker
from .protocol import (
    MAX_BATCH,
    MAX_PATCH,
    MAX_SAMPLES,
    MAX_STEPS,
    MAX_THREADS_PER_WORKER,
    PROTOCOL_VERSION,
    PROVENANCE_PREFIX,
    Plan,
    dask_address_problem,
)
from .raster.io import (
    BandLayout,
    OutputBlock,
    open_raster,
    output_grid,
    geotiff_profile,
    output_profile,
    resolve_bands,
    resolve_window,
    verified_geotiff,
    write_super_resolved,
)
from .raster.resample import Upsampled, bicubic_window, chunk_windows, covering, nearest_block, nearest_source
from .diffusion.schedule import DEFAULT_STEPS, ReverseStep, respaced_steps
from .raster.scaling import BandScaling
from .execution.store import disk_full_is_an_error
from .raster.window_input import ModelBands, fill_lr, guided_bands, window_statistics
from .raster.workspace import Workspace

# Scene-sized float32 bands alive during the step loop (joint.py): vcf/average keep the state and the next
# state (3 bands each); independent keeps the pasted tiles. The condition is computed where it is read.
CANVAS_BANDS = {FusionMode.VCF: 3 + 3, FusionMode.AVERAGE: 3 + 3, FusionMode.INDEPENDENT: 3}
# e2diffsr keeps the result on the output grid (3 bands) and, on the latent grid, the state and the next
# state (4 bands each) in vcf/average, the pasted tiles in independent.
LATENT_CANVAS_BANDS = {FusionMode.VCF: 4 + 4, FusionMode.AVERAGE: 4 + 4, FusionMode.INDEPENDENT: 4}
OUTPUT_BLOCK_PIXELS = 500_000  # output pixels converted at a time: a block costs about 100 bytes a pixel on its way out
LR_CHUNK = 64  # the low-resolution window is read in small windows (the LR under a patch or a decode tile)
SMALL_PATCH_FRACTION = 4  # patches under a quarter of the model's training size: warned as slow


@dataclass
class SROptions:
    """Everything a user can choose about a run; None means the model's or the engine's default."""

    scale: Optional[float] = None
    target_res: Optional[float] = None
    bounds: Optional[Sequence[float]] = None
    bands: Optional[Sequence[int]] = None
    steps: Optional[int] = None  # the family's default: SR3 50 respaced steps, e2diffsr its T = 4
    patch: Optional[int] = None
    overlap: Optional[int] = None
    mode: FusionMode = FusionMode.VCF
    seed: int = 0
    device: str = "auto"
    batch_size: int = 4
    lr_consistency: bool = True
    model_dir: Optional[Path] = None
    work_dir: Optional[Path] = None
    memmap_above_bytes: int = DEFAULT_MEMMAP_ABOVE_BYTES
    regression_only: bool = False  # e2diffsr: decode without the diffusion prior (the regression branch alone)
    samples: int = 1  # seeds seed..seed+samples-1; with more than one, the per-pixel spread is written too
    spread_path: Optional[Path] = None  # where the spread goes (default: OUTPUT_spread.tif)
    resume: bool = False  # continue the interrupted run of this output from its checkpoint (checkpoint.py)
    restart: bool = False  # discard such a checkpoint and start over
    checkpoint: bool = True  # keep the state of the last finished step on disk until the output is written
    dask: Optional[str] = None  # run the model work on this Dask scheduler, or on local:N worker processes (scaleout.py)
    threads_per_worker: int = 1  # threads of each local:N worker (and of each of its model calls)


@dataclass(frozen=True)
class SRPlan:
    """A whole run, decided before any work: what `run_plan` carries out and the `plan` event reports."""

    input_path: Path
    output_path: Optional[Path]  # None: a plan that only sizes the run
    options: SROptions
    config: ModelContract
    family: str
    layout: BandLayout
    window: Window
    height: int
    width: int
    transform: Affine
    scale: float  # the mean of the two axes' factors: what the model is conditioned on
    grid: PatchGrid  # the state's grid: output pixels for SR3, latent pixels (1/8) for e2diffsr
    reverse_steps: tuple[ReverseStep, ...]
    decode_tiles: int  # e2diffsr's decoding passes per sample (0 for SR3)
    devices: tuple[torch.device, ...]
    canvas_bytes: int
    canvases_on_disk: bool
    work_dir: Path
    checkpoint_dir: Optional[Path]  # where the run keeps its checkpoint (None: a plan that only sizes the run)
    profile: dict = field(repr=False)
    warnings: tuple[str, ...] = ()
    model_sha256: str = ""  # of the weights, for the checkpoint and the outputs' tags (set by plan_run with an output)

    @property
    def steps(self) -> int:
        return len(self.reverse_steps)

    @property
    def total_work(self) -> int:
        """Patch-steps (one model evaluation of one patch) and decode tiles, over every sample."""
        return self.options.samples * (len(self.grid) * self.steps + self.decode_tiles)

    @property
    def state_channels(self) -> int:
        """Channels of the state the step loop denoises: the latent's for e2diffsr, the pixels' for SR3."""
        return getattr(self.config, "latent_channels", self.config.channels)

    @property
    def work_per_sample(self) -> int:
        return len(self.grid) * self.steps + self.decode_tiles

    @property
    def checkpoint_bytes(self) -> int:
        """Disk the checkpoint takes: two states (and, with --samples, five output-grid canvases), and with Dask
        also the condition, the LR, the per-patch slots and the result that the workers share."""
        state = 4 * self.state_channels * self.grid.height * self.grid.width
        out = 4 * 3 * self.grid.height * self.grid.width * self.canvas_factor**2
        total = 2 * state + (5 * out if self.options.samples > 1 else 0)
        if self.options.dask:
            slots = 4 * self.state_channels * self.grid.patch**2 * len(self.grid)
            total += 2 * out + slots + 4 * 3 * self.window.height * self.window.width
        return total

    @property
    def canvas_factor(self) -> int:
        """Output pixels per state pixel: the condition and result canvases are the grid times this."""
        return LATENT_FACTOR if self.family == "e2diffsr" else 1

    @property
    def spread_path(self) -> Optional[Path]:
        return spread_path_for(self.options, self.output_path)

    @property
    def output_bytes(self) -> int:
        return self.height * self.width * self.profile["count"] * np.dtype(self.profile["dtype"]).itemsize

    def event(self, estimated_s: Optional[float] = None) -> Plan:
        """The protocol's `plan` event for this plan."""
        return Plan(output_width=self.width, output_height=self.height, patches=len(self.grid), steps=self.steps,
                    total=self.total_work, output_bytes=self.output_bytes, canvas_bytes=self.canvas_bytes,
                    estimated_s=None if estimated_s is None else round(estimated_s, 1), protocol=PROTOCOL_VERSION)


def _check_options(options: SROptions) -> None:
    """The choices that are wrong whatever the raster and the model."""
    if options.steps is not None and not 1 <= options.steps <= MAX_STEPS:
        raise InfSceneError(f"steps must be between 1 and {MAX_STEPS}, got {options.steps}")
    if not 1 <= options.samples <= MAX_SAMPLES:
        raise InfSceneError(f"samples must be between 1 and {MAX_SAMPLES}, got {options.samples}")
    if options.seed < 0:
        raise InfSceneError(f"seed must be 0 or more, got {options.seed}")
    if not 1 <= options.batch_size <= MAX_BATCH:
        raise InfSceneError(f"batch size must be between 1 and {MAX_BATCH} patches, got {options.batch_size}")
    if options.patch is not None and not 1 <= options.patch <= MAX_PATCH:
        raise InfSceneError(f"patch size must be between 1 and {MAX_PATCH} output pixels, got {options.patch}")
    if options.resume and options.restart:
        raise InfSceneError("--resume continues a checkpoint and --restart discards it: give one of them")
    if options.resume and not options.checkpoint:
        raise InfSceneError("--resume continues from a checkpoint: it cannot go with --no-checkpoint")
    if not 1 <= options.threads_per_worker <= MAX_THREADS_PER_WORKER:
        raise InfSceneError(f"threads per worker must be between 1 and {MAX_THREADS_PER_WORKER}, got {options.threads_per_worker}")
    if options.dask is not None and dask_address_problem(options.dask):
        raise InfSceneError(dask_address_problem(options.dask))


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


def _family_run(options: SROptions, config: ModelContract, window: Window, height: int, width: int,
                patch: int, overlap: int) -> tuple[PatchGrid, tuple[ReverseStep, ...], int, int]:
    """What the family decides: (state grid, reverse steps, decode tiles per sample, canvas bytes)."""
    spread_bands = 2 * 3 if options.samples > 1 else 0  # the running mean and squares of --samples
    if isinstance(config, E2DiffSRConfig):
        if options.steps is not None and options.steps > config.diffusion_steps:
            raise InfSceneError(f"this e2diffsr model runs at most its T = {config.diffusion_steps} steps, got --steps {options.steps}")
        grid = latent_grid(height, width, patch, overlap)
        steps = () if options.regression_only else tuple(respaced_steps(options.steps or config.diffusion_steps, config.gammas()))
        tiles = decode_tile_count(config, (window.height, window.width), (height, width), grid)
        out_px = grid.height * grid.width * LATENT_FACTOR**2
        state_bands = 0 if options.regression_only else LATENT_CANVAS_BANDS[options.mode]
        return grid, steps, tiles, 4 * (out_px * (3 + spread_bands) + grid.height * grid.width * state_bands)
    if options.regression_only:
        raise InfSceneError("--regression-only is for e2diffsr models, which have a regression branch; this model is SR3")
    grid = PatchGrid(max(height, patch), max(width, patch), patch, overlap)
    return grid, tuple(respaced_steps(options.steps or DEFAULT_STEPS)), 0, 4 * grid.height * grid.width * (CANVAS_BANDS[options.mode] + spread_bands)


def _scale_notes(ds: rasterio.DatasetReader, window: Window, height: int, width: int, scale: float,
                 config: ModelContract, notes: list[str]) -> None:
    if ds.crs is None and ds.transform.is_identity:
        notes.append(f"{Path(ds.name).name} has no georeference (no CRS, no geotransform): the output has none either")
    if height == window.height or width == window.width:
        notes.append(f"scale {scale:.4g} adds no pixel on at least one axis ({window.width}x{window.height} -> "
                     f"{width}x{height}): the output keeps the input's pixel size there")
    if not config.scale_min <= scale <= config.scale_max:
        notes.append(f"scale {scale:.3g} is outside the range the model was trained on "
                     f"({config.scale_min:g}-{config.scale_max:g}): expect weaker detail")


def make_plan(ds: rasterio.DatasetReader, output_path: Optional[Path], options: SROptions, config: ModelContract) -> SRPlan:
    """Validate the options against the raster and the model; decide the run."""
    _check_options(options)
    if config.channels != 3:
        raise InfSceneError(f"the model expects {config.channels} bands; this engine drives RGB models")
    notes: list[str] = []
    layout = resolve_bands(ds, options.bands)
    window = resolve_window(ds, options.bounds, notes)
    height, width, transform = output_grid(ds, window, options.scale, options.target_res)
    scale = (width / window.width + height / window.height) / 2.0
    _scale_notes(ds, window, height, width, scale, config, notes)
    patch, overlap = _patch_geometry(options, config, notes)
    grid, reverse_steps, decode_tiles, canvas_bytes = _family_run(options, config, window, height, width, patch, overlap)
    canvas_bytes += 4 * 3 * int(window.height) * int(window.width)  # the visible bands of the window, in model units
    work_dir = Path(options.work_dir or (output_path.parent if output_path is not None else "."))
    if not work_dir.is_dir():
        raise InfSceneError(f"work folder does not exist: {work_dir}")
    profile = output_profile(ds, layout, height, width, transform)
    checkpoint_dir = checkpoint_folder(output_path, work_dir) if output_path is not None else None
    return SRPlan(
        input_path=Path(ds.name), output_path=output_path, options=options, config=config, family=config.family,
        layout=layout, window=window, height=height, width=width, transform=transform, scale=scale, grid=grid,
        reverse_steps=reverse_steps, decode_tiles=decode_tiles, devices=tuple(resolve_devices(options.device)),
        canvas_bytes=canvas_bytes, canvases_on_disk=canvas_bytes > options.memmap_above_bytes, work_dir=work_dir,
        checkpoint_dir=checkpoint_dir, profile=profile, warnings=tuple(notes),
    )


def plan_run(input_path: str | Path, options: SROptions, output_path: Optional[str | Path] = None) -> SRPlan:
    """Check the input, the options, the output path and the disks; return the run's plan. Writes nothing.

    Without `output_path` the plan only sizes the run (its output checks are left out and it
    cannot be carried out).
    """
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
        plan = make_plan(ds, out, options, config)
    if out is not None and plan.checkpoint_dir is not None:
        plan = replace(plan, model_sha256=model_checksum(options.model_dir))
    if out is not None and plan.checkpoint_dir is not None and options.checkpoint:
        check_checkpoint(plan.checkpoint_dir, run_fingerprint(plan), options.resume, options.restart)
        spread_bytes = plan.height * plan.width * 4 if plan.spread_path is not None else 0
        work_bytes = plan.checkpoint_bytes + (plan.canvas_bytes if plan.canvases_on_disk and not options.dask else 0)
        check_free_space([(out.parent, plan.output_bytes + spread_bytes), (plan.work_dir, work_bytes)])
    return plan


def spread_path_for(options: SROptions, output_path: Optional[Path]) -> Optional[Path]:
    """Where the per-pixel spread of several samples goes: --spread, else OUTPUT_spread.tif; None for one sample."""
    if options.samples <= 1 or output_path is None:
        return None
    return Path(options.spread_path) if options.spread_path else output_path.with_name(f"{output_path.stem}_spread.tif")


def _output_blocks(plan: SRPlan, result: Canvas, cond: Upsampled, visible: ModelBands, extra: Optional[ModelBands],
                   scaling: BandScaling) -> Iterator[OutputBlock]:
    """The output in windows that read the result's chunks once: super-resolved visible bands and guided extra bands
    in input units, with the input's validity and alpha enlarged; the input is read again under each window, never
    whole."""
    guided = guided_bands(visible, extra) if extra is not None else None
    in_h, in_w = visible.shape[1:]
    for rows, cols in chunk_windows(plan.height, plan.width, result.chunk, OUTPUT_BLOCK_PIXELS):
        visible_sr = result.data[:, rows, cols]
        bands = [visible_sr]
        if guided is not None and extra is not None:
            extra_up = bicubic_window(extra, plan.height, plan.width, rows, cols)
            bands.append(guided.apply(extra_up, visible_sr, cond.window(rows, cols)))
        under_rows, under_cols = nearest_source(in_h, plan.height, rows), nearest_source(in_w, plan.width, cols)
        _, valid, alpha = visible.read(covering(under_rows), covering(under_cols))
        enlarge = partial(nearest_block, under_rows, under_cols)
        yield OutputBlock(rows, cols, scaling.from_model(np.concatenate(bands)), enlarge(valid),
                          enlarge(alpha) if alpha is not None else None)


def model_checksum(model_dir: Optional[Path]) -> str:
    """sha256 of the model's weights, so an output names exactly the model that made it."""
    digest = hashlib.sha256()
    with open(Path(model_dir or DEFAULT_MODEL_DIR) / WEIGHTS_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance_tags(plan: SRPlan) -> dict[str, str]:
    """Dataset tags that say how the output was made (INFSCENE_*)."""
    o = plan.options
    fields = {
        "VERSION": __version__, "MODEL": plan.config.name, "MODEL_SHA256": plan.model_sha256,
        "FAMILY": plan.family, "MODE": o.mode.value, "STEPS": plan.steps, "SEED": o.seed,
        "SCALE": f"{plan.scale:.6g}", "PATCH": plan.grid.patch, "OVERLAP": plan.grid.overlap,
        "LR_CONSISTENCY": o.lr_consistency, "INPUT": plan.input_path.name,
    }
    return {f"{PROVENANCE_PREFIX}{key}": str(value) for key, value in fields.items()}


TIMING_BATCH = 4  # patches per timed call: enough to amortise overheads, bounded whatever --batch-size says


def _seconds(call: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call, after a warm-up call."""
    call()
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def estimate_seconds(plan: SRPlan) -> float:
    """The run's wall time, from timing the family's model call on the first device, allocating little whatever
    --batch-size and --patch say: a small batch of patches no larger than the model's own, scaled by the patch
    area; for e2diffsr also one decode tile. Divided by the number of devices the work is spread over."""
    model = load_model(plan.options.model_dir, plan.devices[0])
    device = next(model.parameters()).device
    batch = min(plan.options.batch_size, len(plan.grid), TIMING_BATCH)
    if plan.family == "e2diffsr":
        denoiser = LatentPatchDenoiser(model, plan.scale)
        side = plan.grid.patch
        y = torch.zeros((batch, denoiser.state_channels, side, side))
        cond = torch.zeros((batch, plan.config.channels, side * LATENT_FACTOR, side * LATENT_FACTOR))
        per_patch = (_seconds(lambda: denoiser.posterior_mean(y, cond, plan.reverse_steps[0]), device) / batch
                     if plan.reverse_steps else 0.0)
        per_tile = _seconds(e2diffsr_run.typical_tile(model, plan.scale), device) if plan.decode_tiles else 0.0
        per_sample = per_patch * len(plan.grid) * plan.steps + per_tile * plan.decode_tiles
        return plan.options.samples * per_sample / len(plan.devices)
    size = min(plan.grid.patch, plan.config.patch_size)
    x = torch.zeros((batch, plan.config.channels, size, size), device=device)
    level = torch.full((batch,), 0.5, device=device)
    with torch.no_grad():
        per_patch = _seconds(lambda: model(x, x, level, level + 4), device) / batch * (plan.grid.patch / size) ** 2
    return per_patch * plan.total_work / len(plan.devices)


def _sample(plan: SRPlan, executor: Executor, seed: int, visible: np.ndarray, cond: Upsampled, tracker: ProgressTracker,
            checkpoint: StateCheckpoint) -> Canvas:
    """The model-specific part of a run: one seed's output canvas (model units) on the output grid."""
    options = plan.options
    try:
        if plan.family == "e2diffsr":
            return e2diffsr_run.sample_scene(executor, plan.config, visible, (plan.height, plan.width), cond, plan.grid,
                                             list(plan.reverse_steps), options.mode, seed, options.batch_size,
                                             options.regression_only, options.lr_consistency, tracker, checkpoint)
        job = SamplingJob(cond, plan.grid, executor, list(plan.reverse_steps), seed, options.batch_size, tracker,
                          checkpoint=checkpoint)
        return sample_canvas(job, options.mode)
    except torch.OutOfMemoryError as exc:
        raise InfSceneError(
            f"the GPU ran out of memory with {options.batch_size} patches of {plan.grid.patch} px per batch: "
            f"lower --batch-size (or --patch)") from exc


def _sample_with_spread(plan: SRPlan, executor: Executor, visible: np.ndarray, cond: Upsampled, tracker: ProgressTracker,
                        checkpoint: Checkpoint) -> tuple[Canvas, Optional[Canvas]]:
    """The first seed's output and, with several samples, the per-pixel std over them (model units, per band).

    Welford's running mean and sum of squares: two canvases whatever the number of samples; the finished
    samples' canvases go into the checkpoint, so a resumed run goes on from the sample it was in.
    """
    samples, seed = plan.options.samples, plan.options.seed
    if samples == 1:
        return _sample(plan, executor, seed, visible, cond, tracker, checkpoint.for_sample(0)), None
    kept = {name: executor.make_canvas(*cond.shape, name) for name in ("first", "mean", "squares")}
    first, mean, squares = kept.values()
    done = checkpoint.restore_sample(kept)
    tracker.skip(done * plan.work_per_sample)
    for k in range(done, samples):
        sample = _sample(plan, executor, seed + k, visible, cond, tracker, checkpoint.for_sample(k))
        for rows, cols in chunk_windows(*cond.shape[1:], sample.chunk):
            values = sample.data[:, rows, cols]
            if k == 0:
                first.data[:, rows, cols] = values
                mean.data[:, rows, cols] = values
                continue
            delta = values - mean.data[:, rows, cols]
            mean.data[:, rows, cols] += delta / (k + 1)
            squares.data[:, rows, cols] += delta * (values - mean.data[:, rows, cols])
        checkpoint.commit_sample(k + 1, kept)
    for rows, cols in chunk_windows(*cond.shape[1:], squares.chunk):
        squares.data[:, rows, cols] = np.sqrt(squares.data[:, rows, cols] / samples)
    return first, squares


def _write_spread(tmp: Path, plan: SRPlan, spread: Canvas, scaling: BandScaling, tags: dict[str, str]) -> None:
    """One float32 band: the std over the samples, in the input's units, averaged over the visible bands."""
    units = (scaling.high - scaling.low)[:3] / 2.0  # model units -> input units (scaling is linear per band)
    profile = geotiff_profile("float32", 1, plan.height, plan.width, plan.profile["crs"], plan.transform, None)
    with verified_geotiff(tmp, profile, plan.spread_path) as dst:
        dst.set_band_description(1, f"spread over {plan.options.samples} samples (std, input units)")
        dst.update_tags(**tags)
        for rows, cols in chunk_windows(plan.height, plan.width, spread.chunk):
            block = spread.data[:, rows, cols] * units[:, None, None]
            dst.write(block.mean(axis=0).astype(np.float32)[None], window=Window.from_slices(rows, cols))


def run_fingerprint(plan: SRPlan) -> dict[str, object]:
    """What makes a run's output what it is: a checkpoint is resumed only by a run with the same fingerprint."""
    o, w, stat = plan.options, plan.window, plan.input_path.stat()
    return {
        "engine": __version__, "model_sha256": plan.model_sha256, "family": plan.family,
        "input": str(plan.input_path.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
        "window": [int(w.col_off), int(w.row_off), int(w.width), int(w.height)],
        "bands": [*plan.layout.visible, *plan.layout.extra], "output": [plan.height, plan.width], "scale": repr(plan.scale),
        "grid": [plan.grid.height, plan.grid.width, plan.grid.patch, plan.grid.overlap], "steps": plan.steps,
        "mode": o.mode.value, "seed": o.seed, "samples": o.samples, "batch_size": o.batch_size,
        "lr_consistency": o.lr_consistency, "regression_only": o.regression_only,
    }


@contextmanager
def _executor(plan: SRPlan, checkpoint: Checkpoint, workspace: Workspace) -> Iterator[Executor]:
    """Where this run's model work goes: a Dask cluster (--dask), else this process's devices."""
    spec = DenoiserSpec(plan.family, plan.scale, plan.options.lr_consistency)
    if plan.options.dask:
        from .execution.scaleout import DaskExecutor, connect  # imports dask.distributed: only for runs that use it

        with connect(plan.options.dask, plan.options.threads_per_worker) as client:
            yield DaskExecutor(client, checkpoint.store, spec, plan.options.model_dir or DEFAULT_MODEL_DIR,
                               plan.state_channels)
        return
    models = [load_model(plan.options.model_dir, device) for device in plan.devices]  # once, for every sample
    canvases = CanvasFactory(workspace.folder_in(plan.work_dir) if plan.canvases_on_disk else None)
    with LocalExecutor([spec.build(model) for model in models], canvases) as executor:
        yield executor


def _carry_out(plan: SRPlan, ds: rasterio.DatasetReader, workspace: Workspace, checkpoint: Checkpoint,
               tracker: ProgressTracker) -> None:
    """Read, sample, write: the run itself, inside its workspace and with its checkpoint open."""
    bands = (*plan.layout.visible, *plan.layout.extra)
    statistics = window_statistics(ds, plan.window, bands, plan.layout.alpha, np.dtype(plan.profile["dtype"]), plan.config)
    read_bands = partial(ModelBands, ds, plan.window, bands, plan.layout.alpha, statistics)
    visible = read_bands((0, 1, 2))
    extra = read_bands(tuple(range(3, len(bands)))) if plan.layout.extra else None
    with _executor(plan, checkpoint, workspace) as executor:
        lr = executor.make_canvas(3, int(plan.window.height), int(plan.window.width), "lr", chunk=LR_CHUNK)
        fill_lr(visible, lr.data)
        factor = plan.canvas_factor
        cond = Upsampled(lr.data, plan.height, plan.width, plan.grid.height * factor, plan.grid.width * factor)
        result, spread = _sample_with_spread(plan, executor, lr.data, cond, tracker, checkpoint)
        use_mask = ds.nodata is None and plan.layout.alpha is None and not statistics.all_valid
        tags = provenance_tags(plan)
        with ExitStack() as outputs:  # both appear, or neither: renamed only when every write succeeded
            tmp = outputs.enter_context(atomic_output(plan.output_path, workspace))
            if spread is not None:
                _write_spread(outputs.enter_context(atomic_output(plan.spread_path, workspace)), plan, spread,
                              statistics.scaling, tags)
            write_super_resolved(tmp, plan.output_path, ds, plan.layout, plan.profile,
                                 _output_blocks(plan, result, cond, visible, extra, statistics.scaling),
                                 statistics.ranges, use_mask, tags)


def run_plan(plan: SRPlan, progress: Optional[ProgressCallback] = None, is_cancelled: Optional[CancelCheck] = None) -> Path:
    """Carry out a plan from `plan_run`; returns the output path.

    Raises InfSceneError (one-line message) for bad input and Cancelled when `is_cancelled()`
    turns true; in both cases nothing is left at the output path, and the run's temporary folders
    are removed. The checkpoint stays when the run got somewhere (`--resume` goes on from it) and is
    removed once the output is written.
    """
    if plan.output_path is None or plan.checkpoint_dir is None:
        raise ValueError("this plan was made without an output path; pass one to plan_run")
    tracker = ProgressTracker(plan.total_work, progress, is_cancelled)
    tracker.check_cancel()
    with open_raster(plan.input_path) as ds, Workspace() as workspace, disk_full_is_an_error(plan.work_dir):
        workspace.folder_in(plan.output_path.parent)  # the run's folder exists (and is owned) from the start
        if plan.options.checkpoint:
            checkpoint = Checkpoint.open(plan.checkpoint_dir, run_fingerprint(plan), plan.options.resume, plan.options.restart)
        else:
            checkpoint = Checkpoint.scratch(workspace.folder_in(plan.work_dir))
        try:
            _carry_out(plan, ds, workspace, checkpoint, tracker)
        except BaseException:
            if checkpoint.position == Position():
                checkpoint.remove()  # nothing done yet: nothing to resume
            else:
                checkpoint.release()
            raise
        checkpoint.remove()
    return plan.output_path


def super_resolve(
    input_path: str | Path,
    output_path: str | Path,
    options: SROptions,
    progress: Optional[ProgressCallback] = None,
    is_cancelled: Optional[CancelCheck] = None,
) -> Path:
    """Super-resolve `input_path` into a GeoTIFF at `output_path`; returns the output path.

    Plans the run (plan_run; its warnings are issued as InfSceneWarning) and carries it out
    (run_plan). Raises InfSceneError (one-line message) for bad input and Cancelled when
    `is_cancelled()` turns true; in both cases nothing is left at `output_path`.
    """
    plan = plan_run(input_path, options, output_path)
    for message in plan.warnings:
        warnings.warn(message, InfSceneWarning, stacklevel=2)
    return run_plan(plan, progress, is_cancelled)
