"""The same bytes whatever the number of threads, devices or Dask workers: how model calls are made on a CPU.

Measured on this project's CPU (torch 2.13, oneDNN; bench/determinism.py): the posterior mean of a latent patch in
fp32 differs by up to 3e-7 between a call on 1 thread and on 2 (the library splits its sums over threads), and between
a batch of 1 or 2 patches and a batch of 4 (it picks kernels by batch size; the patch's place in the batch and the
other patches' values do not matter). Such differences grow through the reverse steps into different output bytes.
So the engine fixes both:

- every CPU model call runs on one thread (`one_thread_per_call`), and a CPU is used as several *lanes*, one per
  thread torch would have used, each a model call of its own, side by side (workers.DenoiserPool runs lanes as it
  runs GPUs; Dask workers run one task per thread the same way);
- every model call of the step loop has the run's batch size (`FixedBatchDenoiser`): a short batch (the last of a
  grid) is padded with copies of its last patch, whose results are dropped, so a patch gets the same bits in a run
  of any extent on the shared lattice (raster/anchor.py).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ..diffusion.schedule import Denoiser, ReverseStep


def cpu_lanes() -> int:
    """How many one-thread model calls a CPU runs side by side: the threads torch would give one call."""
    return max(1, torch.get_num_threads())


@contextmanager
def one_thread_per_call() -> Iterator[None]:
    """Torch's intra-op threads set to one for the duration (then restored: the engine is also a library)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FixedBatchDenoiser:
    """A Denoiser whose model calls always see `batch_size` patches: a shorter batch is padded with its last patch."""

    def __init__(self, inner: Denoiser, batch_size: int) -> None:
        self.inner = inner
        self.batch_size = batch_size
        self.state_channels = inner.state_channels

    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        count = y_t.shape[0]
        if count >= self.batch_size:
            return self.inner.posterior_mean(y_t, cond, step)
        pad = self.batch_size - count
        y_full = torch.cat([y_t, y_t[-1:].expand(pad, *y_t.shape[1:])])
        cond_full = torch.cat([cond, cond[-1:].expand(pad, *cond.shape[1:])])
        return self.inner.posterior_mean(y_full, cond_full, step)[:count]

    def __getattr__(self, name: str) -> Any:  # the family's finishing step reads its own denoiser's fields
        return getattr(self.inner, name)
