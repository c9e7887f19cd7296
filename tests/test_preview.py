"""--preview: three labelled panels at the output's pixel size (input nearest, bicubic, result), one stretch."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from infscene.plan import SROptions
from infscene.raster.preview import write_side_by_side
from infscene.run import super_resolve


def test_the_preview_shows_input_bicubic_and_result_side_by_side(naip: Path, tmp_path: Path) -> None:
    out = super_resolve(naip, tmp_path / "sr.tif", SROptions(scale=2, bands=[1, 2, 3], detail=0.0))
    png = cv2.imread(str(write_side_by_side(naip, out, tmp_path / "p.png")))
    assert png.shape == (128, 3 * 128 + 2 * 8, 3)
    panels = [png[:, i * 136 : i * 136 + 128].astype(int) for i in range(3)]
    assert (png[:, 128:136] == 255).all() and (png[:, 264:272] == 255).all()  # white gaps between the panels
    body = slice(24, None)  # below the labels
    nearest = panels[0][body]
    assert (nearest[::2, ::2] == nearest[1::2, 1::2]).all()  # 2 x 2 blocks: the input enlarged by nearest
    assert np.abs(panels[1][body] - panels[0][body]).mean() > 1  # bicubic is not the blocks
    assert np.abs(panels[2][body] - panels[1][body]).mean() > 0.5  # the result is not bicubic
