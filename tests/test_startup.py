"""What a command loads before it works: each `infscene` command and the plugin's planning call import only what
they use, so no command waits for another's libraries (scikit-image and scipy for iceplant, about 0.35 s;
aiohttp for serve, about 0.2 s; torch, about 1 s, which the planning call must never need)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scenes import FIXTURES

OPTIONAL = ("torch", "skimage", "scipy.ndimage", "aiohttp")


def loaded_after(code: str) -> list[str]:
    """The OPTIONAL modules a fresh interpreter has loaded after running `code`."""
    probe = f"import json, sys\n{code}\nprint(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_command_line_loads_neither_iceplant_nor_serve_libraries_until_asked() -> None:
    assert loaded_after("import infscene.commands.main") == ["torch"]  # sr and train need it; iceplant and serve come later
    assert "skimage" in loaded_after("from infscene.iceplant import write_iceplant_probability")


@pytest.mark.parametrize("arguments", [["--scale", "4"], ["--scale", "4", "--iceplant"]])
def test_the_planning_call_loads_no_model_library(arguments: list[str]) -> None:
    naip = FIXTURES / "naip_nd_5m_64.tif"
    code = f"from infscene.quick_plan import main\nmain({[str(naip), *arguments]!r})"
    assert loaded_after(code) == []
