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
    # Drawn to be read at the docs' page width (about 750 px): 1000 px wide,
    # large type, one legend for the two panels that share the scales.
    plt.rcParams.update({"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 12})
    fig, (ax_d, ax_g, ax_s) = plt.subplots(1, 3, figsize=(10, 4.4), layout="constrained")

    a = jnp.linspace(-6, 6, 400)
    s = jax.nn.sigmoid(a)
    ax_d.plot(a, 1 - jnp.tanh(a) ** 2, color="black")
    ax_d.plot(a, s * (1 - s), color="black", ls="--")
    ax_d.annotate("tanh′ (max 1)", (0.6, 0.95), xytext=(1.6, 0.8), arrowprops={"arrowstyle": "-"})
    ax_d.annotate("sigmoid′\n(max 1/4)", (2.2, 0.08), xytext=(2.4, 0.35), arrowprops={"arrowstyle": "-"})
    ax_d.set(title="(a) derivatives", xlabel="pre-activation a")

    for scale in SCALES:
        cell = jr.SimpleRNN(H, w_hh_init=jax.nn.initializers.orthogonal(scale=scale))
        params = cell.init(jax.random.PRNGKey(1), input_size=2)
        norms = jr.diagnostics.state_gradient_norms(
            cell, params, xs, lambda final, ys: jnp.sum(ys[:, -1]) / BATCH
        ).mean(axis=0)
        distance = jnp.arange(T)[::-1]
        ax_g.semilogy(distance, norms, lw=2, label=f"W_hh = {scale} × orthogonal")
        _, ys = jr.rnn(cell, params, xs)
        saturated = jnp.mean(jnp.abs(ys) > 0.95, axis=(0, 2))
        ax_s.plot(jnp.arange(1, T + 1), saturated, lw=2)
        print(f"scale {scale}: |dL/dh_0| = {float(norms[0]):.3g}, "
              f"saturated at the end {float(saturated[-1]):.2f}")

    ax_g.set(title="(b) tanh RNN: ‖dL/dh_t‖", xlabel="distance from the loss (steps)")
    ax_g.set_yticks([1e-20, 1e-12, 1e-4, 1e4, 1e12])
    ax_s.set(title="(c) saturated: |h| > 0.95", xlabel="t (steps)", ylabel="share of units")
    for ax in (ax_d, ax_g, ax_s):
        ax.grid(alpha=0.3)
    fig.legend(*ax_g.get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
