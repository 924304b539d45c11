"""The sequence driver: rnn(impl="scan") against loops of single steps."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELLS,
    INPUT,
    Precision,
    assert_trees_close,
    random_inputs,
    random_params,
    random_state,
    weighted_loss,
)
from jax.test_util import check_grads

import jaxrnn as jr
from jaxrnn.clipping import clip_gradient

KEY = jax.random.PRNGKey(0)
T, B = 5, 2
F32 = Precision(np.dtype("float32"), rtol=1e-5, atol=1e-6)


def loop_rnn(cell, params, xs, state, bptt_clip=None):
    """A Python loop of single steps over batch-major xs (B, T, I)."""
    if xs.shape[1] == 0:
        return state, jnp.zeros((xs.shape[0], 0, cell.hidden_size), xs.dtype)
    ys = []
    for t in range(xs.shape[1]):
        if bptt_clip is not None:
            state = clip_gradient(state, bptt_clip)
        state, y = cell(params, state, xs[:, t])
        ys.append(y)
    return state, jnp.stack(ys, axis=1)


inputs = functools.partial(random_inputs, batch=B, steps=T)


def test_matches_python_loop(cell, prec):
    params, xs, state = inputs(cell, prec.dtype)

    def run(p, x, s):
        return weighted_loss(*jr.rnn(cell, p, x, s, impl="scan"))

    def ref(p, x, s):
        return weighted_loss(*loop_rnn(cell, p, x, s))

    final, ys = jr.rnn(cell, params, xs, state, impl="scan")
    want_final, want_ys = jax.jit(loop_rnn, static_argnums=0)(cell, params, xs, state)
    assert ys.dtype == prec.dtype
    assert_trees_close(ys, want_ys, prec)
    assert_trees_close(final, want_final, prec)
    got = jax.jit(jax.grad(run, argnums=(0, 1, 2)))(params, xs, state)
    want = jax.jit(jax.grad(ref, argnums=(0, 1, 2)))(params, xs, state)
    assert_trees_close(got, want, prec)


def test_check_grads(cell):
    with jax.enable_x64(True):
        params, xs, state = inputs(cell, jnp.float64, batch=2, steps=3)
        lengths = jnp.array([3, 1])

        def run(p, x, s):
            return jr.rnn(cell, p, x, s, seq_lengths=lengths, reverse=True, impl="scan")

        check_grads(run, (params, xs, state), order=1, modes=["rev"])


SEQ_CASES = [
    *[(name, reverse, None) for name in ["tanh", "lstm", "gru", "gru_rb"] for reverse in (False, True)],
    ("lstm", False, 0.05),
    ("lstm", True, 0.05),
    ("gru", True, 0.05),
]


@pytest.mark.parametrize("name,reverse,bptt_clip", SEQ_CASES, ids=str)
def test_seq_lengths_equal_unpadded_runs(name, reverse, bptt_clip):
    """A padded batch gives, per sequence, what its unpadded run alone gives."""
    cell = CELLS[name]
    params, xs, state = inputs(cell, jnp.float32, batch=3)
    lengths = jnp.array([T, 2, 0])

    final, ys = jr.rnn(
        cell, params, xs, state, seq_lengths=lengths, reverse=reverse,
        bptt_clip=bptt_clip, impl="scan",
    )

    def padded_loss(p, x, s):
        f, y = jr.rnn(cell, p, x, s, seq_lengths=lengths, reverse=reverse,
                      bptt_clip=bptt_clip, impl="scan")
        return weighted_loss(f, y)

    grads = jax.jit(jax.grad(padded_loss, argnums=(0, 1, 2)))(params, xs, state)
    param_grads = jax.tree_util.tree_map(jnp.zeros_like, params)
    w_full = jnp.sin(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)

    for b, L in enumerate(lengths.tolist()):
        x_b = xs[b : b + 1, :L]
        s_b = jax.tree_util.tree_map(lambda a: a[b : b + 1], state)
        w_b = w_full[b : b + 1, :L]

        def alone(p, x, s):
            x_in = x[:, ::-1] if reverse else x
            f, y = loop_rnn(cell, p, x_in, s, bptt_clip=bptt_clip)
            y = y[:, ::-1] if reverse else y
            return f, y

        def alone_loss(p, x, s):
            f, y = alone(p, x, s)
            return jnp.sum(w_b * y) + sum(jnp.sum(jnp.cos(l)) for l in jax.tree_util.tree_leaves(f))

        f_b, y_b = jax.jit(alone)(params, x_b, s_b)
        assert_trees_close(ys[b : b + 1, :L], y_b, F32)
        np.testing.assert_array_equal(ys[b, L:], 0.0)
        assert_trees_close(jax.tree_util.tree_map(lambda a: a[b : b + 1], final), f_b, F32)

        g_p, g_x, g_s = jax.jit(jax.grad(alone_loss, argnums=(0, 1, 2)))(params, x_b, s_b)
        param_grads = jax.tree_util.tree_map(jnp.add, param_grads, g_p)
        assert_trees_close(grads[1][b : b + 1, :L], g_x, F32)
        np.testing.assert_array_equal(grads[1][b, L:], 0.0)  # padding gets no gradient
        assert_trees_close(jax.tree_util.tree_map(lambda a: a[b : b + 1], grads[2]), g_s, F32)
    assert_trees_close(grads[0], param_grads, Precision(np.dtype("float32"), 1e-4, 1e-5))


@pytest.mark.parametrize("name", ["relu", "lstm"])
def test_reverse_without_lengths_runs_flipped_sequence(name):
    cell = CELLS[name]
    params, xs, state = inputs(cell, jnp.float32)
    final, ys = jr.rnn(cell, params, xs, state, reverse=True, impl="scan")
    want_final, want_ys = loop_rnn(cell, params, xs[:, ::-1], state)
    assert_trees_close(ys, want_ys[:, ::-1], F32)
    assert_trees_close(final, want_final, F32)


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3), (0,)], ids=str)
def test_batch_dims_and_time_major(batch_shape):
    cell = CELLS["lstm"]
    params = random_params(cell, KEY)
    xs = jax.random.normal(KEY, (*batch_shape, T, INPUT))
    state = random_state(cell, jax.random.PRNGKey(3), batch_shape)
    lengths = jax.random.randint(KEY, batch_shape, 0, T + 1)
    final, ys = jr.rnn(cell, params, xs, state, seq_lengths=lengths, impl="scan")
    assert ys.shape == (*batch_shape, T, cell.hidden_size)
    assert final.h.shape == final.c.shape == (*batch_shape, cell.hidden_size)

    # The same sequences as one flat batch.
    n = int(np.prod(batch_shape))
    H = cell.hidden_size
    flat_final, flat_ys = jr.rnn(
        cell, params, xs.reshape(n, T, INPUT),
        jax.tree_util.tree_map(lambda a: a.reshape(n, H), state),
        seq_lengths=lengths.reshape(n), impl="scan",
    )
    assert_trees_close(ys.reshape(n, T, H), flat_ys, F32)
    assert_trees_close(jax.tree_util.tree_map(lambda a: a.reshape(n, H), final), flat_final, F32)

    # time_major: the same computation with time leading, inputs and outputs.
    tm_final, tm_ys = jr.rnn(
        cell, params, jnp.moveaxis(xs, -2, 0), state, seq_lengths=lengths,
        time_major=True, impl="scan",
    )
    assert_trees_close(jnp.moveaxis(tm_ys, 0, -2), ys, F32)
    assert_trees_close(tm_final, final, F32)


def test_empty_sequence_returns_initial_state():
    cell = CELLS["gru"]
    params, _, state = inputs(cell, jnp.float32)
    final, ys = jr.rnn(cell, params, jnp.zeros((B, 0, INPUT)), state, impl="scan")
    assert ys.shape == (B, 0, cell.hidden_size)
    np.testing.assert_array_equal(final, state)


def test_unroll_changes_nothing():
    cell = CELLS["lstm"]
    params, xs, state = inputs(cell, jnp.float32)
    a = jr.rnn(cell, params, xs, state, impl="scan")
    b = jr.rnn(cell, params, xs, state, impl="scan", unroll=2)
    c = jr.rnn(cell, params, xs, state, impl="scan", unroll=True)
    assert_trees_close(a, b, F32)
    assert_trees_close(a, c, F32)


def test_jit_and_vmap():
    cell = CELLS["gru"]
    params, xs, state = inputs(cell, jnp.float32)
    run = lambda p, x, s: jr.rnn(cell, p, x, s, impl="scan")  # noqa: E731
    eager = run(params, xs, state)
    assert_trees_close(jax.jit(run)(params, xs, state), eager, F32)

    # vmap over a data axis equals the same axis as a batch dim.
    xs3 = jnp.stack([xs, 2 * xs, -xs])
    s3 = jnp.stack([state] * 3)
    assert_trees_close(jax.vmap(run, in_axes=(None, 0, 0))(params, xs3, s3), run(params, xs3, s3), F32)

    # vmap over params (an ensemble) equals a loop over its members.
    keys = jax.random.split(KEY, 3)
    ensemble = jax.vmap(lambda k: random_params(cell, k))(keys)
    got = jax.vmap(run, in_axes=(0, None, None))(ensemble, xs, state)
    for i, k in enumerate(keys):
        want = run(random_params(cell, k), xs, state)
        assert_trees_close(jax.tree_util.tree_map(lambda a: a[i], got), want, F32)


def test_grad_of_grad_matches_python_loop():
    with jax.enable_x64(True):
        cell = CELLS["lstm"]
        params, xs, state = inputs(cell, jnp.float64, steps=3)
        prec = Precision(np.dtype("float64"), 1e-9, 1e-11)

        def hvp(run):
            loss = lambda p: weighted_loss(*run(p))  # noqa: E731
            return jax.jvp(jax.grad(loss), (params,), (params,))[1]

        got = hvp(lambda p: jr.rnn(cell, p, xs, state, impl="scan"))
        want = hvp(lambda p: loop_rnn(cell, p, xs, state))
        # reverse-over-reverse as well
        gg = jax.grad(lambda p: jnp.sum(jnp.square(jax.grad(
            lambda q: weighted_loss(*jr.rnn(cell, q, xs, state, impl="scan")))(p).w_hh)))(params)
        gg_ref = jax.grad(lambda p: jnp.sum(jnp.square(jax.grad(
            lambda q: weighted_loss(*loop_rnn(cell, q, xs, state)))(p).w_hh)))(params)
        assert_trees_close(got, want, prec)
        assert_trees_close(gg, gg_ref, prec)


@pytest.mark.parametrize("name", ["tanh", "lstm"])
def test_bptt_clip(name):
    cell = CELLS[name]
    params, xs, state = inputs(cell, jnp.float32, steps=8)
    xs = 3.0 * xs

    def grads(clip):
        return jax.grad(
            lambda p, s: weighted_loss(*jr.rnn(cell, p, xs, s, impl="scan", bptt_clip=clip)),
            argnums=(0, 1),
        )(params, state)

    exact, clipped, loose = grads(None), grads(0.01), grads(1e6)
    # values never change
    assert_trees_close(
        jr.rnn(cell, params, xs, state, impl="scan", bptt_clip=0.01),
        jr.rnn(cell, params, xs, state, impl="scan"),
        F32,
    )
    # a threshold no gradient reaches changes nothing
    assert_trees_close(loose, exact, F32)
    # the initial state's gradient leaves the first step clipped: per example
    # its norm is at most the threshold (and the exact one was above it)
    norm = lambda s: jnp.sqrt(sum(jnp.sum(jnp.square(l), -1) for l in jax.tree_util.tree_leaves(s)))  # noqa: E731
    assert np.all(norm(clipped[1]) <= 0.01 * (1 + 1e-5))
    assert np.all(norm(exact[1]) > 0.01)
    # and it is what a loop that clips the state at every step computes
    want = jax.grad(
        lambda p, s: weighted_loss(*loop_rnn(cell, p, xs, s, bptt_clip=0.01)), argnums=(0, 1)
    )(params, state)
    assert_trees_close(clipped, want, F32)


# --------------------------------------------------------------------------
# padding never matters; values jit cannot check are clamped or poison


def _value_and_grads(cell, impl, **kwargs):
    """A jitted ``(params, xs, state, lengths) -> ((final, ys), grads)``, the
    gradients of :func:`weighted_loss` for params, xs and state."""

    def loss(p, x, s, lengths):
        out = jr.rnn(cell, p, x, s, seq_lengths=lengths, impl=impl, **kwargs)
        return weighted_loss(*out), out

    grad = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)
    return jax.jit(lambda p, x, s, lengths: grad(p, x, s, lengths)[::-1])


# Sampled, not crossed (each case is a compilation). With the bidirectional
# LSTM/GRU stack of the next test, every kind of cell (plain, LSTM, both GRUs)
# runs fused, and scan runs plain and LSTM/GRU cells; reverse and time_major vary.
PADDING_CASES = [
    ("irnn", "fused", True, True),
    ("gru_rb", "fused", False, True),
    ("tanh", "scan", True, False),
]


@pytest.mark.parametrize("name,impl,reverse,time_major", PADDING_CASES, ids=str)
def test_padding_never_matters(name, impl, reverse, time_major):
    """NaN or inf past the lengths changes no value and no gradient (issue 10, #4)."""
    cell = CELLS[name]
    params, xs, state = inputs(cell, jnp.float32, batch=3)
    lengths = jnp.array([T, 2, 0])
    pad = (jnp.arange(T)[None, :] >= lengths[:, None])[..., None]  # (B, T, 1)
    layout = (lambda a: jnp.moveaxis(a, 1, 0)) if time_major else (lambda a: a)
    run = _value_and_grads(cell, impl, reverse=reverse, time_major=time_major)

    want = run(params, layout(jnp.where(pad, 0.0, xs)), state, lengths)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(want))
    for fill in (jnp.nan, jnp.inf, -jnp.inf):
        got = run(params, layout(jnp.where(pad, fill, xs)), state, lengths)
        jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
    dxs = layout(want[1][1])  # back to (B, T, I)
    np.testing.assert_array_equal(jnp.where(pad, dxs, 0.0), 0.0)  # padding: no gradient


