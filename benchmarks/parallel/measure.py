"""One case: every row compiled, called once and checked against ``impl="scan"``
(the sequential reference), then the checked rows timed together in
interleaved rounds."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from typing import Any

from benchmarks.bptt.check import relative_errors
from benchmarks.bptt.timing import best_and_median, time_interleaved, timed_first

from .grid import LINEAR_IMPLS, METHODS, Case, Plan, newton_impls, newton_plan
from .runners import (
    Compiled,
    compile_fwdbwd,
    info_dict,
    make_inputs,
    newton_info_fn,
    to_float64,
)

#: the largest relative L2 error (loss, each gradient leaf) accepted against
#: ``impl="scan"`` in float32 on a CPU: the fused engine differs from it only
#: by summation order; the associative scan reassociates the whole recurrence
#: (log-space for MinGRU/MinLSTM); a Newton solve stops at a residual of
#: ``jaxrnn.parallel.default_tol`` (1.2e-5 for float32) and its gradient
#: solves the adjoint recurrence at that solution. Measured at T=1000 (B=8):
#: quasi-DEER's param gradients of a GRU 3e-4 (H=16) and 7e-5 (H=64), every
#: other error 2e-5 or less.
TOLERANCE = {"fused": 2e-4, "auto": 1e-3, **{m: 1e-3 for m in METHODS}}


def new_row(case: Case, impl: str, status: str = "planned", reason: str = "") -> dict[str, Any]:
    return {"part": case.part, "cell": case.cell, "T": case.T, "B": case.B, "I": case.I, "H": case.H,
            "impl": impl, "status": status, "reason": reason, "check": None, "compile_s": None,
            "memory": None, "fwdbwd": None, "newton": None, "load": None}


def check(got: Any, want: Any, tol: float) -> tuple[dict[str, Any], str | None]:
    """Relative L2 errors of the loss, the param gradients and the input
    gradients against the reference; a message naming those above ``tol``."""
    loss, (dp, dx) = to_float64(got)
    r_loss, (r_dp, r_dx) = want
    errors = {"loss": max(relative_errors(loss, r_loss)), "param gradients": max(relative_errors(dp, r_dp)),
              "input gradients": max(relative_errors(dx, r_dx))}
    bad = [f"{k} {e:.1e}" for k, e in errors.items() if not e <= tol]  # NaN fails too
    result = {"max_rel_err": max(errors.values()), "errors": errors, "tolerance": tol}
    return result, (f"relative error above {tol:.0e}: " + ", ".join(bad)) if bad else None


#: checks at ``--check-steps``, kept for the longer cases of the same size:
#: (part, cell, B, I, H, impl) -> (check, failure message or None)
Checks = dict[tuple, tuple[dict[str, Any], str | None]]


def _key(case: Case, impl: str) -> tuple:
    return case.part, case.cell, case.B, case.I, case.H, impl


def short_check(case: Case, impl: str, checks: Checks) -> tuple[dict[str, Any], str | None]:
    """The check of ``impl`` at ``case`` (a case at ``--check-steps``):
    from ``checks``, or run (the reference ``scan`` and ``impl``, compiled at
    that length) and kept there."""
    key = _key(case, impl)
    if key not in checks:
        inputs = make_inputs(case)
        ref_key = _key(case, "scan")
        if ref_key not in checks:  # the reference's result, kept with the checks
            checks[ref_key] = ({"reference": to_float64(compile_fwdbwd(case, "scan", inputs).call())}, None)
        got = compile_fwdbwd(case, impl, inputs).call()
        checks[key] = check(got, checks[ref_key][0]["reference"], TOLERANCE[impl])
    return checks[key]


def run_case(case: Case, args: argparse.Namespace, checks: Checks,
             log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The rows of ``case``: the reference (``scan``) first, every other row
    checked, then all timed together (``--repeats`` rounds in a rotating
    order, fewer for calls longer than ``--budget`` s together).

    The check: up to ``--check-steps``, against ``scan`` on the same inputs.
    Above, the same implementation at ``--check-steps`` (kept in ``checks``
    from that case of the grid, else run), as benchmarks.bptt does: over
    long sequences float32 loses digits in every implementation alike (at
    T=10000 the LRU's phase gradient, ``theta_log``, is 8e-3 off a float64
    reference with ``scan`` and 9e-3 with the associative scan, relative L2),
    so the two float32 runs need not agree to a fixed tolerance. The
    difference from ``scan`` at the full T is still recorded
    (``check["full_T"]``).
    """
    if case.part == "linear":
        impls = list(LINEAR_IMPLS)
        plans = {i: Plan("time") for i in impls}
    else:
        impls = list(newton_impls(args.methods))
        plans = {i: newton_plan(i, case, args.full) for i in impls}
    impls.sort(key=lambda i: i != "scan")  # the reference first
    inputs = make_inputs(case)
    rows = {i: new_row(case, i) for i in impls}
    compiled: dict[str, Compiled] = {}
    firsts: dict[str, dict[str, float]] = {}
    reference = None
    for impl in impls:
        row, plan = rows[impl], plans[impl]
        try:
            c = compile_fwdbwd(case, impl, inputs, execute=plan.mode == "time")
        except Exception as e:  # noqa: BLE001 (report it; the other rows go on)
            row["status"], row["reason"] = "error", f"{type(e).__name__}: {e}"[:500]
            continue
        row["compile_s"], row["memory"] = c.compile_s, c.memory
        if plan.mode == "memory":
            row["status"], row["reason"] = "memory-only", plan.reason
            continue
        result, first = timed_first(c.call)
        if impl == "scan":
            reference = to_float64(result)
            row["check"] = {"max_rel_err": 0.0, "reference": True}
            if case.T == args.check_steps:
                checks[_key(case, impl)] = ({"reference": reference}, None)
        elif reference is None:
            row["status"], row["reason"] = "error", "no reference: impl='scan' failed"
            continue
        else:
            same_t, failure = check(result, reference, TOLERANCE[impl])
            if case.T <= args.check_steps:
                row["check"] = same_t
                if case.T == args.check_steps:
                    checks[_key(case, impl)] = (same_t, failure)
            else:
                short = dataclasses.replace(case, T=args.check_steps)
                checked, failure = short_check(short, impl, checks)
                row["check"] = {**checked, "steps": args.check_steps, "full_T": same_t}
            if failure is not None:
                row["status"], row["reason"] = "check failed", failure
                log(f"{impl} at {case.label()}: check failed: {failure}")
                continue
        del result
        compiled[impl] = c
        firsts[impl] = {"fwdbwd": first}
    for impl in impls:
        if impl in METHODS and rows[impl]["status"] not in ("memory-only", "error"):
            info = newton_info_fn(inputs.cell, impl)(inputs.params, inputs.xs)
            rows[impl]["newton"] = {**info_dict(info), "fell_back": not bool(info.converged)}
    load = os.getloadavg()
    samples, failed = time_interleaved({i: {"fwdbwd": c.call} for i, c in compiled.items()}, firsts,
                                       args.repeats, args.budget)
    for impl in compiled:
        row = rows[impl]
        row["load"] = [*load, *os.getloadavg()]  # 1, 5, 15-minute load before and after the timing
        if impl in failed:
            e = failed[impl]
            row["status"], row["reason"] = "error", f"{type(e).__name__}: {e}"[:500]
            continue
        seconds = samples[impl]["fwdbwd"]
        best, median = best_and_median(seconds)
        row["fwdbwd"] = {"seconds": best, "median_seconds": median, "samples": seconds, "repeats": len(seconds),
                         "first_call_s": firsts[impl]["fwdbwd"], "ms": best * 1e3, "median_ms": median * 1e3,
                         "us_per_step": best / case.T * 1e6}
        row["status"] = "ok"
    return [rows[i] for i in impls]
