"""The ``jaxrnn`` command: ``demo``, ``train``, ``gradflow`` and ``bench``.

``jaxrnn demo`` (no arguments needed) trains the plain tanh RNN, the IRNN,
the LSTM and the GRU on the adding problem, and a ReLU RNN with and without
gradient-norm clipping; it prints a table and writes a run folder with
``report.png`` and ``metrics.json``. ``jaxrnn <command> --help`` lists the
options of each command.

``jaxrnn train`` writes its run folder (``--out``) as it goes, so that a run
killed at any moment loses nothing it cannot redo:

- ``config.json``: the run's settings; ``--resume`` refuses other values of
  the settings that define the run (task, length, cell, hidden, optimizer,
  learning rate, clipping, batch, seed, data) and names the ones that differ;
- ``metrics.jsonl``: one JSON line per step (``step``, ``loss``,
  ``grad_norm``, ``skipped``; ``eval_loss`` and ``eval_metric`` on evaluation
  steps), flushed as each step ends; ``--resume`` keeps the lines up to the
  restored step and trains the rest again;
- ``checkpoints/<step>/``: Orbax checkpoints every ``--checkpoint-every``
  steps and at the end. ``--resume`` restores the newest intact one; a damaged
  one is renamed ``<step>.corrupt`` with a warning;
- at the end, ``metrics.json`` (a summary and the whole history),
  ``metrics.csv`` and ``curves.png``, each written to a temporary file and
  renamed, so none is ever half written.

Errors in the arguments are reported in one line, with exit status 2, before
anything trains.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import importlib.util
import io
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

__all__ = ["main"]


class UsageError(Exception):
    """A bad command line; reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


# --------------------------------------------------------------------------
# argument types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _length(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 2, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 2 (the adding problem has two "
                                         f"marked steps), got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _cell_list(text: str) -> list[str]:
    from ._runner import CELLS

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CELLS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of cells from {sorted(CELLS)}, got {text!r}"
        )
    return names


def _residuals(text: str) -> Any:
    if text in ("gates", "states"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected 'gates', 'states' or a positive int K (keep every K-th state), got {text!r}"
        )
    return value


# --------------------------------------------------------------------------
# helpers


