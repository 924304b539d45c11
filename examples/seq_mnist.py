"""Pixel-by-pixel MNIST (Le et al. 2015): classify a digit read one pixel at a time.

784 steps of one pixel each, the class read at the last step; --permuted
shuffles the pixel order with one fixed permutation, which spreads the
dependencies over the whole sequence. Needs a local mnist.npz in the Keras
layout (x_train, y_train, x_test, y_test), e.g. saved once with
`numpy.savez("mnist.npz", **dict(zip(["x_train", "y_train", "x_test", "y_test"],
[a for pair in keras.datasets.mnist.load_data() for a in pair])))`.

Run:  python examples/seq_mnist.py --mnist mnist.npz [--permuted] [--cell lstm] [--steps 5000]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

import jaxrnn as jr

CELLS = {"gru": jr.GRU, "lstm": jr.LSTM, "irnn": jr.IRNN}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seq_mnist.py", description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="path to mnist.npz")
    parser.add_argument("--permuted", action="store_true")
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args(argv)

    try:
        train = jr.tasks.SequentialMNIST.from_npz(args.mnist, permuted=args.permuted)
        test = jr.tasks.SequentialMNIST.from_npz(args.mnist, split="test", permuted=args.permuted)
    except (OSError, ValueError) as e:  # a missing, unreadable or malformed file: one line, no traceback
        print(f"{parser.prog}: error: --mnist: {e}", file=sys.stderr)
        sys.exit(2)
    cell = CELLS[args.cell](args.hidden)
    optimizer = optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.adam(1e-3))
    state = jr.training.TrainState.create(train.init_params(cell, jax.random.PRNGKey(0)), optimizer)
    step = jr.training.make_train_step(train.make_loss(cell), optimizer)
    sample = jax.jit(lambda task, key: task.sample(key, 64))
    correct = jax.jit(lambda params, x, y: jnp.sum(jnp.argmax(train.apply(cell, params, x), -1) == y))

    name = "permuted" if args.permuted else "sequential"
    print(f"{name} MNIST, {args.cell}({args.hidden}): {train.length} steps per image")
    for i in range(args.steps):
        state, metrics = step(state, sample(train, jax.random.PRNGKey(i)))
        if (i + 1) % 100 == 0:
            print(f"step {i + 1:5d}  loss {float(metrics['loss']):.4f}")
    hits = sum(int(correct(state.params, x, y)) for x, y in test.batches(500))
    print(f"test accuracy {hits / test.images.shape[0]:.4f}")


if __name__ == "__main__":
    main()
