"""A model folder's card: what its config.json records of its weights, and the checks that they are still those
(issue 35: finite random weights behind a valid header ran to exit 0 and wrote noise).

    "card": {"weights_sha256": "9f2c...", "probe_scale": 4, "probe_distance": [0.0627, 0.0766],
             "probe_agreement": [-0.0024, 0.0976]}

- `weights_sha256`: the sha256 of model.safetensors, the file as a whole, not of its tensors in a canonical order:
  anyone can check it without the engine (`sha256sum model.safetensors`), it is the digest a run already records of
  the model that made an output (the checkpoint's `model_sha256`), and a file whose tensors are the same but whose
  bytes are not (re-serialised, metadata added) is refused rather than trusted, the cautious side. Checked at every
  load, hashed once per file and stat.
- `probe_*`: the ranges the probe's distance and agreement (probe.py) must lie in, measured when the card was written
  and widened by DISTANCE_TOLERANCE and AGREEMENT_TOLERANCE. The probe runs on one thread in float32, so the same
  weights give the same numbers whatever the machine's threads; the tolerances leave room for other kernels and
  libraries, and are far inside what random weights of the shipped models' shapes give (probe.py). Checked at the
  plan's model check (registry.check_model), once per process for a given weights file, config and card.

A folder without a card (written before cards, or by another tool) still runs, with a note; its probe is held to a
bound no trained model comes near instead (NOISE_RATIO): that refuses SR3-like noise, but not random weights that add
little (e2diffsr's add less detail than the trained model): only a card can tell those from the model.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from torch import nn

from ..checksums import file_sha256
from ..errors import InfSceneError
from .contract import ModelContract
from .files import CONFIG_FILE, WEIGHTS_FILE
from .probe import ProbeResult, probe_scale, run_probe

CARD_KEY = "card"  # the config.json field that holds the card
DISTANCE_TOLERANCE = 0.10  # relative, either side of the measured distance
AGREEMENT_TOLERANCE = 0.05  # absolute, either side of the measured agreement (a correlation)
NOISE_RATIO = 2.0  # a card-less model adding more than this times the detail the probe image holds gives noise
BLOCK_TOLERANCE = 1e-4  # model units a projected output's block mean may differ from its input pixel (float32 rounding)
REMEDY = "its weights are damaged or are not a trained model's; check or replace the model folder"

Range = tuple[float, float]


@dataclass(frozen=True)
class Card:
    """What a model folder's config.json records of its weights."""

    weights_sha256: str
    probe_scale: Optional[int] = None  # None: the model is not probed (its trained scales hold none of the probe's)
    probe_distance: Optional[Range] = None
    probe_agreement: Optional[Range] = None

    def as_json(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in asdict(self).items() if value is not None}


def read_card(raw: dict[str, Any], path: Path) -> Optional[Card]:
    """Take the card out of a config's JSON (which then holds the family's fields alone); None when there is none."""
    entry = raw.pop(CARD_KEY, None)
    if entry is None:
        return None
    card = _parsed(entry)
    if card is None:
        raise InfSceneError(f"invalid model config {path}: its {CARD_KEY} is malformed (it needs weights_sha256, and "
                            "probe_scale with the probe_distance and probe_agreement ranges); save the model again to "
                            "write a new one")
    return card


def _range(value: Any) -> Optional[Range]:
    """[low, high] of two finite numbers as a Range; None for anything else."""
    if not (isinstance(value, list) and len(value) == 2):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return (float(value[0]), float(value[1]))


def _parsed(entry: Any) -> Optional[Card]:
    """The card a config's JSON entry holds; None where it is malformed."""
    if not isinstance(entry, dict):
        return None
    sha, scale = entry.get("weights_sha256"), entry.get("probe_scale")
    if not (isinstance(sha, str) and len(sha) == 64):
        return None
    if scale is None and "probe_distance" not in entry and "probe_agreement" not in entry:
        return Card(sha)
    distance, agreement = _range(entry.get("probe_distance")), _range(entry.get("probe_agreement"))
    if type(scale) is not int or distance is None or agreement is None:
        return None
    return Card(sha, scale, distance, agreement)


_HASHES: dict[tuple[str, int, int, int, int, int], str] = {}


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file, hashed once per file and stat: a run loads its model several times (plan, estimate,
    run), and a change to the file (even one keeping its size and mtime: its ctime moves) hashes it again."""
    stat = os.stat(path)
    key = (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


def check_fingerprint(folder: Path, card: Optional[Card]) -> None:
    """Refuse weights whose sha256 is not the one the folder's card records (nothing to check without a card)."""
    if card is None:
        return
    weights = folder / WEIGHTS_FILE
    found = weights_sha256(weights)
    if found != card.weights_sha256:
        raise InfSceneError(f"model weights {weights} are not the ones its card describes (sha256 {found[:12]}..., the "
                            f"card in {CONFIG_FILE} records {card.weights_sha256[:12]}...): restore the folder's original "
                            "weights, or, if you changed them yourself, record a new card "
                            "(infscene.models.registry.record_card)")