def _run_dir(out: str | None, command: str, name: str) -> Path:
    if out is None:
        out = str(Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"jaxrnn {command}: error: --out must be a folder, got the file {out}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"jaxrnn {command}: error: --out {out} cannot be created: {e.strerror or e}") from None
    return path


def _write_atomic(path: Path, text: str) -> None:
    """Writes ``path`` whole or not at all: a temporary file in the same folder,
    flushed to disk, then renamed over ``path`` (a rename within a file system
    is atomic), so a crash never leaves it half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, leave=True,
                dynamic_ncols=True, file=sys.stderr)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def _finite(x: float) -> float | None:
    """JSON has no NaN/inf: non-finite numbers become null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(tree: Any) -> Any:
    import numpy as np

    if isinstance(tree, dict):
        return {k: _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_jsonable(v) for v in tree]
    if isinstance(tree, np.ndarray):
        return _jsonable(tree.tolist())
    if isinstance(tree, (float, np.floating)):
        return _finite(tree)
    if isinstance(tree, np.integer):
        return int(tree)
    if isinstance(tree, np.bool_):
        return bool(tree)
    return tree


# --------------------------------------------------------------------------
# diagnostics of a readout model


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _gradflow(cell, task, impl, params, inputs, targets):
    """Mean over the batch of ``||dL/dh_t||`` for the task's loss."""
    import jax.numpy as jnp

    from . import diagnostics

    def loss_fn(final, ys):
        del final
        return task.loss(task.readout(params, ys), targets)

    norms = diagnostics.state_gradient_norms(cell, params["cell"], inputs, loss_fn, impl=impl)
    return jnp.mean(norms, axis=0)


def _diagnose(cell, task, impl: str, params, inputs, targets, n_spectrum: int = 4) -> dict:
    """Gradient norms vs step and the Jacobian spectrum (mean over examples)."""
    import jax.numpy as jnp
    import numpy as np

    from . import diagnostics

    norms = np.asarray(_gradflow(cell, task, impl, params, inputs, targets))
    # Only the largest singular value is shown; at most the state size can exist.
    state_size = sum(int(np.size(s)) for s in jax.tree_util.tree_leaves(cell.initial_state(())))
    spec = diagnostics.jacobian_spectrum(cell, params["cell"], inputs[:n_spectrum],
                                         num_singular=min(4, state_size))
    top = jnp.mean(spec.log_singular_values[..., 0], axis=0)
    rate = float(diagnostics.growth_rate(top))
    horizon = int(inputs.shape[-2])
    return {
        "gradflow": norms,
        "spectrum": {
            "log_sv_top": np.asarray(top),
            "rate": rate,
            "verdict": diagnostics.verdict(rate, horizon=horizon),
        },
    }


# --------------------------------------------------------------------------
# demo


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
      initialisation) at ``length``, trained twice with plain SGD at lr 3e-2:
      without clipping and with the global norm clipped at 1. Adam divides
      each update by a running gradient scale, which hides an explosion;
      SGD's step is the gradient itself, as in Pascanu et al. (2013).
    """
    short, half = max(2, length // 10), max(2, length // 2)
    table = {
        "tanh": [DemoRun(f"tanh T={short}", "tanh", short, 1e-2, 1.0),
                 DemoRun(f"tanh T={length}", "tanh", length, 1e-2, 1.0)],
        "irnn": [DemoRun(f"irnn T={half}", "irnn", half, 2e-3, 1.0, steps_factor=2)],
        "lstm": [DemoRun(f"lstm T={length}", "lstm", length, 1e-2, 1.0)],
        "gru": [DemoRun(f"gru T={length}", "gru", length, 1e-2, 1.0)],
        "relu": [DemoRun(f"relu T={length} no clip", "irnn", length, 3e-2, None, "sgd"),
                 DemoRun(f"relu T={length} clip 1", "irnn", length, 3e-2, 1.0, "sgd")],
    }
    return [r for name in cells for r in table[name]]


#: test MSE at or below which the demo calls the adding problem solved
SOLVED_MSE = 0.05


def _demo(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from . import _report
    from . import _runner as R
    from .tasks import Adding

    out = _run_dir(args.out, "demo", "demo")
    runs = demo_runs(args.cells, args.length)
    # Runs of one cell and length train side by side (one compilation).
    groups: dict[tuple[str, int, str, int], list[DemoRun]] = {}
    for r in runs:
        groups.setdefault((r.cell, r.length, r.optimizer, r.steps_factor), []).append(r)
    baseline = Adding().baseline
    print(
        f"jaxrnn demo: the adding problem (predicting the mean scores MSE {baseline:.3f}); "
        f"{len(runs)} models, {args.steps} steps each (irnn: {2 * args.steps}), batch {args.batch}, "
        f"hidden {args.hidden}, "
        f"seed {args.seed}; writing {out}",
        flush=True,
    )
    results: list[dict] = []
    start_all = time.perf_counter()
    for (cell_name, length, optimizer, factor), members in groups.items():
        cell = R.CELLS[cell_name](args.hidden)
        task = Adding(length)
        steps = args.steps * factor
        cfg = R.Config(cell=cell, optimizer=optimizer, batch_size=args.batch, block=args.block,
                       impl=args.impl, decay_steps=steps)
        diag_inputs, diag_targets = task.sample(jax.random.PRNGKey(10_000 + args.seed), 64)
        t_diag = time.perf_counter()
        params0, _, _ = R.init(cfg, task, [R.Run(args.seed, m.lr, m.clip) for m in members])
        before = [
            _diagnose(cell, task, args.impl, jax.tree_util.tree_map(lambda x, i=i: x[i], params0),
                      diag_inputs, diag_targets)
            for i in range(len(members))
        ]
        diag_seconds = time.perf_counter() - t_diag
        desc = " + ".join(m.label for m in members)
        with _progress(steps, desc, args.progress) as bar:
            res = R.train(
                cfg, task, [R.Run(args.seed, m.lr, m.clip) for m in members], steps,
                test_size=1000, on_block=bar.update,
            )
        seconds = res["seconds"]
        for i, m in enumerate(members):
            params = jax.tree_util.tree_map(lambda x, i=i: x[i], res["params"])
            t_diag = time.perf_counter()
            after = _diagnose(cell, task, args.impl, params, diag_inputs, diag_targets)
            diag_seconds += time.perf_counter() - t_diag
            loss = res["test_loss"][i]
            gn = res["grad_norm"][i]
            # Diverged: the loss or the gradient overflowed (inf or NaN).
            nonfinite = np.flatnonzero(~(np.isfinite(res["loss"][i]) & np.isfinite(res["grad_norm"][i])))
            final = float(loss[-1])
            results.append({
                "label": m.label, "cell": m.cell, "length": m.length, "lr": m.lr, "clip": m.clip,
                "optimizer": m.optimizer, "steps": int(res["loss"].shape[1]),
                "test_mse": final,
                "solved": bool(math.isfinite(final) and final <= SOLVED_MSE),
                "diverged_at_step": int(nonfinite[0]) + 1 if nonfinite.size else None,
                "max_grad_norm": float(np.max(np.where(np.isfinite(gn), gn, np.inf))),
                "clipped_share": float(np.mean(res["clipped"][i])),
                "seconds": seconds / len(members),
                "eval_step": res["eval_step"], "test_loss": loss,
                "grad_norm": gn,
                "gradflow_init": before[i]["gradflow"], "gradflow_trained": after["gradflow"],
                "spectrum_init": before[i]["spectrum"], "spectrum_trained": after["spectrum"],
            })
        for r in results[-len(members):]:
            r["diagnostics_seconds"] = diag_seconds / len(members)
    total = time.perf_counter() - start_all

    rows = []
    for r in results:
        mse = r["test_mse"]
        rows.append([
            r["label"],
            f"{r['optimizer']} {r['lr']:g}" + ("" if r["clip"] is None else f", clip {r['clip']:g}"),
            f"{mse:.4f}" if math.isfinite(mse) else "diverged",
            f"{mse / baseline:.2f}" if math.isfinite(mse) else "-",
            "yes" if r["solved"] else "no",
            "-" if r["diverged_at_step"] is None else f"step {r['diverged_at_step']}",
            f"{r['max_grad_norm']:.3g}",
            f"{100 * r['clipped_share']:.0f}%",
            f"{r['spectrum_init']['verdict']} -> {r['spectrum_trained']['verdict']}",
            f"{r['seconds']:.0f}s",
        ])
    header = ["model", "optimizer", "test MSE", "/baseline", f"solved (<={SOLVED_MSE})", "diverged", "max |grad|",
              "clipped", "Jacobian: init -> trained", "time"]
    print()
    print(_table(rows, header))
    train_s = sum(r["seconds"] for r in results)
    diag_s = sum(r["diagnostics_seconds"] for r in results)
    print(f"\nbaseline (predict the mean): MSE {baseline:.3f}; total {total:.0f}s "
          f"(training {train_s:.0f}s, diagnostics {diag_s:.0f}s)")

    title = (f"jaxrnn demo: adding problem, batch {args.batch}, H={args.hidden}, "
             f"{args.steps} steps (irnn {2 * args.steps}), seed {args.seed}")
    summary = _table(rows, header) + (
        f"\nbaseline: predicting the mean scores MSE {baseline:.3f}. Solved: test MSE <= {SOLVED_MSE}. "
        "Jacobian: growth of the largest singular value of dh_t/dh_0 over T steps (panels e, f)."
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
    _write_atomic(out / "metrics.json", json.dumps(_jsonable(metrics), indent=1))
    print(f"wrote {out / 'report.png'} and {out / 'metrics.json'}")
    return 0


# --------------------------------------------------------------------------
# gradflow


def _gradflow_cmd(args: argparse.Namespace) -> int:
    import jax

    from . import _report
    from . import _runner as R
    from .tasks import Adding

    out = _run_dir(args.out, "gradflow", "gradflow")
    task = Adding(args.length)
    inputs, targets = task.sample(jax.random.PRNGKey(args.seed + 1), args.batch)
    runs, rows = [], []
    for name in args.cells:
        cell = R.CELLS[name](args.hidden)
        params = task.init_params(cell, jax.random.PRNGKey(args.seed))
        d = _diagnose(cell, task, args.impl, params, inputs, targets)
        g = d["gradflow"]
        runs.append({"label": name, "cell": name, "gradflow": g, "spectrum": d["spectrum"]})
        rows.append([name, f"{g[-1]:.3g}", f"{g[0]:.3g}", f"{d['spectrum']['rate']:+.4f}",
                     d["spectrum"]["verdict"]])
    print(_table(rows, ["cell", "|dL/dh| at the loss", f"at distance {args.length - 1}",
                        "log growth/step", "verdict"]))
    title = f"gradient flow at initialisation: adding problem, T={args.length}, H={args.hidden}, seed {args.seed}"
    _report.gradflow_report(out / "gradflow.png", runs, title)
    _write_atomic(out / "gradflow.json", json.dumps(_jsonable({
        "length": args.length, "hidden": args.hidden, "seed": args.seed, "runs": runs}), indent=1))
    print(f"wrote {out / 'gradflow.png'} and {out / 'gradflow.json'}")
    return 0


# --------------------------------------------------------------------------
# train


def _make_task(args: argparse.Namespace):
    from . import tasks

    try:
        if args.task == "adding":
            return tasks.Adding(args.length)
        if args.task == "copy":
            return tasks.CopyMemory(args.length)
        if args.task == "order":
            return tasks.TemporalOrder(args.length)
        if args.task == "charlm":
            text = None if args.text is None else tasks.load_text(args.text)
            return tasks.CharLM.from_text(text, args.length)
        if args.mnist is None:
            raise UsageError("jaxrnn train: error: --task mnist needs --mnist PATH (a local mnist.npz)")
        return tasks.SequentialMNIST.from_npz(args.mnist, permuted=args.permuted)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"jaxrnn train: error: {e}") from None


def _make_tx(args: argparse.Namespace):
    import optax

    from . import clipping
    from ._runner import OPTIMIZERS

    clip = {
        "none": None,
        "global": lambda: clipping.clip_by_global_norm(args.clip),
        "per-leaf": lambda: clipping.clip_by_norm(args.clip),
        "value": lambda: optax.clip(args.clip),
        "adaptive": lambda: clipping.adaptive_clip(),
        "zscore": lambda: clipping.zscore_clip(),
    }[args.clip_mode]
    opt = OPTIMIZERS[args.optimizer](args.lr)
    return opt if clip is None else optax.chain(clip(), opt)


@functools.partial(jax.jit, static_argnames="batch_size")
def _sample(task, key, batch_size):
    return task.sample(key, batch_size)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _evaluate(cell, impl, task, params, batch):
    outputs = task.apply(cell, params, batch[0], impl=impl)
    return task.loss(outputs, batch[1]), task.metric(outputs, batch[1])


#: the settings that define a training run: ``train --resume`` refuses to
#: continue a run made with other values (config.json in the run folder)
RUN_SETTINGS = ("task", "length", "cell", "hidden", "optimizer", "lr", "clip_mode", "clip", "bptt_clip",
                "batch", "seed", "text", "mnist", "permuted")


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    config = {k: getattr(args, k) for k in RUN_SETTINGS}
    for k in ("text", "mnist"):  # the same file, however it is spelled
        if config[k] is not None:
            config[k] = os.path.abspath(config[k])
    return {**config, "impl": args.impl, "residuals": args.residuals, "steps": args.steps}


def _check_same_run(config_path: Path, config: dict[str, Any]) -> None:
    """Raises a UsageError naming each run setting that differs from the saved run's."""
    try:
        saved = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"jaxrnn train: error: --resume: {config_path} cannot be read ({e}); "
                         "start a new run with another --out") from None
    diffs = [f"--{k.replace('_', '-')} is {config[k]!r} but the run was made with {saved[k]!r}"
             for k in RUN_SETTINGS if k in saved and saved[k] != config[k]]
    if diffs:
        raise UsageError(f"jaxrnn train: error: --resume: {'; '.join(diffs)} (see {config_path}); "
                         "use the run's settings, or start a new run with another --out")


