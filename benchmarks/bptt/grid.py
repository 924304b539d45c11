"""The grid: cells, implementations, sizes, and what runs where (:func:`plan`)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

import jaxrnn as jr

# From jaxrnn's one registry of named cells. gru: reset_after=True, Flax's
# GRUCell, PyTorch's nn.GRU, cuDNN's GRU.
CELLS: dict[str, Callable[[int], jr.Cell]] = {name: jr.cells.NAMED_CELLS[name] for name in ("lstm", "gru", "tanh")}
GATES = {"lstm": 4, "gru": 3, "tanh": 1}
IMPLS = (
    "fused-default",
    "fused-gates",
    "fused-states",
    "fused-ckpt",
    "pallas-gates",
    "pallas-states",
    "pallas-ckpt",
    "scan",
    "scan-remat",
    "flax",
    "torch",
    "cudnn",
)
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}

DEFAULT_T = (100, 1000, 10000, 100000)
DEFAULT_SIZES = ((8, 128), (32, 128), (64, 256), (64, 512))
QUICK = {"cells": ("lstm",), "T": (100, 1000), "sizes": ((8, 64),), "repeats": 3}
Size = tuple[int, ...]  # (B, H), input size I = H; or (B, I, H)
SMALL = (8, 128)  # sizes up to B*H = 8*128 run at T >= 10000 in the default grid
PALLAS_IMPLS = ("pallas-gates", "pallas-states", "pallas-ckpt")
#: why ``pallas-*`` rows are skipped on a CPU unless asked for (see :func:`plan`)
PALLAS_ON_CPU = (
    "the Pallas interpreter is for tests, not timing (name the impl in --impls "
    "or pass --pallas-interpret to run it anyway)"
)

# The GPU grid (``--grid gpu``; benchmarks/gpu.sh runs it for fp32 and bf16):
# T=1000 at every size, T=10000 at the sizes in ``long`` (ordered by T, so a
# --time-limit drops the long runs first). Sized to fit about 8 minutes on
# an H100/H200 for both dtypes together (see docs/benchmarks.md).
GPU_GRID: dict[str, Any] = {
    "cells": ("lstm", "gru"),
    "T": (1000, 10000),
    "sizes": ((16, 128), (16, 256), (16, 512), (64, 128), (64, 256), (64, 512)),
    "impls": ("pallas-states", "pallas-gates", "fused-states", "scan", "flax", "torch", "cudnn"),
    "repeats": 5,
    "budget": 1.0,
}
GPU_LONG = {10000: ((16, 128), (64, 128))}  # T >= 10000: only these sizes

# The CPU targets' sizes (``--grid cpu-targets``): T=1000, the speed targets'
# sizes with the inputs users feed them (I=32 at H=128), the defaults
# (fused-default) beside the named policies, Flax and PyTorch on 2 threads.
# About 3-5 minutes on 2 idle cores.
CPU_TARGETS_GRID: dict[str, Any] = {
    "cells": ("lstm", "gru"),
    "T": (1000,),
    "sizes": ((8, 32, 128), (32, 32, 128), (64, 256, 256)),
    "impls": ("fused-default", "fused-gates", "fused-states", "flax", "torch"),
    "repeats": 5,
    "budget": 12.0,
    "torch_threads": 2,
}
CPU_TARGETS_ONLY = {"gru": ((8, 32, 128), (32, 32, 128))}  # cells with fewer sizes in that grid
GRIDS = ("default", "gpu", "cpu-targets")


def grid_cases(cells: tuple[str, ...], Ts: tuple[int, ...], sizes: tuple[Size, ...],
               grid: str = "default") -> list["Case"]:
    """The cases of a grid, in the order they run: cell, then T, then size;
    the GPU grid runs T outermost and keeps only :data:`GPU_LONG` sizes at long T;
    the cpu-targets grid keeps only :data:`CPU_TARGETS_ONLY` sizes for those cells.
    A size is ``(B, H)`` (input size I = H) or ``(B, I, H)``."""
    if grid == "gpu":
        return [
            Case.of(c, T, size) for T in Ts for c in cells for size in sizes
            if T not in GPU_LONG or (size[0], size[-1]) in GPU_LONG[T]
        ]
    if grid == "cpu-targets":
        return [Case.of(c, T, size) for c in cells for T in Ts for size in sizes
                if c not in CPU_TARGETS_ONLY or tuple(size) in CPU_TARGETS_ONLY[c]]
    return [Case.of(c, T, size) for c in cells for T in Ts for size in sizes]


@dataclasses.dataclass(frozen=True)
class Case:
    cell: str
    T: int
    B: int
    H: int
    input_size: int | None = None  # None: I = H

    def __post_init__(self) -> None:
        if self.input_size == self.H:  # one spelling per case: (B, H, H) is (B, H)
            object.__setattr__(self, "input_size", None)

    @classmethod
    def of(cls, cell: str, T: int, size: Size) -> Case:
        """The case of ``size``: ``(B, H)`` or ``(B, I, H)``."""
        B, *I, H = size
        return cls(cell, T, B, H, *I)

    @property
    def I(self) -> int:
        return self.H if self.input_size is None else self.input_size

    def label(self) -> str:
        inputs = "" if self.input_size is None else f" I={self.I}"
        return f"{self.cell} T={self.T} B={self.B}{inputs} H={self.H}"


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: str  # "time" (check, then time), "memory" (compile only) or "skip"
    reason: str = ""
    passes: tuple[str, ...] = ("fwd", "fwdbwd")



@functools.cache
def torch_or_none() -> Any:
    """The ``torch`` module, or None where PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def triton_limit(dtype: str) -> int:
    """The largest hidden size the Triton kernel takes for ``dtype`` params
    (jaxrnn.kernels._pallas.TRITON_MAX_HIDDEN, by the parameters' item size)."""
    from jaxrnn.kernels._pallas import TRITON_MAX_HIDDEN

    return TRITON_MAX_HIDDEN.get(jnp.dtype(DTYPES[dtype]).itemsize, 0)


