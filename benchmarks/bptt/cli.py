"""The command line: ``python -m benchmarks.bptt [options]`` (``--help``)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

# JAX must not take 75% of a GPU's memory up front: PyTorch runs in the same
# process, and the device's peak bytes should show what the runs use.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax

from .check import Reference, reference
from .grid import (
    CELLS, DEFAULT_SIZES, DEFAULT_T, DTYPES, GPU_GRID, IMPLS, PALLAS_IMPLS, QUICK, Case, Plan, grid_cases, plan,
)
from .report import add_ratios, cpu_name, markdown, plots, versions, write_docs
from .run import run_one
from .runners import Inputs, abstract_inputs, make_inputs
from .timing import gemm_peak

try:
    from tqdm import tqdm
except ImportError:  # the bench extra installs it; run without a bar otherwise

    def tqdm(iterable, **_):  # type: ignore[no-redef]
        return iterable


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t)


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in text.split(","):
        try:
            b, h = item.lower().split("x")
            out.append((int(b), int(h)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--sizes takes BxH pairs like 8x128,64x256, got {item!r}") from None
    return tuple(out)


def _names(allowed: tuple[str, ...], flag: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(t for t in text.split(",") if t)
        bad = [n for n in names if n not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{flag} takes names from {', '.join(allowed)}, got {', '.join(bad)}")
        return names

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bptt",
        description="Times BPTT (forward, forward+backward) of jaxrnn against Flax, PyTorch and cuDNN.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--cells", type=_names(tuple(CELLS), "--cells"), default=tuple(CELLS), help="comma-separated cells")
    p.add_argument("--T", type=_ints, default=DEFAULT_T, help="comma-separated sequence lengths")
    p.add_argument("--sizes", type=_sizes, default=DEFAULT_SIZES, help="comma-separated BxH, e.g. 8x128,64x256")
    p.add_argument("--impls", type=_names(IMPLS, "--impls"), default=None,
                   help=f"comma-separated implementations (default: all of {','.join(IMPLS)})")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    p.add_argument("--budget", type=float, default=5.0, help="seconds of timed calls per measurement at most")
    p.add_argument("--check-steps", type=int, default=10000, help="check longer runs at this T")
    p.add_argument("--rtol", type=float, default=None, help="relative L2 tolerance of the check (default: by dtype and device)")
    p.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default benchmarks/results/bptt-<time>)")
    p.add_argument("--quick", action="store_true", help="a small grid: lstm; T=100,1000; 8x64; 3 repeats")
    p.add_argument("--full", action="store_true", help="time every combination (no skipping of long/large ones)")
    p.add_argument("--grid", choices=("default", "gpu"), default="default",
                   help="gpu: the prepared GPU grid (lstm,gru; T=1000 at B in 16,64 x H in 128,256,512, T=10000 at "
                        "16x128,64x128; pallas-states,pallas-gates,fused-states,scan,flax,torch,cudnn; 5 repeats, "
                        "--budget 1); other options still override it. benchmarks/gpu.sh runs it for fp32 and bf16")
    p.add_argument("--pallas-interpret", action="store_true",
                   help="time the pallas-* rows on a CPU too (the Pallas interpreter: exact, very slow); "
                        "naming them in --impls does the same")
    p.add_argument("--list", nargs="?", const="here", default=None, choices=("here", "cpu", "gpu", "tpu"),
                   metavar="BACKEND",
                   help="print every row of the grid with what it would do (time, memory only, or skip and why) "
                        "and exit without running; --list gpu plans as on a GPU")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds after the start; rows not begun by then are skipped (listed under Not timed)")
    p.add_argument("--docs", action="store_true", help="also write the Markdown and plots to docs/benchmarks/")
    p.add_argument("--ckpt-every", type=int, default=None, help="K of fused-ckpt (residuals=K); default ceil(sqrt(T))")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads for PyTorch on CPU")
    p.add_argument("--peak-size", type=int, default=None, help="n of the n x n GEMM that measures the peak (default 2048 on CPU, 8192 on GPU)")
    p.add_argument("--no-grad-memory", dest="grad_memory", action="store_false",
                   help="skip compiling jax.grad alone (the memory without the outputs) for the engine and scan at T >= 1000")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of ``argv``, ``--quick`` applied and checked."""
    args = parser().parse_args(argv)
    args.impls_named = args.impls is not None
    defaults = parser().parse_args([])
    for preset, on in ((QUICK, args.quick), (GPU_GRID, args.grid == "gpu")):
        for key, value in preset.items() if on else ():
            if getattr(args, key) == getattr(defaults, key):
                setattr(args, key, value)
    if args.impls is None:
        args.impls = IMPLS
    # pallas-* rows on a CPU run in the Pallas interpreter: only when asked for.
    args.pallas_cpu = args.pallas_interpret or (args.impls_named and any(i in PALLAS_IMPLS for i in args.impls))
    if args.repeats < 1 or args.check_steps < 1 or (args.ckpt_every is not None and args.ckpt_every < 1):
        raise SystemExit("--repeats, --check-steps and --ckpt-every must be positive")
    return args


