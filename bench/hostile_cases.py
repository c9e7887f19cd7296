"""Hostile cases against the `infscene` command line: what a user sees, what is left behind, whether the input survives.

Every case runs the real CLI in a fresh folder (a copy of the NAIP fixture as input, a tiny random-weight model
like the tests'), and records the exit status, the last line on stderr (the message), the files left in the
folder beyond the input and the expected outputs, and whether the input is byte-identical afterwards.
`--before REF` also runs every case against the engine of a git revision (a temporary worktree), so the table
shows what each case did before the hardening of issue 11. Writes docs/hardening.md.

The cases of issues 22 and 35 (trust) say what they expect: an exit status and a pattern of the message (`Expect`).
Some run the command inside a bash line (a closed stderr, a reader that goes away, a deleted current folder) or
beside a service listening for the run's duration (a web server given as the Dask scheduler). The resume cases
interrupt a run (SIGTERM once its checkpoint holds a few steps), damage the checkpoint or the input or run other
jobs in its folder, run `--resume`, and compare the pixels with the uninterrupted run's. `tests/test_hostile_cases.py`
runs the quick ones.

    .venv/bin/python bench/hostile_cases.py [--before 02e767d] [--out docs/hardening.md]
"""
from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import resource
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

ROOT = Path(__file__).resolve().parents[1]
NAIP = ROOT / "tests" / "fixtures" / "naip_nd_5m_64.tif"
PLANET = ROOT / "tests" / "fixtures" / "planet_sn7_48.tif"  # another real scene: another job's input
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
    shell: Optional[str] = None  # a bash line the command runs in, as "$@" (e.g. '"$@" 2>&-'), in the case's folder
    service: Optional[Callable[[], AbstractContextManager[str]]] = None  # listens during the run; its address is SERVICE
    python_warnings: bool = False  # Python's warnings shown, as a user sees them (elsewhere PYTHONWARNINGS=ignore)
    timeout_s: float = TIMEOUT_S  # a run still going by then is killed and recorded as hung (a wait without end before a fix)


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


def _rewrite(folder: Path, data: np.ndarray, colorinterp: Optional[list[ColorInterp]] = None, **profile: object) -> None:
    base = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2], "dtype": data.dtype}
    (folder / "in.tif").unlink()
    with rasterio.open(folder / "in.tif", "w", **{**base, **profile}) as dst:
        dst.write(data)
        if colorinterp:
            dst.colorinterp = colorinterp


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


def _fifo(folder: Path) -> None:
    (folder / "in.tif").unlink()
    os.mkfifo(folder / "in.tif")


def _zipped(folder: Path) -> None:
    with zipfile.ZipFile(folder / "in.zip", "w") as archive:
        archive.write(folder / "in.tif", "in.tif")
    (folder / "in.tif").unlink()


def _complex_bands(folder: Path) -> None:
    """A complex64 copy of the NAIP crop, as a SAR scene (SLC) holds its values."""
    with rasterio.open(NAIP) as src:
        data, crs, transform = src.read().astype(np.complex64) * (1 + 1j), src.crs, src.transform
    _rewrite(folder, data, crs=crs, transform=transform)


def _nodata_and_alpha(folder: Path) -> None:
    """RGB with nodata 0 and an alpha band whose first 8 rows are transparent: GDAL's masks then ignore the alpha band
    (rasterio says so in a NodataShadowWarning)."""
    with rasterio.open(NAIP) as src:
        rgb, crs, transform = src.read([1, 2, 3]), src.crs, src.transform
    alpha = np.full(rgb.shape[1:], 255, np.uint8)
    alpha[:8] = 0
    _rewrite(folder, np.concatenate([np.maximum(rgb, 1), alpha[None]]), crs=crs, transform=transform, nodata=0,
             colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha])


class _AnswersHttpAtOnce(socketserver.BaseRequestHandler):
    """Greets every connection with an HTTP reply before reading anything (Dask's client read it as a frame length)."""

    def handle(self) -> None:
        self.request.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


