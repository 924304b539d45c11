"""A new cell with a fused kernel, by writing only its layout and ``pointwise``.

The cell here is a one-gate "highway" RNN:

    z  = sigmoid(x W_iz + h W_hz + b_z)
    n  = tanh(x W_in + h W_hn + b_n)
    h' = z * h + (1 - z) * n

Its parameters follow jaxrnn's layout (gate blocks z, n along the last axis);
subclassing ``jr.Cell`` and writing ``init_params`` and ``pointwise`` is all it
takes for ``jr.rnn(..., impl="fused")`` to run it with the hand-written
backward pass, every residual policy, masking, reverse and ``bptt_clip``,
and for ``jr.flax.RNN(cell)`` (linen) and ``jr.flax.nnx.RNN(cell, ...)`` to
make it a Flax layer. It keeps ``jr.Cell``'s projections, so it also gets the
engine's fast path (``HighwayRNN.plain_projections`` is ``True``: weight
gradients as one GEMM per chunk).

Run:  python examples/custom_cell.py
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

import jaxrnn as jr
from jaxrnn.cells import block_init


class HighwayParams(NamedTuple):
    w_ih: jax.Array  # (input_size, 2 * hidden_size): blocks z, n
    w_hh: jax.Array  # (hidden_size, 2 * hidden_size)
    b: jax.Array  # (2 * hidden_size,)


@dataclasses.dataclass(frozen=True)
class HighwayRNN(jr.Cell):
    """One update gate between the old state and a tanh candidate."""

    params_type: ClassVar[type] = HighwayParams
    num_gates: ClassVar[int] = 2
    additive: ClassVar[bool] = True  # pointwise reads xz and hz only as xz + hz

    def init_params(self, key, input_size, dtype):
        k1, k2 = jax.random.split(key)
        H = self.hidden_size
        return HighwayParams(
            w_ih=block_init(jax.nn.initializers.glorot_uniform(), k1, 2, (input_size, H), dtype),
            w_hh=block_init(jax.nn.initializers.orthogonal(), k2, 2, (H, H), dtype),
            b=jnp.zeros((2 * H,), dtype),
        )

    def pointwise(self, xz, hz, state):
        z, n = jnp.split(xz + hz, 2, axis=-1)
        return _highway(z, n, state)

    def pointwise_blocks(self, xz, hz, state):
        # Optional: the same update on the gate blocks, (z, n) each (B, H).
        # The Pallas kernels (impl="pallas") call this; a Triton kernel
        # cannot split a value, so a cell with more than one gate writes it
        # to run on GPUs. Everywhere else the default (join, then
        # pointwise) works.
        z, n = (a + b for a, b in zip(xz, hz))
        return _highway(z, n, state)


def _highway(z, n, h):
    z = jax.nn.sigmoid(z)
    return z * h + (1.0 - z) * jnp.tanh(n)


def main():
    cell = HighwayRNN(hidden_size=32)
    params = cell.init(jax.random.PRNGKey(0), input_size=8)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 100, 8))
    lengths = jnp.array([100, 70, 30, 5])

    def loss(params, impl):
        _, ys = jr.rnn(cell, params, xs, seq_lengths=lengths, impl=impl)
        return jnp.mean(ys**2)

    fused = jax.jit(jax.grad(lambda p: loss(p, "fused")))(params)
    scan = jax.jit(jax.grad(lambda p: loss(p, "scan")))(params)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(fused, scan))
    print(f"HighwayRNN: fused and scan gradients differ by at most {diff:.2e}")

    # The same cell as a Flax layer (linen here; jf.nnx.RNN(cell, 8, rngs=...)
    # for nnx), with no extra code: its params are the cell's, field by field.
    import jaxrnn.flax as jf

    layer = jf.RNN(cell)
    variables = layer.init(jax.random.PRNGKey(2), xs)
    ys = layer.apply(variables, xs, seq_lengths=lengths)
    _, ys_rnn = jr.rnn(cell, HighwayParams(**variables["params"]), xs, seq_lengths=lengths)
    print(f"jr.flax.RNN(HighwayRNN) equals jr.rnn: {bool(jnp.all(ys == ys_rnn))}")


if __name__ == "__main__":
    main()
