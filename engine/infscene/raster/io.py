"""Reading the input window and writing verified GeoTIFFs, with rasterio.

Input: any GDAL raster in any CRS with a non-rotated grid (north-up or south-up), an optional
window given as bounds in the raster's CRS, band selection (R, G, B first, then bands the model
was not trained on, such as NIR), nodata, alpha and per-dataset masks. A file that cannot be read
(truncated, corrupt) is a one-line error. Output: a Cloud Optimized GeoTIFF (deflate, internal
overviews: draws fast at any zoom, and streams) on the input's grid with the pixel size divided by the scale,
same CRS, dtype, band order, colour interpretation, descriptions and nodata, and provenance tags.
It is written with GDAL's errors watched, then reopened and read back whole before the caller
renames it into place (atomic.py): a full disk is an error, never a corrupt file.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio import windows
from rasterio.errors import NodataShadowWarning, NotGeoreferencedWarning, RasterioError, WindowError
from rasterio.windows import Window

from ..errors import InfSceneError
from ..protocol import SCALE_MAX, SCALE_MIN_EXCLUSIVE, SOURCE_BAND_TAG
from ..sr_options import OPTION, band_numbers
from .blocks import blocks, pixels_in, window_of

VISIBLE = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
VISIBLE_NAMES = ("red", "green", "blue")
VERIFY_BLOCK_BYTES = 16 * 1024**2  # read-back verification works in row blocks of about this size
DIGEST_BLOCK_BYTES = 16 * 1024**2  # window_sha256 reads row blocks of about this size
DEFLATE_LEVEL = 1  # 0.29 s -> 0.08 s to write a 4 MP RGB output, 5.13 -> 5.66 MB (bench/layout_speed.py)
GDAL_VIRTUAL_PREFIX = "/vsi"  # GDAL's virtual file systems: /vsizip/, /vsicurl/, /vsis3/, /vsimem/...
LOCAL_ARCHIVE_PREFIXES = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")  # read inside a file by its name
WRITE_CACHE_MB = 64  # GDAL's block cache while writing, overviewing and verifying (its default is 5% of the RAM)


def _first_line(exc: BaseException) -> str:
    """GDAL's own message: rasterio's "See previous exception" wrappers give way to their cause."""
    while exc.__cause__ is not None and "previous exception" in str(exc):
        exc = exc.__cause__
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn a GDAL read failure (truncated or corrupt file) inside the block into one line."""
    try:
        yield
    except RasterioError as exc:
        message = _first_line(exc)
        # GDAL runs out of its dataset pool when a VRT opens itself again and again
        cause = "a VRT that refers to itself, or nests too deeply?" if "dataset pool size" in message else \
            "is the file truncated or corrupt?"
        raise InfSceneError(f"cannot read {path}: {message} ({cause})") from exc


