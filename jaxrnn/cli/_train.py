"""``jaxrnn train``: one model on one task, with checkpoints and resume.

The run folder is written as training goes (see :mod:`jaxrnn.cli`):
``config.json``, ``metrics.jsonl`` (one flushed line per step),
``checkpoints/`` and, at the end, ``metrics.json``, ``metrics.csv`` and
``curves.png``, each written whole or not at all.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import jax

from ..parallel import METHODS
from .._linear_cells import LinearCell
from .._runner import CELLS, OPTIMIZERS
from ._io import (
    UsageError,
    add_common,
    finite,
    jsonable,
    nonneg_int,
    positive_float,
    positive_int,
    progress,
    residuals,
    run_dir,
    write_atomic,
)


def _make_task(args: argparse.Namespace):
    from .. import tasks

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

    from .. import clipping

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


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _evaluate(cell, options, task, params, batch):
    outputs = task.apply(cell, params, batch[0], **dict(options))
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
    return {**config, "impl": args.impl, "residuals": args.residuals, "steps": args.steps,
            **({"method": args.method} if args.impl == "parallel" else {})}


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


def _restore(ckpt: Any, state: Any) -> Any:
    """``--resume``: the newest intact checkpoint; a damaged newer one is
    reported as a one-line warning on stderr, an unusable set as a usage error."""
    from .. import training

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
    return state


def _write_metrics(out: Any, config: dict, task: Any, history: dict, seconds: float) -> dict:
    """Writes ``metrics.json`` (summary and history) and ``metrics.csv``
    atomically; returns the summary."""
    summary = {
        **config, "baseline": task.baseline, "metric": task.metric_name,
        "final_test_loss": history["eval_loss"][-1] if history["eval_loss"] else None,
        "final_test_metric": history["eval_metric"][-1] if history["eval_metric"] else None,
        "skipped_steps": int(sum(history["skipped"])),
        "seconds_this_session": seconds,
    }
    write_atomic(out / "metrics.json", json.dumps(jsonable({"summary": summary, "history": history}), indent=1))
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["step", "loss", "grad_norm", "skipped"])
    w.writerows(zip(history["step"], history["loss"], history["grad_norm"], history["skipped"]))
    write_atomic(out / "metrics.csv", rows.getvalue())
    return summary


def run(args: argparse.Namespace) -> int:
    import jax

    from .. import _report, training

    task = _make_task(args)
    _check_prompt(args, task)
    out = run_dir(args.out, "train", f"train-{args.task}-{args.cell}")
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
        if args.impl == "parallel" and not isinstance(cell, LinearCell):
            rnn_options.update(method=args.method, max_iter=args.max_iter)
        if args.bptt_clip is not None:
            rnn_options["bptt_clip"] = args.bptt_clip
        loss_fn = task.make_loss(cell, **rnn_options)
        state = training.TrainState.create(task.init_params(cell, jax.random.PRNGKey(args.seed)), tx)
        if args.resume:
            state = _restore(ckpt, state)
        first = int(state.step)
        write_atomic(config_path, json.dumps(config, indent=1))
        metrics_log = out / "metrics.jsonl"
        history, kept = _read_history(metrics_log, first)
        write_atomic(metrics_log, "".join(line + "\n" for line in kept))
        if first:
            print(f"resumed from step {first} ({ckpt.directory})")

        step_fn = training.make_train_step(loss_fn, tx)
        sample = functools.partial(_sample, batch_size=args.batch)
        evaluate = functools.partial(_evaluate, cell, tuple(sorted(rnn_options.items())))
        test_batch = sample(task, jax.random.PRNGKey(2**31 - 1))
        data_key = jax.random.fold_in(jax.random.PRNGKey(args.seed), 1)
        desc = f"{args.task} T={args.length} {args.cell}"
        start = time.perf_counter()
        with progress(args.steps - first, desc, args.progress) as bar, open(metrics_log, "a") as log:
            for i in range(first, args.steps):
                batch = sample(task, jax.random.fold_in(data_key, i))
                state, m = step_fn(state, batch)
                row = {"step": i + 1, "loss": finite(m["loss"]), "grad_norm": finite(m["grad_norm"]),
                       "skipped": bool(m["skipped"])}
                if (i + 1) % args.eval_every == 0 or i + 1 == args.steps:
                    el, em = evaluate(task, state.params, test_batch)
                    row.update(eval_loss=finite(el), eval_metric=finite(em))
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

    summary = _write_metrics(out, config, task, history, seconds)
    _report.training_report(
        out / "curves.png", history, task.baseline,
        f"{args.task} T={args.length}, {args.cell} H={args.hidden}, {args.optimizer} lr {args.lr}, "
        f"clip {args.clip_mode}", task.metric_name)
    tl, tm = summary["final_test_loss"], summary["final_test_metric"]
    print(f"{desc}: test loss {tl if tl is None else f'{tl:.4f}'} (baseline {task.baseline:.4f}), "
          f"test {task.metric_name} {tm if tm is None else f'{tm:.4f}'}; {seconds:.0f}s")
    if args.task == "charlm" and args.sample_chars:
        from ..tasks import sample_text

        text = sample_text(cell, state.params, task.vocab, jax.random.PRNGKey(args.seed + 2),
                           args.prompt, args.sample_chars, args.temperature)
        print(f"sample (temperature {args.temperature}):\n{args.prompt}{text}")
        write_atomic(out / "sample.txt", args.prompt + text)
    print(f"wrote {out / 'metrics.jsonl'}, {out / 'metrics.json'}, {out / 'metrics.csv'}, {out / 'curves.png'}")
    return 0


def register(sub: Any) -> None:
    """Adds the command's parser to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("train", help="train one model on one task, with checkpoints and resume",
                       description="Trains a cell with a linear readout on a task. Writes to the run "
                       "folder config.json (the settings), metrics.jsonl (one line per step, as it trains), "
                       "Orbax checkpoints/ and, at the end, metrics.json, metrics.csv and curves.png.")
    p.add_argument("--task", choices=["adding", "copy", "order", "charlm", "mnist"], default="adding")
    p.add_argument("--length", "-T", type=positive_int, default=100,
                   help="sequence length (copy: the delay; charlm: the window) (default 100)")
    p.add_argument("--cell", choices=sorted(CELLS), default="gru")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    p.add_argument("--lr", type=positive_float, default=1e-2, help="learning rate (default 1e-2)")
    p.add_argument("--clip-mode", choices=["none", "global", "per-leaf", "value", "adaptive", "zscore"],
                   default="global", help="gradient clipping (default global: global norm at --clip)")
    p.add_argument("--clip", type=positive_float, default=1.0, help="threshold of global/per-leaf/value clipping")
    p.add_argument("--bptt-clip", type=positive_float, default=None,
                   help="clip the state gradient at every step of BPTT to this norm")
    p.add_argument("--method", choices=METHODS, default="deer",
                   help="with --impl parallel: the Newton method (deer: full Jacobians; quasi: their "
                   "diagonals; elk, quasi-elk: damped) (default deer)")
    p.add_argument("--max-iter", type=positive_int, default=None,
                   help="with --impl parallel: the most Newton iterations per step before the "
                   "sequential fallback (default 100, at most T for deer and quasi)")
    p.add_argument("--residuals", type=residuals, default="auto",
                   help="fused engine residual policy: auto (the fastest that fits the "
                        "platform's memory budget), gates, states or K (default auto)")
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--eval-every", type=positive_int, default=100)
    p.add_argument("--checkpoint-every", type=positive_int, default=500)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest intact checkpoint (same settings; "
                   "metrics.jsonl keeps the steps up to it)")
    p.add_argument("--text", default=None, help="charlm: a text file (default: the Python standard library's sources)")
    p.add_argument("--mnist", default=None, help="mnist: a local mnist.npz (x_train, y_train, x_test, y_test)")
    p.add_argument("--permuted", action="store_true", help="mnist: permuted pixel order")
    p.add_argument("--sample-chars", type=nonneg_int, default=300, help="charlm: characters to sample at the end")
    p.add_argument("--prompt", default="def ", help="charlm: the sampling prompt")
    p.add_argument("--temperature", type=positive_float, default=0.8, help="charlm: sampling temperature")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_common(p, cells=False)
    p.set_defaults(func=run)
