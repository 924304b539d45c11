"""The command line: ``python -m benchmarks.bptt [options]`` (``--help``)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shlex
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
    CELLS, CPU_TARGETS_GRID, DEFAULT_SIZES, DEFAULT_T, DTYPES, GPU_GRID, GRIDS, IMPLS, PALLAS_IMPLS, QUICK, Case, Plan,
    Size, grid_cases, plan,
)
from .report import LOSS_TEXT, TIMING_TEXT, add_ratios, cpu_name, markdown, plots, versions, write_docs
from .run import Prepared, new_row, prepare, time_case
from .runners import LOSSES, Inputs, abstract_inputs, make_inputs
from .timing import gemm_peak

try:
    from tqdm import tqdm
except ImportError:  # the bench extra installs it; progress is printed otherwise
    tqdm = None


def int_list(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t)


def _sizes(text: str) -> tuple[Size, ...]:
    out = []
    for item in text.split(","):
        try:
            size = tuple(int(n) for n in item.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) not in (2, 3) or min(size) < 1:
            raise argparse.ArgumentTypeError(
                f"--sizes takes BxH (input size I = H) or BxIxH, like 8x128,64x256,8x32x128, got {item!r}")
        out.append(size)
    return tuple(out)


def name_list(allowed: tuple[str, ...], flag: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(t for t in text.split(",") if t)
        bad = [n for n in names if n not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{flag} takes names from {', '.join(allowed)}, got {', '.join(bad)}")
        return names

    return parse


#: how the benchmark is run where no other name is given (``jaxrnn bench`` passes its own)
PROG = "python -m benchmarks.bptt"


def _typed(value: Any) -> str:
    """A default as it would be typed: lists comma-separated, sizes BxH."""
    if isinstance(value, (list, tuple)):
        return ",".join("x".join(map(str, v)) if isinstance(v, tuple) else _typed(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class HelpFormatter(argparse.HelpFormatter):
    """Ends each option's help with its default, once and as it would be
    typed; flags, options whose default is None and help that already states
    its default (it holds ``(default``) say theirs in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or not text or "(default" in text or action.default is None
                or action.default is argparse.SUPPRESS or isinstance(action.default, bool)):
            return text
        return f"{text} (default: {_typed(action.default)})".replace("%", "%%")


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Times BPTT (forward, forward+backward) of jaxrnn against Flax, PyTorch and cuDNN.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--cells", type=name_list(tuple(CELLS), "--cells"), default=tuple(CELLS), help="comma-separated cells")
    p.add_argument("--T", type=int_list, default=DEFAULT_T, help="comma-separated sequence lengths")
    p.add_argument("--sizes", type=_sizes, default=DEFAULT_SIZES,
                   help="comma-separated BxH (input size I = H) or BxIxH, e.g. 8x128,64x256,8x32x128")
    p.add_argument("--impls", type=name_list(IMPLS, "--impls"), default=None,
                   help=f"comma-separated implementations (default: all of {', '.join(IMPLS)})")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="the inputs' and weights' dtype")
    p.add_argument("--loss", choices=LOSSES, default=LOSSES[0],
                   help="the fwd+bwd loss: readout = mean((ys @ w_out - target)**2), w_out (H, 1), fixed random "
                        "(what training runs: nonlinear in the outputs); linear = sum(ys * w), w fixed random")
    p.add_argument("--repeats", type=int, default=5,
                   help="timing rounds: each runs every implementation of a case once, in a rotating order; "
                        "the best (min) and the median over rounds are reported")
    p.add_argument("--budget", type=float, default=5.0,
                   help="seconds of timed calls per measurement at most (fewer rounds for a slower one)")
    p.add_argument("--check-steps", type=int, default=10000, help="check longer runs at this T")
    p.add_argument("--rtol", type=float, default=None, help="relative L2 tolerance of the check (default: by dtype and device)")
    p.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default: benchmarks/results/bptt-<time>)")
    p.add_argument("--quick", action="store_true",
                   help="a small grid: lstm; T=100,1000; 8x64; 3 repeats (default: off, the whole grid)")
    p.add_argument("--full", action="store_true",
                   help="time every combination (default: off, long or large ones are skipped or only compiled)")
    p.add_argument("--grid", choices=GRIDS, default="default",
                   help="gpu: the prepared GPU grid (lstm,gru; T=1000 at B in 16,64 x H in 128,256,512, T=10000 at "
                        "16x128,64x128; pallas-states,pallas-gates,fused-states,scan,flax,torch,cudnn; 5 repeats, "
                        "--budget 1); benchmarks/gpu.sh runs it for fp32 and bf16. cpu-targets: the CPU speed "
                        "targets' sizes (T=1000; lstm at 8x32x128, 32x32x128, 64x256x256, gru at 8x32x128, "
                        "32x32x128; fused-default,fused-gates,fused-states,flax,torch; --torch-threads 2, "
                        "5 repeats, --budget 12). Other options still override a grid's settings (default: default, "
                        "the grid of --cells, --T and --sizes)")
    p.add_argument("--pallas-interpret", action="store_true",
                   help="time the pallas-* rows on a CPU too (the Pallas interpreter: exact, very slow); "
                        "naming them in --impls does the same (default: off)")
    p.add_argument("--list", nargs="?", const="here", default=None, choices=("here", "cpu", "gpu", "tpu"),
                   metavar="BACKEND",
                   help="print every row of the grid with what it would do (time, memory only, or skip and why) "
                        "and exit without running; --list gpu plans as on a GPU (default: off, run the grid)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds after the start; rows not begun by then are skipped (listed under Not timed) "
                        "(default: no limit)")
    p.add_argument("--docs", action="store_true",
                   help="also write the Markdown and plots to docs/benchmarks/ (default: off)")
    p.add_argument("--ckpt-every", type=int, default=None, help="K of fused-ckpt (residuals=K) (default: ceil(sqrt(T)))")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1,
                   help=f"torch.set_num_threads for PyTorch on CPU (default: the number of cores, {os.cpu_count() or 1})")
    p.add_argument("--peak-size", type=int, default=None, help="n of the n x n GEMM that measures the peak (default 2048 on CPU, 8192 on GPU)")
    p.add_argument("--no-grad-memory", dest="grad_memory", action="store_false",
                   help="skip compiling jax.grad alone (the memory without the outputs) for the engine and scan "
                        "at T >= 1000 (default: compile and report it)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (default: draw them)")
    return p


