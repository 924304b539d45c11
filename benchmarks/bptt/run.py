"""One case: every row planned, built and checked (:func:`prepare`), then the
timed ones timed together in interleaved rounds (:func:`time_case`)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from .check import Reference, check, tolerance
from .grid import DTYPES, MEMORY_IMPLS, Case, Plan, checkpoint_every
from .runners import Inputs, Runner, abstract_inputs, build, build_jax, build_torch
from .timing import best_and_median, model_flops, time_interleaved, timed_first


@dataclasses.dataclass
class Prepared:
    """A row before timing: compiled, checked and called once."""

    row: dict[str, Any]
    runner: Runner | None = None  # None: nothing to time (skipped, memory only, check failed)
    first_seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # pass -> its first call


def new_row(impl: str, case: Case, status: str, reason: str, residuals: Any = None) -> dict[str, Any]:
    return {
        "cell": case.cell, "T": case.T, "B": case.B, "H": case.H, "I": case.I, "impl": impl,
        "residuals": residuals, "status": status, "reason": reason, "check": None, "fwd": None, "fwdbwd": None,
        "grad_temp_bytes": None,
    }


def prepare(
    impl: str, case: Case, p: Plan, inputs: Inputs, ref: Callable[[Case], Reference],
    check_inputs: Callable[[Case], Inputs], args: argparse.Namespace, backend: str,
) -> Prepared:
    """Plans, compiles, checks and calls once ``impl`` at ``case``; a row that
    passes its check comes back with its runner, to be timed by :func:`time_case`."""
    K = checkpoint_every(case.T, args.ckpt_every)
    row = new_row(impl, case, p.mode, p.reason, K if impl.endswith("-ckpt") else None)
    if p.mode == "skip":
        row["status"] = "skipped"
        return Prepared(row)
    options = {"K": K, "torch_threads": args.torch_threads}
    if args.grad_memory and impl in MEMORY_IMPLS and case.T >= 1000:
        # jax.grad alone: no loss value, so the outputs need not be kept (the
        # measure of tests/test_kernels.py); compiled from shapes only.
        shapes = abstract_inputs(case, DTYPES[args.dtype], args.loss)
        grad_only = build_jax(impl, case, shapes, (), K, execute=False, grad_memory=True)
        row["grad_temp_bytes"] = grad_only.temp_bytes["grad"]
    if p.mode == "memory":
        runner = build(impl, case, inputs, p.passes, execute=False, **options)
        for name in p.passes:
            row[name] = {"compile_s": runner.compile_s.get(name), "temp_bytes": runner.temp_bytes.get(name)}
        row["status"] = "memory-only"
        return Prepared(row)

    tol = args.rtol if args.rtol is not None else tolerance(args.dtype, backend)
    if impl == "scan" and case.T <= args.check_steps and backend == "cpu" and args.dtype == "fp32":
        reused = ref(case)  # the reference is this very computation
        runner, worst, failure = reused.runner, 0.0, None
        firsts = {name: reused.first_seconds[name] for name in p.passes}
    elif case.T <= args.check_steps:
        runner = build(impl, case, inputs, p.passes, **options)
        results = {name: timed_first(getattr(runner, name)) for name in p.passes}
        worst, failure = check(runner, {k: v[0] for k, v in results.items()}, ref(case), tol)
        firsts = {k: v[1] for k, v in results.items()}
        del results
    else:  # check the same implementation (same K) on a shorter sequence
        short = dataclasses.replace(case, T=args.check_steps)
        c_inputs = check_inputs(short)
        if impl == "torch":
            c_runner = build_torch(short, c_inputs, p.passes, args.torch_threads)
        else:
            c_runner = build_jax(impl, short, c_inputs, p.passes, K)
        c_results = {name: getattr(c_runner, name)() for name in p.passes}
        worst, failure = check(c_runner, c_results, ref(short), tol)
        del c_runner, c_results
        runner = build(impl, case, inputs, p.passes, **options) if failure is None else None
        firsts = {name: timed_first(getattr(runner, name))[1] for name in p.passes} if runner else {}
    row["check"] = {"max_rel_err": worst, "tolerance": tol, "steps": min(case.T, args.check_steps)}
    if failure is not None:
        row["status"], row["reason"] = "check failed", failure
        return Prepared(row)
    row["device_peak_bytes"] = runner.peak_bytes()  # after its own first calls (JAX: the process's peak so far)
    return Prepared(row, runner, firsts)


def record(row: dict[str, Any], case: Case, runner: Runner, samples: dict[str, list[float]],
           first_seconds: dict[str, float], peak: float) -> None:
    """Puts the timings of ``samples`` into ``row``: the best (min) is the
    headline and the rates' basis, the median beside it."""
    for name, seconds in samples.items():
        best, median = best_and_median(seconds)
        flops = model_flops(case, name)
        row[name] = {
            "seconds": best,
            "median_seconds": median,
            "samples": seconds,
            "repeats": len(seconds),
            "first_call_s": first_seconds[name],
            "us_per_step": best / case.T * 1e6,
            "median_us_per_step": median / case.T * 1e6,
            "tokens_per_s": case.B * case.T / best,
            "gflops": flops / best / 1e9,
            "peak_share": flops / best / 1e9 / peak,
            "compile_s": runner.compile_s.get(name),
            "temp_bytes": runner.temp_bytes.get(name),
        }
    row["status"] = "ok"


def time_case(prepared: list[Prepared], case: Case, args: argparse.Namespace, peak: float,
              progress: Callable[[int, int], None] | None = None) -> None:
    """Times every checked row of one case together (:func:`.timing.time_interleaved`:
    ``--repeats`` rounds, each running every implementation once, in a rotating
    order) and fills in their rows."""
    timed = [q for q in prepared if q.runner is not None]
    calls = {q.row["impl"]: {name: getattr(q.runner, name) for name in q.first_seconds} for q in timed}
    firsts = {q.row["impl"]: q.first_seconds for q in timed}
    samples, failed = time_interleaved(calls, firsts, args.repeats, args.budget, progress=progress)
    for q in timed:
        impl = q.row["impl"]
        if impl in failed:
            e = failed[impl]
            q.row["status"], q.row["reason"] = "error", f"{type(e).__name__}: {e}"[:500]
        else:
            record(q.row, case, q.runner, samples[impl], q.first_seconds, peak)
        q.runner = None  # its compiled functions and buffers may go
