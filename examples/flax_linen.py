"""Flax linen: a jaxrnn LSTM layer in a linen model, trained on the adding problem.

The adding problem (Hochreiter & Schmidhuber, 1997): each step carries a
random value in [0, 1] and a marker; two steps are marked, one in each half of
the sequence, and the target is the sum of the two marked values. Predicting
the mean scores a mean squared error of about 0.167.

Here the sequences have different lengths (``seq_lengths``), and the model
reads the LSTM's final carry ``(c, h)``: the state at each sequence's last
valid step. The optimizer is an Optax chain with jaxrnn's
``clip_by_global_norm``, whose state records the gradient norm before
clipping; the loop prints it.

Run:  python examples/flax_linen.py [--steps 300] [--length 40]
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import jaxrnn as jr
import jaxrnn.flax as jf


def adding_batch(key, batch, length):
    """Adding-problem sequences of random lengths in [length/2, length]:
    inputs (batch, length, 2), lengths (batch,) and targets (batch,)."""
    k_len, k_data = jax.random.split(key)
    lengths = jax.random.randint(k_len, (batch,), length // 2, length + 1)
    xs, targets = jr.tasks.adding(k_data, batch, length, seq_lengths=lengths)
    return xs, lengths, targets


class Adder(nn.Module):
    """An LSTM over the sequence, then a linear read-out of its final ``h``."""

    hidden_size: int = 32

    @nn.compact
    def __call__(self, xs, seq_lengths):
        # jf.LSTM takes what nn.RNN(nn.LSTMCell(...)) takes; its carry is (c, h).
        (_c, h), _ys = jf.LSTM(self.hidden_size, return_carry=True)(xs, seq_lengths=seq_lengths)
        return nn.Dense(1)(h)[..., 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    model = Adder()
    xs, lengths, _ = adding_batch(jax.random.PRNGKey(0), args.batch, args.length)
    variables = model.init(jax.random.PRNGKey(1), xs, lengths)
    # The LSTM's parameters are jaxrnn's layout: the functional API reads them as they are.
    lstm_params = jr.LSTMParams(**variables["params"]["LSTM_0"])
    print("LSTM params:", {k: v.shape for k, v in lstm_params._asdict().items()})

    optimizer = optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.adam(1e-2))
    opt_state = optimizer.init(variables["params"])

    def loss_fn(params, xs, lengths, targets):
        prediction = model.apply({"params": params}, xs, lengths)
        return jnp.mean((prediction - targets) ** 2)

    @jax.jit
    def step(params, opt_state, key):
        xs, lengths, targets = adding_batch(key, args.batch, args.length)
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, lengths, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params = variables["params"]
    start = time.perf_counter()
    for i in range(args.steps):
        params, opt_state, loss = step(params, opt_state, jax.random.fold_in(jax.random.PRNGKey(2), i))
        if i % 50 == 0 or i == args.steps - 1:
            clip_state = opt_state[0]  # jr.clipping.ClipByGlobalNormState
            print(
                f"step {i:4d}  MSE {float(loss):.4f}  grad norm {float(clip_state.global_norm):.3f}"
                f"{' (clipped)' if bool(clip_state.clipped) else ''}"
            )
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f}s; predicting the mean scores ~0.167")


if __name__ == "__main__":
    main()
