"""Dock settings that persist between QGIS sessions (QgsSettings, under "infscene/").

The SR options are stored field by field from the SrOptions dataclass, so adding an option
to the request adds it to the settings without another list to keep in sync.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Optional

from qgis.core import QgsProject, QgsSettings

from .engine_locator import ENGINE_PYTHON_KEY
from .engine_request import DETAIL_DETAILED, DETAIL_FAITHFUL, SrOptions

_PREFIX = "infscene/"
OUTPUT_PATH_KEY = _PREFIX + "output_path"
ICEPLANT_KEY = _PREFIX + "iceplant"
MODEL_DIR_KEY = _PREFIX + "model_dir"
DEFAULT_FOLDER_NAME = "InfScene"
# An option whose meaning changed is stored under a new key, so a value saved with the old meaning is
# not read back: before model families the panel always saved a number of steps (50 unless changed),
# which an e2diffsr model (at most T = 4) refuses; now the default is the model's own.
_RENAMED_KEYS = {"steps": _PREFIX + "steps_or_model_default"}
# Options that may be None (the model's default) are stored as text, "" for None: a null QVariant does not read
# back as one reliably. Each is a number from 0 to 1 (only `detail` so far).
_OPTIONAL_NUMBERS = {"detail"}
# Before --detail the panel saved a "Regression branch only" tick; a saved tick loads as detail 0, the same run.
_OLD_REGRESSION_ONLY_KEY = _PREFIX + "regression_only"


def _key(name: str) -> str:
    return _RENAMED_KEYS.get(name, _PREFIX + name)


def load_options() -> SrOptions:
    """The last-used SR options (defaults for any never saved)."""
    settings = QgsSettings()
    defaults = SrOptions()
    values = {}
    for f in fields(SrOptions):
        default = getattr(defaults, f.name)
        if f.name in _OPTIONAL_NUMBERS:
            values[f.name] = _optional_number(settings.value(_key(f.name), "", type=str), default)
        else:
            values[f.name] = settings.value(_key(f.name), default, type=type(default))
    if not settings.contains(_key("detail")) and settings.value(_OLD_REGRESSION_ONLY_KEY, False, type=bool):
        values["detail"] = DETAIL_FAITHFUL
    return SrOptions(**values)


def save_options(options: SrOptions) -> None:
    settings = QgsSettings()
    for f in fields(SrOptions):
        value = getattr(options, f.name)
        if f.name in _OPTIONAL_NUMBERS:
            value = "" if value is None else repr(float(value))
        settings.setValue(_key(f.name), value)
    settings.remove(_OLD_REGRESSION_ONLY_KEY)  # its choice now lives in "detail"


def _optional_number(text: str, default: Optional[float]) -> Optional[float]:
    """A stored optional number: "" (or anything unreadable, or outside 0..1) is the default."""
    try:
        value = float(text)
    except ValueError:
        return default
    return value if DETAIL_FAITHFUL <= value <= DETAIL_DETAILED else default


def load_bool(key: str, default: bool = False) -> bool:
    return bool(QgsSettings().value(key, default, type=bool))


def load_text(key: str) -> str:
    return str(QgsSettings().value(key, "", type=str) or "")


def save_value(key: str, value: object) -> None:
    QgsSettings().setValue(key, value)


def save_engine_python(path: str) -> None:
    QgsSettings().setValue(ENGINE_PYTHON_KEY, path)


def default_output_folder() -> Path:
    """Beside the saved project if there is one, else ~/InfScene: never a temp folder that
    disappears when QGIS exits."""
    home = QgsProject.instance().homePath()
    return Path(home) if home else Path.home() / DEFAULT_FOLDER_NAME


def free_output_path(folder: Path, stem: str) -> Path:
    """`<folder>/<stem>.tif`, or `<stem>_2.tif`, `_3`... so a new suggestion never overwrites a result."""
    candidate = folder / f"{stem}.tif"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}_{number}.tif"
        number += 1
    return candidate
