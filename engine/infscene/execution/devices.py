"""Which devices a run's model copies go to, from the --device text (auto, cpu, cuda, cuda:0,cuda:2, cpu,cpu)."""
from __future__ import annotations

import torch

from ..errors import InfSceneError
from .determinism import cpu_lanes


def resolve_devices(spec: str) -> list[torch.device]:
    """Where the model runs, one model copy per entry.

    `auto`: every CUDA GPU torch sees, else the CPU. `cuda`: every GPU. `cpu`: the CPU as one lane per thread torch
    would use (determinism.py: each lane a one-thread model call). Or a comma-separated list such as `cuda:0,cuda:2`
    (`cpu,cpu`: two CPU lanes). Patch batches are spread over the entries (workers.DenoiserPool); the result does
    not depend on how many there are.
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    every_gpu = [torch.device(f"cuda:{i}") for i in range(gpus)]
    if spec == "cpu":
        return [torch.device("cpu")] * cpu_lanes()
    if spec == "auto":
        return every_gpu or [torch.device("cpu")] * cpu_lanes()
    devices: list[torch.device] = []
    for name in (part.strip() for part in spec.split(",")):
        if name == "cpu":
            devices.append(torch.device("cpu"))
            continue
        if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
            raise InfSceneError(f"unknown device {name!r}: use auto, cpu, cuda, or a list such as cuda:0,cuda:1")
        if not gpus:
            raise InfSceneError(f"--device {name} was asked for but torch sees no CUDA GPU; use --device cpu or auto")
        if name == "cuda":
            devices.extend(every_gpu)
        elif int(name[5:]) >= gpus:
            raise InfSceneError(f"{name} does not exist: torch sees {gpus} CUDA GPU(s), cuda:0 to cuda:{gpus - 1}")
        else:
            devices.append(torch.device(name))
    return devices


def resolve_device(name: str) -> torch.device:
    """The first device of resolve_devices(name), for work that runs on one device (training, timing)."""
    return resolve_devices(name)[0]