def _check_prompt(args: argparse.Namespace, task: Any) -> None:
    """``--prompt`` must be sampleable: checked before training, not after."""
    if args.task != "charlm" or not args.sample_chars:
        return
    if not args.prompt:
        raise UsageError("jaxrnn train: error: --prompt must hold at least one character, got '' "
                         "(or pass --sample-chars 0)")
    missing = sorted(set(args.prompt) - set(task.vocab.chars))
    if missing:
        raise UsageError(f"jaxrnn train: error: --prompt {args.prompt!r} has characters that are not in the "
                         f"text: {''.join(missing)!r}")


def _read_history(path: Path, done: int) -> tuple[dict[str, list], list[str]]:
    """The history in ``metrics.jsonl`` up to step ``done``, and its lines.

    Lines past ``done`` (steps after the restored checkpoint, to be trained
    again) are dropped, and so is a line cut short by a crash.
    """
    history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    kept: list[str] = []
    if not path.exists():
        return history, kept
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break  # the last line of a killed run may be torn
        if row["step"] > done:
            continue
        kept.append(line)
        for k in ("step", "loss", "grad_norm", "skipped"):
            history[k].append(row[k])
        if "eval_loss" in row:
            history["eval_step"].append(row["step"])
            history["eval_loss"].append(row["eval_loss"])
            history["eval_metric"].append(row["eval_metric"])
    return history, kept


