"""``jaxrnn demo``: the adding problem, the cells side by side, with and
without clipping; a table, ``report.png`` and ``metrics.json``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from ._gradflow import DIAGNOSE_PARTS, diagnose
from ._io import DEFAULT_CELLS, add_common, jsonable, length, positive_int, run_dir, table, write_atomic
from ._progress import Parts, Steps

#: training steps per demo model
DEMO_STEPS = 2000


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """One model of the demo."""

    label: str
    cell: str
    length: int
    lr: float
    clip: float | None
    optimizer: str = "adam"
    steps_factor: int = 1  # trains steps_factor times the demo's --steps
    clip_value: float | None = None  # each gradient element clipped to this (optax.clip)


def demo_runs(cells: Sequence[str], length: int) -> list[DemoRun]:
    """The demo's models for ``cells`` at the long length ``length``.

    Settings (calibrated over seeds 0, 1, 2; see docs/demo.md): Adam, global
    gradient norm clipped at 1, batch 32, the learning rate decaying linearly
    to a tenth of its value over the run, and

    - ``tanh``: lr 1e-2, at ``length // 10`` (it solves short lags) and ``length``;
    - ``irnn``: lr 2e-3, at ``length // 2``, for twice the steps (it leaves
      the baseline's plateau late, at a step that varies with the seed);
    - ``lstm``, ``gru``: lr 1e-2, at ``length``;
    - ``relu``: a ReLU RNN with identity recurrent weights (the IRNN's
      initialisation) at ``length // 5``, trained three times by SGD with
      momentum 0.9 at lr 0.05, for twice the steps: without clipping, with
      the global norm clipped at 1, and with each element clipped at 0.01
      (value clipping). Adam
      divides each update by a running gradient scale, which hides an
      explosion; SGD's step is the gradient itself, as in Pascanu et al.
      (2013) and Le et al. (2015). At ``length // 2`` and ``length`` no
      setting of the calibration's search learned within the budget (see
      docs/demo.md).
    """
    short, fifth, half = max(2, length // 10), max(2, length // 5), max(2, length // 2)
    table = {
        "tanh": [DemoRun(f"tanh T={short}", "tanh", short, 1e-2, 1.0),
                 DemoRun(f"tanh T={length}", "tanh", length, 1e-2, 1.0)],
        "irnn": [DemoRun(f"irnn T={half}", "irnn", half, 2e-3, 1.0, steps_factor=2)],
        "lstm": [DemoRun(f"lstm T={length}", "lstm", length, 1e-2, 1.0)],
        "gru": [DemoRun(f"gru T={length}", "gru", length, 1e-2, 1.0)],
        "relu": [DemoRun(f"relu T={fifth} no clip", "irnn", fifth, 0.05, None, "momentum",
                         steps_factor=2),
                 DemoRun(f"relu T={fifth} clip 1", "irnn", fifth, 0.05, 1.0, "momentum",
                         steps_factor=2),
                 DemoRun(f"relu T={fifth} value clip 0.01", "irnn", fifth, 0.05, None, "momentum",
                         steps_factor=2, clip_value=0.01)],
    }
    return [r for name in cells for r in table[name]]


#: test MSE at or below which the demo calls the adding problem solved
SOLVED_MSE = 0.05


def _train_group(args: argparse.Namespace, key: tuple[str, int, str, int],
                 members: list[DemoRun]) -> list[dict]:
    """Trains the runs of one cell, length and optimizer side by side (one
    compilation) and diagnoses each before and after: one result dict per run."""
    import jax
    import numpy as np

    from .. import _runner as R
    from ..tasks import Adding

    cell_name, length, optimizer, factor = key
    cell = R.CELLS[cell_name](args.hidden)
    task = Adding(length)
    steps = args.steps * factor
    cfg = R.Config(cell=cell, optimizer=optimizer, batch_size=args.batch, block=args.block,
                   impl=args.impl, decay_steps=steps)
    diag_inputs, diag_targets = task.sample(jax.random.PRNGKey(10_000 + args.seed), 64)
    desc = " + ".join(m.label for m in members)

    def diagnose_all(params_of: Any, when: str) -> list[dict]:
        """Diagnoses every member (``params_of(i)``), with progress."""
        with Parts(f"diagnostics {when}", len(DIAGNOSE_PARTS) * len(members), bar=args.progress,
                   leave=False) as parts:
            return [diagnose(cell, task, args.impl, params_of(i), diag_inputs, diag_targets,
                             on_part=lambda part, m=m: parts.start(f"{m.label}, {part}"))
                    for i, m in enumerate(members)]

    t_diag = time.perf_counter()
    runs = [R.Run(args.seed, m.lr, m.clip, m.clip_value) for m in members]
    params0, _, _ = R.init(cfg, task, runs)
    before = diagnose_all(lambda i: jax.tree_util.tree_map(lambda x: x[i], params0), "at initialisation")
    diag_seconds = time.perf_counter() - t_diag

    def report(step: int, logs: dict[str, Any]) -> None:
        def each(values: Any) -> str:  # one value per member, side by side
            return "/".join(f"{float(v):.4f}" for v in values)

        progress.update(step, {"train_mse": each(logs["loss"]), "test_mse": each(logs["test_loss"])})

    with Steps(desc, -(-steps // cfg.block) * cfg.block, bar=args.progress) as progress:  # whole blocks
        progress.compiling(f"the training loop ({cfg.block} steps per call)")
        res = R.train(
            cfg, task, runs, steps,
            test_size=1000, on_block=report,
        )
    seconds = res["seconds"]
    t_diag = time.perf_counter()
    after = diagnose_all(lambda i: jax.tree_util.tree_map(lambda x: x[i], res["params"]), "after training")
    diag_seconds += time.perf_counter() - t_diag
    results = []
    for i, m in enumerate(members):
        loss = res["test_loss"][i]
        gn = res["grad_norm"][i]
        # Diverged: the loss or the gradient overflowed (inf or NaN).
        nonfinite = np.flatnonzero(~(np.isfinite(res["loss"][i]) & np.isfinite(res["grad_norm"][i])))
        final = float(loss[-1])
        results.append({
            "label": m.label, "cell": m.cell, "length": m.length, "lr": m.lr, "clip": m.clip,
            "clip_value": m.clip_value, "optimizer": m.optimizer, "steps": int(res["loss"].shape[1]),
            "test_mse": final,
            "solved": bool(math.isfinite(final) and final <= SOLVED_MSE),
            "diverged_at_step": int(nonfinite[0]) + 1 if nonfinite.size else None,
            "max_grad_norm": float(np.max(np.where(np.isfinite(gn), gn, np.inf))),
            "clipped_share": float(np.mean(res["clipped"][i])),
            "seconds": seconds / len(members),
            "eval_step": res["eval_step"], "test_loss": loss,
            "grad_norm": gn, "cosine": res["cosine"][i],
            "mean_cosine": _finite_mean(res["cosine"][i]),
            "gradflow_init": before[i]["gradflow"], "gradflow_trained": after[i]["gradflow"],
            "spectrum_init": before[i]["spectrum"], "spectrum_trained": after[i]["spectrum"],
        })
    for r in results:
        r["diagnostics_seconds"] = diag_seconds / len(members)
    return results


_HEADER = ["model", "optimizer", "test MSE", "/baseline", f"solved (<={SOLVED_MSE})", "diverged",
           "max |grad|", "clipped", "cos", "Jacobian: init -> trained", "time"]


def _finite_mean(x: Any) -> float:
    """The mean of the finite values of ``x`` (NaN if none)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else math.nan