def describe_machine(backend: str) -> tuple[str, str]:
    """``(machine, device)``: the machine line printed and saved, and the device's name."""
    device = jax.devices()[0]
    kind = f"{cpu_name()}, {os.cpu_count()} cores" if backend == "cpu" else device.device_kind
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = f"{cpu_name()}, {os.cpu_count()} cores; JAX {backend}: {device.device_kind} x{len(jax.devices())}"
    if load is not None:
        machine += f"; load average {load:.1f} at the start"
    return machine, kind


def plan_grid(args: argparse.Namespace, backend: str) -> list[tuple[Case, str, Plan]]:
    """Every (case, impl) of the grid with its plan; prints what is not timed, and why."""
    cases = grid_cases(args.cells, args.T, args.sizes, args.grid)
    tasks = [
        (case, impl, plan(impl, case, args.dtype, backend, args.full, pallas_cpu=args.pallas_cpu))
        for case in cases for impl in args.impls
    ]
    skipped: dict[str, list[str]] = {}
    for case, impl, p in tasks:
        if p.mode != "time":
            skipped.setdefault(f"{p.mode}: {p.reason}", []).append(f"{impl} {case.label()}")
    for reason, items in skipped.items():
        print(f"[{len(items)} not timed] {reason}")
    return tasks


def list_grid(tasks: list[tuple[Case, str, Plan]], args: argparse.Namespace, backend: str) -> None:
    """``--list``: every row and what it would do, without running anything."""
    print(f"grid {args.grid!r}, dtype {args.dtype}, planned as on {backend}: {len(tasks)} rows")
    for case, impl, p in tasks:
        what = {"time": "time " + "+".join(p.passes), "memory": "memory only", "skip": "skip"}[p.mode]
        print(f"  {case.label():<28} {impl:<14} {what}" + (f": {p.reason}" if p.reason else ""))
    counts = {m: sum(p.mode == m for _, _, p in tasks) for m in ("time", "memory", "skip")}
    print(f"{counts['time']} timed, {counts['memory']} memory only, {counts['skip']} skipped")


#: the start of ValueError messages of impl="pallas" where a kernel refuses a shape
PALLAS_REFUSED = 'impl="pallas" cannot run here: '


def error_row(case: Case, impl: str, e: Exception) -> dict[str, Any]:
    return {"cell": case.cell, "T": case.T, "B": case.B, "H": case.H, "I": case.I, "impl": impl,
            "residuals": None, "status": "error", "reason": f"{type(e).__name__}: {e}"[:500],
            "check": None, "fwd": None, "fwdbwd": None, "grad_temp_bytes": None}


