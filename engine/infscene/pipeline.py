"""One super-resolution run: input window -> patch grid -> step loop -> canvas -> GeoTIFF.

`plan_run` checks everything that can be checked before any work (file, extent, bands, scale,
patch size, disk space) and says how big the run is; `super_resolve` carries it out. The output
appears at its path only when complete.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from .atomic import atomic_output, check_output_path
from .canvas import DEFAULT_MEMMAP_ABOVE_BYTES, Canvas, canvas_factory
from .errors import InfSceneError
from .fusion import FusionMode
from .grid import PatchGrid
from .guided import GuidedBands
from .joint import SamplingJob, sample_canvas
from .model import ModelConfig, load_config, load_model, resolve_devices
from .progress import CancelCheck, ProgressCallback, ProgressTracker
from .raster_io import (
    BandLayout,
    WindowData,
    copy_band_metadata,
    open_raster,
    output_grid,
    output_profile,
    read_window,
    resolve_bands,
    resolve_window,
)
from .resample import bicubic_rows, nearest_rows, row_blocks
from .sampler import DEFAULT_STEPS, PatchDenoiser, respaced_steps
from .scaling import BandScaling, fill_invalid, fit_scaling
from .workers import DenoiserPool

# Scene-sized float32 maps alive during the step loop: condition, state, next state (3 bands each), W, S.
CANVAS_BANDS = 3 + 3 + 3 + 1 + 1


@dataclass
class SROptions:
    """Everything a user can choose about a run; None means the model's or the engine's default."""

    scale: Optional[float] = None
    target_res: Optional[float] = None
    bounds: Optional[Sequence[float]] = None
    bands: Optional[Sequence[int]] = None
    steps: int = DEFAULT_STEPS
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


@dataclass(frozen=True)
class SRPlan:
    """The size of a run, known before any work is done."""

    window: Window
    layout: BandLayout
    height: int
    width: int
    transform: Affine
    grid: PatchGrid
    steps: int
    profile: dict = field(repr=False)

    @property
    def total_work(self) -> int:
        """Patch-steps: one model evaluation of one patch."""
        return len(self.grid) * self.steps

    @property
    def output_bytes(self) -> int:
        return self.height * self.width * self.profile["count"] * np.dtype(self.profile["dtype"]).itemsize

    @property
    def canvas_bytes(self) -> int:
        return CANVAS_BANDS * self.grid.height * self.grid.width * 4


def _patch_geometry(options: SROptions, config: ModelConfig) -> tuple[int, int]:
    patch = options.patch or config.patch_size
    if patch < config.size_multiple or patch % config.size_multiple:
        raise InfSceneError(f"patch size must be a multiple of {config.size_multiple}, got {patch}")
    if options.mode is FusionMode.INDEPENDENT:
        return patch, 0
    overlap = patch // 4 if options.overlap is None else options.overlap
    if not 0 < overlap <= patch // 2:
        raise InfSceneError(f"overlap must be between 1 and half the patch ({patch // 2}) for {options.mode.value}, got {overlap}")
    return patch, overlap


def make_plan(ds: rasterio.DatasetReader, options: SROptions, config: ModelConfig) -> SRPlan:
    """Validate the options against the raster and the model; size the run."""
    if options.steps < 1:
        raise InfSceneError(f"steps must be at least 1, got {options.steps}")
    layout = resolve_bands(ds, options.bands)
    window = resolve_window(ds, options.bounds)
    height, width, transform = output_grid(ds, window, options.scale, options.target_res)
    patch, overlap = _patch_geometry(options, config)
    grid = PatchGrid(max(height, patch), max(width, patch), patch, overlap)
    steps = len(respaced_steps(options.steps))
    return SRPlan(window, layout, height, width, transform, grid, steps, output_profile(ds, layout, height, width, transform))


def plan_run(input_path: str | Path, options: SROptions) -> SRPlan:
    config = load_config(options.model_dir)
    with open_raster(input_path) as ds:
        return make_plan(ds, options, config)


def _condition_canvas(visible: np.ndarray, plan: SRPlan, canvas: Canvas) -> None:
    """Fill the canvas with the bicubic upsampling of the (model-unit) visible bands."""
    for r0, r1 in row_blocks(plan.grid.height, plan.grid.width):
        canvas.data[:, r0:r1, :] = bicubic_rows(visible, plan.height, plan.width, r0, r1, plan.grid.width)


def _avoid_nodata_value(values: np.ndarray, nodata: Optional[float]) -> None:
    """A valid pixel that rounds to the nodata value is nudged by one unit so it stays valid."""
    if nodata is None or np.isnan(nodata) or not np.issubdtype(values.dtype, np.integer):
        return
    info = np.iinfo(values.dtype)
    values[values == nodata] = nodata + 1 if nodata < info.max else nodata - 1


def _write_output(
    path: Path,
    ds: rasterio.DatasetReader,
    plan: SRPlan,
    result: Canvas,
    cond: Canvas,
    model_values: np.ndarray,
    data: WindowData,
    scaling: BandScaling,
) -> None:
    """Write the result in row blocks: visible bands, guided extra bands, alpha, nodata or mask."""
    layout = plan.layout
    order = [*layout.visible, *layout.extra]
    guided = GuidedBands.fit(model_values[:3], model_values[3:], data.valid) if layout.extra else None
    nodata = ds.nodata
    use_mask = nodata is None and layout.alpha is None and not data.valid.all()
    with rasterio.open(path, "w", **plan.profile) as dst:
        copy_band_metadata(ds, dst, layout)
        for r0, r1 in row_blocks(plan.height, plan.width):
            visible_sr = result.data[:, r0:r1, : plan.width]
            blocks = [visible_sr]
            if guided is not None:
                extra_up = bicubic_rows(model_values[3:], plan.height, plan.width, r0, r1, plan.width)
                blocks.append(guided.apply(extra_up, visible_sr, cond.data[:, r0:r1, : plan.width]))
            values = scaling.from_model(np.concatenate(blocks))
            _avoid_nodata_value(values, nodata)
            valid = nearest_rows(data.valid, plan.height, plan.width, r0, r1)
            if nodata is not None:
                values[:, ~valid] = nodata
            window = Window(0, r0, plan.width, r1 - r0)
            for out_index, band in enumerate(layout.kept, start=1):
                if band == layout.alpha:
                    band_values = nearest_rows(data.alpha, plan.height, plan.width, r0, r1)  # type: ignore[arg-type]
                else:
                    band_values = values[order.index(band)]
                dst.write(band_values, out_index, window=window)
            if use_mask:
                dst.write_mask(valid.astype(np.uint8) * 255, window=window)


def estimate_seconds_per_patch(options: SROptions) -> float:
    """Time one model evaluation of one patch (for plans and estimates): timed on the first device,
    divided by the number of devices the batches are spread over."""
    devices = resolve_devices(options.device)
    model = load_model(options.model_dir, devices[0])
    config = model.config
    size = options.patch or config.patch_size
    device = next(model.parameters()).device
    x = torch.zeros((options.batch_size, config.channels, size, size), device=device)
    level = torch.full((options.batch_size,), 0.5, device=device)
    with torch.no_grad():
        model(x, x, level, level + 4)
        start = time.perf_counter()
        model(x, x, level, level + 4)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / options.batch_size / len(devices)


def super_resolve(
    input_path: str | Path,
    output_path: str | Path,
    options: SROptions,
    progress: Optional[ProgressCallback] = None,
    is_cancelled: Optional[CancelCheck] = None,
) -> Path:
    """Super-resolve `input_path` into a GeoTIFF at `output_path`; returns the output path.

    Raises InfSceneError (one-line message) for bad input and Cancelled when `is_cancelled()`
    turns true; in both cases nothing is left at `output_path`.
    """
    config = load_config(options.model_dir)
    if config.channels != 3:
        raise InfSceneError(f"the model expects {config.channels} bands; this engine drives RGB models")
    with open_raster(input_path) as ds:
        plan = make_plan(ds, options, config)
        canvases_on_disk = plan.canvas_bytes > options.memmap_above_bytes
        disk_for_canvases = plan.canvas_bytes if canvases_on_disk and options.work_dir is None else 0
        out = check_output_path(output_path, plan.output_bytes + disk_for_canvases)
        tracker = ProgressTracker(plan.total_work, progress, is_cancelled)
        tracker.check_cancel()

        data = read_window(ds, plan.window, [*plan.layout.visible, *plan.layout.extra], plan.layout.alpha)
        scaling = fit_scaling(data.values, data.valid, np.dtype(plan.profile["dtype"]), config)
        model_values = scaling.to_model(fill_invalid(data.values, data.valid))
        scale = (plan.width / plan.window.width + plan.height / plan.window.height) / 2.0
        denoisers = [PatchDenoiser(load_model(options.model_dir, device), scale, options.lr_consistency)
                     for device in resolve_devices(options.device)]

        work_dir = options.work_dir or out.parent
        with canvas_factory(canvases_on_disk, work_dir) as make_canvas, atomic_output(out) as tmp, \
                DenoiserPool(denoisers) as pool:
            cond = make_canvas(3, plan.grid.height, plan.grid.width)
            _condition_canvas(model_values[:3], plan, cond)
            job = SamplingJob(cond, plan.grid, pool, respaced_steps(options.steps), options.seed,
                              options.batch_size, make_canvas, tracker)
            try:
                result = sample_canvas(job, options.mode)
            except torch.OutOfMemoryError as exc:
                raise InfSceneError(
                    f"the GPU ran out of memory with {options.batch_size} patches of {plan.grid.patch} px per batch: "
                    f"lower --batch-size (or --patch)") from exc
            _write_output(tmp, ds, plan, result, cond, model_values, data, scaling)
    return out