def test_traced_seq_lengths_are_clamped():
    """Under jit, lengths past the end run every step and negative ones none,
    in both directions and both impls (issue 10, #5); and NaN padding changes
    nothing in a stack of bidirectional layers (#4)."""
    layers = ((CELLS["lstm"], CELLS["gru"]),)
    params = jr.init_stacked(KEY, layers, INPUT)
    xs = jax.random.normal(KEY, (4, T, INPUT))
    bad = jnp.array([T + 1, -3, 2**31 - 1, 2], jnp.int32)
    clamped = jnp.array([T, 0, T, 2], jnp.int32)
    pad = (jnp.arange(T)[None, :] >= clamped[:, None])[..., None]
    results = {}
    for impl in ("fused", "scan"):

        @jax.jit
        def run(p, x, lengths, impl=impl):
            def loss(p, x):
                out = jr.stacked_rnn(layers, p, x, seq_lengths=lengths, impl=impl)
                return weighted_loss(out[0][0][0], out[1]), out
            return jax.grad(loss, argnums=(0, 1), has_aux=True)(p, x)

        results[impl] = got = run(params, jnp.where(pad, 0.0, xs), clamped)
        assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(got))
        np.testing.assert_array_equal(jnp.where(pad, got[0][1], 0.0), 0.0)
        jax.tree_util.tree_map(
            np.testing.assert_array_equal, run(params, jnp.where(pad, jnp.nan, xs), bad), got
        )
    assert_trees_close(results["fused"], results["scan"], F32)


def test_traced_bptt_clip_not_positive_gives_nan_gradients():
    """Under jit a threshold jr.rnn would refuse (<= 0, NaN) leaves values alone
    and makes the gradients NaN, so a train step skips it (issue 10, #5)."""
    cell = CELLS["tanh"]
    params, xs, state = inputs(cell, jnp.float32, batch=2)
    lengths = jnp.array([T, 0])
    for impl in ("fused", "scan"):
        with pytest.raises(ValueError, match="bptt_clip must be a positive float"):
            jr.rnn(cell, params, xs, state, impl=impl, bptt_clip=float("nan"))

        @jax.jit
        def run(clip, impl=impl):
            return _value_and_grads(cell, impl, bptt_clip=clip)(params, xs, state, lengths)

        values, grads = run(jnp.float32(0.05))
        assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(grads))
        for clip in (0.0, -1.0, np.nan):
            got_values, got_grads = run(jnp.float32(clip))
            jax.tree_util.tree_map(np.testing.assert_array_equal, got_values, values)
            p_grads, xs_grads, s_grads = got_grads
            for leaf in jax.tree_util.tree_leaves((p_grads, xs_grads[0], s_grads)):
                assert np.isnan(leaf).all()
