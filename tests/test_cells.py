"""Cells: layouts, initializers, configs, and single steps against the equations."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS, HIDDEN, INPUT, assert_trees_close, random_params, random_state

import jaxrnn as jr

KEY = jax.random.PRNGKey(0)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_step(cell, params, state, x):
    """One step written straight from the equations of DESIGN.md, in NumPy."""
    p = {k: np.asarray(v) for k, v in params._asdict().items()}
    x = np.asarray(x)
    H = cell.hidden_size
    if isinstance(cell, (jr.SimpleRNN, jr.IRNN)):
        a = x @ p["w_ih"] + np.asarray(state) @ p["w_hh"] + p["b"]
        act = np.tanh if cell.activation == "tanh" else (lambda v: np.maximum(v, 0.0))
        h = act(a)
        return h, h
    if isinstance(cell, jr.LSTM):
        h, c = np.asarray(state.h), np.asarray(state.c)
        a = x @ p["w_ih"] + h @ p["w_hh"] + p["b"]
        i, f, g, o = (a[..., k * H : (k + 1) * H] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return (h, c), h
    h = np.asarray(state)
    W_i = [p["w_ih"][:, k * H : (k + 1) * H] for k in range(3)]
    W_h = [p["w_hh"][:, k * H : (k + 1) * H] for k in range(3)]
    b = [p["b"][k * H : (k + 1) * H] for k in range(3)]
    r = _sigmoid(x @ W_i[0] + b[0] + h @ W_h[0])
    z = _sigmoid(x @ W_i[1] + b[1] + h @ W_h[1])
    if cell.reset_after:
        n = np.tanh(x @ W_i[2] + b[2] + r * (h @ W_h[2] + p["b_hn"]))
    else:
        n = np.tanh(x @ W_i[2] + b[2] + (r * h) @ W_h[2] + p["b_hn"])
    h = (1 - z) * n + z * h
    return h, h


def test_step_matches_equations(cell, prec):
    params = random_params(cell, KEY, dtype=prec.dtype)
    state = random_state(cell, jax.random.PRNGKey(1), (2,), prec.dtype)
    x = jax.random.normal(jax.random.PRNGKey(2), (2, INPUT), prec.dtype)
    new_state, y = cell(params, state, x)
    want_state, want_y = numpy_step(cell, params, state, x)
    assert y.dtype == prec.dtype
    assert_trees_close(y, want_y, prec)
    if isinstance(cell, jr.LSTM):
        assert_trees_close((new_state.h, new_state.c), want_state, prec)
    else:
        assert_trees_close(new_state, want_state, prec)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_init_layout(cell, dtype):
    params = cell.init(KEY, input_size=5, dtype=dtype)
    G = {jr.SimpleRNN: 1, jr.IRNN: 1, jr.LSTM: 4, jr.GRU: 3}[type(cell)]
    assert isinstance(params, cell.params_type)
    shapes = {k: v.shape for k, v in params._asdict().items()}
    want = {"w_ih": (5, G * HIDDEN), "w_hh": (HIDDEN, G * HIDDEN), "b": (G * HIDDEN,)}
    if isinstance(cell, jr.GRU):
        want["b_hn"] = (HIDDEN,)
    assert shapes == want
    assert all(leaf.dtype == jnp.dtype(dtype) for leaf in params)


def test_default_dtype_follows_x64():
    assert jr.LSTM(3).init(KEY, 2).w_ih.dtype == jnp.float32
    with jax.enable_x64(True):
        assert jr.LSTM(3).init(KEY, 2).w_ih.dtype == jnp.float64
        assert jr.LSTM(3).initial_state((2,)).h.dtype == jnp.float64


def test_lstm_default_init():
    H = 16
    params = jr.LSTM(H, forget_bias=1.5).init(KEY, input_size=8)
    b = np.asarray(params.b)
    np.testing.assert_array_equal(b[H : 2 * H], 1.5)
    np.testing.assert_array_equal(np.delete(b, np.s_[H : 2 * H]), 0.0)
    # Each gate's recurrent block is orthogonal, not just the whole matrix.
    for k in range(4):
        blk = np.asarray(params.w_hh[:, k * H : (k + 1) * H])
        np.testing.assert_allclose(blk.T @ blk, np.eye(H), atol=1e-5)
    # Glorot-uniform per (I, H) block: limit sqrt(6 / (I + H)).
    limit = np.sqrt(6.0 / (8 + H))
    assert np.abs(params.w_ih).max() <= limit
    assert np.abs(params.w_ih).max() > 0.8 * limit


def test_gru_default_init():
    H = 8
    params = jr.GRU(H).init(KEY, input_size=3)
    np.testing.assert_array_equal(params.b, 0.0)
    np.testing.assert_array_equal(params.b_hn, 0.0)
    for k in range(3):
        blk = np.asarray(params.w_hh[:, k * H : (k + 1) * H])
        np.testing.assert_allclose(blk.T @ blk, np.eye(H), atol=1e-5)


def test_irnn_init_follows_le_et_al():
    params = jr.IRNN(64, scale=0.5).init(KEY, input_size=64)
    np.testing.assert_array_equal(params.w_hh, 0.5 * np.eye(64))
    np.testing.assert_array_equal(params.b, 0.0)
    std = float(np.std(params.w_ih))
    assert 0.9e-3 < std < 1.1e-3, std  # N(0, 0.001^2) over 4096 draws
    assert jr.IRNN(4).activation == "relu"


def test_simple_rnn_default_init():
    params = jr.SimpleRNN(8).init(KEY, input_size=3)
    np.testing.assert_allclose(params.w_hh.T @ params.w_hh, np.eye(8), atol=1e-5)
    np.testing.assert_array_equal(params.b, 0.0)


def test_initializers_are_constructor_arguments():
    const = jax.nn.initializers.constant
    cell = jr.LSTM(3, w_ih_init=const(0.25), w_hh_init=const(-0.5), b_init=const(2.0))
    params = cell.init(KEY, input_size=2)
    np.testing.assert_array_equal(params.w_ih, 0.25)
    np.testing.assert_array_equal(params.w_hh, -0.5)
    # forget_bias is added on top of b_init's forget block
    np.testing.assert_array_equal(params.b, [2, 2, 2, 3, 3, 3, 2, 2, 2, 2, 2, 2])
    gru = jr.GRU(2, b_init=const(0.5)).init(KEY, 1)
    np.testing.assert_array_equal(gru.b_hn, 0.5)
    irnn = jr.IRNN(2, w_ih_init=const(1.0), b_init=const(-1.0)).init(KEY, 3)
    np.testing.assert_array_equal(irnn.w_ih, 1.0)
    np.testing.assert_array_equal(irnn.b, -1.0)


def test_initializer_of_wrong_shape_is_reported():
    bad = lambda key, shape, dtype=jnp.float32: jnp.zeros((1,), dtype)  # noqa: E731
    with pytest.raises(ValueError, match=r"returned shape \(1,\), expected \(3, 3\)"):
        jr.SimpleRNN(3, w_hh_init=bad).init(KEY, 2)


def test_configs_are_frozen_hashable_and_static():
    assert jr.LSTM(8) == jr.LSTM(8) and hash(jr.LSTM(8)) == hash(jr.LSTM(8))
    assert jr.LSTM(8) != jr.LSTM(8, forget_bias=0.0)
    assert jr.GRU(8) != jr.GRU(8, reset_after=False)
    assert len({jr.SimpleRNN(4), jr.SimpleRNN(4), jr.IRNN(4), jr.SimpleRNN(4, "relu")}) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        jr.LSTM(8).hidden_size = 4  # type: ignore[misc]

    # A cell is a valid static argument: equal configs share one trace.
    traces = 0

    def step(cell, params, x):
        nonlocal traces
        traces += 1
        return cell(params, cell.initial_state((1,)), x)[1]

    jitted = jax.jit(step, static_argnums=0)
    params = jr.LSTM(2).init(KEY, 1)
    jitted(jr.LSTM(2), params, jnp.ones((1, 1)))
    jitted(jr.LSTM(2), params, jnp.ones((1, 1)))
    assert traces == 1


def test_initial_state_shapes():
    assert jr.GRU(5).initial_state().shape == (5,)
    assert jr.GRU(5).initial_state(3).shape == (3, 5)
    state = jr.LSTM(5).initial_state((2, 3), dtype="float16")
    assert isinstance(state, jr.LSTMState)
    assert state.h.shape == state.c.shape == (2, 3, 5)
    assert state.c.dtype == jnp.float16
    np.testing.assert_array_equal(state.c, 0)


def test_custom_activation():
    cell = jr.SimpleRNN(3, activation=jax.nn.softplus)
    params = random_params(cell, KEY)
    x = jnp.ones((1, INPUT))
    state, y = cell(params, cell.initial_state((1,)), x)
    np.testing.assert_allclose(y, jax.nn.softplus(x @ params.w_ih + params.b[None]), rtol=1e-6)


@pytest.mark.parametrize("name", [n for n in CELLS if n != "gru_rb"])
def test_single_step_matches_flax_cell(name):
    """Each cell equals the Flax linen cell it mirrors, given converted weights."""
    cell = CELLS[name]
    params = random_params(cell, KEY)
    state = random_state(cell, jax.random.PRNGKey(1), (2,))
    x = jax.random.normal(jax.random.PRNGKey(2), (2, INPUT))
    flax_cell = jr.interop.flax_cell(cell)
    variables = jr.interop.to_flax_params(cell, params)
    flax_carry, flax_y = flax_cell.apply(variables, jr.interop.to_flax_carry(cell, state), x)
    new_state, y = cell(params, state, x)
    np.testing.assert_allclose(y, flax_y, rtol=1e-6, atol=1e-6)
    got = jr.interop.from_flax_carry(cell, flax_carry)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), new_state, got
    )


@pytest.mark.parametrize("name", ["tanh", "lstm", "gru"])
def test_sequence_matches_flax_rnn(name):
    """The scan driver with seq_lengths and reverse equals Flax's nn.RNN."""
    cell = CELLS[name]
    params = random_params(cell, KEY)
    xs = jax.random.normal(jax.random.PRNGKey(3), (3, 6, INPUT))
    lengths = jnp.array([6, 2, 4])
    variables = {"params": {"cell": jr.interop.to_flax_params(cell, params)["params"]}}
    for reverse in (False, True):
        flax_rnn = nn.RNN(
            jr.interop.flax_cell(cell), return_carry=True, reverse=reverse, keep_order=True
        )
        carry, flax_ys = flax_rnn.apply(variables, xs, seq_lengths=lengths)
        final, ys = jr.rnn(cell, params, xs, seq_lengths=lengths, reverse=reverse, impl="scan")
        valid = (jnp.arange(6)[None, :] < lengths[:, None])[..., None]
        np.testing.assert_allclose(
            jnp.where(valid, ys, 0.0), jnp.where(valid, flax_ys, 0.0), rtol=1e-5, atol=1e-6
        )
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            final,
            jr.interop.from_flax_carry(cell, carry),
        )


