"""The grid: cells, implementations, sizes, and what runs where (:func:`newton_plan`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jaxrnn as jr

#: linear-recurrence cells, by name (their published initialisations)
LINEAR_CELLS: dict[str, Callable[[int], jr.Cell]] = {
    "mingru": lambda h: jr.MinGRU(h),
    "minlstm": lambda h: jr.MinLSTM(h),
    "lru": lambda h: jr.LRU(h),
    "rglru": lambda h: jr.RGLRU(h),
}
#: how a linear cell runs: sequentially (lax.scan over its step, JAX autodiff)
#: or by the associative scan (impl="auto", its hand-written backward)
LINEAR_IMPLS = ("scan", "auto")

#: nonlinear cells solved by Newton, from jaxrnn's one registry of named cells
NEWTON_CELLS: dict[str, Callable[[int], jr.Cell]] = {name: jr.cells.NAMED_CELLS[name] for name in ("gru", "tanh")}
#: the sequential engines of a nonlinear cell
SEQUENTIAL_IMPLS = ("fused", "scan")
#: the Newton methods (``impl="parallel", method=...``), in report order
METHODS = ("deer", "quasi", "elk", "quasi-elk")

# Defaults (``python -m benchmarks.parallel``): 7.5 min at a load average of
# 2 on 2 CPU cores, 9 min at 2.5-4 (other processes on the cores).
LINEAR_DEFAULTS: dict[str, Any] = {
    "linear_cells": ("mingru", "lru", "minlstm", "rglru"),
    "linear_T": (1000, 10000, 100000),
    # T=100000 of these cells only (each costs a minute: the associative
    # scan's compile and two calls of 10-20 s)
    "linear_long_cells": ("mingru", "lru"),
    "linear_size": (8, 32, 64),  # B, I, H
}
NEWTON_DEFAULTS: dict[str, Any] = {
    "newton_cells": ("gru", "tanh"),
    "newton_H": (4, 16, 64),
    "newton_T": (1000, 10000),
    "methods": ("deer", "quasi"),
    "newton_B": 8,
}
ITERATION_DEFAULTS: dict[str, Any] = {
    "iter_T": (100, 1000),
    "train_steps": 300,
    "train_T": 100,
    "train_batch": 32,
    "lr": 1e-2,
}
#: ``--quick``: a tiny grid that exercises every part (a test, not a measurement)
QUICK: dict[str, Any] = {
    "linear_cells": ("mingru",),
    "linear_T": (100,),
    "linear_long_cells": (),
    "linear_size": (2, 4, 8),
    "newton_cells": ("gru",),
    "newton_H": (4,),
    "newton_T": (100,),
    "newton_B": 2,
    "methods": ("quasi",),
    "iter_T": (100,),  # the timed T: its count at initialisation reuses the compiled solve
    "train_steps": 10,
    "train_T": 20,
    "train_batch": 4,
    "repeats": 2,
    "budget": 0.5,
    "check_steps": 100,
}

#: DEER keeps a full (H, H) Jacobian per step and example, and its parallel
#: scan of matrix products holds several such arrays (at T=1000, H=64, B=8:
#: 354 MB compiled, 1.1 s fwd+bwd). Above this many Jacobian entries
#: (T * B * H * H) its rows are compiled for their memory but not run,
#: unless ``--full``.
DEER_RUN_LIMIT = 8 * 1000 * 64 * 64
DEER_METHODS = ("deer", "elk")  # the methods with full Jacobians


@dataclasses.dataclass(frozen=True)
class Case:
    """One size of one cell: the implementations of a case are timed together."""

    part: str  # "linear" or "newton"
    cell: str
    T: int
    B: int
    I: int
    H: int

    def label(self) -> str:
        return f"{self.cell} T={self.T} B={self.B} I={self.I} H={self.H}"

    def make_cell(self) -> jr.Cell:
        return (LINEAR_CELLS if self.part == "linear" else NEWTON_CELLS)[self.cell](self.H)


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: str  # "time" (check, then time), "memory" (compile only) or "skip"
    reason: str = ""


def linear_cases(cells: tuple[str, ...], Ts: tuple[int, ...], long_cells: tuple[str, ...],
                 size: tuple[int, int, int]) -> list[Case]:
    """The linear cases, cell by cell, T ascending; T above 10000 only for
    ``long_cells``."""
    B, I, H = size
    return [Case("linear", c, T, B, I, H) for c in cells for T in sorted(Ts) if T <= 10000 or c in long_cells]


def newton_cases(cells: tuple[str, ...], Ts: tuple[int, ...], Hs: tuple[int, ...], B: int) -> list[Case]:
    """The Newton cases (adding-problem inputs: I = 2), cell, then T, then H."""
    return [Case("newton", c, T, B, 2, H) for c in cells for T in sorted(Ts) for H in sorted(Hs)]


def newton_impls(methods: tuple[str, ...]) -> tuple[str, ...]:
    """The rows of a Newton case: the sequential engines, then each method."""
    return SEQUENTIAL_IMPLS + tuple(m for m in METHODS if m in methods)


def newton_plan(impl: str, case: Case, full: bool) -> Plan:
    """Whether ``impl`` runs at ``case``: DEER and ELK above
    :data:`DEER_RUN_LIMIT` Jacobian entries are compiled only."""
    if impl in DEER_METHODS and case.T * case.B * case.H**2 > DEER_RUN_LIMIT and not full:
        return Plan("memory", f"full Jacobians: T*B*H² > {DEER_RUN_LIMIT:.3g} entries (run with --full)")
    return Plan("time")
