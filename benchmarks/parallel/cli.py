"""The command line: ``python -m benchmarks.parallel [options]`` (``--help``)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import time
from typing import Any

import jax

from benchmarks.bptt.cli import HelpFormatter, int_list, name_list
from benchmarks.bptt.report import cpu_name

from .grid import (
    ITERATION_DEFAULTS,
    LINEAR_CELLS,
    LINEAR_DEFAULTS,
    METHODS,
    NEWTON_CELLS,
    NEWTON_DEFAULTS,
    QUICK,
    linear_cases,
    newton_cases,
)
from .iterations import count_iterations
from .measure import Checks, run_case
from .report import TIMING_TEXT, crossovers, markdown, plots, write_docs

PARTS = ("linear", "newton", "iterations")


def versions() -> dict[str, str]:
    import platform

    import jaxlib
    import numpy as np
    import optax

    import jaxrnn as jr

    return {"jaxrnn": jr.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "optax": optax.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _size(text: str) -> tuple[int, int, int]:
    parts = int_list(text.replace("x", ","))
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"--linear-size takes BxIxH, e.g. 8x32x64, got {text!r}")
    return parts  # type: ignore[return-value]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.parallel",
        description="Parallel in time against sequential: linear-recurrence cells by associative scan, nonlinear "
                    "cells by Newton (DEER, quasi-DEER), fwd+bwd; Newton iterations at initialisation and "
                    "after training on the adding problem.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--parts", type=name_list(PARTS, "--parts"), default=PARTS, help="comma-separated parts to run")
    p.add_argument("--linear-cells", type=name_list(tuple(LINEAR_CELLS), "--linear-cells"),
                   default=LINEAR_DEFAULTS["linear_cells"], help="linear-recurrence cells")
    p.add_argument("--linear-T", type=int_list, default=LINEAR_DEFAULTS["linear_T"], help="their sequence lengths")
    p.add_argument("--linear-long-cells", type=name_list(tuple(LINEAR_CELLS), "--linear-long-cells"),
                   default=LINEAR_DEFAULTS["linear_long_cells"], help="the linear cells also run at T > 10000")
    p.add_argument("--linear-size", type=_size, default=LINEAR_DEFAULTS["linear_size"], help=f"BxIxH (default: {'x'.join(map(str, LINEAR_DEFAULTS['linear_size']))})")
    p.add_argument("--newton-cells", type=name_list(tuple(NEWTON_CELLS), "--newton-cells"),
                   default=NEWTON_DEFAULTS["newton_cells"], help="nonlinear cells")
    p.add_argument("--newton-H", type=int_list, default=NEWTON_DEFAULTS["newton_H"], help="their hidden sizes")
    p.add_argument("--newton-T", type=int_list, default=NEWTON_DEFAULTS["newton_T"], help="their timed lengths")
    p.add_argument("--newton-B", type=int, default=NEWTON_DEFAULTS["newton_B"], help="their batch size")
    p.add_argument("--methods", type=name_list(METHODS, "--methods"), default=NEWTON_DEFAULTS["methods"],
                   help="Newton methods, comma-separated (deer, quasi, elk, quasi-elk)")
    p.add_argument("--iter-T", type=int_list, default=ITERATION_DEFAULTS["iter_T"],
                   help="lengths at which iterations are counted (init and trained)")
    p.add_argument("--train-steps", type=int, default=ITERATION_DEFAULTS["train_steps"],
                   help="training steps of each (cell, H) model on the adding problem")
    p.add_argument("--train-T", type=int, default=ITERATION_DEFAULTS["train_T"], help="its sequence length")
    p.add_argument("--train-batch", type=int, default=ITERATION_DEFAULTS["train_batch"], help="its batch size")
    p.add_argument("--lr", type=float, default=ITERATION_DEFAULTS["lr"], help="its Adam learning rate")
    p.add_argument("--repeats", type=int, default=5, help="timing rounds at most")
    p.add_argument("--budget", type=float, default=3.0,
                   help="seconds of timed calls per row at most (fewer rounds for a slower one)")
    p.add_argument("--check-steps", type=int, default=1000,
                   help="longer rows are checked by the same implementation at this T (see measure.run_case)")
    p.add_argument("--full", action="store_true", help="also run DEER where only its memory is compiled")
    p.add_argument("--quick", action="store_true", help="a tiny grid of every part (a test: well under 30 s idle)")
    p.add_argument("--adding", type=pathlib.Path, default=None,
                   help="the folder of benchmarks/parallel/adding.sh: its table goes into the results")
    p.add_argument("--report", type=pathlib.Path, default=None, metavar="RESULTS_JSON",
                   help="run nothing: write the report (results.md, plots, --docs) of an earlier run's "
                        "results.json again, into its folder (with --adding: its table added)")
    p.add_argument("--out", type=pathlib.Path, default=None,
                   help="output folder (default benchmarks/results/parallel-<time>)")
    p.add_argument("--docs", action="store_true",
                   help="also write the tables into docs/parallel.md and the plots into docs/figures/parallel/")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = parser().parse_args(argv)
    defaults = parser().parse_args([])
    for key, value in QUICK.items() if args.quick else ():
        if getattr(args, key) == getattr(defaults, key):  # an option given still wins
            setattr(args, key, value)
    if args.repeats < 1 or args.train_steps < 1 or args.newton_B < 1:
        raise SystemExit("--repeats, --train-steps and --newton-B must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns 0, or 1 if a check failed or a run raised."""
    start = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.report is not None:
        result = json.loads(args.report.read_text())
        if args.adding:
            from .adding import collect

            result["adding"] = collect(args.adding)
            args.report.write_text(json.dumps(result, indent=1, default=str))
        return write_report(result, args.report.parent, args)
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or pathlib.Path("benchmarks") / "results" / f"parallel-{stamp:%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    backend = jax.default_backend()
    device = jax.devices()[0]
    kind = f"{cpu_name()}, {os.cpu_count()} cores" if backend == "cpu" else device.device_kind
    machine = f"{cpu_name()}, {os.cpu_count()} cores; JAX {backend}: {device.device_kind} x{len(jax.devices())}"
    loads = [os.getloadavg()]
    print(f"python -m benchmarks.parallel {' '.join(argv)}\n{machine}; load average {loads[0][0]:.1f}", flush=True)

    def log(text: str) -> None:
        print(f"[{time.monotonic() - start:6.0f}s, load {os.getloadavg()[0]:.1f}] {text}", flush=True)

    cases = []
    if "linear" in args.parts:
        cases += linear_cases(args.linear_cells, args.linear_T, args.linear_long_cells, args.linear_size)
    if "newton" in args.parts:
        cases += newton_cases(args.newton_cells, args.newton_T, args.newton_H, args.newton_B)
    rows: list[dict[str, Any]] = []
    checks: Checks = {}
    for case in cases:
        log(f"{case.part} {case.label()}")
        new = run_case(case, args, checks, log)
        loads.append(os.getloadavg())
        for r in new:
            timing = "" if r["status"] != "ok" else (
                f"{r['fwdbwd']['ms']:.1f} ms (median {r['fwdbwd']['median_ms']:.1f}, {r['fwdbwd']['repeats']} calls)")
            iters = "" if not r["newton"] else f", {r['newton']['iterations']} iterations" + (
                ", fell back" if r["newton"]["fell_back"] else "")
            compiled = "" if r["compile_s"] is None else f"compiled in {r['compile_s']:.1f} s; "
            log(f"  {r['impl']:<8} {r['status']:<12} {compiled}{timing}{iters} {r['reason']}")
        rows += new
    iterations = count_iterations(args, log) if "iterations" in args.parts else None
    loads.append(os.getloadavg())
    meta = {
        "command": " ".join(["python", "-m", "benchmarks.parallel", *argv]),
        "machine": machine,
        "cores": os.cpu_count(),
        "device": kind,
        "backend": backend,
        "versions": versions(),
        "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
        "seconds": time.monotonic() - start,
        "timing": TIMING_TEXT,
        "load": {"start": loads[0], "end": loads[-1], "samples": loads,
                 "min": min(x[0] for x in loads), "max": max(x[0] for x in loads)},
        "args": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()},
    }
    from .adding import (
        collect,  # here: `python -m benchmarks.parallel.adding` must not find it imported
    )

    result = {"meta": meta, "rows": rows, "crossovers": crossovers(rows), "iterations": iterations,
              "adding": collect(args.adding) if args.adding else None}
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    return write_report(result, out, args)


def write_report(result: dict[str, Any], out: pathlib.Path, args: argparse.Namespace) -> int:
    """results.md and the plots into ``out`` (and the docs with ``--docs``);
    returns 1 if a row's check failed or its run raised."""
    md = markdown(result)
    (out / "results.md").write_text(md)
    pngs = [] if args.no_plots else plots(result, out)
    print("\n" + md)
    print(f"wrote {out}/results.json, results.md" + "".join(f", {p.name}" for p in pngs))
    if args.docs:
        write_docs(md, pngs)
    return 1 if any(r["status"] in ("check failed", "error") for r in result["rows"]) else 0