_LSTM = jr.LSTM(HIDDEN)
_LSTM_PARAMS = _LSTM.init(KEY, INPUT)
_LSTM_STATE = _LSTM.initial_state((2,))
_GRU = jr.GRU(HIDDEN)
_GRU_PARAMS = _GRU.init(KEY, INPUT)
_X = jnp.ones((2, INPUT))
BAD_STEPS = {
    "x features": (_LSTM, _LSTM_PARAMS, _LSTM_STATE, jnp.ones((2, 5)), ValueError, r"x must have 3 features .*got shape \(2, 5\)"),
    "x integer": (_GRU, _GRU_PARAMS, jnp.zeros((2, HIDDEN)), jnp.ones((2, INPUT), jnp.int32), TypeError, r"x must have a floating dtype, got int32"),
    "x other float": (_GRU, _GRU_PARAMS, jnp.zeros((2, HIDDEN)), _X.astype(jnp.float16), TypeError, r"x has dtype float16 but params have dtype float32"),
    "x list": (_GRU, _GRU_PARAMS, jnp.zeros((2, HIDDEN)), [1.0, 2.0, 3.0], TypeError, r"x must be an array"),
    "state array for LSTM": (_LSTM, _LSTM_PARAMS, jnp.zeros((2, HIDDEN)), _X, TypeError, r"state must be LSTMState for LSTM, got an array of shape \(2, 4\)"),
    "state batch": (_GRU, _GRU_PARAMS, jnp.zeros((3, HIDDEN)), _X, ValueError, r"state must have shape \(2, 4\) .*got shape \(3, 4\)"),
    "state c": (_LSTM, _LSTM_PARAMS, jr.LSTMState(jnp.zeros((2, HIDDEN)), jnp.zeros((2, 5))), _X, ValueError, r"state.c must have shape \(2, 4\).*got shape \(2, 5\)"),
    "state dtype": (_GRU, _GRU_PARAMS, jnp.zeros((2, HIDDEN), jnp.float16), _X, TypeError, r"state must have dtype float32 .*got float16"),
    "params dict": (_LSTM, {"w_ih": 1}, _LSTM_STATE, _X, TypeError, r"params must be a LSTMParams for LSTM, got dict"),
    "params of another cell": (_LSTM, _GRU_PARAMS, _LSTM_STATE, _X, TypeError, r"params must be a LSTMParams for LSTM, got a GRUParams"),
}


