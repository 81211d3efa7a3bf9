"""Process-wide runtime settings: glibc malloc tuning and torch threads.

PyTorch on a small CPU spends a surprising share of its time in the kernel returning and re-faulting
memory: every large tensor freed above glibc's mmap threshold goes back to the OS and the next one is
page-faulted in again. Raising the mmap threshold and keeping freed memory (trim threshold / top pad)
makes training steps both faster and steadier (measured in bench/bench_malloc.py). We set the same knobs
that `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` and `MALLOC_TOP_PAD_` set, via `mallopt`, so the
CLI needs no wrapper script; explicit environment variables from the user win.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: bytes; 256 MiB keeps activations/gradients of a batch in the heap instead of fresh mmaps
MALLOC_SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, 256 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, 512 * 1024 * 1024),
    "MALLOC_TOP_PAD_": (_M_TOP_PAD, 64 * 1024 * 1024),
}


def tune_malloc() -> dict[str, int]:
    """Apply the malloc settings not already given in the environment; returns what was set.

    A no-op (empty dict) where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return {}
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {}
    applied = {}
    for env, (param, value) in MALLOC_SETTINGS.items():
        if env in os.environ:
            continue  # glibc already applied the user's value at start-up
        if mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
            applied[env] = value
    return applied


def check_device(device: str, torch_backend: bool = True) -> str:
    """`device` if this machine has it: "cpu", "cuda" or "cuda:N". Checked before any output or compute
    exists, so a wrong device never leaves a half-written run behind. `torch_backend=False` (an
    onnxruntime bundle) checks the spelling only: the bundle's session checks its CUDA provider, and
    torch is not imported on that path."""
    import re

    from ctnodule.errors import ConfigError

    if device == "cpu":
        return device
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    if not torch_backend:
        return device
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU is available on this machine; use --device cpu")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s) (cuda:0.."
                          f"cuda:{torch.cuda.device_count() - 1})")
    return device


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's thread count set to `n` (when given) inside the block only: on a shared 2-core machine one
    thread trains a small network (a generator, the learned segmenter) several times faster than two
    fighting for the cores."""
    import torch  # only the callers that train need torch; the CLI's start-up does not

    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
