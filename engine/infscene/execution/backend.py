"""Where a run's model work goes, decided while planning: this process's devices, or a Dask cluster.

The plan (plan.py) carries one of these, so the run builds its executor from the plan alone and the
`plan` event can say where the work will run before any of it starts. Everything here is known cheaply:
the devices come from --device, and a `local:N` cluster's worker count from its address; a scheduler's
workers are only known once connected, so they are left unknown (None) rather than asked for while planning.
This module imports neither dask nor distributed: a run that stays local never loads them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional, Union

import torch

from ..errors import InfSceneError
from ..protocol import LOCAL_CLUSTER_PREFIX, dask_address_problem


@dataclass(frozen=True)
class LocalBackend:
    """This process's devices, one model copy per entry (a CPU's lanes repeat `cpu`: devices.resolve_devices)."""

    devices: tuple[torch.device, ...]

    @property
    def workers(self) -> int:
        """Model calls that run side by side: one per lane or GPU."""
        return len(self.devices)

    def describe(self) -> str:
        """The devices in a few words, e.g. `cpu x4` or `cuda:0, cuda:1`."""
        counts = Counter(str(device) for device in self.devices)
        return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in counts.items())


@dataclass(frozen=True)
class DaskBackend:
    """A Dask cluster: `local:N` worker processes on this machine, or a scheduler address or file."""

    address: str  # as given to --dask, stripped
    threads_per_worker: int  # of each local:N worker (a scheduler's workers keep their own)
    workers: Optional[int]  # known for local:N; None for a scheduler (known only once connected)

    def describe(self) -> str:
        return f"Dask {self.address}"


Backend = Union[LocalBackend, DaskBackend]


def parse_address(address: str) -> tuple[Optional[int], Optional[str]]:
    """(N, None) for `local:N`, (None, address) for a scheduler address; one line for anything else."""
    problem = dask_address_problem(address)
    if problem:
        raise InfSceneError(problem)
    text = address.strip()
    if text.startswith(LOCAL_CLUSTER_PREFIX):
        return int(text[len(LOCAL_CLUSTER_PREFIX):]), None
    return None, text


def plan_backend(dask: Optional[str], threads_per_worker: int, devices: tuple[torch.device, ...]) -> Backend:
    """The run's backend: the Dask cluster of --dask (its address checked here, once), else `devices`."""
    if not dask:
        return LocalBackend(devices)
    count, _ = parse_address(dask)
    return DaskBackend(dask.strip(), threads_per_worker, count)
