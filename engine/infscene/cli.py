"""The `infscene` command line: `sr`, `info`, and the subcommands other modules register.

Bad input, bad arguments included, ends with one line on stderr and a non-zero exit, and no
output file; warnings are one line each and do not stop the run. With `--progress json` every
event is also a JSON line on stdout (the QGIS plugin reads these; protocol.py defines them):
`plan`, `warning`s, `progress` events, then `done`, `error` or `cancelled`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn, Optional, Sequence

import torch

from . import __version__, protocol
from .console import band_list, emit, plan_line, progress_reporter, warn
from .diffusion.fusion import FusionMode
from .errors import Cancelled, InfSceneError
from .execution import allocator
from .execution.backend import DaskBackend
from .execution.devices import resolve_devices
from .models.precision import bf16_native, resolve_precision
from .iceplant import cli as iceplant_cli
from .iceplant.predict import check_iceplant_input, write_iceplant_probability
from .models.registry import DEFAULT_MODEL_DIR, FAMILIES, check_model
from .plan import SROptions, estimate_seconds, plan_run
from .quick_plan import iceplant_problem
from .raster.atomic import check_output_path, refuse_overwriting_input
from .raster.io import open_raster
from .run import run_plan
from .serve import cli as serve_cli
from .training import cli as train_cli

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130  # 128 + SIGINT: Ctrl-C, or a cancel
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: what a shell, a scheduler (SLURM, Kubernetes) or `timeout` expect after SIGTERM
DEBUG_VARIABLE = "INFSCENE_DEBUG"


class UsageError(InfSceneError):
    """A command line argparse refuses (unknown option, a value of the wrong type)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (and a JSON error event) like every other error."""

    def error(self, message: str) -> NoReturn:
        # main() prefixes every error with "infscene: ", so only a subcommand's name ("sr") goes before the message.
        command = self.prog.partition(" ")[2]
        raise UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def add_sr_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sr",
        help="super-resolve a raster",
        description="Super-resolve a georeferenced raster (GeoTIFF or any GDAL raster) seamlessly, at any size.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("input", type=Path, help="input raster (e.g. a Planet or NAIP GeoTIFF)")
    p.add_argument("output", type=Path, help="output GeoTIFF; written only when complete")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--scale", type=float, help="scale factor, e.g. 5 for 3 m -> 0.6 m; non-integer allowed")
    size.add_argument("--target-res", type=float, help="output pixel size in the raster's CRS units (e.g. 0.6 for metres)")
    p.add_argument("--bounds", type=float, nargs=4, metavar=("MINX", "MINY", "MAXX", "MAXY"),
                   help="only this extent, in the raster's CRS (default: the whole raster)")
    p.add_argument("--bands", type=band_list,
                   help="1-based band numbers in R,G,B[,extra] order, e.g. 3,2,1,4 for Planet analytic "
                        "(default: bands tagged red/green/blue, else 1,2,3; other bands are kept and guided)")
    p.add_argument("--steps", type=int,
                   help=f"reverse diffusion steps K ({'; '.join(family.steps_help for family in FAMILIES.values())})")
    p.add_argument("--patch", type=int, help="patch side in output pixels (default: the model's training size)")
    p.add_argument("--overlap", type=int, help="overlap between patches in output pixels (default: a quarter of the patch)")
    p.add_argument("--mode", choices=list(protocol.MODES), default=FusionMode.VCF.value,
                   help="vcf: variance-corrected joint denoising (seamless, sharp); average: naive weighted mean "
                        "(seamless, blurred); independent: separate tiles (seams, the SR3 baseline)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed; the same seed gives the same bytes on any number of threads, devices or Dask workers")
    p.add_argument("--margin", type=int,
                   help="input pixels of context sampled around the extent, so that runs of neighbouring extents of one "
                        "raster join without a seam (default: one patch; 0 samples the extent alone)")
    p.add_argument("--device", default="auto",
                   help="where the model runs: auto (every GPU, else the CPU), cpu (one lane per thread), cuda (every GPU) "
                        "or a list such as cuda:0,cuda:1; patch batches are spread over them, the result is the same")
    p.add_argument("--batch-size", type=int, default=4, help="patches per model call (GPU memory ~ batch x patch)")
    p.add_argument("--samples", type=int, default=1,
                   help="run this many seeds (seed, seed+1, ...): the output is the first, and a raster of the per-pixel "
                        "spread over all of them maps where the model invents detail (default 1)")
    p.add_argument("--spread", type=Path, help="where the spread raster of --samples goes (default: OUTPUT_spread.tif)")
    p.add_argument("--detail", type=detail_value,
                   help="e2diffsr: 0 (faithful: the regression branch alone, fastest) to 1 (detailed: the latent diffusion "
                        "and the texture head's full drawing); values between scale the drawn texture (default: the model's)")
    p.add_argument("--regression-only", action="store_true", help="the old name of --detail 0")
    p.add_argument("--precision", choices=list(protocol.PRECISIONS), default="auto",
                   help="arithmetic of the model calls: bf16 (autocast, float32 weights and state; convolutions 2-3x faster on "
                        "CPUs with native bf16, a whole run at most 1.2x; outputs within 0.01 dB), fp32, or auto: bf16 on such "
                        "CPUs, else fp32 (default auto)")
    p.add_argument("--no-lr-consistency", action="store_true",
                   help="do not tie each step's low frequencies to the input (pure SR3 sampling; drifts in colour)")
    p.add_argument("--model", type=Path, help=f"model folder (default: {DEFAULT_MODEL_DIR})")
    p.add_argument("--work-dir", type=Path,
                   help="folder for the run's checkpoint and the memory-mapped canvases of large runs; with --dask, one that "
                        "every worker reaches (default: the output's)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run of this output from its checkpoint (same input, model and options)")
    p.add_argument("--restart", action="store_true", help="discard the checkpoint an interrupted run of this output left")
    p.add_argument("--no-checkpoint", action="store_true",
                   help="keep no checkpoint: nothing is saved at each step, and an interrupted run starts over")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run the model work on a Dask cluster: a scheduler address (tcp://host:8786), a scheduler file "
                        "(.json), or local:N for N local worker processes; the output is the same as without")
    p.add_argument("--threads-per-worker", type=int, default=1, help="threads of each local:N worker (default 1)")
    p.add_argument("--preview", type=Path, help="also write a side-by-side PNG of the input, its bicubic enlargement and the output")
    p.add_argument("--iceplant", type=Path, metavar="PROB_OUTPUT",
                   help="also write the iceplant probability (0-1) of the super-resolved result to this GeoTIFF")
    p.add_argument("--progress", choices=list(protocol.PROGRESS_KINDS), default="bar",
                   help="bar: a progress bar on stderr; json: JSON-lines events on stdout")
    p.add_argument("--dry-run", action="store_true", help="check the input and print the plan; write nothing")
    p.set_defaults(func=run_sr)


def sr_options(args: argparse.Namespace) -> SROptions:
    return SROptions(
        scale=args.scale, target_res=args.target_res, bounds=args.bounds, bands=args.bands, steps=args.steps,
        patch=args.patch, overlap=args.overlap, mode=FusionMode(args.mode), seed=args.seed, device=args.device,
        batch_size=args.batch_size, lr_consistency=not args.no_lr_consistency, model_dir=args.model,
        work_dir=args.work_dir, samples=args.samples, spread_path=args.spread, detail=detail_option(args), precision=args.precision,
        resume=args.resume, restart=args.restart, checkpoint=not args.no_checkpoint, dask=args.dask,
        threads_per_worker=args.threads_per_worker, margin=args.margin,
    )


def detail_value(text: str) -> float:
    """--detail's type: a number from 0 to 1 (argparse turns the ValueError into one line)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(text)
    return value


