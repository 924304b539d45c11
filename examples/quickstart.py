"""Quick start: train an LSTM and a plain tanh RNN on the adding problem.

The adding problem (Hochreiter & Schmidhuber, 1997): each step carries a
random value in [0, 1] and a marker; exactly two steps are marked, one in each
half of the sequence, and the target is the sum of the two marked values.
Predicting the mean gives a mean squared error of about 1/6 = 0.167, so a
model beats that baseline only if it carries information across the sequence.

Run:  python examples/quickstart.py [--steps 800] [--length 30]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import jaxrnn as jr


def adding_batch(key, batch, length):
    """Inputs (batch, length, 2) and targets (batch,) of the adding problem."""
    k_val, k_first, k_second = jax.random.split(key, 3)
    values = jax.random.uniform(k_val, (batch, length))
    half = length // 2
    first = jax.random.randint(k_first, (batch,), 0, half)
    second = jax.random.randint(k_second, (batch,), half, length)
    steps = jnp.arange(length)[None, :]
    markers = ((steps == first[:, None]) | (steps == second[:, None])).astype(values.dtype)
    targets = jnp.sum(values * markers, axis=1)
    return jnp.stack([values, markers], axis=-1), targets


def make_model(cell, key, input_size=2):
    k_cell, k_out = jax.random.split(key)
    return {
        "cell": cell.init(k_cell, input_size),
        "w_out": jax.random.normal(k_out, (cell.hidden_size,)) / cell.hidden_size**0.5,
        "b_out": jnp.zeros(()),
    }


def train(cell, steps, length, batch=64, seed=0):
    model = make_model(cell, jax.random.PRNGKey(seed))
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    opt_state = optimizer.init(model)

    def loss_fn(model, xs, targets):
        final, ys = jr.rnn(cell, model["cell"], xs)
        prediction = ys[:, -1] @ model["w_out"] + model["b_out"]
        return jnp.mean((prediction - targets) ** 2)

    @jax.jit
    def step(model, opt_state, key):
        xs, targets = adding_batch(key, batch, length)
        loss, grads = jax.value_and_grad(loss_fn)(model, xs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optax.apply_updates(model, updates), opt_state, loss

    key = jax.random.PRNGKey(seed + 1)
    losses = []
    for i in range(steps):
        model, opt_state, loss = step(model, opt_state, jax.random.fold_in(key, i))
        losses.append(float(loss))
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--length", type=int, default=30)
    args = parser.parse_args()
    print(f"adding problem, T={args.length}; predicting the mean scores MSE ~ 0.167")
    for name, cell in [("LSTM(32)", jr.LSTM(32)), ("SimpleRNN(32, tanh)", jr.SimpleRNN(32))]:
        start = time.perf_counter()
        losses = train(cell, args.steps, args.length)
        tail = sum(losses[-20:]) / 20
        print(
            f"{name:>20}: MSE {losses[0]:.3f} -> {tail:.4f} (mean of last 20 steps) "
            f"in {time.perf_counter() - start:.1f}s"
        )


if __name__ == "__main__":
    main()