def run_grid(tasks: list[tuple[Case, str, Plan]], args: argparse.Namespace, backend: str,
             peak_gflops: float, deadline: float | None = None) -> list[dict[str, Any]]:
    """The rows of ``tasks``, in order; inputs are made once per case, and
    references once per case (the short ones the checks of long runs use are kept)."""
    dtype = DTYPES[args.dtype]
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    refs: dict[Case, Reference] = {}

    def inputs_for(case: Case) -> Inputs:
        return make_inputs(case, dtype)

    def case_inputs(case: Case, p: Plan) -> Inputs:
        """This case's arrays, made once per case; shapes only for memory-only rows."""
        if p.mode == "memory":
            return abstract_inputs(case, dtype)
        if current.get("inputs") is None:
            current["inputs"] = inputs_for(case)
        return current["inputs"]

    def ref(case: Case) -> Reference:
        if case not in refs:
            same = current.get("case") == case and current.get("inputs") is not None
            refs[case] = reference(case, current["inputs"] if same else inputs_for(case), backend)
        return refs[case]

    bar = tqdm(tasks, desc="bptt", unit="run", dynamic_ncols=True)
    for case, impl, p in bar:
        if current.get("case") != case:
            for old in [c for c in refs if c.T != args.check_steps]:
                del refs[old]  # keep the short-sequence references the checks of long runs reuse
            current = {"case": case, "inputs": None}
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{impl} {case.label()}")
        if p.mode != "skip" and deadline is not None and time.monotonic() > deadline:
            p = Plan("skip", f"not reached within --time-limit {args.time_limit:g} s")
        try:
            inputs = None if p.mode == "skip" else case_inputs(case, p)
            row = run_one(impl, case, p, inputs, ref, inputs_for, args, backend, peak_gflops)
        except ValueError as e:
            if impl in PALLAS_IMPLS and PALLAS_REFUSED in str(e):  # refused when lowered: a skip, not a failure
                reason = str(e).split(PALLAS_REFUSED, 1)[1].splitlines()[0]
                row = run_one(impl, case, Plan("skip", reason), None, ref, inputs_for, args, backend, peak_gflops)
            else:
                row = error_row(case, impl, e)
        except Exception as e:  # noqa: BLE001 (report and go on: one broken peer must not sink a long run)
            row = error_row(case, impl, e)
        if row["status"] in ("check failed", "error"):
            print(f"\n{impl} at {case.label()}: {row['status']}: {row['reason']}", file=sys.stderr)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns 0, or 1 if a check failed or a run raised.

    Args:
      argv: command-line arguments (``None``: ``sys.argv[1:]``); see ``--help``.

    Returns:
      The process exit status.
    """
    start = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    print(f"python -m benchmarks.bptt {' '.join(argv)}: starting JAX", flush=True)
    backend = jax.default_backend()
    if args.list is not None:
        list_grid(plan_grid(args, backend if args.list == "here" else args.list), args,
                  backend if args.list == "here" else args.list)
        return 0
    stamp = datetime.datetime.now(datetime.timezone.utc)
    # Under the current folder (the checkout's root for python -m benchmarks.bptt).
    out = args.out or pathlib.Path("benchmarks") / "results" / f"bptt-{stamp:%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)

    machine, kind = describe_machine(backend)
    peak = gemm_peak(DTYPES[args.dtype], args.peak_size or (2048 if backend == "cpu" else 8192))
    print(f"{machine}\nGEMM peak ({peak['n']}x{peak['n']} {peak['dtype']}): {peak['gflops']:.1f} GFLOP/s", flush=True)
    deadline = None if args.time_limit is None else start + args.time_limit
    rows = run_grid(plan_grid(args, backend), args, backend, peak["gflops"], deadline)
    add_ratios(rows)

    meta = {
        "command": " ".join(["python", "-m", "benchmarks.bptt", *argv]),
        "machine": machine,
        "device": kind,
        "backend": backend,
        "versions": versions(),
        "dtype": args.dtype,
        "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
        "gemm_peak": peak,
        "args": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()},
    }
    result = {"meta": meta, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (out / "results.md").write_text(md)
    pngs = [] if args.no_plots else plots(result, out)
    print("\n" + md)
    print(f"wrote {out}/results.json, results.md" + (", " + ", ".join(p.name for p in pngs) if pngs else ""))
    if args.docs:
        write_docs(md, pngs, quick=args.quick)
    return 1 if any(r["status"] in ("check failed", "error") for r in rows) else 0
