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
import math
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
    rate,
    residuals,
    run_dir,
    write_atomic,
)
from ._progress import Steps, say


def _make_task(args: argparse.Namespace):
    from .. import tasks

    try:
        if args.task == "adding":
            return tasks.Adding(args.length)
        if args.task == "copy":
            return tasks.CopyMemory(args.length)
        if args.task == "order":
            return tasks.TemporalOrder(args.length)
        if args.task == "cue":
            return tasks.CueAnswer(args.length)
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
                "dropout", "recurrent_dropout", "zoneout", "batch", "seed", "text", "mnist", "permuted")
#: the dropout flags, by jr.rnn's names
DROPOUT = ("dropout", "recurrent_dropout", "zoneout")


def _make_loss(task: Any, cell: Any, rnn_options: dict[str, Any], dropout: dict[str, float]) -> Any:
    """The training loss: ``task.make_loss``'s, or with dropout a loss over
    batches ``(inputs, targets, key)`` that draws its masks from ``key``."""
    if not dropout:
        return task.make_loss(cell, **rnn_options)

    def loss_fn(params: Any, batch: tuple) -> Any:
        inputs, targets, key = batch
        return task.loss(task.apply(cell, params, inputs, key=key, **rnn_options, **dropout), targets)

    return loss_fn


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


def _units(task: Any, loss: float | None) -> dict[str, float | None]:
    """The char LM's loss (nats per character) in the units people quote:
    bits per character and perplexity; nothing for the other tasks."""
    if task.name != "charlm":
        return {}
    if loss is None:
        return {"bpc": None, "perplexity": None}
    return {"bpc": loss / math.log(2), "perplexity": math.exp(loss) if loss < 700 else None}


def _fmt(x: float | None, spec: str) -> str:
    return "nan" if x is None else format(x, spec)


def _loss_fields(task: Any, prefix: str, loss: float | None) -> dict[str, str]:
    """A loss as shown on the bar and the log lines: ``<prefix>_mse`` for the
    adding problem (its loss is the MSE), ``_bpc`` and ``_ppl`` for the char
    LM, else ``_loss``."""
    if task.metric_name == "mse":
        return {f"{prefix}_mse": _fmt(loss, ".4f")}
    units = _units(task, loss)
    if units:
        return {f"{prefix}_bpc": _fmt(units["bpc"], ".3f"), f"{prefix}_ppl": _fmt(units["perplexity"], ".2f")}
    return {f"{prefix}_loss": _fmt(loss, ".4f")}


def _test_fields(task: Any, loss: float | None, metric: float | None) -> dict[str, str]:
    fields = _loss_fields(task, "test", loss)
    if task.metric_name != "mse":  # the adding problem's metric is its loss
        fields[f"test_{task.metric_name}"] = _fmt(metric, ".3f")
    return fields


def _mean(values: list[float | None]) -> float | None:
    """The mean; None if there are no values or one is None (not finite)."""
    return None if not values or None in values else sum(values) / len(values)  # type: ignore[arg-type]


def csv_header(task: Any) -> list[str]:
    """The columns of ``metrics.csv``: one row per step; the ``eval_`` ones are
    empty except on evaluation steps."""
    units = [f"eval_{u}" for u in _units(task, 1.0)]
    return ["step", "loss", "grad_norm", "skipped", "eval_loss", f"eval_{task.metric_name}", *units]


def _write_metrics(out: Any, config: dict, task: Any, history: dict, seconds: float,
                   first_step_seconds: float | None) -> dict:
    """Writes ``metrics.json`` (summary and history) and ``metrics.csv``
    atomically; returns the summary."""
    final_loss = history["eval_loss"][-1] if history["eval_loss"] else None
    summary = {
        **config, "baseline": task.baseline, "metric": task.metric_name,
        "final_test_loss": final_loss,
        "final_test_metric": history["eval_metric"][-1] if history["eval_metric"] else None,
        **{f"final_test_{k}": v for k, v in _units(task, final_loss).items()},
        "skipped_steps": int(sum(history["skipped"])),
        "seconds_this_session": seconds,
        "first_step_seconds": first_step_seconds,
    }
    write_atomic(out / "metrics.json", json.dumps(jsonable({"summary": summary, "history": history}), indent=1))
    evals = dict(zip(history["eval_step"], zip(history["eval_loss"], history["eval_metric"])))
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(csv_header(task))
    for row in zip(history["step"], history["loss"], history["grad_norm"], history["skipped"]):
        loss, metric = evals.get(row[0], (None, None))
        units = _units(task, loss).values() if row[0] in evals else [None] * len(_units(task, 1.0))
        # None (not evaluated at this step, or not finite) is an empty cell: NaN for pandas
        w.writerow(["" if v is None else v for v in (*row, loss, metric, *units)])
    write_atomic(out / "metrics.csv", rows.getvalue())
    return summary