def detail_option(args: argparse.Namespace) -> Optional[float]:
    """--detail, or 0 for the old --regression-only (said once on stderr, so scripts learn the new name)."""
    if not args.regression_only:
        return args.detail
    if args.detail not in (None, 0.0):
        raise InfSceneError(f"--regression-only is --detail 0; it cannot go with --detail {args.detail:g}")
    print("infscene: --regression-only is now --detail 0", file=sys.stderr)
    return 0.0


def _check_side_outputs(args: argparse.Namespace) -> None:
    """Before any work: no output over the input or over another output, and folders that exist."""
    side = {"preview": args.preview, "iceplant output": args.iceplant}
    refuse_overwriting_input(args.input, {"output": args.output, **side})
    for path, kind in ((args.preview, "PNG"), (args.iceplant, "GeoTIFF")):
        if path is not None:
            check_output_path(path, kind)
    if args.iceplant:
        check_iceplant_input(args.input, args.bands)
        # The planning call's rule (the plugin's dry run): the result keeps the input's type, and a non-8-bit result
        # can leave 0-255 where the model adds detail, which the iceplant step would refuse after the whole run.
        with open_raster(args.input) as ds:
            problem = iceplant_problem(ds, args.bands)
        if problem is not None:
            raise InfSceneError(problem)


