"""Bidirectional layers and stacks, built from rnn()."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import INPUT, Precision, assert_trees_close, random_params

import jaxrnn as jr

KEY = jax.random.PRNGKey(0)
F32 = Precision(np.dtype("float32"), rtol=1e-5, atol=1e-6)
XS = jax.random.normal(jax.random.PRNGKey(1), (3, 6, INPUT))
LENGTHS = jnp.array([6, 3, 1])


def test_bidirectional_matches_flax():
    fw, bw = jr.LSTM(4), jr.GRU(5)
    p_fw, p_bw = random_params(fw, KEY), random_params(bw, jax.random.PRNGKey(7))
    (f_fw, f_bw), ys = jr.bidirectional_rnn(
        (fw, bw), (p_fw, p_bw), XS, seq_lengths=LENGTHS, impl="scan"
    )
    assert ys.shape == (3, 6, 9)

    flax_bi = nn.Bidirectional(
        nn.RNN(jr.interop.flax_cell(fw)), nn.RNN(jr.interop.flax_cell(bw)), return_carry=True
    )
    variables = {
        "params": {
            "forward_rnn": {"cell": jr.interop.to_flax_params(fw, p_fw)["params"]},
            "backward_rnn": {"cell": jr.interop.to_flax_params(bw, p_bw)["params"]},
        }
    }
    (c_fw, c_bw), flax_ys = flax_bi.apply(variables, XS, seq_lengths=LENGTHS)
    valid = (jnp.arange(6)[None, :] < LENGTHS[:, None])[..., None]
    assert_trees_close(jnp.where(valid, ys, 0.0), jnp.where(valid, flax_ys, 0.0), F32)
    assert_trees_close(f_fw, jr.interop.from_flax_carry(fw, c_fw), F32)
    assert_trees_close(f_bw, c_bw, F32)


def test_bidirectional_merges():
    cell = jr.GRU(4)
    params = (random_params(cell, KEY), random_params(cell, jax.random.PRNGKey(3)))
    _, y_fw = jr.rnn(cell, params[0], XS, impl="scan")
    _, y_bw = jr.rnn(cell, params[1], XS, reverse=True, impl="scan")
    _, summed = jr.bidirectional_rnn((cell, cell), params, XS, merge="sum", impl="scan")
    _, prod = jr.bidirectional_rnn((cell, cell), params, XS, merge=jnp.multiply, impl="scan")
    assert_trees_close(summed, y_fw + y_bw, F32)
    assert_trees_close(prod, y_fw * y_bw, F32)


def test_stack_equals_chained_layers():
    layers = [jr.LSTM(4), (jr.GRU(3), jr.SimpleRNN(2)), jr.IRNN(5)]
    params = jr.init_stacked(KEY, layers, INPUT)
    assert params[0].w_ih.shape == (INPUT, 16)
    assert params[1][0].w_ih.shape == (4, 9) and params[1][1].w_ih.shape == (4, 2)
    assert params[2].w_ih.shape == (3 + 2, 5)

    states = (
        jr.LSTM(4).initial_state((3,)),
        (jnp.ones((3, 3)), jnp.full((3, 2), 0.5)),
        jnp.full((3, 5), 0.1),
    )
    finals, ys = jr.stacked_rnn(layers, params, XS, states, seq_lengths=LENGTHS, impl="scan")
    assert ys.shape == (3, 6, 5)

    kw = dict(seq_lengths=LENGTHS, impl="scan")
    f0, h = jr.rnn(layers[0], params[0], XS, states[0], **kw)
    f1, h = jr.bidirectional_rnn(layers[1], params[1], h, states[1], **kw)
    f2, h = jr.rnn(layers[2], params[2], h, states[2], **kw)
    assert_trees_close(ys, h, F32)
    assert_trees_close(finals, (f0, f1, f2), F32)

    # time-major stacks agree with batch-major ones
    tm_finals, tm_ys = jr.stacked_rnn(
        layers, params, jnp.swapaxes(XS, 0, 1), states, seq_lengths=LENGTHS,
        time_major=True, impl="scan",
    )
    assert_trees_close(jnp.swapaxes(tm_ys, 0, 1), ys, F32)
    assert_trees_close(tm_finals, finals, F32)


def test_stacks_of_projected_lstms_feed_proj_size_features():
    """An LSTM(proj_size=P) passes P features up the stack (init_stacked sizes
    the next layer for them), alone or in a bidirectional pair."""
    layers = [jr.LSTM(6, proj_size=3), (jr.LSTM(5, proj_size=2), jr.GRU(4)), jr.GRU(2)]
    params = jr.init_stacked(KEY, layers, INPUT)
    assert params[1][0].w_ih.shape == (3, 20) and params[1][1].w_ih.shape == (3, 12)
    assert params[2].w_ih.shape == (2 + 4, 6)
    finals, ys = jr.stacked_rnn(layers, params, XS, seq_lengths=LENGTHS, impl="scan")
    assert ys.shape == (3, 6, 2) and finals[0].h.shape == (3, 3)
    _, fused = jr.stacked_rnn(layers, params, XS, seq_lengths=LENGTHS, impl="fused")
    assert_trees_close(fused, ys, F32)
    pair = (jr.LSTM(5, proj_size=2), jr.LSTM(3, proj_size=2))
    pair_params = jr.init_stacked(KEY, [pair], INPUT)[0]
    _, summed = jr.bidirectional_rnn(pair, pair_params, XS, merge="sum", impl="scan")
    assert summed.shape == (3, 6, 2)


def test_stack_gradients_flow_to_every_layer():
    layers = [jr.GRU(3), (jr.LSTM(2), jr.LSTM(2))]
    params = jr.init_stacked(KEY, layers, INPUT)
    grads = jax.grad(
        lambda p: jnp.sum(jr.stacked_rnn(layers, p, XS, impl="scan")[1] ** 2)
    )(params)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert jnp.all(jnp.isfinite(leaf))
    assert float(jnp.abs(grads[0].w_hh).sum()) > 0
    assert float(jnp.abs(grads[1][1].w_ih).sum()) > 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_init_stacked_dtype(dtype):
    params = jr.init_stacked(KEY, [jr.GRU(2), jr.GRU(2)], 3, dtype=dtype)
    assert all(leaf.dtype == jnp.dtype(dtype) for leaf in jax.tree_util.tree_leaves(params))
