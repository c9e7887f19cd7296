"""Hostile cases against the `infscene` command line: what a user sees, what is left behind, whether the input survives.

Every case runs the real CLI in a fresh folder (a copy of the NAIP fixture as input, a tiny random-weight model
like the tests'), and records the exit status, the last line on stderr (the message), the files left in the
folder beyond the input and the expected outputs, and whether the input is byte-identical afterwards.
`--before REF` also runs every case against the engine of a git revision (a temporary worktree), so the table
shows what each case did before the hardening of issue 11. Writes docs/hardening.md.

The cases of issue 22 (trust) say what they expect: an exit status and a pattern of the message (`Expect`).
Its resume cases interrupt a run (SIGTERM once its checkpoint holds a few steps), damage the checkpoint or
the input, run `--resume`, and compare the pixels with the uninterrupted run's. `tests/test_hostile_cases.py`
runs the quick ones.

    .venv/bin/python bench/hostile_cases.py [--before 02e767d] [--out docs/hardening.md]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
NAIP = ROOT / "tests" / "fixtures" / "naip_nd_5m_64.tif"
TIMEOUT_S = 300


@dataclass(frozen=True)
class Expect:
    """What a case should give: an exit status, a regular expression the message matches, and at most how long it
    may take (for failures that must come at once)."""

    exit: int
    message: str = ""
    within_s: Optional[float] = None

    def problem(self, outcome: Outcome) -> Optional[str]:
        """Why the outcome is not the expected one (None when it is)."""
        if outcome.exit != self.exit:
            return f"exit {outcome.exit}, expected {self.exit} ({outcome.message})"
        if not re.search(self.message, outcome.message):
            return f"message {outcome.message!r} does not match {self.message!r}"
        if self.within_s is not None and outcome.seconds > self.within_s:
            return f"took {outcome.seconds:.1f} s, expected at most {self.within_s:g} s"
        if outcome.pixels_equal is False:
            return "the output differs from the uninterrupted run's"
        return None


@dataclass
class Case:
    """One situation: the CLI arguments (INPUT, OUT, MODEL and DIR are replaced), and how to set the folder up."""

    situation: str
    args: list[str]
    setup: Callable[[Path], None] = lambda folder: None
    expected: tuple[str, ...] = ()  # files a success may leave (besides the input)
    file_limit: Optional[int] = None  # RLIMIT_FSIZE, as if the disk filled up at that many bytes
    input_name: str = "in.tif"
    unbounded_before: bool = False  # allocated without bound before the fix: not rerun there (it could take the machine)
    expect: Optional[Expect] = None
    quick: bool = False  # run by tests/test_hostile_cases.py


@dataclass
class Outcome:
    exit: int
    message: str
    leftovers: list[str] = field(default_factory=list)
    input_unchanged: bool = True
    seconds: float = 0.0
    pixels_equal: Optional[bool] = None  # resume cases that exit 0: the same pixels as the uninterrupted run


MAKE_MODEL = (
    "import sys, torch\n"
    "from infscene.modelformat.folder import save_model\n"
    "from infscene.models.sr3.network import ModelConfig, SR3UNet\n"
    "torch.manual_seed(0)\n"
    "config = ModelConfig(name='tiny', base_channels=8, channel_mults=[1, 2], patch_size=32, norm_groups=4)\n"
    "save_model(SR3UNet(config), sys.argv[1])\n"
)


def _tiny_model(folder: Path, engine: Path) -> None:
    """A random-weight model written by the engine under test (its own config format)."""
    subprocess.run([sys.executable, "-c", MAKE_MODEL, str(folder)], check=True, env=_engine_env(engine), timeout=TIMEOUT_S)


def _model_with(**changes: object) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        config = folder / "model" / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), **changes}))
    return setup


def _raw_model_file(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "model" / name).write_text(text) and None


def _garbage_weights(folder: Path) -> None:
    """A valid safetensors header followed by random tensor bytes."""
    weights = folder / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header:] = np.random.default_rng(0).integers(0, 256, len(data) - header, dtype=np.uint8).tobytes()
    weights.write_bytes(bytes(data))


def _link(kind: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / "out.tif").symlink_to(folder / "in.tif") if kind == "symlink" else os.link(folder / "in.tif", folder / "out.tif")
    return setup


def _truncated(folder: Path) -> None:
    whole = folder / "whole.tif"
    with rasterio.open(NAIP) as src, rasterio.open(whole, "w", **{**src.profile, "tiled": False}) as dst:
        dst.write(src.read())
    (folder / "in.tif").write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    whole.unlink()


def _rewrite(folder: Path, data: np.ndarray, **profile: object) -> None:
    base = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2], "dtype": data.dtype}
    (folder / "in.tif").unlink()
    with rasterio.open(folder / "in.tif", "w", **{**base, **profile}) as dst:
        dst.write(data)


def _south_up(folder: Path) -> None:
    with rasterio.open(NAIP) as src:
        data, crs = src.read()[:, ::-1], src.crs
    _rewrite(folder, data, crs=crs, transform=Affine(5, 0, 1000, 0, 5, 2000))


def _twelve_bit(folder: Path) -> None:
    counts = np.random.default_rng(0).integers(0, 4096, (3, 32, 32)).astype(np.uint16)
    _rewrite(folder, counts, crs="EPSG:32611", transform=Affine(3, 0, 500000, 0, -3, 4000000))


def _no_georeference(folder: Path) -> None:
    with rasterio.open(NAIP) as src:
        data = src.read([1, 2, 3])[:, :32, :32]
    (folder / "in.tif").unlink()
    with rasterio.open(folder / "in.png", "w", driver="PNG", count=3, height=32, width=32, dtype="uint8") as dst:
        dst.write(data)


def _float64(value: float) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        with rasterio.open(NAIP) as src:
            data, crs, transform = src.read([1, 2, 3]).astype(np.float64), src.crs, src.transform
        data[:, :8, :8] = value
        _rewrite(folder, data, crs=crs, transform=transform)
    return setup


def _transform(transform: Affine, crs: str = "EPSG:32611") -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        with rasterio.open(NAIP) as src:
            data = src.read([1, 2, 3])
        _rewrite(folder, data, crs=crs, transform=transform)
    return setup


def _bogus_epsg(folder: Path) -> None:
    """The GeoTIFF's projected CRS key set to 9999, a code no EPSG registry holds (GDAL falls back to a local CRS)."""
    data = bytearray((folder / "in.tif").read_bytes())
    ifd = int.from_bytes(data[4:8], "little")
    for entry in range(int.from_bytes(data[ifd:ifd + 2], "little")):
        at = ifd + 2 + 12 * entry
        tag, count, offset = (int.from_bytes(data[at:at + 2], "little"), int.from_bytes(data[at + 4:at + 8], "little"),
                              int.from_bytes(data[at + 8:at + 12], "little"))
        if tag == 34735:  # GeoKeyDirectoryTag: (key, location, count, value) shorts after a 4-short header
            for key in range(4, count, 4):
                if int.from_bytes(data[offset + 2 * key:offset + 2 * key + 2], "little") == 3072:
                    data[offset + 2 * (key + 3):offset + 2 * (key + 4)] = (9999).to_bytes(2, "little")
    (folder / "in.tif").write_bytes(bytes(data))


