"""An input that changes during a run is detected, and the run writes nothing (issue 35).

The run reads its input again and again: the visible bands into the low-resolution canvas at the start, the NIR band
(guided by the visible ones) and the validity under each output block at the end. Before the check, an input
overwritten in place mid-run by a raster of the same layout gave exit 0 with bands 1-3 from the old file and band 4
from the new one (up to 212 DN off).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
import rasterio

from infscene.errors import InfSceneError
from infscene.plan import SROptions, plan_run
from infscene.progress import Progress
from infscene.raster.workspace import RUN_PREFIX
from infscene.run import run_plan, super_resolve

from scenes import FIXTURES


def _uncompressed_copy(target: Path, flip: bool = False) -> Path:
    """The 4-band NAIP crop (R, G, B, NIR), uncompressed, so that other pixels written over it keep its size; with
    `flip`, its NIR band inverted."""
    with rasterio.open(FIXTURES / "naip_nd_5m_64.tif") as src:
        bands = src.read()
        profile = {**src.profile, "compress": None, "photometric": "minisblack"}  # band 4 is NIR, not alpha
    if flip:
        bands[3] = 255 - bands[3]
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(bands)
    return target


def _write_in_place(source: Path) -> None:
    with rasterio.open(source, "r+") as ds:  # the same file (inode), the same layout, another NIR band
        ds.write(255 - ds.read(4), 4)


def _write_in_place_keeping_its_time(source: Path) -> None:
    stat = source.stat()
    _write_in_place(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _replace_by_another_file(source: Path) -> None:
    os.replace(_uncompressed_copy(source.with_name("new.tif"), flip=True), source)


WRITTEN = "it was written to, or its times or permissions were changed"
# How the input is changed, the run's words for it, and whether the checkpoint of the steps done stays: only while
# the input keeps the size and modification time its key holds (a --resume then compares the pixels), or is gone
# (it may come back as it was); a checkpoint no run of the file as it now is could resume would be left for no one.
CHANGES: dict[str, tuple[Callable[[Path], None], str, bool]] = {
    "overwritten in place": (_write_in_place, WRITTEN, False),
    "overwritten in place, its time kept": (_write_in_place_keeping_its_time, WRITTEN, True),
    "replaced by another file": (_replace_by_another_file, "another file was put in its place", False),
    "deleted": (lambda source: source.unlink(), "it was moved or deleted", True),
}


def _options(model: Path, **changes: object) -> SROptions:
    base = SROptions(scale=2.0, steps=4, patch=32, overlap=8, batch_size=4, model_dir=model, device="cpu")
    return replace(base, **changes)  # every band: R, G, B super-resolved, NIR guided by them at the end


def _at_half(change: Callable[[], None], changed: list[int]) -> Callable[[Progress], None]:
    """A progress callback that makes `change` once half the run's work is done, noting at what progress."""

    def callback(progress: Progress) -> None:
        if not changed and progress.done >= progress.total // 2:
            change()
            changed.append(progress.done)

    return callback


def _leftovers(folder: Path, source: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path != source and path.name != "new.tif")


@pytest.mark.parametrize("checkpoint", [True, False], ids=["checkpoint", "no-checkpoint"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_an_input_changed_mid_run_fails_in_one_line_and_writes_nothing(change: str, checkpoint: bool,
                                                                       tiny_model_dir: Path, tmp_path: Path) -> None:
    source = _uncompressed_copy(tmp_path / "in.tif")
    output = tmp_path / "out.tif"
    options = _options(tiny_model_dir, checkpoint=checkpoint)
    alter, what, checkpoint_stays = CHANGES[change]
    changed: list[int] = []
    with pytest.raises(InfSceneError) as error:
        super_resolve(source, output, options, progress=_at_half(lambda: alter(source), changed))
    assert changed and str(error.value) == (
        f"the input {source} changed while the run was using it ({what}), so the output would mix two files: nothing "
        "was written; rerun once the input is no longer being changed")
    assert not output.exists() and not any(name.startswith(RUN_PREFIX) for name in _leftovers(tmp_path, source))
    kept = [name for name in _leftovers(tmp_path, source) if name.endswith(".infscene-checkpoint")]
    assert _leftovers(tmp_path, source) == kept and len(kept) == int(checkpoint and checkpoint_stays)


def test_an_input_changed_between_plan_and_run_is_refused_before_any_work(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = _uncompressed_copy(tmp_path / "in.tif")
    plan = plan_run(source, _options(tiny_model_dir), tmp_path / "out.tif")
    _write_in_place(source)
    seen: list[Progress] = []
    with pytest.raises(InfSceneError, match=r"^the input .* changed while the run was using it \(it was written to"):
        run_plan(plan, progress=seen.append)
    assert seen == [] and _leftovers(tmp_path, source) == []



def test_the_same_run_after_an_input_rewritten_mid_run_goes_ahead(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The steps done were of a file whose size or time is no longer the input's: their checkpoint is removed, so the
    rerun the message asks for is not refused by a checkpoint that no run could resume."""
    source = _uncompressed_copy(tmp_path / "in.tif")
    options = _options(tiny_model_dir)
    changed: list[int] = []
    with pytest.raises(InfSceneError, match="changed while the run was using it"):
        super_resolve(source, tmp_path / "out.tif", options, progress=_at_half(lambda: _write_in_place(source), changed))
    assert changed
    assert super_resolve(source, tmp_path / "out.tif", options).is_file()
    assert _leftovers(tmp_path, source) == ["out.tif"]
