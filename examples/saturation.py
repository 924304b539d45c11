"""Saturation: why a bigger W_hh does not rescue a tanh RNN (docs/gradients.md's figure).

Left: tanh' and sigmoid' against the pre-activation. Middle: a tanh RNN with
W_hh = scale x orthogonal on adding-problem inputs (T=100, H=64): the norm of
dL/dh_t against the distance from a loss on the last step, from one backward
pass (jaxrnn.diagnostics). Right: the share of saturated units (|h| > 0.95).

Run:  python examples/saturation.py [--out docs/figures/saturation.png]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import jaxrnn as jr

SCALES = (0.5, 1.0, 1.5, 3.0)
T, H, BATCH = 100, 64, 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="saturation.png")
    args = parser.parse_args()

    xs, _ = jr.tasks.adding(jax.random.PRNGKey(0), BATCH, T)
    fig, (ax_d, ax_g, ax_s) = plt.subplots(1, 3, figsize=(14.5, 4))

    a = jnp.linspace(-6, 6, 400)
    ax_d.plot(a, 1 - jnp.tanh(a) ** 2, label="tanh'(a) = 1 - tanh(a)^2  (max 1)")
    s = jax.nn.sigmoid(a)
    ax_d.plot(a, s * (1 - s), label="sigmoid'(a) = s(1 - s)  (max 1/4)")
    ax_d.set(title="derivatives vanish where the unit saturates", xlabel="pre-activation a")
    ax_d.legend(fontsize=8)

    for scale in SCALES:
        cell = jr.SimpleRNN(H, w_hh_init=jax.nn.initializers.orthogonal(scale=scale))
        params = cell.init(jax.random.PRNGKey(1), input_size=2)
        norms = jr.diagnostics.state_gradient_norms(
            cell, params, xs, lambda final, ys: jnp.sum(ys[:, -1]) / BATCH
        ).mean(axis=0)
        distance = jnp.arange(T)[::-1]
        ax_g.semilogy(distance, norms, label=f"W_hh = {scale} x orthogonal")
        _, ys = jr.rnn(cell, params, xs)
        saturated = jnp.mean(jnp.abs(ys) > 0.95, axis=(0, 2))
        ax_s.plot(jnp.arange(1, T + 1), saturated, label=f"{scale} x orthogonal")
        print(f"scale {scale}: |dL/dh_0| = {float(norms[0]):.3g}, "
              f"saturated at the end {float(saturated[-1]):.2f}")

    ax_g.set(title="tanh RNN: gradient vs distance by recurrent scale",
             xlabel="distance from the loss, T - t (steps)", ylabel="||dL/dh_t||")
    ax_s.set(title="saturated units", xlabel="t (steps)", ylabel="share of units with |h| > 0.95")
    for ax in (ax_d, ax_g, ax_s):
        ax.grid(alpha=0.3)
    ax_g.legend(fontsize=8)
    ax_s.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