HISTORY_KEYS = ("step", "loss", "grad_norm", "skipped", "eval_step", "eval_loss", "eval_metric")


def _train_cmd(args: argparse.Namespace) -> int:
    import jax

    from . import _report, training
    from ._runner import CELLS

    task = _make_task(args)
    _check_prompt(args, task)
    out = _run_dir(args.out, "train", f"train-{args.task}-{args.cell}")
    config, config_path = _run_config(args), out / "config.json"
    try:
        ckpt = training.Checkpointer(out / "checkpoints", save_every=args.checkpoint_every)
    except ValueError as e:
        raise UsageError(f"jaxrnn train: error: --out: {e}") from None
    with ckpt:
        if not args.resume and ckpt.latest_step() is not None:
            raise UsageError(f"jaxrnn train: error: --out {out} holds the checkpoints of a run (step "
                             f"{ckpt.latest_step()}); pass --resume to continue it, or choose another --out")
        if args.resume and config_path.exists():
            _check_same_run(config_path, config)
        cell = CELLS[args.cell](args.hidden)
        tx = _make_tx(args)
        rnn_options = {"impl": args.impl, "residuals": args.residuals}
        if args.bptt_clip is not None:
            rnn_options["bptt_clip"] = args.bptt_clip
        loss_fn = task.make_loss(cell, **rnn_options)
        state = training.TrainState.create(task.init_params(cell, jax.random.PRNGKey(args.seed)), tx)
        if args.resume:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", training.CheckpointWarning)
                try:
                    state = ckpt.restore_latest(state)
                except ValueError as e:
                    raise UsageError(f"jaxrnn train: error: --resume: {e}") from None
            for w in caught:
                if issubclass(w.category, training.CheckpointWarning):
                    print(f"jaxrnn train: warning: {w.message}", file=sys.stderr, flush=True)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        first = int(state.step)
        _write_atomic(config_path, json.dumps(config, indent=1))
        metrics_log = out / "metrics.jsonl"
        history, kept = _read_history(metrics_log, first)
        _write_atomic(metrics_log, "".join(line + "\n" for line in kept))
        if first:
            print(f"resumed from step {first} ({ckpt.directory})")

        step_fn = training.make_train_step(loss_fn, tx)
        sample = functools.partial(_sample, batch_size=args.batch)
        evaluate = functools.partial(_evaluate, cell, args.impl)
        test_batch = sample(task, jax.random.PRNGKey(2**31 - 1))
        data_key = jax.random.fold_in(jax.random.PRNGKey(args.seed), 1)
        desc = f"{args.task} T={args.length} {args.cell}"
        start = time.perf_counter()
        with _progress(args.steps - first, desc, args.progress) as bar, open(metrics_log, "a") as log:
            for i in range(first, args.steps):
                batch = sample(task, jax.random.fold_in(data_key, i))
                state, m = step_fn(state, batch)
                row = {"step": i + 1, "loss": _finite(m["loss"]), "grad_norm": _finite(m["grad_norm"]),
                       "skipped": bool(m["skipped"])}
                if (i + 1) % args.eval_every == 0 or i + 1 == args.steps:
                    el, em = evaluate(task, state.params, test_batch)
                    row.update(eval_loss=_finite(el), eval_metric=_finite(em))
                    history["eval_step"].append(i + 1)
                    history["eval_loss"].append(row["eval_loss"])
                    history["eval_metric"].append(row["eval_metric"])
                    bar.set_postfix(test_loss=f"{float(el):.4f}", **{task.metric_name: f"{float(em):.3f}"})
                for k in ("step", "loss", "grad_norm", "skipped"):
                    history[k].append(row[k])
                # One line per step, flushed: a killed run keeps every step it made.
                log.write(json.dumps(row) + "\n")
                log.flush()
                if ckpt.save(state):
                    os.fsync(log.fileno())  # the log is at least as durable as the checkpoint
                bar.update(1)
            ckpt.save(state, force=True)
            os.fsync(log.fileno())
    seconds = time.perf_counter() - start

    summary = {
        **config, "baseline": task.baseline, "metric": task.metric_name,
        "final_test_loss": history["eval_loss"][-1] if history["eval_loss"] else None,
        "final_test_metric": history["eval_metric"][-1] if history["eval_metric"] else None,
        "skipped_steps": int(sum(history["skipped"])),
        "seconds_this_session": seconds,
    }
    _write_atomic(out / "metrics.json", json.dumps(_jsonable({"summary": summary, "history": history}), indent=1))
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["step", "loss", "grad_norm", "skipped"])
    w.writerows(zip(history["step"], history["loss"], history["grad_norm"], history["skipped"]))
    _write_atomic(out / "metrics.csv", rows.getvalue())
    _report.training_report(
        out / "curves.png", history, task.baseline,
        f"{args.task} T={args.length}, {args.cell} H={args.hidden}, {args.optimizer} lr {args.lr}, "
        f"clip {args.clip_mode}", task.metric_name)
    tl, tm = summary["final_test_loss"], summary["final_test_metric"]
    print(f"{desc}: test loss {tl if tl is None else f'{tl:.4f}'} (baseline {task.baseline:.4f}), "
          f"test {task.metric_name} {tm if tm is None else f'{tm:.4f}'}; {seconds:.0f}s")
    if args.task == "charlm" and args.sample_chars:
        from .tasks import sample_text

        text = sample_text(cell, state.params, task.vocab, jax.random.PRNGKey(args.seed + 2),
                           args.prompt, args.sample_chars, args.temperature)
        print(f"sample (temperature {args.temperature}):\n{args.prompt}{text}")
        _write_atomic(out / "sample.txt", args.prompt + text)
    print(f"wrote {out / 'metrics.jsonl'}, {out / 'metrics.json'}, {out / 'metrics.csv'}, {out / 'curves.png'}")
    return 0