def _self_vrt(folder: Path) -> None:
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="1">in.vrt'
                    f'</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>' for b in (1, 2, 3))
    (folder / "in.vrt").write_text(f'<VRTDataset rasterXSize="64" rasterYSize="64">{bands}</VRTDataset>')


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text) and None


def _iceplant_models(rgb_json: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        shutil.copytree(ROOT / "resources" / "models" / "iceplant", folder / "ice")
        (folder / "ice" / "rgb.json").write_text(rgb_json)
    return setup


def _all_nodata(folder: Path) -> None:
    shutil.copy(ROOT / "tests" / "fixtures" / "all-nodata.tif", folder / "in.tif")


def _naip_bounds(dx: float = 0.0) -> list[str]:
    with rasterio.open(NAIP) as ds:
        b = ds.bounds
    return [str(v) for v in (b.left + dx, b.bottom, b.right + dx, b.top)]


RUN = ["sr", "INPUT", "OUT", "--scale", "2", "--steps", "2", "--patch", "32", "--model", "MODEL", "--progress", "none"]


def _run(*extra: str, output: str = "OUT") -> list[str]:
    return [output if a == "OUT" else a for a in RUN] + list(extra)


CASES = [
    Case("output is the input", _run(output="INPUT")),
    Case("output is a symlink to the input", _run(), _link("symlink"), ("out.tif",)),
    Case("output is a hard link to the input", _run(), _link("hard"), ("out.tif",)),
    Case("--preview is the input", _run("--preview", "INPUT")),
    Case("--iceplant is the input", _run("--iceplant", "INPUT")),
    Case("the disk fills up while the output is written", _run(), file_limit=30_000),
    Case("truncated GeoTIFF", _run(), _truncated),
    Case("--steps 2001", _run("--steps", "2001")),
    Case("--seed -1", _run("--seed", "-1")),
    Case("inf in --bounds", _run("--bounds", "0", "0", "inf", "1e9")),
    Case("--batch-size 0", _run("--batch-size", "0")),
    Case("--batch-size -4", _run("--batch-size", "-4")),
    Case("--dry-run --batch-size 0", _run("--dry-run", "--batch-size", "0")),
    Case("--dry-run --batch-size 100000", _run("--dry-run", "--batch-size", "100000"), unbounded_before=True),
    Case("--dry-run --patch 100000", _run("--dry-run", "--patch", "100000"), unbounded_before=True),
    Case("--preview into a missing folder", _run("--preview", "DIR/missing/p.png")),
    Case("malformed model.safetensors", _run(), _raw_model_file("model.safetensors", "not a safetensors file")),
    Case("config: patch_size \"128\"", _run(), _model_with(patch_size="128")),
    Case("config: norm_groups 0", _run(), _model_with(norm_groups=0)),
    Case("config: deeply nested JSON", _run(), _raw_model_file("config.json", '{"notes": ' + "[" * 100000 + "]" * 100000 + "}")),
    Case("config: base_channels 200000", _run(), _model_with(base_channels=200000), unbounded_before=True),
    Case("config: value_min == value_max", _run(), _model_with(value_min=7.0, value_max=7.0)),
    Case("--iceplant on a 12-bit input", _run("--iceplant", "DIR/p.tif"), _twelve_bit),
    Case("south-up raster, extent inside it", [*_run("--bounds", "1050", "2100", "1150", "2200")], _south_up, ("out.tif",)),
    Case("12-bit data in uint16", _run("--scale", "4"), _twelve_bit, ("out.tif",)),
    Case("no georeference (PNG)", _run(), _no_georeference, ("out.tif",), input_name="in.png"),
    Case("--scale 1.0001", _run("--scale", "1.0001", "--dry-run")),
    Case("--scale 12 (model trained on 2-8)", _run("--scale", "12", "--dry-run")),
    Case("--patch 4", _run("--patch", "4", "--overlap", "2", "--dry-run")),
    Case("extent partly outside the raster", _run("--bounds", *_naip_bounds(dx=100.0)), expected=("out.tif",)),
]

DEGREES = Affine(4.5e-5, 0, -100.0, 0, -4.5e-5, 47.0)
ISSUE_22_CASES = [
    Case("garbage weights (valid header, random bytes)", _run(), _garbage_weights,
         expect=Expect(1, r"^infscene: model weights model/model.safetensors are not the ones its card describes"), quick=True),
    Case("config: res_blocks 1000000", _run(), _model_with(res_blocks=1_000_000),
         expect=Expect(1, r"more than 20,000 tensors", within_s=30), unbounded_before=True, quick=True),
    Case("--dask tcp://127.0.0.1:1 (nothing listening)", _run("--dask", "tcp://127.0.0.1:1"),
         expect=Expect(1, r"cannot reach the Dask scheduler .*connection refused", within_s=15), quick=True),
    Case("--dask scheduler file holding garbage", _run("--dask", "DIR/scheduler.json"), _write("scheduler.json", "garbage"),
         ("scheduler.json",), expect=Expect(1, r"not a Dask scheduler file"), quick=True),
    Case("self-referencing VRT", [a if a != "INPUT" else "DIR/in.vrt" for a in _run()], _self_vrt, ("in.tif",),
         input_name="in.vrt", expect=Expect(1, r"cannot read .*in.vrt: .*refers to itself")),
    Case("finite float64 values of 1e300", _run(), _float64(1e300), expect=Expect(1, r"beyond float32's range")),
    Case("geotransform with pixel height 0", _run(), _transform(Affine(5, 0, 500000, 0, 0, 4000000)),
         expect=Expect(1, r"geotransform of .* is degenerate \(pixel size 5 x 0\)"), quick=True),
    Case("bogus EPSG code (9999) in the GeoTIFF", _run("--dry-run"), _bogus_epsg,
         expect=Expect(0, r"warning: the CRS of in.tif is not one PROJ knows")),
    Case("--target-res 0.6 on a degrees raster", ["sr", "INPUT", "OUT", "--target-res", "0.6", "--model", "MODEL", "--dry-run"],
         _transform(DEGREES, "EPSG:4326"), expect=Expect(1, r"--target-res 0.6 is in the raster's CRS units, degrees"), quick=True),
    Case("iceplant on an all-nodata raster", ["iceplant", "INPUT", "OUT", "--progress", "none"], _all_nodata,
         expect=Expect(1, r"no valid pixels"), quick=True),
    Case("iceplant with garbage in rgb.json", ["iceplant", "INPUT", "OUT", "--bands", "1,2,3", "--model", "DIR/ice",
                                              "--progress", "none"], _iceplant_models("{garbage"),
         ("ice",), expect=Expect(1, r"iceplant model 'rgb' in ice is unreadable"), quick=True),
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _limit(size: Optional[int]) -> Optional[Callable[[], None]]:
    if size is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


SHOWN_CHARS = 150  # of a message, in the table (the expectations see all of it)


def _short(text: str, folder: Path) -> str:
    return text.replace(str(folder) + "/", "").replace(str(folder), ".").replace("|", "\\|")


def _engine_env(engine: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(engine), "PYTHONWARNINGS": "ignore"}


def run_case(case: Case, engine: Path) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        folder = Path(name)
        shutil.copy(NAIP, folder / "in.tif")
        if "MODEL" in case.args:
            _tiny_model(folder / "model", engine)
        case.setup(folder)
        source = folder / case.input_name
        before = _sha(source)
        names = {"INPUT": str(source), "OUT": str(folder / "out.tif"), "MODEL": str(folder / "model")}
        args = [names.get(a, a.replace("DIR", str(folder))) for a in case.args]
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "infscene", *args], capture_output=True, text=True,
                                timeout=TIMEOUT_S, env=_engine_env(engine), preexec_fn=_limit(case.file_limit))
        seconds = time.monotonic() - start
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(" ")]
        warnings = [line for line in lines if "warning" in line.lower()]
        errors = [line for line in lines if line not in warnings]
        if result.returncode and errors:  # a failure is its error line, whatever was warned before it
            message = errors[-1]
        else:
            message = " / ".join(warnings) or (lines or result.stdout.strip().splitlines()[-1:] or [""])[-1]
        if result.returncode < 0:
            message = f"killed by {signal.Signals(-result.returncode).name}: " + message
        if "12-bit data" in case.situation and result.returncode == 0:
            with rasterio.open(folder / "out.tif") as out:
                message = f"output max {int(out.read().max())} (input max 4095)"
        keep = {case.input_name, "model", *case.expected}
        leftovers = sorted(p.name for p in folder.iterdir() if p.name not in keep)
        return Outcome(result.returncode, _short(message, folder), leftovers, _sha(source) == before, seconds)