def parse_args(argv: list[str], prog: str = PROG) -> argparse.Namespace:
    """The options of ``argv``, ``--quick`` applied and checked (``prog``: the
    command's name in ``--help`` and errors)."""
    args = parser(prog).parse_args(argv)
    args.impls_named = args.impls is not None
    defaults = parser(prog).parse_args([])
    for preset, on in ((QUICK, args.quick), (GPU_GRID, args.grid == "gpu"),
                       (CPU_TARGETS_GRID, args.grid == "cpu-targets")):
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


def load_warning(backend: str, torch_threads: int) -> str | None:
    """A warning when the machine is busy at the start, else None: the load
    average is above the number of cores, or (on CPU) above 1.5 times the
    threads PyTorch is given. Other work then takes turns on the cores the
    timed calls need; PyTorch's CPU runs, which spread each call over all
    their threads and wait for the slowest, suffer most (one quick run at
    load 6 reported PyTorch 500x slower)."""
    if not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores and (backend != "cpu" or load <= 1.5 * torch_threads):
        return None
    return (f"load average {load:.1f} at the start on {cores} cores (PyTorch given {torch_threads} threads): "
            "other work shares the CPU, so these timings are unreliable, PyTorch's multi-threaded CPU ones "
            "most of all; rerun on an idle machine")


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
        print(f"  {case.label():<34} {impl:<14} {what}" + (f": {p.reason}" if p.reason else ""))
    counts = {m: sum(p.mode == m for _, _, p in tasks) for m in ("time", "memory", "skip")}
    print(f"{counts['time']} timed, {counts['memory']} memory only, {counts['skip']} skipped")


#: the start of ValueError messages of impl="pallas" where a kernel refuses a shape
PALLAS_REFUSED = 'impl="pallas" cannot run here: '


def error_row(case: Case, impl: str, e: Exception) -> dict[str, Any]:
    return new_row(impl, case, "error", f"{type(e).__name__}: {e}"[:500])


