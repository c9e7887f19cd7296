"""A model proves it is the model its card describes (issue 35): the sha256 of its weights and its distance from the
bicubic baseline on the probe image, recorded in config.json when it is saved, checked before a run.

Before: finite random weights of the shipped models' shapes behind a valid header ran to exit 0 and wrote noise (the
checks caught only NaN and one constant output).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from infscene.commands import main as cli
from infscene.errors import InfSceneError
from infscene.modelformat import card as model_card
from infscene.modelformat.card import AGREEMENT_TOLERANCE, CARD_KEY, DISTANCE_TOLERANCE, NOISE_RATIO
from infscene.modelformat.files import CONFIG_FILE, WEIGHTS_FILE
from infscene.modelformat.folder import save_model
from infscene.modelformat.probe import PROBE_IMAGE, probe_truth, run_probe
from infscene.models.e2diffsr.network import E2DiffSR, E2DiffSRConfig
from infscene.models.registry import check_model, load_model, model_notes, record_card
from infscene.plan import SROptions, plan_run

from scenes import FIXTURES

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {name: REPO / "resources" / "models" / name for name in ("sr3", "e2diffsr")}
NAIP = FIXTURES / "naip_nd_5m_64.tif"
SEED_AS_FAR_AS_TRAINED = 1  # a draw of e2diffsr's shapes whose distance lies inside the shipped card's range


def _small_e2diffsr(**changes: object) -> E2DiffSR:
    """A small random-weight e2diffsr network (as tests/test_e2diffsr.py makes them)."""
    return E2DiffSR(E2DiffSRConfig(features=16, refinement_units=2, blocks_per_unit=1, prior_channels=8,
                                   encoder_channels=8, upsampler_hidden=16, cond_channels=16, denoiser_channels=16,
                                   denoiser_blocks=1, patch_size=64, **changes))


def _config(folder: Path) -> dict:
    return json.loads((folder / CONFIG_FILE).read_text())


def _write_config(folder: Path, config: dict) -> None:
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def _copy(model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    return folder


def _random_weights(folder: Path, seed: int = 35) -> None:
    """Every floating tensor replaced by normal draws of its own mean and spread: finite, the right shapes, a valid
    header, the weights' sizes kept; the model the issue ran to exit 0."""
    generator = torch.Generator().manual_seed(seed)
    state = load_file(str(folder / WEIGHTS_FILE))
    for name, tensor in state.items():
        if tensor.is_floating_point():
            state[name] = torch.randn(tensor.shape, generator=generator) * tensor.std().clamp(min=1e-3) + tensor.mean()
    save_file(state, str(folder / WEIGHTS_FILE))


def _forge_fingerprint(folder: Path) -> None:
    """The card's sha256 rewritten to the weights now there: only the probe is left to tell."""
    config = _config(folder)
    config[CARD_KEY]["weights_sha256"] = hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()
    _write_config(folder, config)


def _drop_card(folder: Path) -> None:
    config = _config(folder)
    del config[CARD_KEY]
    _write_config(folder, config)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_models_carry_a_card_of_their_own_weights(name: str) -> None:
    folder = SHIPPED[name]
    card = _config(folder)[CARD_KEY]
    assert card["weights_sha256"] == hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert card["probe_scale"] == 4 and len(card["probe_distance"]) == len(card["probe_agreement"]) == 2
    check_model(folder)
    assert model_notes(folder) == ()


def test_save_model_writes_the_card_of_the_file_it_wrote(tiny_model_dir: Path) -> None:
    card = _config(tiny_model_dir)[CARD_KEY]
    assert card["weights_sha256"] == hashlib.sha256((tiny_model_dir / WEIGHTS_FILE).read_bytes()).hexdigest()
    result = run_probe(load_model(tiny_model_dir), card["probe_scale"])  # the model's own output, measured again
    distance, agreement = result.distance, result.agreement
    assert card["probe_distance"] == pytest.approx([distance * (1 - DISTANCE_TOLERANCE), distance * (1 + DISTANCE_TOLERANCE)],
                                                   abs=1e-6)
    assert card["probe_agreement"] == pytest.approx([agreement - AGREEMENT_TOLERANCE, agreement + AGREEMENT_TOLERANCE],
                                                    abs=1e-6)


