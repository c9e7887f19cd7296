"""Hostile cases against the `infscene` command line: what a user sees, what is left behind, whether the input survives.

Every case runs the real CLI in a fresh folder (a copy of the NAIP fixture as input, a tiny random-weight model
like the tests'), and records the exit status, the last line on stderr (the message), the files left in the
folder beyond the input and the expected outputs, and whether the input is byte-identical afterwards.
`--before REF` also runs every case against the engine of a git revision (a temporary worktree), so the table
shows what each case did before the hardening of issue 11. Writes docs/hardening.md.

    .venv/bin/python bench/hostile_cases.py [--before 02e767d] [--out docs/hardening.md]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
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


@dataclass
class Outcome:
    exit: int
    message: str
    leftovers: list[str] = field(default_factory=list)
    input_unchanged: bool = True


MAKE_MODEL = (
    "import sys, torch\n"
    "from infscene.models.folder import save_model\n"
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


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _limit(size: Optional[int]) -> Optional[Callable[[], None]]:
    if size is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def _short(text: str, folder: Path) -> str:
    return text.replace(str(folder) + "/", "").replace(str(folder), ".").replace("|", "\\|")[:150]


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
        result = subprocess.run([sys.executable, "-m", "infscene", *args], capture_output=True, text=True,
                                timeout=TIMEOUT_S, env=_engine_env(engine), preexec_fn=_limit(case.file_limit))
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(" ")]
        warnings = [line for line in lines if "warning" in line.lower()]
        message = " / ".join(warnings) or (lines or result.stdout.strip().splitlines()[-1:] or [""])[-1]
        if result.returncode < 0:
            message = f"killed by {signal.Signals(-result.returncode).name}: " + message
        if "12-bit data" in case.situation and result.returncode == 0:
            with rasterio.open(folder / "out.tif") as out:
                message = f"output max {int(out.read().max())} (input max 4095)"
        keep = {case.input_name, "model", *case.expected}
        leftovers = sorted(p.name for p in folder.iterdir() if p.name not in keep)
        return Outcome(result.returncode, _short(message, folder), leftovers, _sha(source) == before)


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


NOT_RERUN = Outcome(-1, "not rerun: it allocates without bound there", [], True)


def run_all(engine: Path, before_fix: bool = False) -> dict[str, Outcome]:
    outcomes = {case.situation: NOT_RERUN if before_fix and case.unbounded_before else run_case(case, engine)
                for case in CASES}
    situation, outcome = killed_run_case(engine)
    outcomes[situation] = outcome
    return outcomes


def _cell(outcome: Outcome) -> tuple[str, str, str, str]:
    if outcome is NOT_RERUN:
        return ("", outcome.message, "", "")
    return (str(outcome.exit), f"`{outcome.message}`" if outcome.message else "",
            ", ".join(outcome.leftovers) or "none", "yes" if outcome.input_unchanged else "**no**")


def table(now: dict[str, Outcome], before: Optional[dict[str, Outcome]], ref: str) -> str:
    head = "| situation | exit | message (last line on stderr) | leftovers | input unchanged |"
    rule = "|---|---|---|---|---|"
    if before is not None:
        head += f" before ({ref}): exit | message | leftovers | input unchanged |"
        rule += "---|---|---|---|"
    rows = [head, rule]
    for situation, outcome in now.items():
        cells = [situation, *_cell(outcome)]
        if before is not None:
            cells += _cell(before[situation])
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
        "What a user sees when the command line is given bad input or a bad environment (issue 11). Each row is one\n"
        "run of `infscene sr` in a fresh folder holding a copy of the NAIP fixture and a tiny random-weight model;\n"
        "*leftovers* are files left beside the input other than the expected outputs, *input unchanged* compares\n"
        "the input's sha256 before and after. Warnings are one line on stderr (and a JSON `warning` event with\n"
        "`--progress json`) and do not stop the run. In the *before* columns, `out.tif` among the leftovers means that\n"
        "run wrote an output where it should have refused. Produced by `.venv/bin/python bench/hostile_cases.py"
        + (f" --before {args.before}" if args.before else "") + "`; rerun it to refresh this page.\n\n"
        + table(now, before, args.before or "") + "\n"
    )
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
