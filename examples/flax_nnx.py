"""Flax nnx: a jaxrnn GRU layer in an nnx model, trained on the adding problem.

The nnx twin of ``examples/flax_linen.py`` (see there for the task). The GRU
layer holds ``nnx.Param``s named after jaxrnn's params fields, and
``get_params()`` hands them to the functional API as a ``jr.GRUParams``. The
optimizer is ``nnx.Optimizer`` over an Optax chain with jaxrnn's
``clip_by_global_norm``.

Run:  python examples/flax_nnx.py [--steps 300] [--length 40]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import jaxrnn as jr
import jaxrnn.flax as jf


def adding_batch(key, batch, length):
    """Adding-problem sequences of random lengths in [length/2, length]:
    inputs (batch, length, 2), lengths (batch,) and targets (batch,)."""
    k_len, k_data = jax.random.split(key)
    lengths = jax.random.randint(k_len, (batch,), length // 2, length + 1)
    xs, targets = jr.tasks.adding(k_data, batch, length, seq_lengths=lengths)
    return xs, lengths, targets


class Adder(nnx.Module):
    """A GRU over the sequence, then a linear read-out of its final ``h``."""

    def __init__(self, hidden_size: int, *, rngs: nnx.Rngs):
        self.gru = jf.nnx.GRU(2, hidden_size, return_carry=True, rngs=rngs)
        self.out = nnx.Linear(hidden_size, 1, rngs=rngs)

    def __call__(self, xs, seq_lengths):
        h, _ys = self.gru(xs, seq_lengths=seq_lengths)
        return self.out(h)[..., 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    model = Adder(32, rngs=nnx.Rngs(0))
    print("GRU params:", {k: v.shape for k, v in model.gru.get_params()._asdict().items()})
    tx = optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.adam(1e-2))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    def loss_fn(model, xs, lengths, targets):
        return jnp.mean((model(xs, lengths) - targets) ** 2)

    @nnx.jit
    def step(model, optimizer, key):
        xs, lengths, targets = adding_batch(key, args.batch, args.length)
        loss, grads = nnx.value_and_grad(loss_fn)(model, xs, lengths, targets)
        optimizer.update(model, grads)
        return loss

    start = time.perf_counter()
    for i in range(args.steps):
        loss = step(model, optimizer, jax.random.fold_in(jax.random.PRNGKey(2), i))
        if i % 50 == 0 or i == args.steps - 1:
            clip_state = optimizer.opt_state[0]  # jr.clipping.ClipByGlobalNormState
            print(
                f"step {i:4d}  MSE {float(loss):.4f}  grad norm {float(clip_state.global_norm[...]):.3f}"
            )
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f}s; predicting the mean scores ~0.167")

    # The trained weights drive the functional API directly.
    xs, lengths, _targets = adding_batch(jax.random.PRNGKey(3), 8, args.length)
    final, _ = jr.rnn(model.gru.cell, model.gru.get_params(), xs, seq_lengths=lengths)
    h, _ = model.gru(xs, seq_lengths=lengths)
    print("functional API agrees with the module:", bool(jnp.allclose(final, h)))


if __name__ == "__main__":
    main()