def run_grid(tasks: list[tuple[Case, str, Plan]], args: argparse.Namespace, backend: str,
             peak_gflops: float, deadline: float | None = None) -> list[dict[str, Any]]:
    """The rows of ``tasks``, in order, one case at a time: every row of the
    case is compiled and checked first, then the checked ones are timed
    together in interleaved rounds (:func:`.run.time_case`). Inputs are made
    once per case, and references once per case (the short ones the checks of
    long runs use are kept)."""
    dtype = DTYPES[args.dtype]
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    refs: dict[Case, Reference] = {}

    def inputs_for(case: Case) -> Inputs:
        return make_inputs(case, dtype, loss=args.loss)

    def case_inputs(case: Case, p: Plan) -> Inputs:
        """This case's arrays, made once per case; shapes only for memory-only rows."""
        if p.mode == "memory":
            return abstract_inputs(case, dtype, args.loss)
        if current.get("inputs") is None:
            current["inputs"] = inputs_for(case)
        return current["inputs"]

    def ref(case: Case) -> Reference:
        if case not in refs:
            same = current.get("case") == case and current.get("inputs") is not None
            refs[case] = reference(case, current["inputs"] if same else inputs_for(case), backend)
        return refs[case]

    def prepared_row(case: Case, impl: str, p: Plan) -> Prepared:
        if p.mode != "skip" and deadline is not None and time.monotonic() > deadline:
            p = Plan("skip", f"not reached within --time-limit {args.time_limit:g} s")
        try:
            inputs = None if p.mode == "skip" else case_inputs(case, p)
            return prepare(impl, case, p, inputs, ref, inputs_for, args, backend)
        except ValueError as e:
            if impl in PALLAS_IMPLS and PALLAS_REFUSED in str(e):  # refused when lowered: a skip, not a failure
                reason = str(e).split(PALLAS_REFUSED, 1)[1].splitlines()[0]
                return prepare(impl, case, Plan("skip", reason), None, ref, inputs_for, args, backend)
            return Prepared(error_row(case, impl, e))
        except Exception as e:  # noqa: BLE001 (report and go on: one broken peer must not sink a long run)
            return Prepared(error_row(case, impl, e))

    cases: dict[Case, list[tuple[str, Plan]]] = {}
    for case, impl, p in tasks:
        cases.setdefault(case, []).append((impl, p))
    bar = progress_bar(len(tasks))
    for case, items in cases.items():
        for old in [c for c in refs if c.T != args.check_steps]:
            del refs[old]  # keep the short-sequence references the checks of long runs reuse
        current = {"case": case, "inputs": None}
        prepared = []
        for impl, p in items:
            if p.mode != "skip":
                bar.set_postfix_str(f"compile, check {impl} {case.label()}")
            q = prepared_row(case, impl, p)
            prepared.append(q)
            if q.runner is None:
                bar.update(1)  # done: skipped, memory only, failed
        waiting = sum(q.runner is not None for q in prepared)
        if waiting:
            def progress(k: int, n: int, label: str = case.label(), waiting: int = waiting) -> None:
                bar.set_postfix_str(f"time {label}: round {k + 1}/{n} of {waiting} impls")

            try:
                time_case(prepared, case, args, peak_gflops, progress)
            except Exception as e:  # noqa: BLE001 (as above)
                for q in prepared:
                    if q.runner is not None:
                        q.row, q.runner = error_row(case, q.row["impl"], e), None
            bar.update(waiting)
        for q in prepared:
            row = q.row
            if row["status"] in ("check failed", "error"):
                print(f"\n{row['impl']} at {case.label()}: {row['status']}: {row['reason']}", file=sys.stderr)
            rows.append(row)
        current = {}
    bar.close()
    return rows


def progress_bar(total: int) -> Any:
    """A tqdm bar over the rows (the postfix says what runs now), or printed
    lines where tqdm is not installed."""
    if tqdm is not None:
        return tqdm(total=total, desc="bptt", unit="row", dynamic_ncols=True)

    class Lines:
        def set_postfix_str(self, text: str) -> None:
            print(f"bptt: {text}", flush=True)

        def update(self, n: int) -> None:
            pass

        def close(self) -> None:
            pass

    return Lines()


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Runs the benchmark; returns 0, or 1 if a check failed or a run raised.

    Args:
      argv: command-line arguments (``None``: ``sys.argv[1:]``); see ``--help``.
      prog: how the benchmark was started (``jaxrnn bench`` passes its own
        name), for ``--help``, errors and the report's command line.

    Returns:
      The process exit status.
    """
    start = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv, prog)
    command = " ".join([prog, shlex.join(argv)]) if argv else prog
    print(f"{command}: starting JAX", flush=True)
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
    busy = load_warning(backend, args.torch_threads)
    if busy:
        print(f"WARNING: {busy}", file=sys.stderr, flush=True)
    peak = gemm_peak(DTYPES[args.dtype], args.peak_size or (2048 if backend == "cpu" else 8192))
    print(f"{machine}\nGEMM peak ({peak['n']}x{peak['n']} {peak['dtype']}): {peak['gflops']:.1f} GFLOP/s\n"
          f"loss ({args.loss}): {LOSS_TEXT[args.loss]}", flush=True)
    deadline = None if args.time_limit is None else start + args.time_limit
    rows = run_grid(plan_grid(args, backend), args, backend, peak["gflops"], deadline)
    add_ratios(rows)

    meta = {
        "command": command,
        "warnings": [busy] if busy else [],
        "machine": machine,
        "device": kind,
        "backend": backend,
        "versions": versions(),
        "dtype": args.dtype,
        "loss": args.loss,
        "loss_text": LOSS_TEXT[args.loss],
        "timing": TIMING_TEXT,
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
