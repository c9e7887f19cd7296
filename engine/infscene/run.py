"""Carrying out a planned super-resolution run: input window -> step loop -> canvas -> GeoTIFF.

`run_plan` reads only its SRPlan (plan.py): it opens the raster, the run's workspace and checkpoint, builds
the executor (this process's devices or Dask), samples each seed through the step loop and the family's
finishing step, and writes the output (and the spread of several samples) atomically, verified, with tags
that say how it was made. `super_resolve` is plan and run in one call.
"""
from __future__ import annotations

import warnings
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from . import __version__
from .diffusion.canvas import Canvas, CanvasFactory
from .diffusion.executor import Executor
from .diffusion.loop import SamplingJob, StateCheckpoint, sample_canvas
from .errors import InfSceneError, InfSceneWarning
from .execution.backend import DaskBackend
from .execution.checkpoint import Checkpoint, Position
from .execution.determinism import one_thread_per_call
from .execution.local import DenoiserSpec, LocalExecutor
from .execution.output_check import LastStepProbe, check_first_patches, non_finite_output
from .execution.store import disk_full_is_an_error
from .modelformat.files import DEFAULT_MODEL_DIR
from .models.registry import load_model
from .plan import SROptions, SRPlan, plan_run, run_fingerprint
from .progress import CancelCheck, ProgressCallback, ProgressTracker
from .protocol import PROVENANCE_PREFIX
from .raster.atomic import atomic_output
from .raster.io import OutputBlock, open_raster, spread_profile, verified_geotiff, window_sha256, write_super_resolved
from .raster.blocks import blocks
from .raster.resample import Upsampled, bicubic_window, covering, nearest_block, nearest_source
from .raster.scaling import BandScaling
from .raster.window_input import FileIdentity, ModelBands, check_unchanged, fill_lr, guided_bands, window_statistics
from .raster.workspace import Workspace

OUTPUT_BLOCK_PIXELS = 500_000  # output pixels converted at a time: a block costs about 100 bytes a pixel on its way out
LR_CHUNK = 64  # the low-resolution window is read in small windows (the LR under a patch or a decode tile)


def _in_context(plan: SRPlan, rows: slice, cols: slice) -> tuple[slice, slice]:
    """Output rows and columns of the extent, as rows and columns of the context's canvases (plan.anchor.crop)."""
    top, left = plan.anchor.crop
    return slice(rows.start + top, rows.stop + top), slice(cols.start + left, cols.stop + left)


def _output_blocks(plan: SRPlan, result: Canvas, cond: Upsampled, visible: ModelBands, extra: Optional[ModelBands],
                   scaling: BandScaling) -> Iterator[OutputBlock]:
    """The extent's output in windows that read the result's chunks once: super-resolved visible bands and guided
    extra bands in input units, with the input's validity and alpha enlarged; the input is read again under each
    window, never whole."""
    guided = guided_bands(visible, extra) if extra is not None else None
    in_h, in_w = visible.shape[1:]
    context_h, context_w = plan.context_size
    for rows, cols in blocks(plan.height, plan.width, OUTPUT_BLOCK_PIXELS, result.chunk):
        at_rows, at_cols = _in_context(plan, rows, cols)
        visible_sr = result.data[:, at_rows, at_cols]
        if not np.isfinite(visible_sr).all():  # a finishing step (a decode) that broke: never cast into the output
            raise non_finite_output(_model_dir(plan))
        bands = [visible_sr]
        if guided is not None and extra is not None:
            extra_up = bicubic_window(extra, context_h, context_w, at_rows, at_cols)
            bands.append(guided.apply(extra_up, visible_sr, cond.window(at_rows, at_cols)))
        under_rows, under_cols = nearest_source(in_h, context_h, at_rows), nearest_source(in_w, context_w, at_cols)
        _, valid, alpha = visible.read(covering(under_rows), covering(under_cols))
        enlarge = partial(nearest_block, under_rows, under_cols)
        yield OutputBlock(rows, cols, scaling.from_model(np.concatenate(bands)), enlarge(valid),
                          enlarge(alpha) if alpha is not None else None)


def _model_dir(plan: SRPlan) -> Path:
    return Path(plan.options.model_dir or DEFAULT_MODEL_DIR)


