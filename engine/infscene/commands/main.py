"""The `infscene` command line: `sr`, `info`, and the subcommands of this folder (train, serve, iceplant).

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

from .. import __version__, protocol
from .. import sr_options as table
from ..console import emit, plan_line, progress_reporter, warn, warnings_as_lines
from ..diffusion.fusion import FusionMode
from ..errors import Cancelled, InfSceneError
from ..execution import allocator
from ..execution.backend import DaskBackend
from ..execution.devices import resolve_devices
from ..models.precision import bf16_native, resolve_precision
from ..modelformat.files import DEFAULT_MODEL_DIR
from ..models.registry import check_model
from ..plan import SROptions, estimate_seconds, plan_run
from ..quick_plan import iceplant_problem
from ..raster.atomic import check_output_path, refuse_overwriting_input
from ..raster.io import open_raster
from ..run import run_plan
from ..option_flags import add_option_flags
from ..sr_options import OPTIONS, options_in
from . import iceplant as iceplant_cli, serve as serve_cli, train as train_cli

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130  # 128 + SIGINT: Ctrl-C, or a cancel
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: what a shell, a scheduler (SLURM, Kubernetes) or `timeout` expect after SIGTERM
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141: a reader that went away (`| head`), as a Unix tool killed by SIGPIPE exits
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
    """`infscene sr`: its two files, then every option of the table (sr_options.OPTIONS), in its order."""
    p = subparsers.add_parser(
        "sr",
        help="super-resolve a raster",
        description="Super-resolve a georeferenced raster (GeoTIFF or any GDAL raster) seamlessly, at any size.",
    )
    p.add_argument("input", help="input raster: a file, or any path GDAL reads (/vsizip/, /vsicurl/...); e.g. a Planet or NAIP GeoTIFF")
    p.add_argument("output", type=Path, help="output GeoTIFF; written only when complete")
    add_option_flags(p, OPTIONS, one_size_required=True)
    p.set_defaults(func=run_sr)


def run_options(args: argparse.Namespace) -> SROptions:
    """The run's SROptions: every RUN option of the table, as parsed."""
    values = {option.name: getattr(args, option.name) for option in options_in(table.RUN)}
    return SROptions(**{**values, "mode": FusionMode(args.mode), "detail": detail_option(args)})


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
        from ..iceplant.predict import check_iceplant_input  # scikit-image and scipy: only for runs that need them

        check_iceplant_input(args.input, args.bands)
        # The planning call's rule (the plugin's dry run): the result keeps the input's type, and a non-8-bit result
        # can leave 0-255 where the model adds detail, which the iceplant step would refuse after the whole run.
        with open_raster(args.input) as ds:
            problem = iceplant_problem(ds, args.bands)
        if problem is not None:
            raise InfSceneError(problem)


def run_sr(args: argparse.Namespace) -> int:
    options = run_options(args)
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
        from ..iceplant.predict import write_iceplant_probability

        # the output tags its red, green and blue bands, so the iceplant step finds them (and NIR) itself
        outputs.append(str(write_iceplant_probability(out, args.iceplant)))
    if args.preview:
        from ..raster.preview import write_side_by_side

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


def _closed_streams_to_devnull() -> None:
    """Send what would go to a closed stdout or stderr (`>&-`, `2>&-`) to /dev/null, so the run goes on and its exit
    status says how it ended.

    Python leaves sys.stderr None for a closed fd 2 (print(file=None) then writes stderr's lines among stdout's
    outputs, and the progress bar fails the run at once, silently), and a shell script that execs the engine leaves
    itself open, read-only, as fd 2 (every message then fails with EBADF). A closed descriptor is also taken by the
    next file the run opens, and GDAL's or torch's own messages to fd 2 would be written into it: /dev/null takes
    the place first."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None and _writable(fd):
            continue
        if not _writable(fd):
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
        setattr(sys, name, open(os.devnull, "w"))


def _writable(fd: int) -> bool:
    """Whether `fd` is open for writing (a write of no bytes fails with EBADF on a closed or read-only one)."""
    try:
        os.write(fd, b"")
    except OSError:
        return False
    return True


def _reader_gone() -> int:
    """The reader of stdout or stderr went away (`--progress json | head -c 1`): stop quietly, as Unix tools do. The
    run has already cleaned up on its way out (a stop mid-run is a cancel); what is left to flush goes to /dev/null,
    or Python would report the broken pipe again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    json_events = _wants_json(argv)
    _closed_streams_to_devnull()
    signal.signal(signal.SIGTERM, _raise_terminated)
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: Ctrl-C or `kill -INT` would be ignored and the run go on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with warnings_as_lines(json_events):
            args = build_parser().parse_args(argv)
            allocator.for_model_work()  # until a plan sends the model work elsewhere (run_sr)
            return args.func(args)
    except BrokenPipeError:
        return _reader_gone()
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