def run_sr(args: argparse.Namespace) -> int:
    options = sr_options(args)
    _check_side_outputs(args)
    plan = plan_run(args.input, options, args.output)
    if isinstance(plan.backend, DaskBackend):  # this process only streams blocks: the workers run the models
        allocator.for_streaming()
    json_events = args.progress == "json"
    event = plan.event(estimate_seconds(plan) if args.dry_run else None)
    if json_events:
        emit(event)
    elif args.dry_run:
        print(json.dumps(dataclasses.asdict(event), indent=2))
    elif args.progress == "bar":
        print(f"infscene: {plan_line(event)}", file=sys.stderr)
    warn(plan.warnings, json_events)
    if args.dry_run:
        return 0
    callback, close = progress_reporter(args.progress, plan.total_work)
    try:
        out = run_plan(plan, progress=callback)
    finally:
        close()
    outputs = [str(out)]
    if args.iceplant:
        # the output tags its red, green and blue bands, so the iceplant step finds them (and NIR) itself
        outputs.append(str(write_iceplant_probability(out, args.iceplant)))
    if args.preview:
        from .raster.preview import write_side_by_side

        outputs.append(str(write_side_by_side(args.input, out, args.preview, options.bounds)))
    if json_events:
        emit(protocol.Done(tuple(outputs)))
    else:
        print("\n".join(outputs))
    return 0


def run_info(args: argparse.Namespace) -> int:
    """What the engine sees: versions, device, GPU and the model's status."""
    cuda = torch.cuda.is_available()
    auto_devices = resolve_devices("auto")
    model_dir = args.model or DEFAULT_MODEL_DIR
    try:
        config = check_model(model_dir)
        model = {"path": str(model_dir), "name": config.name, "family": config.family, "trained": config.trained,
                 "notes": config.notes, "scale_min": config.scale_min, "scale_max": config.scale_max,
                 "patch_size": config.patch_size}
    except InfSceneError as exc:
        model = {"path": str(model_dir), "error": str(exc)}
    info = {
        "version": __version__,
        "protocol": protocol.PROTOCOL_VERSION,
        "torch": torch.__version__,
        "device_auto": ",".join(dict.fromkeys(str(d) for d in auto_devices)),
        "cpu_lanes": sum(d.type == "cpu" for d in auto_devices),  # one-thread model calls side by side (determinism.py)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_native(auto_devices[0]),  # without it, --precision auto keeps fp32 (bf16 would be emulated, slower)
        "precision_auto": resolve_precision("auto", auto_devices),
        "cuda_available": cuda,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 1024**3, 1) if cuda else None,
        "model": model,
    }
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def add_info_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="show versions, device, GPU and model status")
    p.add_argument("--model", type=Path, help="model folder to check (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run_info)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="infscene", description="Seamless diffusion super-resolution of rasters of any size.")
    parser.add_argument("--version", action="version", version=f"infscene {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_sr_parser(subparsers)
    iceplant_cli.register(subparsers)
    train_cli.register(subparsers)
    serve_cli.add_serve_parser(subparsers)
    add_info_parser(subparsers)
    return parser


class Terminated(Cancelled):
    """SIGTERM stopped the run: cleaned up as a cancel, but exits 143, as a terminated process does."""

    def __init__(self) -> None:
        super().__init__("stopped by SIGTERM; no output was written")


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the plugin asked for JSON events, read from the raw arguments (for errors while parsing them)."""
    args = list(argv)
    return any(a == "--progress=json" or (a == "--progress" and args[i + 1:i + 2] == ["json"]) for i, a in enumerate(args))


def _fail(message: str, json_events: bool, cancelled: bool = False) -> None:
    if json_events:
        emit(protocol.Cancelled(message) if cancelled else protocol.Failure(message))
    print(f"infscene: {message}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    json_events = _wants_json(argv)
    signal.signal(signal.SIGTERM, _raise_terminated)
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: Ctrl-C or `kill -INT` would be ignored and the run go on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(argv)
        allocator.for_model_work()  # until a plan sends the model work elsewhere (run_sr)
        return args.func(args)
    except UsageError as exc:
        _fail(str(exc), json_events)
        return EXIT_USAGE
    except Terminated as exc:
        _fail(str(exc), json_events, cancelled=True)
        return EXIT_TERMINATED
    except (Cancelled, KeyboardInterrupt):
        _fail(str(Cancelled()), json_events, cancelled=True)
        return EXIT_CANCELLED
    except InfSceneError as exc:
        _fail(str(exc), json_events)
        return EXIT_ERROR
    except Exception as exc:  # a bug, not bad input: still one line (and an event) for the user and the plugin
        if os.environ.get(DEBUG_VARIABLE):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"internal error: {type(exc).__name__}: {first} (rerun with {DEBUG_VARIABLE}=1 for the traceback, "
              "and please report it)", json_events)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
