"""Timing: interleaved rounds of blocking calls (best and median), the GEMM
peak, the model's FLOPs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .grid import GATES, Case

Calls = dict[str, dict[str, Callable[[], Any]]]  # impl -> pass ("fwd", "fwdbwd") -> blocking call


def calls_wanted(first_seconds: float, repeats: int, budget: float) -> int:
    """Timed calls of one measurement: ``repeats``, fewer when they would take
    more than ``budget`` seconds together, none when the first call after
    compilation (``first_seconds``) took that long already (it is the sample)."""
    if first_seconds >= budget:
        return 0
    return max(1, min(repeats, int(budget / max(first_seconds, 1e-9))))


def rotation(impls: list[str], round_: int) -> list[str]:
    """The order of ``impls`` in round ``round_``: shifted by one each round,
    so each takes each place in turn."""
    k = round_ % len(impls) if impls else 0
    return impls[k:] + impls[:k]


def time_interleaved(
    calls: Calls, first_seconds: dict[str, dict[str, float]], repeats: int, budget: float, *,
    clock: Callable[[], float] = time.perf_counter, progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, Exception]]:
    """Seconds of every call, timed in rounds that interleave the implementations.

    Everything is compiled (and called once) before; in each round every
    implementation runs each of its passes once, back to back, each call
    blocking on its results, in an order that rotates between rounds
    (:func:`rotation`), so a noisy neighbour or a frequency change does not
    fall on one implementation only. A measurement takes part in the first
    :func:`calls_wanted` rounds; one that wants none is timed by its first call.

    Args:
      calls: impl -> pass -> a blocking call, in the order of the first round.
      first_seconds: impl -> pass -> seconds of its first call after compilation.
      repeats: rounds at most (``--repeats``).
      budget: seconds of timed calls per measurement at most (``--budget``).
      clock: seconds, monotonic (a fake one in tests).
      progress: called with (round, rounds) before each round.

    Returns:
      ``(samples, failed)``: impl -> pass -> seconds of each call, and the
      exception of each implementation whose call raised (it leaves the rounds).
    """
    impls = list(calls)
    wanted = {(i, name): calls_wanted(first_seconds[i][name], repeats, budget) for i in impls for name in calls[i]}
    samples: dict[str, dict[str, list[float]]] = {i: {name: [] for name in calls[i]} for i in impls}
    failed: dict[str, Exception] = {}
    rounds = max(wanted.values(), default=0)
    for k in range(rounds):
        if progress is not None:
            progress(k, rounds)
        for impl in rotation(impls, k):
            for name, fn in calls[impl].items():
                if impl in failed or k >= wanted[impl, name]:
                    continue
                start = clock()
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 (the row reports it; the others go on)
                    failed[impl] = e
                    continue
                samples[impl][name].append(clock() - start)
    for (impl, name), n in wanted.items():
        if n == 0:
            samples[impl][name] = [first_seconds[impl][name]]
    return samples, failed


def best_and_median(samples: list[float]) -> tuple[float, float]:
    """``(min, median)`` of a measurement's seconds."""
    return min(samples), statistics.median(samples)


def timed_first(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def gemm_peak(dtype: Any, n: int, repeats: int = 5) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` by ``n x n`` matmul in ``dtype`` on the default device."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    jax.block_until_ready(f(a, a))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a, a))
        samples.append(time.perf_counter() - start)
    seconds = statistics.median(samples)
    return {"n": n, "dtype": jnp.dtype(dtype).name, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}


def model_flops(case: Case, which: str) -> float:
    fwd = 2.0 * case.B * (case.I + case.H) * GATES[case.cell] * case.H * case.T
    return fwd if which == "fwd" else 3.0 * fwd