# --------------------------------------------------------------------------
# bench


def _find_benchmark() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    for root in (here, Path.cwd()):
        path = root / "benchmarks" / "bptt.py"
        if path.is_file():
            return path
    return None


def _bench_cmd(args: argparse.Namespace) -> int:
    path = _find_benchmark()
    if path is None:
        raise UsageError(
            "jaxrnn bench: error: benchmarks/bptt.py not found; the benchmark suite ships "
            "with a source checkout of jaxrnn (git clone, then run `jaxrnn bench` inside it)"
        )
    spec = importlib.util.spec_from_file_location("jaxrnn_benchmarks_bptt", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "main"):
        raise UsageError(f"jaxrnn bench: error: {path} has no main(argv)")
    result = module.main(list(args.bench_args))
    return int(result or 0)


# --------------------------------------------------------------------------
# the parser


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxrnn`` argument parser (for documentation and tests)."""
    from ._runner import CELLS, OPTIMIZERS

    parser = _Parser(prog="jaxrnn", description="Recurrent networks in JAX: demo, training, "
                     "gradient-flow plots and benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p, *, cells: bool):
        p.add_argument("--hidden", type=_positive_int, default=64, help="hidden units (default 64)")
        p.add_argument("--seed", type=_nonneg_int, default=0, help="PRNG seed (default 0)")
        p.add_argument("--impl", choices=["fused", "scan"], default="fused",
                       help="jaxrnn.rnn implementation (default: fused; demo: scan, faster at its size on CPU)")
        p.add_argument("--out", default=None, help="run folder (default runs/<command>-<time>)")
        if cells:
            p.add_argument("--cells", type=_cell_list, default=["tanh", "irnn", "lstm", "gru", "relu"],
                           help=f"comma-separated, from {sorted(CELLS)} (default: all)")

    p = sub.add_parser("demo", help="the adding problem: tanh RNN, IRNN, LSTM, GRU, ReLU RNN with and without clipping",
                       description="Trains the tanh RNN (at T/10 and T), the IRNN (at T/2), the LSTM and "
                       "the GRU (at T), and a ReLU RNN (at T) with and without gradient-norm clipping, on "
                       "the adding problem; prints a table and writes report.png and metrics.json.")
    p.add_argument("--length", "-T", type=_length, default=100, help="sequence length T, at least 2 (default 100)")
    p.add_argument("--steps", type=_positive_int, default=DEMO_STEPS, help=f"training steps per model (default {DEMO_STEPS})")
    p.add_argument("--batch", type=_positive_int, default=32, help="batch size (default 32)")
    p.add_argument("--block", type=_positive_int, default=50,
                   help="steps per compiled block, i.e. per progress update (default 50)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    common(p, cells=True)
    # At the demo's size (batch 32, H=64) on CPU the scan reference compiles
    # and runs faster than the fused engine; both give the same gradients.
    p.set_defaults(func=_demo, impl="scan")

    p = sub.add_parser("train", help="train one model on one task, with checkpoints and resume",
                       description="Trains a cell with a linear readout on a task. Writes to the run "
                       "folder config.json (the settings), metrics.jsonl (one line per step, as it trains), "
                       "Orbax checkpoints/ and, at the end, metrics.json, metrics.csv and curves.png.")
    p.add_argument("--task", choices=["adding", "copy", "order", "charlm", "mnist"], default="adding")
    p.add_argument("--length", "-T", type=_positive_int, default=100,
                   help="sequence length (copy: the delay; charlm: the window) (default 100)")
    p.add_argument("--cell", choices=sorted(CELLS), default="gru")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="learning rate (default 1e-2)")
    p.add_argument("--clip-mode", choices=["none", "global", "per-leaf", "value", "adaptive", "zscore"],
                   default="global", help="gradient clipping (default global: global norm at --clip)")
    p.add_argument("--clip", type=_positive_float, default=1.0, help="threshold of global/per-leaf/value clipping")
    p.add_argument("--bptt-clip", type=_positive_float, default=None,
                   help="clip the state gradient at every step of BPTT to this norm")
    p.add_argument("--residuals", type=_residuals, default="states",
                   help="fused engine residual policy: gates, states or K (default states)")
    p.add_argument("--steps", type=_positive_int, default=1000)
    p.add_argument("--batch", type=_positive_int, default=32)
    p.add_argument("--eval-every", type=_positive_int, default=100)
    p.add_argument("--checkpoint-every", type=_positive_int, default=500)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest intact checkpoint (same settings; "
                   "metrics.jsonl keeps the steps up to it)")
    p.add_argument("--text", default=None, help="charlm: a text file (default: the Python standard library's sources)")
    p.add_argument("--mnist", default=None, help="mnist: a local mnist.npz (x_train, y_train, x_test, y_test)")
    p.add_argument("--permuted", action="store_true", help="mnist: permuted pixel order")
    p.add_argument("--sample-chars", type=_nonneg_int, default=300, help="charlm: characters to sample at the end")
    p.add_argument("--prompt", default="def ", help="charlm: the sampling prompt")
    p.add_argument("--temperature", type=_positive_float, default=0.8, help="charlm: sampling temperature")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    common(p, cells=False)
    p.set_defaults(func=_train_cmd)

    p = sub.add_parser("gradflow", help="gradient norm vs distance and Jacobian spectra at initialisation",
                       description="For each cell at initialisation on the adding problem: ||dL/dh_t|| "
                       "against the distance from the loss, and the top singular values of dh_t/dh_0.")
    p.add_argument("--length", "-T", type=_length, default=100, help="sequence length T, at least 2 (default 100)")
    p.add_argument("--batch", type=_positive_int, default=16)
    common(p, cells=True)
    p.set_defaults(func=_gradflow_cmd)

    p = sub.add_parser("bench", help="run the BPTT benchmark suite (benchmarks/bptt.py; needs a source checkout)",
                       description="Forwards every argument to benchmarks/bptt.py's main(argv).",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_bench_cmd)
    return parser


#: training steps per demo model
DEMO_STEPS = 2000


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``jaxrnn`` command; returns the exit status.

    Args:
      argv: the arguments after ``jaxrnn`` (default ``sys.argv[1:]``).

    Returns:
      0 on success, 2 for a bad command line (reported in one line on stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["bench"]:
            # Everything after "bench" belongs to the benchmark's own parser.
            return _bench_cmd(argparse.Namespace(bench_args=argv[1:]))
        args = build_parser().parse_args(argv)
        if args.command == "demo" and args.block > args.steps:
            args.block = args.steps
        return args.func(args)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, or a benchmark's SystemExit("message")
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        command = f"jaxrnn {argv[0]}" if argv else "jaxrnn"
        print(f"{command}: error: {' '.join(str(e.code).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