def pallas_refusal(case: Case, dtype: str, backend: str) -> str | None:
    """Why the Pallas kernel of ``backend`` refuses ``case`` (None: it takes it).
    Only the Triton rule is known ahead; other refusals show when the function
    is lowered (a ValueError the run turns into a skip)."""
    if backend != "gpu":
        return None
    H, limit = case.H, triton_limit(dtype)
    if H & (H - 1) or not 16 <= H <= limit:
        return (f"the Triton kernel takes hidden_size a power of two, 16 to {limit} for {dtype} params "
                f"(got H={H})")
    return None


def availability(impl: str, case: Case, dtype: str, backend: str) -> str | None:
    """Why ``impl`` cannot run ``case`` here at all (None: it can)."""
    if impl == "torch" and torch_or_none() is None:
        return "PyTorch is not installed (pip install torch==2.13.0)"
    if impl == "torch" and not hasattr(jr.interop, "to_torch"):
        return "jaxrnn.interop.to_torch is not available in this jaxrnn"
    if impl == "torch" and backend == "gpu" and not torch_or_none().cuda.is_available():
        return "this PyTorch has no CUDA (a CPU build): not timed against a GPU"
    if impl in PALLAS_IMPLS:
        return pallas_refusal(case, dtype, backend)
    if impl == "cudnn":
        if backend != "gpu":
            return "jax.experimental.rnn.lstm needs a CUDA GPU"
        if case.cell != "lstm":
            return "jax.experimental.rnn has only an LSTM"
        if dtype != "fp32":
            return "jax.experimental.rnn.lstm takes float32 only"
    return None


MEMORY_IMPLS = ("fused-default", "fused-gates", "fused-states", "fused-ckpt", "scan")  # compiled where not timed


def plan(impl: str, case: Case, dtype: str, backend: str, full: bool, pallas_cpu: bool = False) -> Plan:
    """What the default grid does with ``impl`` at ``case``.

    A CPU run is bounded (about 20 minutes on 2 cores): T=100 is timed for
    small sizes only (B*H <= 8*128; compilation dominates there); T=1000 for
    every size; at T >= 10000, ``impl="scan"``, ``"scan-remat"``, Flax and
    PyTorch take seconds to minutes per call and ``impl="scan"`` GBs, so only
    small sizes are timed and larger ones give the compiled memory of the
    engine's policies and ``impl="scan"`` (compilation only). At T >= 100000
    only the checkpointed engine is timed (LSTM, small sizes,
    forward+backward, one call); the other policies and ``impl="scan"`` give
    their compiled memory. On a GPU everything up to T = 10000 is timed, and
    at T >= 100000 the small sizes. ``full`` times everything.

    The ``pallas-*`` rows run where the kernel takes the shape (on a GPU, the
    Triton kernel's hidden sizes); on a CPU the kernel runs in the Pallas
    interpreter, exact but slow, so they are skipped unless ``pallas_cpu``
    (the impl named in ``--impls``, or ``--pallas-interpret``).
    """
    why = availability(impl, case, dtype, backend)
    if why is not None:
        return Plan("skip", why)
    if impl in PALLAS_IMPLS and backend == "cpu" and not pallas_cpu:
        return Plan("skip", PALLAS_ON_CPU)
    small = case.B * case.H <= SMALL[0] * SMALL[1]
    big = f"B*H > {SMALL[0]}*{SMALL[1]}"
    gpu = backend != "cpu"
    if full or (gpu and case.T < 100000) or (small and case.T < 100000) or 100 < case.T < 10000:
        return Plan("time")
    if case.T <= 100:
        return Plan("skip", f"T={case.T}, {big}: only small sizes at short T on a CPU (without --full)")
    if small and (gpu or (impl == "fused-ckpt" and case.cell == "lstm")):
        return Plan("time", passes=("fwdbwd",))
    where = "" if gpu else " on a CPU"
    if impl in MEMORY_IMPLS and (small or gpu or case.T < 100000):
        size = "" if small else f", {big}"
        return Plan("memory", f"T={case.T}{size}: compiled memory only{where} (without --full)", ("fwdbwd",))
    return Plan("skip", f"T={case.T}{'' if small else ', ' + big}: not run{where} (without --full)")


def checkpoint_every(T: int, every: int | None = None) -> int:
    """K of ``fused-ckpt``: ``every`` (``--ckpt-every``), by default
    ceil(sqrt(T)), so memory grows like sqrt(T)."""
    return every if every is not None else max(1, math.ceil(math.sqrt(T)))
