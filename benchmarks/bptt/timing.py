"""Timing: medians of blocking calls, the GEMM peak, the model's FLOPs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .grid import GATES, Case

def time_calls(fn: Callable[[], Any], first_seconds: float, repeats: int, budget: float) -> tuple[float, int]:
    """Median seconds of ``repeats`` calls of ``fn`` (already called once, in
    ``first_seconds``); calls longer than ``budget`` are timed once, by that
    first post-compilation call."""
    if first_seconds >= budget:
        return first_seconds, 1
    n = max(1, min(repeats, int(budget / max(first_seconds, 1e-9))))
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), n


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