def killed_run_case(engine: Path) -> tuple[str, Outcome]:
    """kill -9 during a run, then a second run in the same folder: what the second run leaves."""
    situation = "kill -9 during a run, then the next run in that folder"
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        folder = Path(name)
        shutil.copy(NAIP, folder / "in.tif")
        _tiny_model(folder / "model", engine)
        base = [sys.executable, "-m", "infscene", "sr", str(folder / "in.tif"), str(folder / "out.tif"), "--scale", "2",
                "--patch", "32", "--model", str(folder / "model")]
        killed = subprocess.Popen([*base, "--steps", "2000", "--progress", "json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=_engine_env(engine))
        for line in killed.stdout:  # type: ignore[union-attr]
            if '"progress"' in line:
                break
        time.sleep(1.0)
        killed.kill()
        killed.wait()
        left_by_kill = sorted(p.name for p in folder.iterdir() if p.name not in {"in.tif", "model"})
        result = subprocess.run([*base, "--steps", "1", "--progress", "none"], capture_output=True, text=True,
                                timeout=TIMEOUT_S, env=_engine_env(engine))
        leftovers = sorted(p.name for p in folder.iterdir() if p.name not in {"in.tif", "model", "out.tif"})
        message = f"the kill left {left_by_kill or 'nothing'}; the next run exited {result.returncode}"
        return situation, Outcome(result.returncode, _short(message, folder), leftovers, True)


RESUME_ARGS = ["--scale", "2", "--steps", "40", "--patch", "32", "--bands", "1,2,3", "--model", "MODEL"]
STOP_AT_TRANSITIONS = 3  # the interrupted run is stopped once its checkpoint holds this many transitions


@dataclass
class ResumeCase:
    """A run interrupted by `stop` once its checkpoint holds a few steps, then `damage(folder, checkpoint)`, then the same
    command with --resume; its output, if any, is compared with the uninterrupted run's."""

    situation: str
    damage: Callable[[Path, Path], None]
    expect: Expect
    stop: signal.Signals = signal.SIGTERM


def _manifest(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "manifest.json").read_text())


def _state_chunk(checkpoint: Path) -> Path:
    """The chunk of the state the checkpoint's position needs (the whole state is one chunk at this size; two states
    take turns), found as an engine before the checksums also kept it."""
    state = f"state{_manifest(checkpoint)['transitions_done'] % 2}"
    return checkpoint / "store" / state / "c" / "0" / "0" / "0"


def _garble_chunk(folder: Path, checkpoint: Path) -> None:
    chunk = _state_chunk(checkpoint)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(255 - b for b in data[len(data) // 2:len(data) // 2 + 64])
    chunk.write_bytes(bytes(data))


def _edit_manifest(folder: Path, checkpoint: Path) -> None:
    body = _manifest(checkpoint)
    body["transitions_done"] = 999
    (checkpoint / "manifest.json").write_text(json.dumps(body))


def _swap_input(folder: Path, checkpoint: Path) -> None:
    """Other pixels written over the input, its size and time kept (it is uncompressed)."""
    source = folder / "in.tif"
    stat = source.stat()
    with rasterio.open(source, "r+") as ds:
        ds.write(255 - ds.read())
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


DAMAGED = r"^infscene: the checkpoint in \S+ is damaged \({}.*--restart"
RESUME_CASES = [
    ResumeCase("SIGTERM, then --resume", lambda folder, checkpoint: None, Expect(0)),
    ResumeCase("SIGINT, then --resume", lambda folder, checkpoint: None, Expect(0), stop=signal.SIGINT),
    ResumeCase("SIGKILL, then --resume", lambda folder, checkpoint: None, Expect(0), stop=signal.SIGKILL),
    ResumeCase("state chunk garbled in place, --resume", _garble_chunk, Expect(1, DAMAGED.format(r"state\d/c/0/0/0 does not match"))),
    ResumeCase("state chunk deleted, --resume", lambda f, c: _state_chunk(c).unlink(), Expect(1, DAMAGED.format(r"state\d/c/0/0/0 is missing"))),
    ResumeCase("state chunk truncated, --resume", lambda f, c: _state_chunk(c).write_bytes(_state_chunk(c).read_bytes()[:999]),
               Expect(1, DAMAGED.format(r"state\d/c/0/0/0 does not match"))),
    ResumeCase("garbled zarr.json in the run store, --resume", lambda f, c: (c / "store" / "zarr.json").write_text("{garbage"),
               Expect(1, DAMAGED.format(r"zarr.json does not match"))),
    ResumeCase("transitions_done 999 in the manifest, --resume", _edit_manifest, Expect(1, DAMAGED.format(r"manifest.json does not match"))),
    ResumeCase("another raster over the input, mtime restored, --resume", _swap_input,
               Expect(1, r"^infscene: the input is not the one the checkpoint .* was made from")),
]


def _uncompressed_naip(path: Path) -> None:
    with rasterio.open(NAIP) as src, rasterio.open(path, "w", **{**src.profile, "compress": None}) as dst:
        dst.write(src.read())


def _pixels(path: Path) -> bytes:
    with rasterio.open(path) as ds:
        return ds.read().tobytes()


def _resume_command(folder: Path, *extra: str) -> list[str]:
    args = [str(folder / "model") if a == "MODEL" else a for a in RESUME_ARGS]
    return [sys.executable, "-m", "infscene", "sr", str(folder / "in.tif"), str(folder / "out.tif"), *args,
            "--progress", "none", *extra]


def _stop_when_checkpointed(command: list[str], folder: Path, stop: signal.Signals, env: dict[str, str]) -> Path:
    """Run `command`, stop it once its checkpoint in `folder` holds STOP_AT_TRANSITIONS steps; that checkpoint's folder
    (named out.tif.KEY.infscene-checkpoint since a checkpoint belongs to one job; out.tif.infscene-checkpoint before)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + TIMEOUT_S
    found = folder / "out.tif.infscene-checkpoint"
    while time.monotonic() < deadline and process.poll() is None:
        found = next(iter(folder.glob("out.tif*.infscene-checkpoint")), found)
        try:
            if _manifest(found)["transitions_done"] >= STOP_AT_TRANSITIONS:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    process.send_signal(stop)
    process.wait(timeout=TIMEOUT_S)
    return found


def uninterrupted_pixels(engine: Path) -> bytes:
    """The pixels of the run the resume cases interrupt, run to the end."""
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        folder = Path(name)
        _uncompressed_naip(folder / "in.tif")
        _tiny_model(folder / "model", engine)
        subprocess.run(_resume_command(folder), check=True, env=_engine_env(engine), timeout=TIMEOUT_S, capture_output=True)
        return _pixels(folder / "out.tif")


def run_resume_case(case: ResumeCase, engine: Path, reference: bytes) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        folder = Path(name)
        _uncompressed_naip(folder / "in.tif")
        _tiny_model(folder / "model", engine)
        env = _engine_env(engine)
        checkpoint = _stop_when_checkpointed(_resume_command(folder), folder, case.stop, env)
        case.damage(folder, checkpoint)
        start = time.monotonic()
        result = subprocess.run(_resume_command(folder, "--resume"), capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        seconds = time.monotonic() - start
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(" ")]
        message = (lines or [""])[-1] if result.returncode else "(resumed)"
        equal = _pixels(folder / "out.tif") == reference if result.returncode == 0 else None
        leftovers = sorted(p.name for p in folder.iterdir() if p.name not in {"in.tif", "model", "out.tif"})
        return Outcome(result.returncode, _short(message, folder), leftovers, True, seconds, equal)


NOT_RERUN = Outcome(-1, "not rerun: it allocates without bound there", [], True)


def run_all(engine: Path, before_fix: bool = False) -> dict[str, Outcome]:
    outcomes = {case.situation: NOT_RERUN if before_fix and case.unbounded_before else run_case(case, engine)
                for case in [*CASES, *ISSUE_22_CASES]}
    situation, outcome = killed_run_case(engine)
    outcomes[situation] = outcome
    reference = uninterrupted_pixels(engine)
    for case in RESUME_CASES:
        outcomes[case.situation] = run_resume_case(case, engine, reference)
    return outcomes


EXPECTATIONS = {case.situation: case.expect for case in [*CASES, *ISSUE_22_CASES, *RESUME_CASES] if case.expect is not None}


def _cell(outcome: Outcome) -> tuple[str, ...]:
    if outcome is NOT_RERUN:
        return ("", outcome.message, "", "", "", "")
    equal = {None: "", True: "yes", False: "**no**"}[outcome.pixels_equal]
    return (str(outcome.exit), f"`{outcome.message[:SHOWN_CHARS]}`" if outcome.message else "", f"{outcome.seconds:.1f}", equal,
            ", ".join(outcome.leftovers) or "none", "yes" if outcome.input_unchanged else "**no**")


def _verdict(situation: str, outcome: Outcome) -> str:
    expect = EXPECTATIONS.get(situation)
    if expect is None:
        return ""
    problem = expect.problem(outcome)
    return f"exit {expect.exit}: " + ("as expected" if problem is None else f"**{problem}**")


def table(now: dict[str, Outcome], before: Optional[dict[str, Outcome]], ref: str) -> str:
    head = "| situation | exit | message (last line on stderr) | s | pixels = uninterrupted | leftovers | input unchanged | expected |"
    rule = "|---|---|---|---|---|---|---|---|"
    if before is not None:
        head += f" before ({ref}): exit | message | s | pixels = uninterrupted | leftovers | input unchanged |"
        rule += "---|---|---|---|---|---|"
    rows = [head, rule]
    for situation, outcome in now.items():
        cells = [situation, *_cell(outcome), _verdict(situation, outcome)]
        if before is not None:
            cells += _cell(before[situation]) if situation in before else [""] * 6
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _worktree(ref: str, folder: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True,
                   capture_output=True)
    return folder / "engine"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="also run every case against the engine of this git revision")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "hardening.md")
    args = p.parse_args()
    now = run_all(ROOT / "engine")
    before = None
    if args.before:
        with tempfile.TemporaryDirectory(prefix="infscene-before-") as name:
            try:
                before = run_all(_worktree(args.before, Path(name) / "tree"), before_fix=True)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(name) / "tree")],
                               capture_output=True)
    text = (
        "# Hostile cases\n\n"
        "What a user sees when the command line is given bad input or a bad environment (issues 11 and 22). Each row is one\n"
        "run of `infscene sr` in a fresh folder holding a copy of the NAIP fixture and a tiny random-weight model;\n"
        "*leftovers* are files left beside the input other than the expected outputs, *input unchanged* compares\n"
        "the input's sha256 before and after. Warnings are one line on stderr (and a JSON `warning` event with\n"
        "`--progress json`) and do not stop the run. In the *before* columns, `out.tif` among the leftovers means that\n"
        "run wrote an output where it should have refused. *s* is the wall time of the failing (or resumed) command on a\n"
        "loaded machine. The resume rows interrupt a run of 40 steps once its checkpoint holds 3 transitions, damage\n"
        "what the row says, run `--resume`, and compare the output's pixels with the uninterrupted run's; *expected*\n"
        "checks issue 22's cases against their expected exit status and message. Produced by `.venv/bin/python bench/hostile_cases.py"
        + (f" --before {args.before}" if args.before else "") + "`; rerun it to refresh this page.\n\n"
        + table(now, before, args.before or "") + "\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