def card_note(folder: Path, config: ModelContract, card: Optional[Card]) -> Optional[str]:
    """The one-line note a run gives for a folder whose weights its card cannot vouch for (None: it can)."""
    if card is None:
        return (f"the model folder {folder} has no card (a weights fingerprint and probe ranges, written before cards or "
                "by another tool): its weights are checked against noise only; record one with "
                "infscene.models.registry.record_card")
    if card.probe_scale is None:
        return (f"the model in {folder} is not probed: its trained scales {config.scale_min:g}-{config.scale_max:g} hold "
                "none of the probe image's (2, 4, 8) or it reads other bands than RGB")
    return None


def _universal_problem(result: ProbeResult, folder: Path) -> Optional[str]:
    """What is wrong with a probe's output whatever the card says: non-finite values, or a projection that fails."""
    if not result.finite:
        return f"the model in {folder} gives non-finite values (NaN or infinity) on the probe image: {REMEDY}"
    if result.block_error is not None and result.block_error > BLOCK_TOLERANCE:
        return (f"the model in {folder} does not keep its input: on the probe image its output's block means are up to "
                f"{result.block_error:.2g} off the input pixels (model units); {REMEDY}")
    return None


def _widened(value: float, tolerance: float) -> Range:
    return (round(value - tolerance, 6), round(value + tolerance, 6))


def new_card(model: nn.Module, weights: Path, folder: Path) -> Card:
    """The card of weights as written (the model read back from them, on the CPU): their sha256 and, for a model the
    probe reads, its ranges; InfSceneError for a model whose probe output no card can accept."""
    scale = probe_scale(model.config)
    if scale is None:
        return Card(weights_sha256(weights))
    result = run_probe(model, scale)
    problem = _universal_problem(result, folder)
    if problem:
        raise InfSceneError(f"no card can be written: {problem}")
    return Card(weights_sha256(weights), scale, _widened(result.distance, DISTANCE_TOLERANCE * result.distance),
                _widened(result.agreement, AGREEMENT_TOLERANCE))


def _outside_card(result: ProbeResult, folder: Path, card: Card) -> Optional[str]:
    """Which of the probe's measures lies outside the range its card records (None: both are inside)."""
    assert card.probe_distance is not None and card.probe_agreement is not None
    measures = (("its output departs {:.4f} from the bicubic baseline", result.distance, card.probe_distance),
                ("the detail it adds correlates {:.3f} with the image's own", result.agreement, card.probe_agreement))
    for wording, value, (low, high) in measures:
        if not low <= value <= high:
            return (f"the model in {folder} is not the model its card describes: on the probe image "
                    f"{wording.format(value)}, its card records {low:.4f} to {high:.4f}; {REMEDY}")
    return None


def _probe_problem(result: ProbeResult, folder: Path, card: Optional[Card]) -> Optional[str]:
    """Why the probe's output is not what the card describes (without a card: why it is noise); None when it is."""
    problem = _universal_problem(result, folder)
    if problem:
        return problem
    if card is not None:
        return _outside_card(result, folder, card)
    if result.distance > NOISE_RATIO * result.detail:
        return (f"the model in {folder} gives noise: on the probe image its output departs {result.distance:.3f} from "
                f"the bicubic baseline, {result.distance / result.detail:.1f} times the detail the image holds "
                f"({result.detail:.3f}, model units); {REMEDY}")
    return None


_PASSED: set[tuple[str, str, Optional[Card]]] = set()


def check_probe(folder: Path, config: ModelContract, card: Optional[Card], load: Callable[[], nn.Module]) -> None:
    """Run the probe through the folder's model (`load` builds it on the CPU) and refuse an output its card does not
    describe; a verdict is kept per weights file, config and card, so a process pays the probe once for them."""
    scale = card.probe_scale if card is not None else probe_scale(config)
    key = (weights_sha256(folder / WEIGHTS_FILE), json.dumps(asdict(config), sort_keys=True), card)
    if scale is None or key in _PASSED:
        return
    problem = _probe_problem(run_probe(load(), scale), folder, card)
    if problem:
        raise InfSceneError(problem)
    _PASSED.add(key)