@pytest.mark.parametrize("case", list(BAD_STEPS), ids=list(BAD_STEPS))
def test_single_step_rejects_bad_input(case):
    cell, params, state, x, error, pattern = BAD_STEPS[case]
    with pytest.raises(error, match=pattern):
        cell(params, state, x)
    if hasattr(x, "dtype"):  # the same checks at trace time under jit
        with pytest.raises(error, match=pattern):
            jax.jit(lambda p, s, x: cell(p, s, x))(params, state, x)


def test_single_step_checks_add_nothing_to_the_program():
    """The step's checks read shapes and dtypes only: its jaxpr is the
    unchecked computation's, equation for equation."""
    cell, params, state = _LSTM, _LSTM_PARAMS, _LSTM_STATE

    def unchecked(p, s, x):
        new = cell.step_from_projection(p, cell.input_projection(p, x), s)
        return new, cell.output(new)

    checked = jax.make_jaxpr(cell)(params, state, _X)
    plain = jax.make_jaxpr(unchecked)(params, state, _X)
    assert str(checked) == str(plain)


@pytest.mark.parametrize(
    "make, error, pattern",
    [
        (lambda: jr.LSTM(4, forget_bias=float("nan")), ValueError, r"forget_bias must be a finite float, got nan"),
        (lambda: jr.LSTM(4, forget_bias=float("inf")), ValueError, r"forget_bias must be a finite float, got inf"),
        (lambda: jr.IRNN(4, scale=float("nan")), ValueError, r"scale must be a finite float, got nan"),
        (lambda: jr.LSTM(4, w_ih_init="glorot"), TypeError, r"w_ih_init must be an initializer.*got str 'glorot'"),
        (lambda: jr.GRU(4, b_init=0.0), TypeError, r"b_init must be an initializer.*got float 0.0"),
        (lambda: jr.LSTM(4).init(0, 3), TypeError, r"key must be a PRNG key .*got int 0"),
        (lambda: jr.LSTM(4).init(jnp.ones(2), 3), TypeError, r"key must be a PRNG key .*dtype float32"),
    ],
)
def test_configs_reject_non_finite_and_non_callable(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


# --------------------------------------------------------------------------
# options: bias=False, gate_fn/activation_fn, residual, proj_size

_F32 = dataclasses.make_dataclass("P", ["dtype", "rtol", "atol"])(np.dtype("float32"), 1e-6, 1e-6)


@pytest.mark.parametrize(
    "cell, absent",
    [
        (jr.SimpleRNN(HIDDEN, bias=False), ("b",)),
        (jr.IRNN(HIDDEN, bias=False), ("b",)),
        (jr.LSTM(HIDDEN, bias=False), ("b",)),
        (jr.GRU(HIDDEN, bias=False), ("b", "b_hn")),
        (jr.LSTM(HIDDEN, proj_size=2, bias=False), ("b",)),
    ],
    ids=["tanh", "irnn", "lstm", "gru", "lstmp"],
)
def test_bias_false_has_no_bias_parameters(cell, absent):
    """The bias fields are None (no leaf at all, so nothing trains them), the
    step is the biased cell's with zero biases, and check_params wants None."""
    params = random_params(cell, KEY)
    for f in absent:
        assert getattr(params, f) is None
    assert len(jax.tree_util.tree_leaves(params)) == len(params) - len(absent)
    biased = dataclasses.replace(cell, bias=True)
    zeros = params._replace(**{f: jnp.zeros(biased._param_shapes(INPUT)[f]) for f in absent})
    state = random_state(cell, jax.random.PRNGKey(1), (2,))
    x = jax.random.normal(jax.random.PRNGKey(2), (2, INPUT))
    assert_trees_close(cell(params, state, x), biased(zeros, state, x), _F32)
    with pytest.raises(ValueError, match=rf"params.{absent[0]} must be None for .*bias=False"):
        cell.check_params(zeros)
    with pytest.raises(ValueError, match=rf"params.{absent[0]} must be an array of shape .* got None"):
        biased.check_params(params)


def _gate(x):
    return 0.5 * (jnp.tanh(x) + 1.0)


@pytest.mark.parametrize(
    "cell",
    [
        jr.LSTM(HIDDEN, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
        jr.GRU(HIDDEN, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
        jr.SimpleRNN(HIDDEN, residual=True),
    ],
    ids=["lstm", "gru", "residual"],
)
def test_gate_and_activation_functions_match_flax(cell):
    """Flax's gate_fn/activation_fn (LSTMCell, GRUCell) and SimpleCell's residual."""
    params = random_params(cell, KEY)
    state = random_state(cell, jax.random.PRNGKey(1), (2,))
    x = jax.random.normal(jax.random.PRNGKey(2), (2, INPUT))
    flax_cell = jr.interop.flax_cell(cell)
    if not isinstance(cell, jr.SimpleRNN):
        assert (flax_cell.gate_fn, flax_cell.activation_fn) == (_gate, jax.nn.soft_sign)
    else:
        assert flax_cell.residual
    variables = jr.interop.to_flax_params(cell, params)
    _, flax_y = flax_cell.apply(variables, jr.interop.to_flax_carry(cell, state), x)
    _, y = cell(params, state, x)
    np.testing.assert_allclose(y, flax_y, rtol=1e-6, atol=1e-6)
    # and differs from the default cell's
    default = type(cell)(HIDDEN)
    assert not np.allclose(y, default(params, state, x)[1], atol=1e-3)


def test_lstm_with_projection_step_and_state():
    H, P = HIDDEN, 2
    cell = jr.LSTM(H, proj_size=P)
    assert not cell.elementwise and jr.LSTM(H).elementwise
    assert cell.params_type is jr.LSTMPParams and jr.LSTM(H).params_type is jr.LSTMParams
    params = random_params(cell, KEY)
    assert {k: v.shape for k, v in params._asdict().items()} == {
        "w_ih": (INPUT, 4 * H), "w_hh": (P, 4 * H), "b": (4 * H,), "w_hr": (H, P)
    }
    state = cell.initial_state((2,))
    assert (state.h.shape, state.c.shape) == ((2, P), (2, H))
    state = random_state(cell, jax.random.PRNGKey(1), (2,))
    x = jax.random.normal(jax.random.PRNGKey(2), (2, INPUT))
    new, y = cell(params, state, x)
    # the equations (Sak et al. 2014; PyTorch's nn.LSTM(proj_size))
    p = {k: np.asarray(v, np.float64) for k, v in params._asdict().items()}
    a = np.asarray(x) @ p["w_ih"] + np.asarray(state.h) @ p["w_hh"] + p["b"]
    i, f, g, o = (a[:, k * H : (k + 1) * H] for k in range(4))
    c = _sigmoid(f) * np.asarray(state.c) + _sigmoid(i) * np.tanh(g)
    h = (_sigmoid(o) * np.tanh(c)) @ p["w_hr"]
    np.testing.assert_allclose(new.c, c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y, new.h)
    # the keys of the other weights are those of an LSTM without projection
    plain = jr.LSTM(H).init(KEY, INPUT)
    np.testing.assert_array_equal(cell.init(KEY, INPUT).w_ih, plain.w_ih)
    with pytest.raises(ValueError, match=r"state.h must have shape \(2, 2\) .*then proj_size 2\), got shape \(2, 4\)"):
        cell(params, jr.LSTM(H).initial_state((2,)), x)
    with pytest.raises(TypeError, match=r"params must be a LSTMPParams for LSTM"):
        cell(jr.LSTM(H).init(KEY, INPUT), state, x)
    with pytest.raises(NotImplementedError, match="no elementwise step"):
        cell.pointwise(a, a, state)


@pytest.mark.parametrize(
    "make, error, pattern",
    [
        (lambda: jr.GRU(4, bias=1), TypeError, r"bias must be a bool, got int 1"),
        (lambda: jr.SimpleRNN(4, residual="yes"), TypeError, r"residual must be a bool, got str 'yes'"),
        (lambda: jr.LSTM(4, gate_fn="sigmoid"), TypeError, r"gate_fn must be an elementwise function.*got str 'sigmoid'"),
        (lambda: jr.GRU(4, activation_fn=None), TypeError, r"activation_fn must be an elementwise function.*got None"),
        (lambda: jr.LSTM(4, proj_size=0), ValueError, r"proj_size must be None \(no projection\) or a positive int, got 0"),
        (lambda: jr.LSTM(4, proj_size=2.0), ValueError, r"proj_size must be None .* got 2.0"),
        (lambda: jr.MinGRU(4, bias=None), TypeError, r"bias must be a bool, got None"),
    ],
)
def test_option_configs_are_checked(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_options_keep_configs_hashable_and_equal():
    assert jr.LSTM(4, proj_size=2, bias=False) == jr.LSTM(4, proj_size=2, bias=False)
    assert hash(jr.GRU(4, gate_fn=_gate)) == hash(jr.GRU(4, gate_fn=_gate))
    assert jr.GRU(4, bias=False) != jr.GRU(4)
