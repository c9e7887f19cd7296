"""Dock settings that persist between QGIS sessions (QgsSettings, under "infscene/").

The SR options are stored field by field from SrOptions, as text ("" for None: a null QVariant does not read back
as one reliably), and read back through the option table: a stored value the table's kind, range or choices
refuse (one saved with an older meaning, or edited by hand) reads as the default. Adding an option to the table
adds it to the settings without another list to keep in sync.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

from qgis.core import QgsProject, QgsSettings

from .engine_locator import ENGINE_PYTHON_KEY
from .engine_request import SrOptions
from .sr_options import CHOICE, FLOAT, INT, OPTION, Option

_PREFIX = "infscene/"
OUTPUT_PATH_KEY = _PREFIX + "output_path"
ICEPLANT_KEY = _PREFIX + "iceplant"
MODEL_DIR_KEY = _PREFIX + "model_dir"
DEFAULT_FOLDER_NAME = "InfScene"
# An option whose meaning changed is stored under a new key, so a value saved with the old meaning is
# not read back: before model families the panel always saved a number of steps (50 unless changed),
# which an e2diffsr model (at most T = 4) refuses; now the default is the model's own.
_RENAMED_KEYS = {"steps": _PREFIX + "steps_or_model_default"}
# Before --detail the panel saved a "Regression branch only" tick; a saved tick loads as detail 0, the same run.
_OLD_REGRESSION_ONLY_KEY = _PREFIX + "regression_only"


def _key(name: str) -> str:
    return _RENAMED_KEYS.get(name, _PREFIX + name)


def load_options() -> SrOptions:
    """The last-used SR options (defaults for any never saved, or saved with a value the table refuses). The old
    sentinels read as None this way: a patch or a number of steps of 0, an overlap of -1 lie outside the ranges."""
    settings = QgsSettings()
    values = {f.name: _stored(OPTION[f.name], settings.value(_key(f.name), "", type=str)) for f in fields(SrOptions)}
    if not settings.contains(_key("detail")) and settings.value(_OLD_REGRESSION_ONLY_KEY, False, type=bool):
        values["detail"] = OPTION["detail"].minimum
    return SrOptions(**values)


def save_options(options: SrOptions) -> None:
    settings = QgsSettings()
    for f in fields(SrOptions):
        value = getattr(options, f.name)
        settings.setValue(_key(f.name), "" if value is None else repr(value) if isinstance(value, float) else str(value))
    settings.remove(_OLD_REGRESSION_ONLY_KEY)  # its choice now lives in "detail"


def _stored(option: Option, text: str) -> Any:
    """A stored option read back: its default where the text is empty or not a value the option takes."""
    value = _parse(option, text.strip())
    bad = value is None or option.problem(value) is not None or (option.kind == CHOICE and value not in option.values)
    return option.form_default if bad else value


def _parse(option: Option, text: str) -> Optional[Any]:
    if not text:
        return None
    try:
        return int(text) if option.kind == INT else float(text) if option.kind == FLOAT else text
    except ValueError:
        return None


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
