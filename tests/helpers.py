"""Helpers shared by the tests: the cells under test, tolerances, random inputs."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn as jr

# One instance of each cell variant the library offers. Small sizes keep the
# number and cost of compilations down.
HIDDEN = 4
INPUT = 3

# jaxrnn's registry of named cells, with the IRNN's scale off 1 (so that it
# shows) and the GRU's other variant.
CELLS = {
    **{name: make(HIDDEN) for name, make in jr.cells.NAMED_CELLS.items()},
    "irnn": jr.IRNN(HIDDEN, scale=0.9),
    "gru_rb": jr.GRU(HIDDEN, reset_after=False),
}


@dataclasses.dataclass(frozen=True)
class Precision:
    dtype: np.dtype
    rtol: float
    atol: float


@functools.partial(jax.jit, static_argnames=("cell", "input_size", "dtype"))
def random_params(cell, key, input_size=INPUT, dtype=jnp.float32):
    """Params with every entry random (IRNN's identity and zero biases too),
    so that no term of a cell's equations can hide behind a zero."""
    params = cell.init(key, input_size, dtype)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [
        (0.5 * jax.random.normal(k, leaf.shape, jnp.float32)).astype(dtype)
        for k, leaf in zip(keys, leaves)
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


@functools.partial(jax.jit, static_argnames=("cell", "batch_shape", "dtype"))
def random_state(cell, key, batch_shape, dtype=jnp.float32):
    template = cell.initial_state(batch_shape, dtype)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    keys = jax.random.split(key, len(leaves))
    # Non-negative, so ReLU cells start in their active region.
    leaves = [jnp.abs(jax.random.normal(k, leaf.shape, dtype)) for k, leaf in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def assert_trees_close(a, b, prec):
    jax.tree_util.tree_map(
        lambda x, y: np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=prec.rtol, atol=prec.atol
        ),
        a,
        b,
    )


def random_inputs(cell, dtype, *, batch, steps):
    """``(params, xs (batch, steps, INPUT), state)``, all random, in ``dtype``."""
    params = random_params(cell, jax.random.PRNGKey(0), dtype=dtype)
    xs = jax.random.normal(jax.random.PRNGKey(1), (batch, steps, INPUT), dtype)
    state = random_state(cell, jax.random.PRNGKey(2), (batch,), dtype)
    return params, xs, state


def weighted_loss(final, ys):
    """A loss that weighs every output and the final state differently
    (half-precision outputs are summed in float32)."""
    ys = ys.astype(jnp.float32) if ys.dtype.itemsize < 4 else ys
    w = jnp.sin(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
    leaves = jax.tree_util.tree_leaves(final)
    return jnp.sum(w * ys) + sum(jnp.sum(jnp.cos(leaf)) for leaf in leaves)


def rnn_value_and_grad(cell, params, xs, state, **rnn_options):
    """The value and the gradients in ``(params, xs, state)`` of
    :func:`weighted_loss` of ``jr.rnn(cell, params, xs, state, **rnn_options)``,
    jitted: what the twin tests compare between implementations."""

    def loss(params, xs, state):
        return weighted_loss(*jr.rnn(cell, params, xs, state, **rnn_options))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(params, xs, state)


TRITON_CALL = "__gpu$xla.gpu.triton"


def lowered_grad(loss, platform, *args):
    """The MLIR text of ``jit(grad(loss))`` exported from the CPU for
    ``platform`` ("cuda" or "tpu"): this runs the Pallas->Triton or
    Pallas->Mosaic lowering, where unsupported ops and limits show up."""
    return jax.export.export(
        jax.jit(jax.grad(loss)),
        platforms=[platform],
        disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(TRITON_CALL)],
    )(*args).mlir_module()


def kernel_calls(text, platform):
    """How many Pallas kernel calls the lowered ``text`` holds."""
    return text.count(TRITON_CALL if platform == "cuda" else "tpu_custom_call")