def _clipping(r: dict) -> str:
    """How a run clips: ``", clip 1"`` (global norm), ``", value clip 0.1"``."""
    parts = ([] if r["clip"] is None else [f"clip {r['clip']:g}"]) + (
        [] if r.get("clip_value") is None else [f"value clip {r['clip_value']:g}"])
    return "".join(f", {p}" for p in parts)


def _rows(results: list[dict], baseline: float) -> list[list[str]]:
    """The printed table's rows, one per run (header: ``_HEADER``)."""
    rows = []
    for r in results:
        mse = r["test_mse"]
        rows.append([
            r["label"],
            f"{r['optimizer']} {r['lr']:g}" + _clipping(r),
            f"{mse:.4f}" if math.isfinite(mse) else "diverged",
            f"{mse / baseline:.2f}" if math.isfinite(mse) else "-",
            "yes" if r["solved"] else "no",
            "-" if r["diverged_at_step"] is None else f"step {r['diverged_at_step']}",
            f"{r['max_grad_norm']:.3g}",
            f"{100 * r['clipped_share']:.0f}%",
            "-" if not _clipping(r) or not math.isfinite(r["mean_cosine"]) else f"{r['mean_cosine']:.2f}",
            f"{r['spectrum_init']['verdict']} -> {r['spectrum_trained']['verdict']}",
            f"{r['seconds']:.0f}s",
        ])
    return rows


