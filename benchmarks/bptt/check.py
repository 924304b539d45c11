"""The correctness check: every implementation against jaxrnn's reference
(``impl="scan"``, float32, ``Precision.HIGHEST``) before it is timed."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from .grid import Case
from .runners import Inputs, Runner, build_jax, to_float64
from .timing import timed_first

def tolerance(dtype: str, backend: str) -> float:
    """Largest relative L2 error accepted per array: float32 on a CPU is exact
    up to summation order; GPUs run float32 GEMMs in TF32 by default."""
    if dtype == "bf16":
        return 5e-2
    return 2e-4 if backend == "cpu" else 1e-2


def relative_errors(got: Any, want: Any) -> list[float]:
    errors = []
    for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        if g.shape != r.shape:
            return [math.inf]
        scale = float(np.linalg.norm(r)) or 1.0
        errors.append(float(np.linalg.norm(g - r)) / scale)
    return errors


@dataclasses.dataclass
class Reference:
    fwd: Any  # (final, ys), numpy
    fwdbwd: Any  # (loss, (dparams, dxs)), numpy
    runner: Runner  # what computed them
    first_seconds: dict[str, float]  # the time of each first call


def reference(case: Case, inputs: Inputs, backend: str) -> Reference:
    """jaxrnn's impl="scan" in float32 at Precision.HIGHEST on ``inputs``.

    On a CPU, float32 matmuls are float32 whatever the precision, so the
    float32 ``scan`` row reuses this runner instead of compiling its twin.
    """
    precision = None if backend == "cpu" else jax.lax.Precision.HIGHEST
    runner = build_jax("scan", case, inputs.as_float32(), ("fwd", "fwdbwd"), K=1, precision=precision)
    (fwd, t_fwd), (fwdbwd, t_fwdbwd) = timed_first(runner.fwd), timed_first(runner.fwdbwd)
    return Reference(to_float64(fwd), to_float64(fwdbwd), runner, {"fwd": t_fwd, "fwdbwd": t_fwdbwd})


def check(runner: Runner, results: dict[str, Any], ref: Reference, tol: float) -> tuple[float, str | None]:
    """The largest relative error over outputs, final state, loss and
    gradients, and a message naming those above ``tol`` (None if none is)."""
    errors: dict[str, float] = {}
    if "fwd" in results:
        final, ys = runner.convert_fwd(results["fwd"])
        errors["final state"] = max(relative_errors(final, ref.fwd[0]))
        errors["outputs"] = max(relative_errors(ys, ref.fwd[1]))
    if "fwdbwd" in results:
        loss, (dp, dx) = runner.convert_grad(results["fwdbwd"])
        errors["loss"] = max(relative_errors(loss, ref.fwdbwd[0]))
        errors["param gradients"] = max(relative_errors(dp, ref.fwdbwd[1][0]))
        errors["input gradients"] = max(relative_errors(dx, ref.fwdbwd[1][1]))
    worst = max(errors.values())
    bad = [f"{name} {e:.1e}" for name, e in errors.items() if not e <= tol]  # NaN fails too
    if bad:
        return worst, f"relative error above {tol:.0e}: " + ", ".join(bad)
    return worst, None
