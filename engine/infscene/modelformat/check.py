"""Model folders are checked before anything is built or allocated, whatever the family.

A model folder is data from anywhere. Before this check a config could make the engine allocate
without bound (`base_channels` 200000 asks for 640 GB) before the weights were even looked at, a
field of the wrong type failed deep inside torch, and a malformed weights file gave a traceback.
Here, in order, each failure being one line:

1. `config.json` is read with a size cap; deeply nested JSON is refused, not a RecursionError (files.py).
2. Every field has its declared type (from the family's config dataclass); ints are >= 1, floats
   finite; the data contract holds (value_min < value_max, 1 < scale_min <= scale_max, bands).
3. The family's network is built on torch's `meta` device, which gives every tensor's shape and the
   parameter count without allocating anything; a config the network rejects, or one over what this
   machine can hold (MAX_PARAMETERS, or half its memory in float32 weights), is refused. Width alone is
   not enough: `res_blocks` 1000000 asks for tiny blocks, but a million of them, and building them (even
   on `meta`) ran for minutes. So the build is watched as it goes: every parameter or buffer a module
   registers is counted, and the build stops as soon as the count passes MAX_TENSORS (a hundred times
   the tensors of the engine's models) or the parameters pass the limit, in well under a second.
4. The safetensors header alone (8-byte length + JSON, capped) is read and checked against the file
   size and against those shapes: a truncated file, a foreign or mismatched model is refused
   before a single weight is read.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from torch import nn

from .contract import ModelContract
from ..errors import InfSceneError
from ..protocol import MAX_PATCH, SCALE_MAX, format_bytes

MAX_HEADER_BYTES = 100 * 1024**2  # safetensors' own limit
MAX_PARAMETERS = 2_000_000_000  # 8 GB of float32 weights
MAX_TENSORS = 20_000  # the engine's models hold about 150 tensors: a config asking for 20,000 is not a model to run
WEIGHT_COPIES = 2  # a load holds the file's tensors and the network's at once
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _type_error(kind: Any, value: Any) -> Optional[str]:
    """Why `value` is not of the declared field type `kind` (None when it is)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        return _type_error(next(a for a in args if a is not type(None)), value)
    if origin is list:
        if not isinstance(value, list):
            return "a list"
        return next((why for why in (_type_error(args[0], v) for v in value) if why), None)
    if kind is bool:
        return None if isinstance(value, bool) else "true or false"
    if kind is int:
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else "a whole number >= 1"
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a finite number"
    if kind is str:
        return None if isinstance(value, str) else "a string"
    return None


def check_config_fields(config_class: type[ModelContract], raw: dict[str, Any], path: Path) -> None:
    """Every field of `raw` is a field of the family's config, of its declared type."""
    hints = typing.get_type_hints(config_class)
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise InfSceneError(f"invalid model config {path}: unknown field {unknown[0]!r}")
    defaults = {f.name: f.default for f in dataclasses.fields(config_class) if f.default is not dataclasses.MISSING}
    for name, value in raw.items():
        if name in defaults and type(value) is type(defaults[name]) and value == defaults[name]:
            continue  # a field's own default is valid, whatever its range (texture_channels 0: no texture head)
        why = _type_error(hints[name], value)
        if why:
            raise InfSceneError(f"invalid model config {path}: {name} must be {why}, got {json.dumps(value)[:40]}")


def check_contract(config: ModelContract, path: Path) -> None:
    """The data contract every family shares: bands, value range, trained scales, patch size."""
    problems = [
        (not config.bands, "bands must name at least one band"),
        (not config.value_min < config.value_max, f"value_min ({config.value_min:g}) must be below value_max "
                                                   f"({config.value_max:g}), or every output is one constant"),
        (not 1.0 < config.scale_min <= config.scale_max <= SCALE_MAX,
         f"scales must satisfy 1 < scale_min <= scale_max <= {SCALE_MAX:g}, got {config.scale_min:g}-{config.scale_max:g}"),
        (config.patch_size > MAX_PATCH, f"patch_size must be at most {MAX_PATCH}, got {config.patch_size}"),
    ]
    for failed, message in problems:
        if failed:
            raise InfSceneError(f"invalid model config {path}: {message}")