class _QuietWebServer(http.server.BaseHTTPRequestHandler):
    """A web server's handler (it waits for a request line), its log of requests left out of the bench's output."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Service(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a handler still waiting on a connection the engine gave up does not hold the bench


def _listening(handler: type[socketserver.BaseRequestHandler]) -> Callable[[], AbstractContextManager[str]]:
    """A service answering with `handler` on a thread of this process for the run of a case; its tcp:// address."""

    @contextmanager
    def service() -> Iterator[str]:
        with _Service(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                yield f"tcp://127.0.0.1:{server.server_address[1]}"
            finally:
                server.shutdown()

    return service


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


DASK_AT_ONCE_S = 15  # a Dask address refused or a service not answering as Dask: the CLI's start and one check
ISSUE_35_CASES = [
    Case("FIFO as the input", _run(), _fifo, expect=Expect(1, r"^infscene: the input in\.tif is not a regular file \(a FIFO",
                                                            within_s=15), timeout_s=60, quick=True),
    Case("complex64 bands", _run(), _complex_bands, python_warnings=True,
         expect=Expect(1, r"^infscene: band 1 of in\.tif holds complex values \(complex64\), which the engine cannot"),
         quick=True),
    Case("/vsizip/ path to the zipped input", [a if a != "INPUT" else "/vsizip/DIR/in.zip/in.tif" for a in _run()],
         _zipped, ("out.tif",), input_name="in.zip", expect=Expect(0, r"^out\.tif$"), quick=True),
    Case("/vsicurl/ URL (no network)", [a if a != "INPUT" else "/vsicurl/http://example.invalid/in.tif" for a in _run()],
         expect=Expect(1, r"^infscene: GDAL cannot open /vsicurl/http://example\.invalid/in\.tif: ", within_s=30),
         quick=True),
    Case("--dask http:// (the dashboard's address)", _run("--dask", "http://127.0.0.1:8787"),
         expect=Expect(1, r"^infscene: --dask http://127\.0\.0\.1:8787 is a web address", within_s=DASK_AT_ONCE_S),
         quick=True),
    Case("--dask tls:// without certificates", _run("--dask", "tls://127.0.0.1:8786"),
         expect=Expect(1, r"^infscene: --dask tls://127\.0\.0\.1:8786: tls:// needs the cluster's certificates",
                       within_s=DASK_AT_ONCE_S), quick=True),
    Case("--dask ucx://", _run("--dask", "ucx://127.0.0.1:8786"),
         expect=Expect(1, r"^infscene: --dask ucx://127\.0\.0\.1:8786: this machine's Dask cannot open ucx:// connections",
                       within_s=DASK_AT_ONCE_S), quick=True),
    Case("--dask at a host name that does not resolve", _run("--dask", "tcp://scheduler.invalid:8786"),
         expect=Expect(1, r"^infscene: cannot reach the Dask scheduler at tcp://scheduler\.invalid:8786: the host name "
                          r"scheduler\.invalid is not known", within_s=DASK_AT_ONCE_S), quick=True),
    Case("--dask at a service that answers HTTP at once", _run("--dask", "SERVICE"), service=_listening(_AnswersHttpAtOnce),
         expect=Expect(1, r"^infscene: cannot reach the Dask scheduler at tcp://127\.0\.0\.1:\d+: the service there answers, "
                          r"but not in Dask's protocol", within_s=DASK_AT_ONCE_S), quick=True),
    Case("--dask at a web server that waits for a request", _run("--dask", "SERVICE"),
         service=_listening(_QuietWebServer), timeout_s=60,
         expect=Expect(1, r"^infscene: cannot reach the Dask scheduler at tcp://127\.0\.0\.1:\d+: the service there gave no "
                          r"Dask handshake within 5 s", within_s=DASK_AT_ONCE_S + 5)),
    Case("the current folder deleted", _run(), shell='mkdir gone && cd gone && rmdir "$PWD" && exec "$@"',
         expect=Expect(1, r"^infscene: the current folder no longer exists"), quick=True),
    Case("stderr closed (2>&-), the default progress bar", RUN[:-2],  # RUN without --progress none
         shell='exec "$@" 2>&-', expected=("out.tif",), expect=Expect(0, r"^out\.tif$"), quick=True),
    # nothing on stderr: the message is then the one byte the reader took
    Case("--progress json | head -c 1", _run("--progress", "json"), shell='"$@" | head -c 1; exit "${PIPESTATUS[0]}"',
         expect=Expect(141, r"^\{$"), quick=True),
    Case("nodata 0 and an alpha band", _run(), _nodata_and_alpha, ("out.tif",), python_warnings=True,
         expect=Expect(0, r"^out\.tif$"), quick=True),
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _limit(size: Optional[int]) -> Optional[Callable[[], None]]:
    if size is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


SHOWN_CHARS = 150  # of a message, in the table (the expectations see all of it)


def _short(text: str, folder: Path) -> str:
    """Paths in the case's folder made relative; the folder within a longer path (/vsizip/FOLDER/in.zip) shown as DIR."""
    inside = re.sub(rf"(?<=[^\s'\"(`]){re.escape(str(folder))}", "DIR", text)
    return inside.replace(str(folder) + "/", "").replace(str(folder), ".").replace("|", "\\|")


def _engine_env(engine: Path, python_warnings: bool = False) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(engine)}
    return env if python_warnings else {**env, "PYTHONWARNINGS": "ignore"}


def _arguments(args: list[str], folder: Path, names: dict[str, str]) -> list[str]:
    """A case's arguments with their placeholders filled: a whole argument named in `names`, or DIR inside one."""
    return [names.get(a, a.replace("DIR", str(folder))) for a in args]


def _message_lines(stderr: str) -> list[str]:
    """The lines of stderr that say something (a traceback's indented lines left out)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(" ")]


def run_case(case: Case, engine: Path) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        folder = Path(name)
        shutil.copy(NAIP, folder / "in.tif")
        if "MODEL" in case.args:
            _tiny_model(folder / "model", engine)
        case.setup(folder)
        source = folder / case.input_name
        before = _sha(source)
        with case.service() if case.service else nullcontext("") as address:
            names = {"INPUT": str(source), "OUT": str(folder / "out.tif"), "MODEL": str(folder / "model"), "SERVICE": address}
            command = [sys.executable, "-m", "infscene", *_arguments(case.args, folder, names)]
            if case.shell:
                command = ["bash", "-c", case.shell, "bash", *command]
            start = time.monotonic()
            try:
                result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=case.timeout_s,
                                        env=_engine_env(engine, case.python_warnings), preexec_fn=_limit(case.file_limit))
            except subprocess.TimeoutExpired:  # subprocess.run killed it
                result = subprocess.CompletedProcess(command, -signal.SIGKILL, "", f"no answer in {case.timeout_s:g} s")
            seconds = time.monotonic() - start
        lines = _message_lines(result.stderr)
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
    # other runs in the folder after the damage, before the --resume: `infscene` arguments (MODEL and DIR replaced);
    # their exits (and messages) end the row's message
    others: tuple[tuple[str, ...], ...] = ()
    expected: tuple[str, ...] = ()  # what they may leave (besides the resumed run's output)


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

# Issue 35: a checkpoint belongs to one job. Before, checkpoints were named by the output's file name only: another job
# was refused by the interrupted one's checkpoint, and the advice it was given (--restart) deleted it.
OTHER_RUN = ("--steps", "2", "--progress", "none")  # a short run: its options differ from the interrupted one's
ISSUE_35_RESUME_CASES = [
    ResumeCase("another job (other input, b/out.tif) in the same work folder, again with --restart, then --resume",
               lambda folder, checkpoint: (folder / "b").mkdir(),
               Expect(0, r"^\(resumed\) after: exit 0; exit 0$"), expected=("b",),
               others=(("sr", str(PLANET), "DIR/b/out.tif", *RESUME_ARGS, "--work-dir", "DIR", *OTHER_RUN),
                       ("sr", str(PLANET), "DIR/b/out.tif", *RESUME_ARGS, "--work-dir", "DIR", *OTHER_RUN, "--restart"))),
    ResumeCase("the same output with other options (--steps 2), again with --restart, then --resume",
               lambda folder, checkpoint: None,
               Expect(0, r"^\(resumed\) after: exit 1 \(infscene: the checkpoint in out\.tif\.\w+\.infscene-checkpoint is "
                         r"of another interrupted run of this output \(steps: 40 there, 2 now.*\); exit 0$"),
               others=(("sr", "DIR/in.tif", "DIR/out.tif", *RESUME_ARGS, *OTHER_RUN),
                       ("sr", "DIR/in.tif", "DIR/out.tif", *RESUME_ARGS, *OTHER_RUN, "--restart"))),
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


def _other_run(args: list[str], env: dict[str, str]) -> str:
    """Run `infscene args`: its exit status, and its message when it fails."""
    result = subprocess.run([sys.executable, "-m", "infscene", *args], capture_output=True, text=True, timeout=TIMEOUT_S,
                            env=env)
    return f"exit {result.returncode}" + (f" ({(_message_lines(result.stderr) or [''])[-1]})" if result.returncode else "")


def run_resume_case(case: ResumeCase, engine: Path, reference: bytes) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        folder = Path(name)
        _uncompressed_naip(folder / "in.tif")
        _tiny_model(folder / "model", engine)
        env = _engine_env(engine)
        checkpoint = _stop_when_checkpointed(_resume_command(folder), folder, case.stop, env)
        case.damage(folder, checkpoint)
        others = [_other_run(_arguments(list(args), folder, {"MODEL": str(folder / "model")}), env) for args in case.others]
        start = time.monotonic()
        result = subprocess.run(_resume_command(folder, "--resume"), capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        seconds = time.monotonic() - start
        message = (_message_lines(result.stderr) or [""])[-1] if result.returncode else "(resumed)"
        if others:
            message += " after: " + "; ".join(others)
        equal = _pixels(folder / "out.tif") == reference if result.returncode == 0 else None
        leftovers = sorted(p.name for p in folder.iterdir() if p.name not in {"in.tif", "model", "out.tif", *case.expected})
        return Outcome(result.returncode, _short(message, folder), leftovers, True, seconds, equal)


NOT_RERUN = Outcome(-1, "not rerun: it allocates without bound there", [], True)


def run_all(engine: Path, before_fix: bool = False) -> dict[str, Outcome]:
    outcomes = {case.situation: NOT_RERUN if before_fix and case.unbounded_before else run_case(case, engine)
                for case in [*CASES, *ISSUE_22_CASES, *ISSUE_35_CASES]}
    situation, outcome = killed_run_case(engine)
    outcomes[situation] = outcome
    reference = uninterrupted_pixels(engine)
    for case in [*RESUME_CASES, *ISSUE_35_RESUME_CASES]:
        outcomes[case.situation] = run_resume_case(case, engine, reference)
    return outcomes


EXPECTATIONS = {case.situation: case.expect for case in [*CASES, *ISSUE_22_CASES, *ISSUE_35_CASES, *RESUME_CASES,
                                                           *ISSUE_35_RESUME_CASES] if case.expect is not None}


def _code(text: str) -> str:
    """Markdown code of a message, which may hold backticks of its own (`Scheduler at:`)."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _cell(outcome: Outcome) -> tuple[str, ...]:
    if outcome is NOT_RERUN:
        return ("", outcome.message, "", "", "", "")
    equal = {None: "", True: "yes", False: "**no**"}[outcome.pixels_equal]
    return (str(outcome.exit), _code(outcome.message[:SHOWN_CHARS]) if outcome.message else "", f"{outcome.seconds:.1f}", equal,
            ", ".join(outcome.leftovers) or "none", "yes" if outcome.input_unchanged else "**no**")


def _verdict(situation: str, outcome: Outcome) -> str:
    expect = EXPECTATIONS.get(situation)
    if expect is None:
        return ""
    problem = expect.problem(outcome)
    return f"exit {expect.exit}: " + ("as expected" if problem is None else f"**{problem}**")


def table(now: dict[str, Outcome], before: Optional[dict[str, Outcome]], ref: str) -> str:
    head = "| situation | exit | message | s | pixels = uninterrupted | leftovers | input unchanged | expected |"
    rule = "|---|---|---|---|---|---|---|---|"
    if before is not None:
        head += f" before ({ref}): exit | message | s | pixels = uninterrupted | leftovers | input unchanged |"
        rule += "---|---|---|---|---|---|"
    rows = [head, rule]
    for situation, outcome in now.items():
        cells = [situation.replace("|", "\\|"), *_cell(outcome), _verdict(situation, outcome)]
        if before is not None:
            cells += _cell(before[situation]) if situation in before else [""] * 6
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


NOT_ROWS = """## Cases of issue 35 that are not rows

The tile server, the Python API, an input changed while the run reads it, and what a row above checks only in part:
the tests named cover these. Their before and after are as the helpers who fixed them measured (this script does not
rerun them).

| situation | before | after | tests |
|---|---|---|---|
| the input overwritten in place mid-run (band 4 of the same file, once half the steps are done) | exit 0, bands 1-3 from the old file, band 4 from the new one (up to 212 DN off) | exit 1, `infscene: the input IN changed while the run was using it (it was written to, or its times or permissions were changed), so the output would mix two files: nothing was written; rerun once the input is no longer being changed` | tests/test_input_change.py (in place, its time kept, replaced, deleted; with and without a checkpoint; changed between plan and run; the rerun goes ahead) |
| a checkpoint in use by a live run | any run of an output of that file name in that work folder: `another run is using the checkpoint ... (the same output)` | a run of the same output: `another run of this output is using the checkpoint ...: wait for it or stop it`; a run of another output goes ahead | tests/test_job_checkpoints.py::test_a_run_of_the_same_output_waits_for_a_live_one_and_a_run_of_another_output_does_not |
| `--dask` at an unroutable address (no packet leaves the sandbox: the connection's timeout is simulated) | exit 1 after 20 s of Dask's retries | one line within 5 s: `... gave no answer within 5 s (an unroutable address ...` | tests/test_scaleout.py::test_an_address_that_never_answers_is_one_line_within_the_timeout |
| `/vsizip/` input: its pixels (the row above checks the exit and the output) | exit 1, `input file not found` | exit 0, pixel-equal to the plain run's | tests/test_cli_edges.py::test_a_vsizip_input_is_super_resolved_end_to_end |
| `/vsis3/` input | exit 1, `input file not found: /vsis3/...` | exit 1, `infscene: GDAL cannot open /vsis3/...: ...` | tests/test_cli_edges.py::test_a_virtual_path_gdal_cannot_open_is_one_line_naming_it |
| tile server: the source replaced while served (renamed over it, or overwritten in place) | tiles of both files in one layer, cached under the old file's key | `infscene serve: SRC changed: serving it as it is now (...)`, every tile the new file's | tests/test_serve.py::test_a_source_replaced_while_served_is_served_as_the_new_file, ::test_a_source_replaced_while_its_tile_is_made_is_never_mixed |
| tile server: the cache's disk full | HTTP 500 for 76 of 170 tiles | one line `infscene serve: cache folder ROOT cannot be written (No space left on device): serving without a disk cache`, every tile 200 | tests/test_serve_cache.py::test_a_cache_whose_disk_fills_up_is_left_in_one_line, ::test_a_full_cache_disk_fails_no_tile |
| tile server: two servers sharing a cache folder | 157,839 B held against a 104,857 B bound | within the bound after every tile | tests/test_serve.py::test_two_servers_sharing_a_cache_folder_hold_its_bound_together, tests/test_serve_cache.py::test_two_servers_over_one_folder_hold_its_bound_together |
| tile server: a killed server's partial block | outside the bound, for ever | counted, removed at the next start or eviction | tests/test_serve_cache.py::test_partial_files_of_killed_servers_are_removed_at_start_and_at_eviction, ::test_a_live_servers_partial_files_count_and_stay |
| Python API: a value of the wrong type (`steps=2.5`, `samples="2"`, `model_dir=123`) | TypeError / ValueError, or taken (`seed=1.5`) | `InfSceneError` naming the option, e.g. `steps must be a whole number, got 2.5` | tests/test_sr_options.py::test_a_value_of_the_wrong_type_is_refused_by_the_options_name, tests/test_bad_input.py::test_the_python_api_checks_every_value_before_using_it |
| Python API: `mode="vcf"` as text | passed the check, then AttributeError | runs as `FusionMode.VCF`, the same pixels | tests/test_bad_input.py::test_the_python_api_checks_every_value_before_using_it |
"""


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
        "What a user sees when the command line is given bad input or a bad environment (issues 11, 22 and 35). Each row\n"
        "is one run of `infscene sr` in a fresh folder holding a copy of the NAIP fixture and a tiny random-weight model;\n"
        "*leftovers* are files left beside the input other than the expected outputs, *input unchanged* compares\n"
        "the input's sha256 before and after. Warnings are one line on stderr (and a JSON `warning` event with\n"
        "`--progress json`) and do not stop the run. Python's own warnings are hidden (`PYTHONWARNINGS=ignore`) except in\n"
        "the complex-band and nodata-plus-alpha rows, where a raw warning is what the row looks for. Some rows run the\n"
        "command in a bash line (`2>&-`, `| head -c 1`, a deleted current folder) or beside a service listening on\n"
        "127.0.0.1 for the run (two of the Dask rows). A row's message is its error line, or its warnings, or else the\n"
        "last line on stdout (`out.tif`, the output's path, for a quiet success); in it, DIR is the case's folder where\n"
        "it is part of a longer path (`/vsizip/DIR/in.zip/in.tif`). A run with no answer\n"
        "within its limit (60 s for the FIFO and the waiting web server) is killed and shows `killed by SIGKILL: no\n"
        "answer in 60 s`. In the *before* columns, `out.tif` among the leftovers means that run wrote an output where it\n"
        "should have refused. *s* is the wall time of the failing (or resumed) command on a machine loaded by other work\n"
        "(2 cores shared with other jobs): a loaded figure, good for \"at once\" against \"after 20 s\", not for timings.\n"
        "The resume rows interrupt a run of 40 steps once its checkpoint holds 3 transitions, damage what the row says\n"
        "or run the other jobs it names in the folder (their exits end the message, after `after:`), run `--resume`, and\n"
        "compare the output's pixels with the uninterrupted run's; *expected* checks the cases of issues 22 and 35\n"
        "against their expected exit status and message. Produced by `.venv/bin/python bench/hostile_cases.py"
        + (f" --before {args.before}" if args.before else "") + "`; rerun it to refresh this page.\n\n"
        + table(now, before, args.before or "") + "\n\n" + NOT_ROWS
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