def test_random_weights_behind_the_shipped_header_are_refused_in_one_line(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    folder = _copy(SHIPPED["sr3"], tmp_path)
    _random_weights(folder)
    out = tmp_path / "out.tif"
    code = cli.main(["sr", str(NAIP), str(out), "--model", str(folder), "--scale", "2", "--steps", "2",
                     "--bands", "1,2,3", "--device", "cpu", "--progress", "none"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert f"model weights {folder / WEIGHTS_FILE} are not the ones its card describes" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("name", SHIPPED)
def test_random_weights_with_a_forged_fingerprint_are_refused_by_the_probe(name: str, tmp_path: Path) -> None:
    folder = _copy(SHIPPED[name], tmp_path)
    _random_weights(folder)
    _forge_fingerprint(folder)
    with pytest.raises(InfSceneError, match=rf"^the model in {folder} is not the model its card describes: on the probe "
                                            r"image .*, its card records .*; its weights are damaged"):
        check_model(folder)


def test_random_weights_that_add_as_much_detail_are_refused_by_their_agreement(tmp_path: Path) -> None:
    """A quarter of random draws of e2diffsr's shapes add about the trained model's amount of detail; none of it agrees
    with the image's own (this draw: distance 0.0706, inside the card's 0.0591-0.0722)."""
    folder = _copy(SHIPPED["e2diffsr"], tmp_path)
    _random_weights(folder, seed=SEED_AS_FAR_AS_TRAINED)
    _forge_fingerprint(folder)
    with pytest.raises(InfSceneError, match=r"the detail it adds correlates -?0\.0\d\d with the image's own, its card "
                                            r"records 0\.2890 to 0\.3890"):
        check_model(folder)


def test_a_folder_without_a_card_runs_with_a_note(tmp_path: Path) -> None:
    folder = _copy(SHIPPED["sr3"], tmp_path)
    _drop_card(folder)
    check_model(folder)
    (note,) = model_notes(folder)
    assert note.startswith(f"the model folder {folder} has no card") and "record_card" in note and "\n" not in note
    assert note in plan_run(FIXTURES / "naip_nd_5m_64.tif", SROptions(scale=2, steps=1, model_dir=folder)).warnings


def test_random_weights_without_a_card_are_refused_as_noise(tmp_path: Path) -> None:
    folder = _copy(SHIPPED["sr3"], tmp_path)
    _drop_card(folder)
    _random_weights(folder)
    with pytest.raises(InfSceneError, match=rf"^the model in {folder} gives noise: on the probe image its output departs "
                                            r"\d\.\d+ from the bicubic baseline, (\d+\.\d) times the detail") as error:
        check_model(folder)
    assert float(error.value.args[0].split(", ")[1].split(" times")[0]) > NOISE_RATIO


def test_record_card_gives_an_older_folder_its_card(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    card = _config(folder)[CARD_KEY]
    _drop_card(folder)
    assert model_notes(folder)
    record_card(folder)
    assert _config(folder)[CARD_KEY] == card and model_notes(folder) == ()
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temporary file left


def test_the_probe_runs_once_per_weights_config_and_card(tiny_model_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = model_card.run_probe
    monkeypatch.setattr(model_card, "run_probe", lambda model, scale: calls.append(scale) or real(model, scale))
    folder = _copy(tiny_model_dir, tmp_path)
    _write_config(folder, {**_config(folder), "notes": "a folder of its own for this test"})
    check_model(folder)
    check_model(folder)
    assert len(calls) == 1
    _random_weights(folder)
    record_card(folder)  # other weights, their own card: probed again
    calls.clear()
    check_model(folder)
    check_model(folder)
    assert len(calls) == 1


@pytest.mark.parametrize("card", [{"weights_sha256": "abc"}, "sha", {"weights_sha256": "0" * 64, "probe_scale": 4},
                                  {"weights_sha256": "0" * 64, "probe_scale": 4, "probe_distance": [0.1, float("nan")],
                                   "probe_agreement": [0.1, 0.2]}])
def test_a_malformed_card_is_one_line(card: object, tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    _write_config(folder, {**_config(folder), CARD_KEY: card})
    with pytest.raises(InfSceneError, match=rf"^invalid model config {folder / CONFIG_FILE}: its card is malformed"):
        load_model(folder)


def test_weights_that_give_nan_get_no_card(tmp_path: Path) -> None:
    model = _small_e2diffsr()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(InfSceneError, match=r"^no card can be written: the model in .* gives non-finite values"):
        save_model(model, tmp_path / "nan")
    assert list((tmp_path / "nan").iterdir()) == []  # nothing that looks like a model folder


def test_a_model_the_probe_cannot_read_gets_a_card_without_a_probe(tmp_path: Path) -> None:
    folder = save_model(_small_e2diffsr(scale_min=5.0, scale_max=6.0), tmp_path / "five-six")
    assert set(_config(folder)[CARD_KEY]) == {"weights_sha256"}
    check_model(folder)
    (note,) = model_notes(folder)
    assert note == (f"the model in {folder} is not probed: its trained scales 5-6 hold none of the probe image's "
                    "(2, 4, 8) or it reads other bands than RGB")


def test_a_projecting_family_keeps_the_probe_images_block_means(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_model(_small_e2diffsr(), tmp_path / "e2")
    result = run_probe(load_model(folder), 4)
    assert result.block_error is not None and result.block_error < model_card.BLOCK_TOLERANCE


def test_the_probe_image_ships_inside_the_package() -> None:
    """An installed engine finds it: it lies in the package and the package data names it."""
    package = REPO / "engine" / "infscene"
    assert PROBE_IMAGE.resolve().is_relative_to(package) and probe_truth().shape == (1, 3, 64, 64)
    data = tomllib.loads((REPO / "engine" / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(PROBE_IMAGE.match(pattern) for pattern in data["infscene.modelformat"])