def provenance_tags(plan: SRPlan) -> dict[str, str]:
    """Dataset tags that say how the output was made (INFSCENE_*)."""
    o = plan.options
    fields: dict[str, object] = {
        "VERSION": __version__, "MODEL": plan.config.name, "MODEL_SHA256": plan.model_sha256,
        "FAMILY": plan.family, "MODE": o.mode.value, "STEPS": plan.steps, "SEED": o.seed,
        "SCALE": f"{plan.scale:.6g}", "PATCH": plan.grid.patch, "OVERLAP": plan.grid.overlap,
        "LR_CONSISTENCY": o.lr_consistency, "PRECISION": plan.precision, "INPUT": PurePosixPath(plan.input_path).name,
    }
    if plan.family_plan.detail is not None:
        fields["DETAIL"] = f"{plan.family_plan.detail:g}"
        fields["SELF_ENSEMBLE"] = plan.family_plan.self_ensemble
    return {f"{PROVENANCE_PREFIX}{key}": str(value) for key, value in fields.items()}


def _sample(plan: SRPlan, executor: Executor, seed: int, visible: np.ndarray, cond: Upsampled, tracker: ProgressTracker,
            checkpoint: StateCheckpoint) -> Canvas:
    """One seed's output canvas (model units) on the output grid: the step loop over the family's state grid (when
    the plan has reverse steps), then the family's finishing step."""
    options, family_plan = plan.options, plan.family_plan
    job = SamplingJob(cond, plan.grid, executor, list(plan.reverse_steps), seed, options.batch_size, tracker,
                      family_plan.cond_factor, checkpoint)
    with _gpu_memory_is_an_error(plan):
        state = sample_canvas(job, options.mode) if plan.reverse_steps else None
        return plan.model_family.finish(job, plan.config, state, visible, plan.context_size, options.lr_consistency,
                                        plan.family_plan.detail, plan.kept, plan.family_plan.self_ensemble)


@contextmanager
def _gpu_memory_is_an_error(plan: SRPlan) -> Iterator[None]:
    """A model call that ran out of GPU memory, as one line that says what to lower."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        raise InfSceneError(
            f"the GPU ran out of memory with {plan.options.batch_size} patches of {plan.grid.patch} px per batch: "
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
        for rows, cols in blocks(*cond.shape[1:], chunk=sample.chunk):
            values = sample.data[:, rows, cols]
            if k == 0:
                first.data[:, rows, cols] = values
                mean.data[:, rows, cols] = values
                continue
            delta = values - mean.data[:, rows, cols]
            mean.data[:, rows, cols] += delta / (k + 1)
            squares.data[:, rows, cols] += delta * (values - mean.data[:, rows, cols])
        checkpoint.commit_sample(k + 1, kept)
    for rows, cols in blocks(*cond.shape[1:], chunk=squares.chunk):
        squares.data[:, rows, cols] = np.sqrt(squares.data[:, rows, cols] / samples)
    return first, squares


def _write_spread(tmp: Path, plan: SRPlan, spread: Canvas, scaling: BandScaling, tags: dict[str, str]) -> None:
    """One float32 band: the std over the samples, in the input's units, averaged over the visible bands."""
    units = (scaling.high - scaling.low)[:3] / 2.0  # model units -> input units (scaling is linear per band)
    profile = spread_profile(plan.profile)
    with verified_geotiff(tmp, profile, plan.spread_path) as dst:
        dst.set_band_description(1, f"spread over {plan.options.samples} samples (std, input units)")
        dst.update_tags(**tags)
        for rows, cols in blocks(plan.height, plan.width, chunk=spread.chunk):
            block = spread.data[(slice(None), *_in_context(plan, rows, cols))] * units[:, None, None]
            dst.write(block.mean(axis=0).astype(np.float32)[None], window=Window.from_slices(rows, cols))


