"""The engine-plugin contract is generated into the plugin (scripts/plugin_contract.py) and packed from the engine
into the plugin zip (scripts/build_plugin_zip.py), so neither a stale checkout copy nor a missing one reaches a user."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_plugin_zip  # noqa: E402
import plugin_contract  # noqa: E402


def test_sync_regenerates_a_stale_or_missing_copy_and_names_it(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "protocol.py").write_text("# an old protocol\n")
    assert plugin_contract.stale(plugin_dir=plugin) == ["protocol.py", "sr_options.py"]

    assert plugin_contract.sync(plugin_dir=plugin) == ["protocol.py", "sr_options.py"]

    for name in plugin_contract.CONTRACT:
        assert (plugin / name).read_bytes() == (plugin_contract.ENGINE_DIR / name).read_bytes()
    assert plugin_contract.sync(plugin_dir=plugin) == [] and sorted(p.name for p in plugin.iterdir()) == sorted(
        plugin_contract.CONTRACT)  # nothing left to copy, no temporary file left behind


def test_check_fails_while_the_checkouts_copy_differs(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "scripts", checkout / "scripts")
    shutil.copytree(ROOT / "engine" / "infscene", checkout / "engine" / "infscene",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / "infscene_qgis").mkdir()
    for name in plugin_contract.CONTRACT:
        shutil.copy(ROOT / "infscene_qgis" / name, checkout / "infscene_qgis" / name)
    check = [sys.executable, str(checkout / "scripts" / "plugin_contract.py"), "--check"]
    assert subprocess.run(check, capture_output=True).returncode == 0

    (checkout / "infscene_qgis" / "sr_options.py").write_text("# edited in the plugin by mistake\n")
    failed = subprocess.run(check, capture_output=True, text=True)
    assert failed.returncode == 1 and "infscene_qgis/sr_options.py differs" in failed.stderr


def test_the_zip_ships_the_engines_contract(tmp_path: Path) -> None:
    built = build_plugin_zip.build(tmp_path / "infscene_qgis.zip")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
        for name in plugin_contract.CONTRACT:
            assert names.count(f"infscene_qgis/{name}") == 1
            assert archive.read(f"infscene_qgis/{name}") == (plugin_contract.ENGINE_DIR / name).read_bytes()
        assert "infscene_qgis/metadata.txt" in names and "infscene_qgis/LICENSE" in names
        assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