def run(args: argparse.Namespace) -> int:
    import jax

    from .. import _report
    from ..tasks import Adding

    args.block = min(args.block, args.steps)
    out = run_dir(args.out, "demo", "demo")
    runs = demo_runs(args.cells, args.length)
    # Runs of one cell, length and optimizer train side by side (one compilation).
    groups: dict[tuple[str, int, str, int], list[DemoRun]] = {}
    for r in runs:
        groups.setdefault((r.cell, r.length, r.optimizer, r.steps_factor), []).append(r)
    baseline = Adding().baseline
    print(
        f"jaxrnn demo: the adding problem (predicting the mean scores MSE {baseline:.3f}); "
        f"{len(runs)} model{'' if len(runs) == 1 else 's'}, {args.steps} steps each (irnn, relu: {2 * args.steps}), "
        f"batch {args.batch}, hidden {args.hidden}, seed {args.seed}; writing {out}",
        flush=True,
    )
    start_all = time.perf_counter()
    results = [r for key, members in groups.items() for r in _train_group(args, key, members)]
    total = time.perf_counter() - start_all

    rows = _rows(results, baseline)
    print()
    print(table(rows, _HEADER))
    train_s = sum(r["seconds"] for r in results)
    diag_s = sum(r["diagnostics_seconds"] for r in results)
    print(f"\nbaseline (predict the mean): MSE {baseline:.3f}; total {total:.0f}s "
          f"(training {train_s:.0f}s, diagnostics {diag_s:.0f}s)")

    title = (f"jaxrnn demo: adding problem, batch {args.batch}, H={args.hidden}, "
             f"{args.steps} steps (irnn, relu {2 * args.steps}), seed {args.seed}")
    summary = table(rows, _HEADER) + (
        f"\nbaseline: predicting the mean scores MSE {baseline:.3f}. Solved: test MSE <= {SOLVED_MSE}. "
        "Jacobian: growth of the largest singular value of dh_t/dh_0 over T steps (panels e, f).\n"
        "cos: the mean cosine between the clipped and the true gradient (panel h)."
    )
    _report.demo_report(out / "report.png", results, baseline, title, summary)
    metrics = {
        "task": "adding", "baseline_mse": baseline, "solved_mse": SOLVED_MSE,
        "settings": {"length": args.length, "steps": args.steps, "batch": args.batch,
                     "hidden": args.hidden, "seed": args.seed, "impl": args.impl,
                     "cells": args.cells},
        "total_seconds": total, "jax_backend": jax.default_backend(),
        "runs": results,
    }
    write_atomic(out / "metrics.json", json.dumps(jsonable(metrics), indent=1))
    print(f"wrote {out / 'report.png'} and {out / 'metrics.json'}")
    return 0


def register(sub: Any) -> None:
    """Adds the command's parser to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("demo", help="the adding problem: tanh RNN, IRNN, LSTM, GRU, ReLU RNN with and without clipping",
                       description="Trains the tanh RNN (at T/10 and T), the IRNN (at T/2), the LSTM and "
                       "the GRU (at T), and a ReLU RNN (at T/5) without clipping, with gradient-norm "
                       "clipping and with value clipping, on the adding problem; prints a table and "
                       "writes report.png and metrics.json.")
    p.add_argument("--length", "-T", type=length, default=100,
                   help="sequence length T of the long runs, at least 2 (tanh also at T/10, irnn at T/2)")
    p.add_argument("--steps", type=positive_int, default=DEMO_STEPS, help="training steps per model (irnn and relu: twice)")
    p.add_argument("--batch", type=positive_int, default=32, help="batch size")
    p.add_argument("--block", type=positive_int, default=50,
                   help="steps per compiled call, i.e. per progress update")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="log lines (every tenth of a model's steps) instead of progress bars (default: bars)")
    # At the demo's size (batch 32, H=64) on CPU the scan reference compiles
    # and runs faster than the fused engine; both give the same gradients.
    add_common(p, out="runs/demo-<time>", cells=DEFAULT_CELLS, impl="scan",
               impl_why="faster than the fused engine at the demo's size on CPU")
    p.set_defaults(func=run)
