"""Copy memory and temporal order at (or near) their papers' settings.

Trains one cell with a linear readout on ``jr.tasks.CopyMemory`` (Arjovsky,
Shah & Bengio 2016) or ``jr.tasks.TemporalOrder`` (Hochreiter & Schmidhuber
1997, experiment 6a) and reports, on a fixed test set of fresh sequences, the
cross-entropy against the task's memoryless baseline and the accuracy
(copy: on the 10 recalled symbols, chance 1/8; order: of the class, chance
1/4). docs/tasks.md, "Calibration against the papers", has the commands and
the numbers.

Run:  python examples/paper_calibration.py --task copy --length 100 \\
          --cell lstm --hidden 40 --optimizer rmsprop --lr 1e-3 \\
          --clip-value 1 --batch 20 --steps 20000
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import optax

import jaxrnn as jr

CELLS = {"lstm": jr.LSTM, "gru": jr.GRU, "tanh": jr.SimpleRNN, "irnn": jr.IRNN}
TASKS = {"copy": jr.tasks.CopyMemory, "order": jr.tasks.TemporalOrder}
OPTIMIZERS = {"rmsprop": optax.rmsprop, "adam": optax.adam, "sgd": optax.sgd}


def make_optimizer(args: argparse.Namespace) -> optax.GradientTransformation:
    """The optimizer after optional element-wise (value) gradient clipping,
    as the uRNN code clips its LSTM and RNN gradients to [-1, 1]."""
    opt = OPTIMIZERS[args.optimizer](args.lr)
    return opt if args.clip_value is None else optax.chain(optax.clip(args.clip_value), opt)


def init_params(task: jr.tasks.Task, cell: jr.Cell, key: jax.Array,
                input_bias: float | None = None) -> dict:
    """The task's parameters; with ``input_bias``, the LSTM's input-gate block
    of ``b`` (gate blocks: i, f, g, o) shifted by it."""
    params = task.init_params(cell, key)
    if input_bias is not None:
        b = params["cell"].b.at[: cell.hidden_size].add(input_bias)
        params = {**params, "cell": params["cell"]._replace(b=b)}
    return params


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), default="copy")
    p.add_argument("--length", type=int, default=100, help="copy: the delay T; order: T")
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    p.add_argument("--hidden", type=int, default=40)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="rmsprop")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--clip-value", type=float, default=None,
                   help="clip each gradient element to [-v, v] (default: no clipping)")
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--test", type=int, default=1000, help="test sequences")
    p.add_argument("--forget-bias", type=float, default=None,
                   help="LSTM only: the forget gate's initial bias (default: the cell's, 1)")
    p.add_argument("--input-bias", type=float, default=None,
                   help="LSTM only: add this to the input gate's initial bias "
                   "(the 1997 LSTM starts its input gates negative)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the evaluations here")
    args = p.parse_args(argv)

    task = TASKS[args.task](length=args.length)
    if (args.forget_bias, args.input_bias) != (None, None) and args.cell != "lstm":
        p.error("--forget-bias and --input-bias are for --cell lstm")
    extra = {} if args.forget_bias is None else {"forget_bias": args.forget_bias}
    cell = CELLS[args.cell](args.hidden, **extra)
    optimizer = make_optimizer(args)
    key = jax.random.PRNGKey(args.seed)
    k_init, k_test, k_train = jax.random.split(key, 3)
    params = init_params(task, cell, k_init, args.input_bias)
    state = jr.training.TrainState.create(params, optimizer)
    step = jr.training.make_train_step(task.make_loss(cell), optimizer)
    sample = jax.jit(task.sample, static_argnums=1)
    test = sample(k_test, args.test)

    @jax.jit
    def evaluate(params):
        outputs = task.apply(cell, params, test[0])
        return task.loss(outputs, test[1]), task.metric(outputs, test[1])

    print(f"{args.task} T={args.length} {args.cell} H={args.hidden} {args.optimizer} "
          f"lr {args.lr:g} clip-value {args.clip_value} batch {args.batch} "
          f"forget-bias {args.forget_bias} input-bias {args.input_bias}: "
          f"baseline {task.baseline:.4f} (compiling the first step...)", flush=True)
    rows, start = [], time.perf_counter()
    for i in range(args.steps):
        state, metrics = step(state, sample(jax.random.fold_in(k_train, i), args.batch))
        if (i + 1) % args.eval_every == 0 or i + 1 == args.steps:
            loss, metric = (float(v) for v in evaluate(state.params))
            rows.append({"step": i + 1, "test_loss": loss, "test_metric": metric,
                         "train_loss": float(metrics["loss"]),
                         "seconds": time.perf_counter() - start})
            print(f"step {i + 1:6d}  test loss {loss:.4f} ({loss / task.baseline:.2f} x "
                  f"baseline)  test {task.metric_name} {metric:.3f}  "
                  f"{rows[-1]['seconds']:.0f}s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "baseline": task.baseline, "evals": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
