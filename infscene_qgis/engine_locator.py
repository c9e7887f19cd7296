"""Which Python interpreter runs the engine.

torch and rasterio must never load into QGIS's own Python (they clash with its numpy and GDAL),
so the engine lives in a separate environment. Lookup order, first hit wins:
the plugin setting, the INFSCENE_PYTHON environment variable, `.venv/` beside the plugin's
source checkout (created by the repository's set-up).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from qgis.core import QgsSettings

ENGINE_PYTHON_KEY = "infscene/engine_python"
ENV_VAR = "INFSCENE_PYTHON"


class EngineNotFound(Exception):
    """No usable engine interpreter; the message tells the user how to get one."""


def checkout_python() -> Path:
    """`.venv` python of the source checkout the plugin was loaded from (symlinks resolved)."""
    root = Path(__file__).resolve().parent.parent
    if sys.platform == "win32":
        return root / ".venv" / "Scripts" / "python.exe"
    return root / ".venv" / "bin" / "python"


def configured_python() -> str:
    """The interpreter the user set in the dock's settings ('' when none)."""
    return str(QgsSettings().value(ENGINE_PYTHON_KEY, "", type=str) or "")


def find_engine_python() -> str:
    """Return the engine interpreter's path or raise EngineNotFound with set-up guidance.

    An explicit choice (setting or variable) that is broken is reported as such rather than
    silently skipped, so the user is not left running a different engine than the one they named.
    """
    explicit = (
        ("the InfScene setting 'Engine Python'", configured_python()),
        (f"the {ENV_VAR} environment variable", os.environ.get(ENV_VAR, "")),
    )
    for origin, candidate in explicit:
        if candidate:
            if not _is_executable(candidate):
                raise EngineNotFound(f"{origin} names {candidate}, which is not an executable Python interpreter")
            return candidate
    checkout = str(checkout_python())
    if _is_executable(checkout):
        return checkout
    raise EngineNotFound(NOT_FOUND_GUIDANCE)


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


NOT_FOUND_GUIDANCE = (
    "InfScene engine not found. Create an environment for it outside QGIS: "
    "'python3 -m venv ~/infscene-engine' then "
    "'~/infscene-engine/bin/pip install -e <InfScene repository>/engine', "
    "and set 'Engine Python' in the InfScene panel (or the INFSCENE_PYTHON variable) "
    "to ~/infscene-engine/bin/python. See docs/plugin.md."
)
