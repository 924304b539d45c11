"""Newton iterations against the contraction of the dynamics (docs/parallel.md).

A tanh RNN (H=8) whose recurrent matrix is ``scale`` times an orthogonal one,
on random inputs (batch 4, T=200), in float64: the iterations each method
needs to reach its tolerance, with ``max_iter=T``. Counts, not times, so the
figures do not depend on the machine's load.

    python -m benchmarks.parallel.chaos
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import jaxrnn as jr

SCALES = (0.5, 1.0, 1.5, 3.0)
T = 200


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    cell = jr.SimpleRNN(8)
    params = cell.init(jax.random.PRNGKey(0), 2, jnp.float64)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, T, 2), jnp.float64)
    methods = jr.parallel.METHODS
    print("| scale | " + " | ".join(f"`{m}`" for m in methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for scale in SCALES:
        p = params._replace(w_hh=scale * params.w_hh)
        row = []
        for method in methods:
            info = jr.diagnostics.newton_convergence(cell, p, xs, method=method, max_iter=T)
            k = int(info.iterations)
            row.append(f"{k}" if bool(info.converged) else f"{k} ✗")
        print(f"| {scale} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
