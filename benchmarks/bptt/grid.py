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
    "fused-gates",
    "fused-states",
    "fused-ckpt",
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
SMALL = (8, 128)  # sizes up to B*H = 8*128 run at T >= 10000 in the default grid


@dataclasses.dataclass(frozen=True)
class Case:
    cell: str
    T: int
    B: int
    H: int

    @property
    def I(self) -> int:
        return self.H

    def label(self) -> str:
        return f"{self.cell} T={self.T} B={self.B} H={self.H}"


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


def availability(impl: str, case: Case, dtype: str, backend: str) -> str | None:
    """Why ``impl`` cannot run ``case`` here at all (None: it can)."""
    if impl == "torch" and torch_or_none() is None:
        return "PyTorch is not installed (pip install torch==2.13.0)"
    if impl == "torch" and not hasattr(jr.interop, "to_torch"):
        return "jaxrnn.interop.to_torch is not available in this jaxrnn"
    if impl == "cudnn":
        if backend != "gpu":
            return "jax.experimental.rnn.lstm needs a CUDA GPU"
        if case.cell != "lstm":
            return "jax.experimental.rnn has only an LSTM"
        if dtype != "fp32":
            return "jax.experimental.rnn.lstm takes float32 only"
    return None


MEMORY_IMPLS = ("fused-gates", "fused-states", "fused-ckpt", "scan")  # compiled where not timed


def plan(impl: str, case: Case, dtype: str, backend: str, full: bool) -> Plan:
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
    """
    why = availability(impl, case, dtype, backend)
    if why is not None:
        return Plan("skip", why)
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