def open_raster(path: str | Path) -> rasterio.DatasetReader:
    """Open a raster for reading, refusing what the engine cannot handle with a one-line message.

    The path goes to GDAL as given: a GDAL virtual path (/vsizip//data/a.zip/a.tif, /vsicurl/https://...) is not a
    file system path, and Path() would mangle it (https:// -> https:/, // -> /).
    """
    name = os.fspath(path)
    _check_input_file(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(name)
    except RasterioError as exc:
        if is_gdal_virtual(name):
            raise InfSceneError(f"GDAL cannot open {name}: {_first_line(exc)}; check the path (for a remote file, the "
                                "network and GDAL's credentials)") from exc
        raise InfSceneError(f"not a readable raster: {name} ({_first_line(exc)})") from exc
    problem = _transform_problem(ds.transform, name)
    if problem:
        ds.close()
        raise InfSceneError(problem)
    return ds


def is_gdal_virtual(path: str | Path) -> bool:
    """Whether `path` names a file of one of GDAL's virtual file systems (/vsizip/, /vsicurl/, /vsis3/...)."""
    return os.fspath(path).startswith(GDAL_VIRTUAL_PREFIX)


def local_file_of(path: str | Path) -> Optional[Path]:
    """The file on this machine that GDAL reads for `path`: the path itself, or the archive that a /vsizip/, /vsitar/
    or /vsigzip/ path reads inside (GDAL's `/vsizip/{archive}/member` form included); None where GDAL reads no local
    file by name (/vsicurl/, /vsis3/, /vsimem/, an archive inside another virtual path) or no such archive exists."""
    name = os.fspath(path)
    if not is_gdal_virtual(name):
        return Path(name)
    prefix = next((p for p in LOCAL_ARCHIVE_PREFIXES if name.startswith(p)), None)
    if prefix is None:
        return None
    inside = name[len(prefix):]
    if inside.startswith("{") and "}" in inside:
        return None if is_gdal_virtual(inside[1:inside.index("}")]) else Path(inside[1:inside.index("}")])
    if is_gdal_virtual(inside):
        return None
    parts = inside.split("/")
    archives = ("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    # the shortest leading part that is a file: a member's path inside the archive follows it (none: GDAL says why)
    return next((Path(candidate) for candidate in archives if candidate and os.path.isfile(candidate)), None)


def _check_input_file(name: str) -> None:
    """One line for a local input that is missing or is no file GDAL can read: a FIFO (GDAL would wait for a writer
    for ever), a socket or a device. Folders pass: some GDAL formats are folders."""
    local = local_file_of(name)
    if local is None:
        return
    shown = name if str(local) == name else f"{local} (for {name})"
    try:
        mode = local.stat().st_mode
    except FileNotFoundError as exc:
        raise InfSceneError(f"input file not found: {shown}") from exc
    except OSError as exc:
        raise InfSceneError(f"cannot read the input {shown}: {exc.strerror or exc}") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InfSceneError(f"the input {shown} is not a regular file (a FIFO, socket or device, which GDAL cannot "
                            "read as a raster): save the raster to a file and give that")


def _transform_problem(transform: Affine, path: str | Path) -> Optional[str]:
    """Why the engine cannot use a geotransform (None when it can): rotated or sheared, or degenerate (a pixel size of 0
    or not finite), which would put every output pixel at one place."""
    if transform.b != 0 or transform.d != 0:
        return f"rotated or sheared geotransform is not supported: {path}; warp it to a north-up grid first (gdalwarp)"
    if not all(math.isfinite(v) for v in transform[:6]) or transform.a == 0 or transform.e == 0:
        return (f"the geotransform of {path} is degenerate (pixel size {transform.a:g} x {transform.e:g}): fix its "
                "georeference (gdal_edit.py -a_ullr or -tr) or remove it (gdal_edit.py -unsetgt)")
    return None


def crs_units(crs: Optional[rasterio.crs.CRS]) -> str:
    """The units of a raster's coordinates, in words: degrees, the projection's linear unit, or pixels."""
    if crs is None:
        return "pixels (the raster has no CRS)"
    if crs.is_geographic:
        return "degrees"
    try:
        return crs.linear_units or "unknown units"
    except Exception:  # a CRS PROJ cannot describe
        return "unknown units"


@dataclass(frozen=True)
class BandLayout:
    """Which input bands (1-based) play which role."""

    visible: tuple[int, int, int]  # red, green, blue: what the model super-resolves
    extra: tuple[int, ...]  # other kept bands (e.g. NIR), super-resolved by guidance
    alpha: Optional[int]

    @property
    def kept(self) -> list[int]:
        """Bands written to the output, in the input's own order."""
        return sorted([*self.visible, *self.extra, *([self.alpha] if self.alpha else [])])


def resolve_bands(ds: rasterio.DatasetReader, bands: Optional[Sequence[int]] = None) -> BandLayout:
    """Band roles from the user's list (R,G,B[,extra...]) or from colour interpretation (_band_roles), every band
    kept one of real values."""
    layout = _band_roles(ds, bands)
    _refuse_complex(ds, layout.kept)
    return layout


def _refuse_complex(ds: rasterio.DatasetReader, bands: Sequence[int]) -> None:
    """One line for a complex-valued band (radar's SLC products): its values have no single real value to super-resolve,
    and converting them would silently drop the imaginary part."""
    for band in bands:
        dtype = np.dtype(ds.dtypes[band - 1])
        if dtype.kind == "c":
            raise InfSceneError(f"band {band} of {ds.name} holds complex values ({dtype}), which the engine cannot "
                                "super-resolve: write their amplitude or real part to a real-valued raster first (e.g. "
                                "gdal_translate -ot Float32, which keeps the real part)")


def _band_roles(ds: rasterio.DatasetReader, bands: Optional[Sequence[int]] = None) -> BandLayout:
    """Band roles from the user's list (R,G,B[,extra...]) or from colour interpretation.

    Without a list: bands tagged red/green/blue (colour interpretation or description) are the
    visible ones; otherwise bands 1, 2, 3 are taken as R, G, B (NAIP order). Every other
    non-alpha band is kept as an extra band. Planet analytic (B, G, R, NIR) without tags needs
    `bands=[3, 2, 1, 4]`.
    """
    interp = list(ds.colorinterp)
    alpha = next((i + 1 for i, c in enumerate(interp) if c == ColorInterp.alpha), None)
    if bands is not None:
        problem = OPTION["bands"].problem(bands)  # a list of whole numbers, or text such as "3,2,1,4"
        if problem is not None:
            raise InfSceneError(problem)
        bands = list(band_numbers(bands))
        bad = [b for b in bands if not 1 <= b <= ds.count]
        if bad:
            raise InfSceneError(f"band {bad[0]} does not exist: the raster has {ds.count} band(s)")
        if len(bands) < 3 or len(set(bands)) != len(bands):
            raise InfSceneError("--bands needs at least 3 distinct band numbers: red, green, blue[, extra bands]")
        if alpha in bands:
            raise InfSceneError(f"band {alpha} is the alpha band; it cannot be a colour band")
        return BandLayout((bands[0], bands[1], bands[2]), tuple(bands[3:]), alpha)

    data_bands = [i + 1 for i in range(ds.count) if i + 1 != alpha]
    if len(data_bands) < 3:
        raise InfSceneError(
            f"the raster has {len(data_bands)} data band(s); super-resolution needs red, green and blue bands"
        )
    descriptions = [(d or "").strip().lower() for d in ds.descriptions]
    tagged = []
    for role, name in zip(VISIBLE, VISIBLE_NAMES):
        found = [i + 1 for i in range(ds.count) if interp[i] == role or descriptions[i] == name]
        tagged.append(found[0] if found else None)
    visible = tuple(tagged) if None not in tagged and len(set(tagged)) == 3 else tuple(data_bands[:3])
    extra = tuple(b for b in data_bands if b not in visible)
    return BandLayout(visible, extra, alpha)  # type: ignore[arg-type]


# Where a raster without georeference lies: as QGIS draws it, x = column and y = -row, north-up. GDAL and rasterio give
# such a file no frame (their identity transform, y = +row, is a placeholder); an output written in it is south-up and
# QGIS drew it upside down and away from its input. In this frame --bounds read as QGIS's extent and the output, north-up
# like any map raster, lies over its input on the map.
UNGEOREFERENCED_FRAME = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def is_georeferenced(ds: rasterio.DatasetReader) -> bool:
    """Whether the raster says where it lies: a CRS or a geotransform (GDAL reports the identity when it has none)."""
    return ds.crs is not None or not ds.transform.is_identity


def placement(ds: rasterio.DatasetReader) -> Affine:
    """The transform the engine places the raster's pixels by: its own, or UNGEOREFERENCED_FRAME where it has none."""
    return ds.transform if is_georeferenced(ds) else UNGEOREFERENCED_FRAME


def _extent(transform: Affine, width: float, height: float) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a pixel block, whichever way its axes point (north-up or south-up)."""
    xs = (transform.c, transform.c + transform.a * width)
    ys = (transform.f, transform.f + transform.e * height)
    return min(xs), min(ys), max(xs), max(ys)


def resolve_window(ds: rasterio.DatasetReader, bounds: Optional[Sequence[float]] = None,
                   notes: Optional[list[str]] = None) -> Window:
    """The pixel-aligned window for `bounds` (minx, miny, maxx, maxy in the raster's CRS), clipped to the raster.

    A clipped extent is noted in `notes` (a warning for the user, not an error).
    """
    full = Window(0, 0, ds.width, ds.height)
    if bounds is None:
        return full
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InfSceneError(f"extent ({minx}, {miny}, {maxx}, {maxy}) must be finite numbers")
    if not (minx < maxx and miny < maxy):
        raise InfSceneError(f"empty extent: ({minx}, {miny}, {maxx}, {maxy}) has no area")
    frame = placement(ds)
    left, bottom, right, top = _extent(frame, ds.width, ds.height)
    if maxx <= left or minx >= right or maxy <= bottom or miny >= top:
        raise InfSceneError(
            f"extent ({minx}, {miny}, {maxx}, {maxy}) lies outside the raster "
            f"({left}, {bottom}, {right}, {top}) in its CRS"
        )
    inverse = ~frame
    cols, rows = zip(*(inverse * (x, y) for x in (minx, maxx) for y in (miny, maxy)))
    col0, row0 = math.floor(min(cols) + 1e-6), math.floor(min(rows) + 1e-6)
    col1, row1 = math.ceil(max(cols) - 1e-6), math.ceil(max(rows) - 1e-6)
    try:
        win = Window(col0, row0, col1 - col0, row1 - row0).intersection(full)
    except WindowError as exc:
        raise InfSceneError("extent does not overlap the raster") from exc
    if win.width < 2 or win.height < 2:
        raise InfSceneError(f"extent covers only {win.width}x{win.height} input pixels; at least 2x2 are needed")
    if notes is not None and (minx < left or miny < bottom or maxx > right or maxy > top):
        notes.append(f"the extent reaches beyond the raster; it was clipped to {_extent(windows.transform(win, frame), win.width, win.height)}")
    return win


@dataclass
class WindowData:
    """Bands read from the input window as float32, with the pixels that are valid in all of them."""

    values: np.ndarray  # (bands, h, w) float32, in input units
    valid: np.ndarray  # (h, w) bool
    alpha: Optional[np.ndarray]  # (h, w) input alpha, if the raster has one


def read_block(ds: rasterio.DatasetReader, window: Window, bands: Sequence[int], alpha: Optional[int]) -> WindowData:
    """Read `bands` in `window` (a window or a block of one); nodata, alpha, NaN and GDAL masks all mark pixels invalid."""
    with reading(ds.name):
        raw = ds.read(list(bands), window=window)
        values = raw.astype(np.float32)
        if raw.dtype == np.float64:
            _refuse_beyond_float32(raw, values, ds.name)
        valid = valid_pixels(ds, bands, alpha, window=window) & np.all(np.isfinite(values), axis=0)
        alpha_values = ds.read(alpha, window=window) if alpha else None
    return WindowData(values, valid, alpha_values)


def valid_pixels(ds: rasterio.DatasetReader, bands: Sequence[int], alpha: Optional[int], **where: object) -> np.ndarray:
    """The pixels valid in every one of `bands` (read with `where`: a window, an out_shape): GDAL's masks (nodata,
    a mask band, or the alpha band), and the alpha band as well where a nodata value hides it from GDAL's masks:
    GDAL then ignores the alpha band, and rasterio warns of it (NodataShadowWarning, which this replaces)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        valid = np.all(ds.read_masks(list(bands), **where) > 0, axis=0)
    if alpha is not None and ds.nodata is not None:
        valid &= ds.read(alpha, **where) > 0
    return valid


def _refuse_beyond_float32(raw: np.ndarray, values: np.ndarray, path: str) -> None:
    """Finite values too large for the engine's float32 would become infinity and be taken for nodata: one line that
    says so, rather than "no valid pixels"."""
    overflow = np.isfinite(raw) & ~np.isfinite(values)
    if overflow.any():
        raise InfSceneError(f"{path} holds finite values beyond float32's range (e.g. {raw[overflow].flat[0]:.3g}), the "
                            "precision the engine works in: rescale the raster or mark those pixels as nodata")


def read_window(ds: rasterio.DatasetReader, window: Window, bands: Sequence[int], alpha: Optional[int]) -> WindowData:
    """read_block of a whole window, refused in one line when no pixel of it is valid."""
    data = read_block(ds, window, bands, alpha)
    if not data.valid.any():
        raise InfSceneError("the extent has no valid pixels (all nodata or transparent)")
    return data


def window_sha256(ds: rasterio.DatasetReader, window: Window, bands: Sequence[int], alpha: Optional[int]) -> str:
    """sha256 of the pixel values a run reads from the window (its bands and alpha, as stored), in row blocks.

    What a checkpoint knows its input by, besides path, size and time: another raster written over the
    input with its size and time kept gives another hash. It hashes what GDAL decodes, not the file, so it
    costs one read of the window and no more whatever the file's layout or compression.
    """
    indexes = [*bands, *([alpha] if alpha else [])]
    pixel_bytes = len(indexes) * max(np.dtype(ds.dtypes[i - 1]).itemsize for i in indexes)
    digest = hashlib.sha256()
    with reading(ds.name):  # the blocks' rows are part of the hash (each block is read band by band)
        for rows, cols in blocks(int(window.height), int(window.width), pixels_in(DIGEST_BLOCK_BYTES, pixel_bytes)):
            digest.update(np.ascontiguousarray(ds.read(indexes, window=window_of(window, rows, cols))).data)
    return digest.hexdigest()


def output_grid(ds: rasterio.DatasetReader, window: Window, scale: Optional[float], target_res: Optional[float]) -> tuple[int, int, Affine]:
    """Output (height, width, transform): the window's bounds, with pixels `scale` times smaller."""
    if (scale is None) == (target_res is None):
        raise InfSceneError("give exactly one of scale or target resolution")
    res_x, res_y = abs(ds.transform.a), abs(ds.transform.e)
    if target_res is not None:
        if target_res <= 0:
            raise InfSceneError(f"target resolution must be positive, got {target_res}")
        sx, sy = res_x / target_res, res_y / target_res
    else:
        sx = sy = float(scale)  # type: ignore[arg-type]
    if not all(math.isfinite(v) and SCALE_MIN_EXCLUSIVE < v <= SCALE_MAX for v in (sx, sy)):
        if target_res is not None:  # name the units: 0.6 means metres to the user, and may be degrees to the raster
            units = crs_units(ds.crs)
            raise InfSceneError(
                f"--target-res {target_res:g} is in the raster's CRS units, {units}, where its pixels are {res_x:.4g} x "
                f"{res_y:.4g}: that is a scale factor of {sx:.3g}, outside ({SCALE_MIN_EXCLUSIVE:g}, {SCALE_MAX:g}]; give "
                f"a pixel size between {max(res_x, res_y) / SCALE_MAX:.4g} and {min(res_x, res_y):.4g} {units}, or use --scale")
        raise InfSceneError(f"scale factor must be in ({SCALE_MIN_EXCLUSIVE:g}, {SCALE_MAX:g}], got {sx:.3g}")
    out_w, out_h = max(1, round(window.width * sx)), max(1, round(window.height * sy))
    transform = windows.transform(window, placement(ds)) @ Affine.scale(window.width / out_w, window.height / out_h)
    return out_h, out_w, transform


def output_profile(ds: rasterio.DatasetReader, layout: BandLayout, height: int, width: int, transform: Affine) -> dict:
    """GeoTIFF profile of the output: the input's dtype, CRS and nodata; tiled and compressed."""
    dtype = ds.dtypes[layout.visible[0] - 1]
    return geotiff_profile(dtype, len(layout.kept), height, width, ds.crs, transform, ds.nodata)


def profile_bytes(profile: dict) -> int:
    """The pixel data of a raster of this profile, uncompressed."""
    return profile["height"] * profile["width"] * profile["count"] * np.dtype(profile["dtype"]).itemsize


def spread_profile(profile: dict) -> dict:
    """The profile of the spread of several samples beside an output of `profile`: one float32 band on its grid."""
    return geotiff_profile("float32", 1, profile["height"], profile["width"], profile["crs"], profile["transform"], None)


def geotiff_profile(dtype: str, count: int, height: int, width: int, crs: object, transform: Affine,
                    nodata: Optional[float]) -> dict:
    """Tiled (256 px), deflate-compressed GeoTIFF, BigTIFF when needed: the layout every output shares. Tiles are
    compressed on every core: writing runs after the model work, and deflate is most of its time. Deflate level 1,
    not GDAL's 6: a 4 MP RGB output wrote, overviewed and closed 3.6x faster for a file 10% larger (DEFLATE_LEVEL);
    deflate, not zstd, because every GIS reads it."""
    return {
        "driver": "GTiff", "dtype": dtype, "count": count, "height": height, "width": width, "crs": crs,
        "transform": transform, "nodata": nodata, "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "deflate", "ZLEVEL": DEFLATE_LEVEL, "predictor": 3 if np.dtype(dtype).kind == "f" else 2, "BIGTIFF": "IF_SAFER",
        "interleave": "pixel" if count <= 4 else "band", "NUM_THREADS": "ALL_CPUS",
    }


def value_range(ds: rasterio.DatasetReader, band: int, low: float, high: float) -> tuple[float, float]:
    """The range an output band may take, from the smallest and largest valid input values: its dtype's, narrowed to
    the input's bit depth for integers.

    12-bit (or 10-, 11-, 14-bit) data stored in uint16 stays in 0..4095: the depth is the band's
    NBITS tag when GDAL knows it, else the smallest depth that holds the window's largest value.
    """
    dtype = np.dtype(ds.dtypes[band - 1])
    if dtype.kind == "f":
        return -math.inf, math.inf
    info = np.iinfo(dtype)
    if info.min < 0 or not math.isfinite(low) or low < 0:
        return float(info.min), float(info.max)
    tagged = ds.tags(band, ns="IMAGE_STRUCTURE").get("NBITS")
    bits = int(tagged) if tagged and tagged.isdigit() else max(8, math.ceil(math.log2(float(high) + 1)))
    return 0.0, float(min(info.max, 2**bits - 1))


def avoid_nodata_value(values: np.ndarray, nodata: Optional[float]) -> None:
    """A valid pixel that rounds to the nodata value is nudged by one unit so it stays valid."""
    if nodata is None or np.isnan(nodata) or not np.issubdtype(values.dtype, np.integer):
        return
    info = np.iinfo(values.dtype)
    values[values == nodata] = nodata + 1 if nodata < info.max else nodata - 1


class _GdalErrors(logging.Handler):
    """Collects the errors GDAL signals (rasterio logs them inside an Env), which a close does not raise."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("GDAL signalled an error"):
            self.messages.append(message.split("msg=", 1)[-1].strip("'\""))


def _verify(path: Path, profile: dict) -> None:
    """Reopen the written file and read every pixel back: a file that GDAL cannot read whole is refused."""
    with rasterio.open(path) as ds:
        if (ds.width, ds.height, ds.count, ds.dtypes[0]) != (profile["width"], profile["height"], profile["count"], profile["dtype"]):
            raise RasterioError(f"read back as {ds.width}x{ds.height}x{ds.count} {ds.dtypes[0]}")
        pixels = pixels_in(VERIFY_BLOCK_BYTES, ds.count * np.dtype(ds.dtypes[0]).itemsize)
        for rows, cols in blocks(ds.height, ds.width, pixels):
            ds.read(window=Window.from_slices(rows, cols))


def working_path(path: Path) -> Path:
    """The uncompressed working file a GeoTIFF is written into before its one compressed copy (beside it)."""
    return path.with_name(path.name + ".tiles.tif")


def written_bytes(profile: dict, spread: bool = False) -> int:
    """The most disk a run's verified GeoTIFFs take while they are written: for each, the uncompressed working file
    and the compressed copy with its overviews, counted as if nothing compressed (a third more for the overviews);
    with `spread`, also the float32 band of the spread of several samples on the same grid."""
    data = profile_bytes(profile) + (profile_bytes(spread_profile(profile)) if spread else 0)
    return data + data * 4 // 3


@contextmanager
def verified_geotiff(path: Path, profile: dict, label: str | Path) -> Iterator[rasterio.io.DatasetWriter]:
    """Open a GeoTIFF of `profile` to write; on leaving, copy it into `path` as a Cloud Optimized GeoTIFF, and verify.

    The caller writes into an uncompressed tiled working file (working_path), where a tile written again, as blocks
    that straddle tiles do, is rewritten in place; GDAL's COG driver then compresses every tile once and adds the
    overviews before the full resolution, as a COG lays them out. (Written compressed directly, each rewrite of a
    tile left its old bytes behind: a 1600 x 1600 x 4 output took 24.8 MB, 4x the COG of the same pixels.) Any
    GDAL error while writing, copying or closing (a full disk), or a file that does not read back whole, is one
    line naming `label` (the final output path), and the caller renames nothing. The working file never outlives
    the call.
    """
    errors = _GdalErrors()
    logger = logging.getLogger("rasterio._env")
    logger.addHandler(errors)
    level = logger.level
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    working = working_path(path)
    # Bounded, but at least two rows of tiles: a pixel-interleaved tile written band by band is read, modified and
    # written back from the cache, not from the file.
    tile_row_mb = 2 * 256 * profile["width"] * profile["count"] * np.dtype(profile["dtype"]).itemsize / 1024**2
    try:
        with rasterio.Env(GDAL_CACHEMAX=max(WRITE_CACHE_MB, math.ceil(tile_row_mb))):
            with rasterio.open(working, "w", **_working_profile(profile)) as dst:
                yield dst
            if errors.messages:
                raise RasterioError(errors.messages[0])
            rasterio.shutil.copy(working, path, **_cog_options(profile))
            if errors.messages:
                raise RasterioError(errors.messages[0])
            _verify(path, profile)
    except (RasterioError, OSError) as exc:
        raise InfSceneError(f"writing {label} failed ({_first_line(exc)}): is the disk full? Nothing was written there") from exc
    finally:
        working.unlink(missing_ok=True)
        logger.removeHandler(errors)
        logger.setLevel(level)


def _working_profile(profile: dict) -> dict:
    """The output's profile, uncompressed: tiles rewritten in place."""
    plain = {k: v for k, v in profile.items() if k not in ("compress", "ZLEVEL", "predictor", "NUM_THREADS")}
    return {**plain, "driver": "GTiff", "BIGTIFF": "IF_SAFER"}


def _cog_options(profile: dict) -> dict:
    """GDAL's COG driver options for the output: its tiles, deflate at DEFLATE_LEVEL with the profile's predictor,
    averaged overviews down to about one tile, compressed on every core."""
    return {"driver": "COG", "BLOCKSIZE": profile["blockxsize"], "COMPRESS": "DEFLATE", "LEVEL": profile["ZLEVEL"],
            "PREDICTOR": "FLOATING_POINT" if profile["predictor"] == 3 else "STANDARD", "BIGTIFF": "IF_SAFER",
            "OVERVIEWS": "AUTO", "OVERVIEW_RESAMPLING": "AVERAGE", "NUM_THREADS": "ALL_CPUS"}


def band_description(src: rasterio.DatasetReader, layout: BandLayout, band: int) -> str:
    """The input band's own description, else its role: red, green, blue, alpha, or `band N` of the input."""
    own = (src.descriptions[band - 1] or "").strip()
    if own:
        return own
    roles = {**dict(zip(layout.visible, VISIBLE_NAMES)), **({layout.alpha: "alpha"} if layout.alpha else {})}
    return roles.get(band, f"band {band}")


def copy_band_metadata(src: rasterio.DatasetReader, dst: rasterio.io.DatasetWriter, layout: BandLayout) -> None:
    """Keep each band's colour interpretation and describe each band, tagging the model's bands red, green, blue.

    The tags let GIS renderers (and the QGIS plugin) show the result in true colour whatever the
    input's band order (Planet analytic B,G,R,NIR) or its lack of tags (NAIP). Each band also
    records the input band it came from (SOURCE_BAND), so a viewer can draw it with that band's
    stretch even when --bands dropped some.
    """
    roles = dict(zip(layout.visible, VISIBLE))
    dst.colorinterp = [roles.get(b, src.colorinterp[b - 1]) for b in layout.kept]
    for out_index, band in enumerate(layout.kept, start=1):
        dst.update_tags(out_index, **{SOURCE_BAND_TAG: str(band)})
        dst.set_band_description(out_index, band_description(src, layout, band))


@dataclass(frozen=True)
class OutputBlock:
    """One window of the output from the pipeline: the model and guided bands (layout.visible + layout.extra
    order) in input units, which output pixels are valid, and the alpha band enlarged (if the input has one)."""

    rows: slice
    cols: slice
    values: np.ndarray  # (len(visible) + len(extra), rows, cols), input dtype
    valid: np.ndarray  # (rows, cols) bool
    alpha: Optional[np.ndarray]


def write_super_resolved(
    path: Path, label: str | Path, src: rasterio.DatasetReader, layout: BandLayout, profile: dict,
    blocks: Iterable[OutputBlock], ranges: Sequence[tuple[float, float]], use_mask: bool, tags: Mapping[str, str],
) -> None:
    """Write the output block by block, in the input's band order: values clipped to each band's input
    range (`ranges`, model bands first), nodata where invalid, alpha, or a mask when the input had
    neither; band metadata and provenance `tags`; verified (verified_geotiff)."""
    order = [*layout.visible, *layout.extra]
    low = np.array([r[0] for r in ranges])[:, None, None]
    high = np.array([r[1] for r in ranges])[:, None, None]
    nodata = src.nodata
    with verified_geotiff(path, profile, label) as dst:
        copy_band_metadata(src, dst, layout)
        dst.update_tags(**tags)
        for block in blocks:
            values = np.clip(block.values, low, high).astype(block.values.dtype)
            avoid_nodata_value(values, nodata)
            if nodata is not None:
                values[:, ~block.valid] = nodata
            window = Window.from_slices(block.rows, block.cols)
            for out_index, band in enumerate(layout.kept, start=1):
                dst.write(block.alpha if band == layout.alpha else values[order.index(band)], out_index, window=window)
            if use_mask:
                dst.write_mask(block.valid.astype(np.uint8) * 255, window=window)