@contextmanager
def _executor(plan: SRPlan, checkpoint: Checkpoint, workspace: Workspace) -> Iterator[Executor]:
    """The executor of the plan's backend: a Dask cluster, or this process's devices."""
    spec = DenoiserSpec(plan.scale, plan.options.lr_consistency, plan.precision, plan.options.batch_size,
                        str(_model_dir(plan)))
    backend = plan.backend
    if isinstance(backend, DaskBackend):
        from .execution.scaleout import DaskExecutor, connect  # imports dask.distributed: only for runs that use it

        with connect(backend.address, backend.threads_per_worker) as client:
            yield DaskExecutor(client, checkpoint.store, spec, _model_dir(plan), plan.state_channels)
        return
    loaded = {device: load_model(plan.options.model_dir, device) for device in set(backend.devices)}  # shared by a CPU's lanes
    models = [loaded[device] for device in backend.devices]
    canvases = CanvasFactory(workspace.folder_in(plan.work_dir) if plan.canvases_on_disk else None)
    with LocalExecutor([spec.build(model) for model in models], canvases) as executor:
        yield executor


def _carry_out(plan: SRPlan, ds: rasterio.DatasetReader, identity: Optional[FileIdentity], workspace: Workspace,
               checkpoint: Checkpoint, tracker: ProgressTracker) -> None:
    """Read, sample, write: the run itself, inside its workspace and with its checkpoint open; its outputs appear only
    if the input is still the file of `identity`, the one it was planned on."""
    bands = (*plan.layout.visible, *plan.layout.extra)
    if checkpoint.keep:  # a checkpoint knows its input by content: a resume of other pixels is refused here
        checkpoint.check_input(window_sha256(ds, plan.window, bands, plan.layout.alpha))
    statistics = window_statistics(ds, plan.window, bands, plan.layout.alpha, np.dtype(plan.profile["dtype"]), plan.config,
                                   whole_raster=plan.anchor.on_lattice)
    read_bands = partial(ModelBands, ds, plan.window, bands, plan.layout.alpha, statistics)
    visible = read_bands((0, 1, 2))
    extra = read_bands(tuple(range(3, len(bands)))) if plan.layout.extra else None
    with _executor(plan, checkpoint, workspace) as executor:
        lr = executor.make_canvas(3, int(plan.window.height), int(plan.window.width), "lr", chunk=LR_CHUNK)
        fill_lr(visible, lr.data)
        factor = plan.cond_factor
        cond = Upsampled(lr.data, *plan.context_size, plan.grid.height * factor, plan.grid.width * factor)
        if plan.reverse_steps:  # a broken model stops the run before its hours of work, not after
            probe = LastStepProbe(cond, plan.grid, plan.reverse_steps[-1], plan.state_channels, factor)
            with _gpu_memory_is_an_error(plan):
                check_first_patches(executor, probe, plan.options.batch_size, _model_dir(plan))
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
            check_unchanged(identity)  # the last read is done: the outputs are of one file, or none


def run_plan(plan: SRPlan, progress: Optional[ProgressCallback] = None, is_cancelled: Optional[CancelCheck] = None) -> Path:
    """Carry out a plan from `plan_run`; returns the output path.

    Raises InfSceneError (one-line message) for bad input, or an input changed since it was planned,
    and Cancelled when `is_cancelled()` turns true; in every case nothing is left at the output path,
    and the run's temporary folders are removed. The checkpoint stays when the run got somewhere
    (`--resume` goes on from it) and is removed once the output is written.
    """
    if plan.output_path is None or plan.checkpoint_dir is None:
        raise ValueError("this plan was made without an output path; pass one to plan_run")
    tracker = ProgressTracker(plan.total_work, progress, is_cancelled)
    tracker.check_cancel()
    check_unchanged(plan.input_identity)  # since it was planned: refused before any work
    with (open_raster(plan.input_path) as ds, Workspace() as workspace, disk_full_is_an_error(plan.work_dir),
          one_thread_per_call()):
        workspace.folder_in(plan.output_path.parent)  # the run's folder exists (and is owned) from the start
        if plan.options.checkpoint:
            checkpoint = Checkpoint.open(plan.checkpoint_dir, run_fingerprint(plan), plan.resume_at, plan.options.restart)
        else:
            checkpoint = Checkpoint.scratch(workspace.folder_in(plan.work_dir))
        try:
            _carry_out(plan, ds, plan.input_identity, workspace, checkpoint, tracker)
        except BaseException:
            rewritten = plan.input_identity is not None and plan.input_identity.rewritten()
            if checkpoint.position == Position() or rewritten:
                checkpoint.remove()  # nothing done yet, or done from an input no run of the file as it is could resume
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
