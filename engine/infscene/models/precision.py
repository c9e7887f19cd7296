"""The numeric precision of model calls: float32, or bfloat16 under torch.autocast where the hardware runs it natively.

On a CPU with AVX-512 BF16 (or AMX) a conv stack runs 2-4x faster under bf16 autocast when its tensors are laid out
channels-last (fast_layout; in NCHW bf16 was slower than float32), and the outputs stay within a few thousandths of
a dB of float32 (docs/benchmarks.md, "Detail"): weights stay float32 and every step's state, the fusion, the
decoder's per-pixel upsampler and the LR projection stay float32; only the convolutions and matrix products run in
bf16. On a CPU without native bf16, oneDNN emulates it (slower than float32), so `auto` keeps float32 there.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

import torch
from torch import nn

from ..errors import InfSceneError

FP32, BF16 = "fp32", "bf16"
Module = TypeVar("Module", bound=nn.Module)


def bf16_native(device: torch.device) -> bool:
    """Whether the device runs bf16 arithmetic in hardware (CUDA's own check; oneDNN's on a CPU)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def resolve_precision(requested: str, devices: Sequence[torch.device]) -> str:
    """--precision auto|fp32|bf16 -> fp32 or bf16 for these devices.

    auto: bf16 where every device is a CPU with native bf16 (measured there), fp32 elsewhere (GPUs: not measured yet).
    """
    if requested == FP32:
        return FP32
    native = all(bf16_native(device) for device in devices)
    if requested == BF16:
        if not native:
            names = ", ".join(str(d) for d in devices if not bf16_native(d))
            raise InfSceneError(f"--precision bf16: {names} has no native bf16 arithmetic (it would be slower, not faster); "
                                "use --precision fp32 or auto")
        return BF16
    if requested != "auto":
        raise InfSceneError(f"precision must be auto, fp32 or bf16, got {requested!r}")
    return BF16 if native and all(device.type == "cpu" for device in devices) else FP32


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The context a model call runs in: bf16 autocast, or a disabled one (float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == BF16)


def fast_layout(module: Module, device: torch.device | str) -> Module:
    """The module with its weights laid out channels-last on a CPU (every convolution's output then follows).

    oneDNN's fast bf16 kernels work on that layout; in NCHW bf16 autocast bought little over float32 (one thread, an
    e2diffsr decode tile: 1.79 s NCHW bf16, 1.99 s NCHW fp32, 0.75 s channels-last bf16; bench/layout_speed.py).
    GPUs keep their layout (not measured there).
    """
    return module.to(memory_format=torch.channels_last) if torch.device(device).type == "cpu" else module
