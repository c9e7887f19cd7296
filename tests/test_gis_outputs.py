"""Issue 11, item 7: outputs fit the GIS world: tiled with internal overviews, provenance tags, band
descriptions, and the input's colour interpretation kept."""
from __future__ import annotations

import hashlib
from pathlib import Path

import rasterio
import torch
from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate as validate_cog
from rasterio.enums import ColorInterp

from infscene import __version__
from infscene.modelformat.files import WEIGHTS_FILE
from infscene.models.precision import resolve_precision
from infscene.plan import SROptions
from infscene.run import super_resolve


def test_a_large_output_is_a_cloud_optimized_geotiff_with_provenance(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = super_resolve(naip, tmp_path / "sr.tif", SROptions(scale=8, steps=1, patch=64, overlap=16, seed=7,
                                                             model_dir=tiny_model_dir))
    errors, warnings, _ = validate_cog(str(out), full_check=True)  # GDAL's own validator
    assert errors == [] and warnings == []
    with rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (512, 512)
        assert dst.profile["tiled"] and dst.profile["blockxsize"] == 256 and dst.compression.value == "DEFLATE"
        assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert all(dst.overviews(b) == [2] for b in dst.indexes)  # internal (no .ovr beside it), down to one tile
        tags = dst.tags()
        descriptions = dst.descriptions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif"]
    sha = hashlib.sha256((tiny_model_dir / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert {k: v for k, v in tags.items() if k.startswith("INFSCENE_")} == {
        "INFSCENE_VERSION": __version__, "INFSCENE_MODEL": "tiny-test", "INFSCENE_MODEL_SHA256": sha,
        "INFSCENE_FAMILY": "sr3", "INFSCENE_MODE": "vcf", "INFSCENE_STEPS": "1", "INFSCENE_SEED": "7",
        "INFSCENE_SCALE": "8", "INFSCENE_PATCH": "64", "INFSCENE_OVERLAP": "16", "INFSCENE_LR_CONSISTENCY": "True",
        "INFSCENE_PRECISION": resolve_precision("auto", [torch.device("cpu")]),
        "INFSCENE_INPUT": naip.name,
    }
    assert descriptions == ("red", "green", "blue", "band 4")


def test_colour_interpretation_and_alpha_are_kept(rapideye_rgba: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = super_resolve(rapideye_rgba, tmp_path / "sr.tif", SROptions(scale=2, steps=1, patch=32, model_dir=tiny_model_dir))
    with rasterio.open(rapideye_rgba) as src, rasterio.open(out) as dst:
        assert dst.colorinterp == src.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha)
        assert dst.descriptions == ("red", "green", "blue", "alpha")