#: what is known about a run that ends near the baseline, by (task, cell);
#: each is measured in docs/demo.md (T=100, Adam lr 1e-2, batch 32, H=64)
HINTS = {
    ("adding", "lstm"): "the LSTM needs about 750+ steps on this task: in the demo (T=100, Adam lr 1e-2) it "
                        "sits at the baseline for 750 to 1000 steps before it leaves it (docs/demo.md); train "
                        "longer, e.g. --steps 2000",
    ("adding", "tanh"): "in the demo the tanh RNN is still at the baseline after 2000 steps at T=100 but "
                        "solves T=10: its gradient vanishes over long lags (docs/demo.md); try --cell lstm "
                        "or gru, or a shorter --length",
    ("adding", "irnn"): "the IRNN leaves the baseline late, at a step that varies with the seed; the demo "
                        "trains it at T=50 with --lr 2e-3 for 4000 steps (docs/demo.md)",
}

#: a final test loss at or above this share of the baseline counts as not learned
NEAR_BASELINE = 0.75


def summary_lines(args: argparse.Namespace, task: Any, summary: dict, seconds: float, steps_run: int) -> list[str]:
    """The lines printed at the end of ``train``: the test numbers with their
    units and baseline, the time of the ``steps_run`` steps of this session,
    the skipped steps, and a hint for a run that is still at the baseline
    where one is known."""
    tl, tm, base = summary["final_test_loss"], summary["final_test_metric"], task.baseline
    if task.metric_name == "mse":
        test = f"test MSE {_fmt(tl, '.4f')} (baseline {base:.4f}: predicting the mean)"
    elif task.name == "charlm":
        u, b = _units(task, tl), _units(task, base)
        test = (f"test loss {_fmt(tl, '.4f')} nats/char = {_fmt(u['bpc'], '.3f')} bits/char, perplexity "
                f"{_fmt(u['perplexity'], '.2f')} (baseline, the text's unigram entropy: {b['bpc']:.3f} "
                f"bits/char, perplexity {b['perplexity']:.2f}); test accuracy {_fmt(tm, '.4f')}")
    else:
        test = (f"test loss {_fmt(tl, '.4f')} (baseline {base:.4f}: a model that ignores the past); "
                f"test {task.metric_name} {_fmt(tm, '.4f')}")
    first = summary.get("first_step_seconds")
    timing = f"{steps_run} steps in {seconds:.0f}s" + (f", {first:.0f}s of it compiling (until the first "
                                                       "step ended)" if first is not None else "")
    n = summary["skipped_steps"]
    skipped = ("no step skipped" if not n else
               f"{n} steps skipped (their gradient or update was not finite, so the weights were left as "
               "they were; column skipped of metrics.csv)")
    lines = [f"{args.task} T={args.length} {args.cell}: {test}; {timing}; {skipped}"]
    if tl is None:
        lines.append("note: the final test loss is not finite: the model diverged")
    elif tl >= NEAR_BASELINE * base:
        hint = HINTS.get((args.task, args.cell))
        lines.append(f"note: the test loss is {tl / base:.2f} times the baseline: the model has not learned "
                     "the task (yet)" + (f"; {hint}" if hint else ""))
    return lines


