"""The engine-plugin contract is written once (issue 11): the plugin's protocol.py and sr_options.py (the option
table) are the engine's, byte for byte; every event kind survives the trip from the engine's JSON line through the
plugin's parser; what the engine really prints (sr and iceplant, success, warning, error, cancel) parses; and the
limits agree."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
import rasterio

import infscene.protocol as engine_protocol
from infscene.commands import main as cli
from infscene.diffusion.fusion import FusionMode
from infscene.raster.io import copy_band_metadata, resolve_bands
from infscene.diffusion.schedule import PAPER_T
from infscene_qgis import engine_events, result_layers
from infscene_qgis import protocol as plugin_protocol
from plugin_helpers import NAIP

ROOT = Path(__file__).resolve().parents[2]

SAMPLES = [
    plugin_protocol.Plan(output_width=128, output_height=96, patches=25, steps=50, total=1250, output_bytes=49152,
                         canvas_bytes=720896, estimated_s=12.5, protocol=plugin_protocol.PROTOCOL_VERSION),
    plugin_protocol.Plan(1, 1, 1, 1, 1, 4, 0, None, plugin_protocol.PROTOCOL_VERSION),
    plugin_protocol.Progress(done=3, total=10, fraction=0.3, rate=1.5, eta_s=None),
    plugin_protocol.RunWarning("the extent reaches beyond the raster; it was clipped"),
    plugin_protocol.Done(("/a/sr.tif", "/a/p.png")),
    plugin_protocol.Failure("input file not found: x.tif"),
    plugin_protocol.Cancelled("cancelled by the user; no output was written"),
    plugin_protocol.Serving(url="http://127.0.0.1:8765/{z}/{x}/{y}.png", port=8765, min_zoom=12, max_zoom=19, native_zoom=16),
    plugin_protocol.TileActivity(queued=6, rendering=2, done=40, cached=12),
    plugin_protocol.QuickPlan(
        problems=("the extent is outside the raster",), warnings=(), unavailable={"detail": "this model is SR3: ..."},
        model=plugin_protocol.ModelSummary("/m", "tiny", "sr3", False, 32, 2.0, 8.0, False, 1.0, None, 0.6),
        georeferenced=True, input_size=(64, 64), dtype="uint8", window=(0, 0, 64, 64), output_size=(256, 256),
        scale=4.0, output_pixel_size=1.25, output_bytes=196608, spread_bytes=0, disk_free=None, seconds=0.02),
    plugin_protocol.QuickPlan(problems=(), warnings=("w",), unavailable={}),
]


@pytest.mark.parametrize("contract", ["protocol.py", "sr_options.py"])
def test_the_plugin_ships_the_engines_contract_byte_for_byte(contract: str) -> None:
    engine = (ROOT / "engine" / "infscene" / contract).read_bytes()
    assert (ROOT / "infscene_qgis" / contract).read_bytes() == engine, \
        f"copy engine/infscene/{contract} to infscene_qgis/{contract}"


def test_every_event_kind_goes_through_the_plugins_parser() -> None:
    assert {type(s) for s in SAMPLES} == set(plugin_protocol.EVENT_NAMES)
    for sample in SAMPLES:
        engine_event = getattr(engine_protocol, type(sample).__name__)(**dataclasses.asdict(sample))
        assert engine_events.parse_event(engine_protocol.event_line(engine_event)) == sample


@pytest.mark.parametrize("line", ["", "not json", "{", '{"event": "plan"}', '{"event": "done", "outputs": "x"}',
                                  '{"event": "mystery"}', "[" * 100000, '{"event": "progress", "done": "many"}'])
def test_what_is_not_a_protocol_line_is_ignored(line: str) -> None:
    assert engine_events.parse_event(line) is None


def test_the_plugins_limits_are_the_engines() -> None:
    assert plugin_protocol.MAX_STEPS == PAPER_T
    assert plugin_protocol.MODES == tuple(m.value for m in FusionMode)


def test_the_plugin_reads_the_source_bands_the_engine_writes(tmp_path: Path) -> None:
    """The engine tags each output band with the input band it came from; the plugin maps bands back by that tag."""
    out = tmp_path / "tagged.tif"
    with rasterio.open(NAIP) as src:
        layout = resolve_bands(src, [3, 2, 1])
        with rasterio.open(out, "w", driver="GTiff", width=4, height=4, count=len(layout.kept), dtype="uint8") as dst:
            copy_band_metadata(src, dst, layout)
    assert result_layers.source_bands(str(out)) == dict(enumerate(layout.kept, start=1))


def _events(engine_python: str, *arguments: str) -> list:
    result = subprocess.run([engine_python, "-m", "infscene", *arguments, "--progress", "json"], capture_output=True,
                            text=True, timeout=300)
    lines = result.stdout.splitlines()
    parsed = [engine_events.parse_event(line) for line in lines]
    assert None not in parsed, lines  # every line the engine prints is a protocol line the plugin understands
    return parsed


def test_what_the_engine_prints_parses(engine_python: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    sr = _events(engine_python, "sr", str(NAIP), str(tmp_path / "sr.tif"), "--scale", "9", "--steps", "1",
                 "--patch", "32", "--model", str(tiny_model_dir))
    assert isinstance(sr[0], engine_events.Plan) and sr[0].protocol == plugin_protocol.PROTOCOL_VERSION
    assert isinstance(sr[1], engine_events.RunWarning) and "outside the range the model was trained on" in sr[1].message
    assert isinstance(sr[-1], engine_events.Done)
    iceplant = _events(engine_python, "iceplant", str(NAIP), str(tmp_path / "p.tif"))
    assert isinstance(iceplant[0], engine_events.Plan) and iceplant[0].steps == 1  # the iceplant plan was dropped before
    assert isinstance(iceplant[-1], engine_events.Done)
    failed = _events(engine_python, "sr", str(NAIP), str(tmp_path / "x.tif"), "--scale", "2", "--steps", "5000")
    assert failed == [engine_events.Failure("steps must be between 1 and 2000, got 5000")]
    usage = _events(engine_python, "sr", str(NAIP), str(tmp_path / "x.tif"), "--scale", "two")
    assert isinstance(usage[0], engine_events.Failure) and "invalid float value" in usage[0].message


def test_the_engine_reports_its_protocol_version(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["protocol"] == plugin_protocol.PROTOCOL_VERSION
