"""PyTorch's process-wide settings, scoped to a block (the diffusion stylizer and the network
stylizer both run inside :func:`torch_settings`).  Imports torch: only for the optional
extras."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def fix_cublas_workspace() -> None:
    """Give cuBLAS the fixed workspace it needs to be deterministic (process-wide, for good).

    cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` once, when CUDA first uses it, so the setting
    cannot be scoped: it is set before any CUDA work and never undone.  An existing value is
    kept.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def torch_settings(threads: int | None = None, deterministic: bool = True) -> Iterator[None]:
    """PyTorch's process-wide settings for the duration of a block, put back after it.

    Parameters
    ----------
    threads : int, optional
        ``torch.set_num_threads`` inside the block; ``None`` leaves it.  Give it the job's
        core count: on a shared machine PyTorch's default (every core of the machine) can
        oversubscribe the job's cores and run many times slower.
    deterministic : bool
        Deterministic kernels inside the block (``torch.use_deterministic_algorithms``,
        warn-only) and no cuDNN autotuning, which picks kernels by timing.  Also fixes the
        cuBLAS workspace, which cannot be undone (see
        :func:`fix_cublas_workspace`).

    Notes
    -----
    The settings belong to the process while the block runs: other threads using PyTorch
    meanwhile see them too.
    """
    threads_before = torch.get_num_threads()
    deterministic_before = (torch.are_deterministic_algorithms_enabled(),
                            torch.is_deterministic_algorithms_warn_only_enabled())
    benchmark_before = torch.backends.cudnn.benchmark
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        if deterministic:
            fix_cublas_workspace()
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(threads_before)
        if deterministic:
            torch.use_deterministic_algorithms(deterministic_before[0], warn_only=deterministic_before[1])
            torch.backends.cudnn.benchmark = benchmark_before