def run(args: argparse.Namespace) -> int:
    import jax

    from .. import _report, training
    from ._tensorboard import open_writer

    task = _make_task(args)
    _check_prompt(args, task)
    out = run_dir(args.out, "train", f"train-{args.task}-{args.cell}")
    board = None if args.tensorboard is None else open_writer(args.tensorboard)
    desc = f"{args.task} T={args.length} {args.cell}"
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
        say(f"jaxrnn train: {desc}, hidden {args.hidden}, {args.optimizer} lr {args.lr:g}, batch {args.batch}, "
            f"{args.steps} steps; writing {out}")
        progress = Steps(desc, args.steps, bar=args.progress)
        progress.compiling("the model, the training step and the evaluation")
        cell = CELLS[args.cell](args.hidden)
        tx = _make_tx(args)
        rnn_options = {"impl": args.impl, "residuals": args.residuals}
        if args.impl == "parallel" and not isinstance(cell, LinearCell):
            rnn_options.update(method=args.method, max_iter=args.max_iter)
        if args.bptt_clip is not None:
            rnn_options["bptt_clip"] = args.bptt_clip
        dropout = {k: getattr(args, k) for k in DROPOUT if getattr(args, k) > 0}
        loss_fn = _make_loss(task, cell, rnn_options, dropout)
        # Evaluation is deterministic: no dropout, zoneout by its expectation.
        eval_options = dict(rnn_options, **({"zoneout": args.zoneout, "deterministic": True}
                                            if args.zoneout > 0 else {}))
        state = training.TrainState.create(task.init_params(cell, jax.random.PRNGKey(args.seed)), tx)
        if args.resume:
            state = _restore(ckpt, state)
        first = int(state.step)
        progress.resume(first)
        write_atomic(config_path, json.dumps(config, indent=1))
        metrics_log = out / "metrics.jsonl"
        history, kept = _read_history(metrics_log, first)
        write_atomic(metrics_log, "".join(line + "\n" for line in kept))
        if first:
            print(f"resumed from step {first} ({ckpt.directory})")

        step_fn = training.make_train_step(loss_fn, tx)
        sample = functools.partial(_sample, batch_size=args.batch)
        evaluate = functools.partial(_evaluate, cell, tuple(sorted(eval_options.items())))
        test_batch = sample(task, jax.random.PRNGKey(2**31 - 1))
        data_key = jax.random.fold_in(jax.random.PRNGKey(args.seed), 1)
        dropout_key = jax.random.fold_in(jax.random.PRNGKey(args.seed), 3)
        recent: list[float | None] = []  # training losses since the last shown
        with progress, open(metrics_log, "a") as log:
            if first < args.steps:
                # Compiled now, not at the first evaluation: the bar would stop there.
                jax.block_until_ready(evaluate(task, state.params, test_batch))
            for i in range(first, args.steps):
                batch = sample(task, jax.random.fold_in(data_key, i))
                if dropout:  # the masks of step i: a resumed run draws the same
                    batch = (*batch, jax.random.fold_in(dropout_key, i))
                state, m = step_fn(state, batch)
                row = {"step": i + 1, "loss": finite(m["loss"]), "grad_norm": finite(m["grad_norm"]),
                       "skipped": bool(m["skipped"])}
                recent.append(row["loss"])
                evaluated = (i + 1) % args.eval_every == 0 or i + 1 == args.steps
                fields: dict[str, str] = {}
                if evaluated:
                    el, em = evaluate(task, state.params, test_batch)
                    row.update(eval_loss=finite(el), eval_metric=finite(em))
                    history["eval_step"].append(i + 1)
                    history["eval_loss"].append(row["eval_loss"])
                    history["eval_metric"].append(row["eval_metric"])
                if evaluated or progress.due(i + 1):
                    fields = _loss_fields(task, "train", _mean(recent))  # the mean since the last shown
                    recent.clear()
                    if evaluated:
                        fields.update(_test_fields(task, row["eval_loss"], row["eval_metric"]))
                for k in ("step", "loss", "grad_norm", "skipped"):
                    history[k].append(row[k])
                # One line per step, flushed: a killed run keeps every step it made.
                log.write(json.dumps(row) + "\n")
                log.flush()
                if board is not None:
                    board.add_step(row, task.metric_name)
                if ckpt.save(state):
                    os.fsync(log.fileno())  # the log is at least as durable as the checkpoint
                progress.update(i + 1, fields, log=evaluated)
            ckpt.save(state, force=True)
            os.fsync(log.fileno())
    seconds = time.perf_counter() - progress.start  # since the model was built
    if board is not None:
        board.close()

    summary = _write_metrics(out, config, task, history, seconds, progress.compile_seconds)
    _report.training_report(
        out / "curves.png", history, task.baseline,
        f"{args.task} T={args.length}, {args.cell} H={args.hidden}, {args.optimizer} lr {args.lr}, "
        f"clip {args.clip_mode}", task.metric_name)
    print("\n".join(summary_lines(args, task, summary, seconds, args.steps - first)))
    if args.task == "charlm" and args.sample_chars:
        from ..tasks import sample_text

        text = sample_text(cell, state.params, task.vocab, jax.random.PRNGKey(args.seed + 2),
                           args.prompt, args.sample_chars, args.temperature)
        print(f"sample (temperature {args.temperature}):\n{args.prompt}{text}")
        write_atomic(out / "sample.txt", args.prompt + text)
    print(f"wrote {out / 'metrics.jsonl'}, {out / 'metrics.json'}, {out / 'metrics.csv'}, {out / 'curves.png'}"
          + ("" if board is None else f"; TensorBoard events in {args.tensorboard}"))
    return 0