def parameter_limit() -> tuple[int, str]:
    """The most parameters a model may have here, and why: MAX_PARAMETERS, or fewer where the machine's memory cannot
    hold WEIGHT_COPIES of them in float32."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: the fixed limit alone
        memory = 0
    by_memory = memory // (4 * WEIGHT_COPIES)
    if memory and by_memory < MAX_PARAMETERS:
        return by_memory, f"this machine's {format_bytes(memory)} of memory holds"
    return MAX_PARAMETERS, "the engine loads"


class _TooLarge(Exception):
    """Raised inside a watched build to stop it (caught by expected_tensors)."""


@contextmanager
def _watched_build(limit: int) -> Iterator[list[int]]:
    """Count the tensors and parameters that modules register while the block runs, and stop the block (_TooLarge)
    as soon as either passes its limit; yields [tensors, parameters] so far."""
    counts = [0, 0]

    def count(module: nn.Module, name: str, tensor: Optional[torch.Tensor]) -> None:
        counts[0] += 1
        counts[1] += 0 if tensor is None else tensor.numel()
        if counts[0] > MAX_TENSORS or counts[1] > limit:
            raise _TooLarge()

    handles = [nn.modules.module.register_module_parameter_registration_hook(count),
               nn.modules.module.register_module_buffer_registration_hook(count)]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def expected_tensors(network: type[nn.Module], config: ModelContract, folder: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor the config's network holds, from a build on the meta device (no memory), stopped
    as soon as it passes what this machine can hold (depth or width)."""
    limit, why = parameter_limit()
    try:
        with _watched_build(limit) as counts, torch.device("meta"):
            module = network(config)
    except _TooLarge:
        if counts[0] > MAX_TENSORS:
            raise InfSceneError(f"the model in {folder} would have more than {MAX_TENSORS:,} tensors (the engine's models "
                                "have about 150): its config asks for a far deeper network than any the engine runs; "
                                "check its depth (blocks, levels)") from None
        raise InfSceneError(f"the model in {folder} would have more than {limit:,} parameters ({format_bytes(4 * limit)}), "
                            f"more than {why}; check its config") from None
    except Exception as exc:  # the network's own check of its arguments, whatever it raises
        raise InfSceneError(f"invalid model config in {folder}: the network cannot be built from it "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """(dtype, shape) of every tensor in a safetensors file, from its header alone, checked against the file size."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise InfSceneError(f"model weights {path} are not a safetensors file (bad header length)")
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InfSceneError(f"model weights {path} are not a safetensors file (unreadable header)") from exc
    if not isinstance(header, dict):
        raise InfSceneError(f"model weights {path} are not a safetensors file (header is not an object)")
    tensors, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
            valid = dtype in DTYPE_BYTES and stop - start == math.prod(shape) * DTYPE_BYTES[dtype] and 0 <= start <= stop
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise InfSceneError(f"model weights {path}: tensor {name!r} has a malformed header entry")
        tensors[name] = (dtype, shape)
        end = max(end, stop)
    if 8 + length + end != size:
        raise InfSceneError(f"model weights {path} are truncated or padded: the header describes "
                            f"{format_bytes(8 + length + end)}, the file holds {format_bytes(size)}")
    return tensors


def check_weights(network: type[nn.Module], config: ModelContract, folder: Path, weights: Path) -> int:
    """Refuse weights that do not fit the config's network (names and shapes); returns the parameter count."""
    expected = expected_tensors(network, config, folder)
    if not weights.is_file():
        raise InfSceneError(f"model weights missing: {weights}")
    found = read_safetensors_header(weights)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(n for n in set(expected) & set(found) if found[n][1] != expected[n])
    if missing or unexpected or wrong:
        detail = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
                  else f"{wrong[0]} is {list(found[wrong[0]][1])}, the config gives {list(expected[wrong[0]])}")
        raise InfSceneError(f"model weights do not match the config in {folder} "
                            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} of another shape: {detail})")
    return sum(math.prod(s) for s in expected.values())
