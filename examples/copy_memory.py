"""Copy memory (Arjovsky et al. 2016): recall 10 symbols after T blank steps.

The input is 10 symbols from {1..8}, T-1 blanks, a delimiter and 10 blanks;
the target is blank until the delimiter, then the 10 symbols. Outputting blanks
and guessing the symbols scores cross-entropy 10 ln 8 / (T + 20), the
baseline; accuracy on the recalled symbols is 1/8 at chance.

Run:  python examples/copy_memory.py [--cell lstm] [--delay 50] [--steps 2000]
"""

from __future__ import annotations

import argparse

import jax
import optax

import jaxrnn as jr

CELLS = {"gru": jr.GRU, "lstm": jr.LSTM, "tanh": jr.SimpleRNN, "irnn": jr.IRNN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    parser.add_argument("--delay", type=int, default=50)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()

    task = jr.tasks.CopyMemory(length=args.delay)
    cell = CELLS[args.cell](args.hidden)
    optimizer = optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.adam(1e-3))
    state = jr.training.TrainState.create(task.init_params(cell, jax.random.PRNGKey(0)), optimizer)
    step = jr.training.make_train_step(task.make_loss(cell), optimizer)
    sample = jax.jit(task.sample, static_argnums=1)
    inputs, targets = sample(jax.random.PRNGKey(1), 500)

    @jax.jit
    def evaluate(params):
        outputs = task.apply(cell, params, inputs)
        return task.loss(outputs, targets), task.metric(outputs, targets)

    print(f"copy memory, delay {args.delay}, {args.cell}: baseline cross-entropy {task.baseline:.4f}")
    for i in range(args.steps):
        state, _ = step(state, sample(jax.random.PRNGKey(2 + i), 32))
        if (i + 1) % 100 == 0:
            loss, accuracy = evaluate(state.params)
            print(f"step {i + 1:5d}  test cross-entropy {float(loss):.4f}  "
                  f"recall accuracy {float(accuracy):.3f}")


if __name__ == "__main__":
    main()
