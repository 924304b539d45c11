"""One row of the results: plan, check, then time (or compile only)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from .check import Reference, check, tolerance
from .grid import DTYPES, MEMORY_IMPLS, Case, Plan, checkpoint_every
from .runners import Inputs, abstract_inputs, build, build_jax, build_torch
from .timing import model_flops, time_calls, timed_first

def run_one(
    impl: str, case: Case, p: Plan, inputs: Inputs, ref: Callable[[Case], Reference],
    check_inputs: Callable[[Case], Inputs], args: argparse.Namespace, backend: str, peak: float,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cell": case.cell, "T": case.T, "B": case.B, "H": case.H, "I": case.I, "impl": impl,
        "residuals": checkpoint_every(case.T, args.ckpt_every) if impl.endswith("-ckpt") else None,
        "status": p.mode, "reason": p.reason, "check": None, "fwd": None, "fwdbwd": None,
        "grad_temp_bytes": None,
    }
    if p.mode == "skip":
        row["status"] = "skipped"
        return row
    options = {"K": checkpoint_every(case.T, args.ckpt_every), "torch_threads": args.torch_threads}
    if args.grad_memory and impl in MEMORY_IMPLS and case.T >= 1000:
        # jax.grad alone: no loss value, so the outputs need not be kept (the
        # measure of tests/test_kernels.py); compiled from shapes only.
        shapes = abstract_inputs(case, DTYPES[args.dtype])
        grad_only = build_jax(impl, case, shapes, (), checkpoint_every(case.T, args.ckpt_every), execute=False, grad_memory=True)
        row["grad_temp_bytes"] = grad_only.temp_bytes["grad"]
    if p.mode == "memory":
        runner = build(impl, case, inputs, p.passes, execute=False, **options)
        for name in p.passes:
            row[name] = {"compile_s": runner.compile_s.get(name), "temp_bytes": runner.temp_bytes.get(name)}
        row["status"] = "memory-only"
        return row

    tol = args.rtol if args.rtol is not None else tolerance(args.dtype, backend)
    if impl == "scan" and case.T <= args.check_steps and backend == "cpu" and args.dtype == "fp32":
        reused = ref(case)  # the reference is this very computation
        runner, worst, failure = reused.runner, 0.0, None
        firsts = {name: (None, reused.first_seconds[name]) for name in p.passes}
    elif case.T <= args.check_steps:
        runner = build(impl, case, inputs, p.passes, **options)
        firsts = {name: timed_first(getattr(runner, name)) for name in p.passes}
        worst, failure = check(runner, {k: v[0] for k, v in firsts.items()}, ref(case), tol)
    else:  # check the same implementation (same K) on a shorter sequence
        short = dataclasses.replace(case, T=args.check_steps)
        c_inputs = check_inputs(short)
        if impl == "torch":
            c_runner = build_torch(short, c_inputs, p.passes, args.torch_threads)
        else:
            c_runner = build_jax(impl, short, c_inputs, p.passes, checkpoint_every(case.T, args.ckpt_every))
        c_results = {name: getattr(c_runner, name)() for name in p.passes}
        worst, failure = check(c_runner, c_results, ref(short), tol)
        del c_runner, c_results
        runner = build(impl, case, inputs, p.passes, **options) if failure is None else None
        firsts = {name: timed_first(getattr(runner, name)) for name in p.passes} if runner else {}
    row["check"] = {"max_rel_err": worst, "tolerance": tol, "steps": min(case.T, args.check_steps)}
    if failure is not None:
        row["status"], row["reason"] = "check failed", failure
        return row

    for name in p.passes:
        fn = getattr(runner, name)
        seconds, n = time_calls(fn, firsts[name][1], args.repeats, args.budget)
        flops = model_flops(case, name)
        row[name] = {
            "seconds": seconds,
            "repeats": n,
            "us_per_step": seconds / case.T * 1e6,
            "tokens_per_s": case.B * case.T / seconds,
            "gflops": flops / seconds / 1e9,
            "peak_share": flops / seconds / 1e9 / peak,
            "compile_s": runner.compile_s.get(name),
            "temp_bytes": runner.temp_bytes.get(name),
        }
    row["device_peak_bytes"] = runner.peak_bytes()
    row["status"] = "ok"
    return row