def register(sub: Any) -> None:
    """Adds the command's parser to ``sub`` (argparse subparsers)."""
    p = sub.add_parser(
        "train", help="train one model on one task, with checkpoints and resume",
        description="Trains a cell with a linear readout on a task. Writes to the run folder config.json "
        "(the settings), metrics.jsonl (one line per step, as it trains), Orbax checkpoints/ and, at the "
        "end, metrics.json, metrics.csv (one row per step: step, loss, grad_norm, skipped, and the test "
        "batch's eval_loss and eval_<metric> on evaluation steps) and curves.png. 'train' numbers are "
        "the training batches' losses (on the bar and the log lines: their mean since the last shown), "
        "'test' ones the fixed test batch's. A step is 'skipped' when its gradient, or the update the "
        "optimizer made of it, is not finite: the weights are left as they were and the step counted. "
        "The char LM's loss is in nats per character; bits per character (bpc) = loss / ln 2, "
        "perplexity (ppl) = exp(loss). Progress and status lines go to stderr, results to stdout.")
    p.add_argument("--task", choices=["adding", "copy", "order", "cue", "charlm", "mnist"], default="adding",
                   help="the task (docs/tasks.md)")
    p.add_argument("--length", "-T", type=positive_int, default=100,
                   help="sequence length (copy: the delay; cue: the distance D; charlm: the window)")
    p.add_argument("--cell", choices=sorted(CELLS), default="gru", help="the recurrent cell")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="the optimizer")
    p.add_argument("--lr", type=positive_float, default=1e-2, help="learning rate")
    p.add_argument("--clip-mode", choices=["none", "global", "per-leaf", "value", "adaptive", "zscore"],
                   default="global", help="gradient clipping: the global norm, each leaf's norm or each "
                   "value at --clip; adaptive or zscore (thresholds from the gradient's history); or none")
    p.add_argument("--clip", type=positive_float, default=1.0, help="threshold of global/per-leaf/value clipping")
    p.add_argument("--bptt-clip", type=positive_float, default=None,
                   help="clip the state gradient at every step of BPTT to this norm (default: no clipping)")
    p.add_argument("--method", choices=METHODS, default="deer",
                   help="with --impl parallel: the Newton method (deer: full Jacobians; quasi: their "
                   "diagonals; elk, quasi-elk: damped)")
    p.add_argument("--max-iter", type=positive_int, default=None,
                   help="with --impl parallel: the most Newton iterations per step before the "
                   "sequential fallback (default: 100, at most T for deer and quasi)")
    p.add_argument("--dropout", type=rate, default=0.0,
                   help="variational dropout on the inputs: one mask per sequence, the same at every step "
                        "(jr.rnn's dropout; docs/regularisation.md)")
    p.add_argument("--recurrent-dropout", type=rate, default=0.0,
                   help="variational dropout on the state the recurrent GEMM reads (jr.rnn's recurrent_dropout)")
    p.add_argument("--zoneout", type=rate, default=0.0,
                   help="probability that a state unit keeps its value at a step (Krueger et al. 2017); "
                        "evaluation uses its expectation")
    p.add_argument("--residuals", type=residuals, default="auto",
                   help="fused engine residual policy: auto (the fastest that fits the "
                        "platform's memory budget), gates, states or K (keep every K-th state)")
    p.add_argument("--steps", type=positive_int, default=1000, help="training steps")
    p.add_argument("--batch", type=positive_int, default=32,
                   help="sequences per training step, and in the fixed test batch")
    p.add_argument("--eval-every", type=positive_int, default=100,
                   help="evaluate on the test batch every this many steps (and at the last)")
    p.add_argument("--checkpoint-every", type=positive_int, default=500,
                   help="save a checkpoint every this many steps (and at the end)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest intact checkpoint (same settings; "
                   "metrics.jsonl keeps the steps up to it) (default: off, a new run)")
    p.add_argument("--text", default=None, help="charlm: a text file (default: the Python standard library's sources)")
    p.add_argument("--mnist", default=None,
                   help="mnist: a local mnist.npz (x_train, y_train, x_test, y_test) (default: none; "
                   "--task mnist needs it)")
    p.add_argument("--permuted", action="store_true", help="mnist: permuted pixel order (default: off)")
    p.add_argument("--sample-chars", type=nonneg_int, default=300, help="charlm: characters to sample at the end")
    p.add_argument("--prompt", default="def ", help="charlm: the sampling prompt (default: 'def ')")
    p.add_argument("--temperature", type=positive_float, default=0.8, help="charlm: sampling temperature")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="also write the metrics as TensorBoard events to DIR (needs tensorboardX: pip install "
                   "'jaxrnn[tensorboard]') (default: none; metrics.csv and metrics.jsonl are always written)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="log lines (at each evaluation and every tenth of the steps: step, time, train and "
                   "test numbers) instead of a progress bar (default: a bar)")
    add_common(p, out="runs/train-<task>-<cell>-<time>")
    p.set_defaults(func=run)
