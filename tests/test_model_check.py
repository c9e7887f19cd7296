"""Issue 11, defect 4: a model folder is validated before anything is built or allocated, for every family:
config types and ranges, the parameter count from a meta-device build, the safetensors header alone."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from infscene.commands import main as cli
from infscene.errors import InfSceneError
from infscene.modelformat.files import CONFIG_FILE, WEIGHTS_FILE
from infscene.models.registry import check_model, load_model
from infscene.modelformat.check import read_safetensors_header


def _folder(tiny_model_dir: Path, tmp_path: Path, weights: bytes | None = None, **changes: object) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = {**json.loads((folder / CONFIG_FILE).read_text()), **changes}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    if weights is not None:
        (folder / WEIGHTS_FILE).write_bytes(weights)
    return folder


BAD_CONFIGS = {
    "huge network": ({"base_channels": 200000}, "parameters .* more than the engine loads"),
    "big network, small weights": ({"base_channels": 1024}, "do not match the config"),
    "patch size as text": ({"patch_size": "128"}, "patch_size must be a whole number >= 1, got \"128\""),
    "zero groups": ({"norm_groups": 0}, "norm_groups must be a whole number >= 1"),
    "groups that do not divide": ({"norm_groups": 3}, "the network cannot be built"),
    "constant values": ({"value_min": 10.0, "value_max": 10.0}, "every output is one constant"),
    "NaN scale": ({"scale_max": float("nan")}, "scale_max must be a finite number"),
    "unknown field": ({"layers": 3}, "unknown field 'layers'"),
    "family as a list": ({"family": ["sr3"]}, "unknown model family"),
    "bands as a number": ({"bands": 3}, "bands must be a list"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_a_bad_config_is_one_line_before_anything_is_built(case: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    changes, message = BAD_CONFIGS[case]
    folder = _folder(tiny_model_dir, tmp_path, **changes)
    start = time.perf_counter()
    with pytest.raises(InfSceneError, match=message) as err:
        load_model(folder)
    assert "\n" not in str(err.value) and time.perf_counter() - start < 10  # nothing huge was allocated


def test_deeply_nested_json_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _folder(tiny_model_dir, tmp_path)
    (folder / CONFIG_FILE).write_text('{"notes": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(InfSceneError, match="nested too deeply"):
        check_model(folder)


@pytest.mark.parametrize("weights, message", [
    (b"", "not a safetensors file"),
    (b"\xff" * 64, "not a safetensors file"),
    ((19).to_bytes(8, "little") + b"{not json at all!!}", "unreadable header"),
])
def test_malformed_weights_are_one_line(weights: bytes, message: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InfSceneError, match=message):
        load_model(_folder(tiny_model_dir, tmp_path, weights=weights))


def test_truncated_weights_are_refused_from_the_header(tiny_model_dir: Path, tmp_path: Path) -> None:
    whole = (tiny_model_dir / WEIGHTS_FILE).read_bytes()
    assert read_safetensors_header(tiny_model_dir / WEIGHTS_FILE)  # the real file passes
    with pytest.raises(InfSceneError, match="truncated or padded"):
        load_model(_folder(tiny_model_dir, tmp_path, weights=whole[:-100]))


def test_another_family_gets_the_same_check(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "e2"
    folder.mkdir()
    (folder / CONFIG_FILE).write_text(json.dumps({"family": "e2diffsr", "name": "e2"}))
    shutil.copy(tiny_model_dir / WEIGHTS_FILE, folder / WEIGHTS_FILE)  # SR3 weights under an e2diffsr config
    with pytest.raises(InfSceneError, match="do not match the config"):
        check_model(folder)


def test_info_checks_the_same_way(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _folder(tiny_model_dir, tmp_path, base_channels=1024, trained=True)
    assert cli.main(["info", "--json", "--model", str(folder)]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert "trained" not in model and "do not match the config" in model["error"]
