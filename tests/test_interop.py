"""Weight conversion to and from Flax linen cells."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS, HIDDEN, INPUT, random_params

import jaxrnn as jr
from jaxrnn import interop

KEY = jax.random.PRNGKey(0)
FLAX_CELLS = [n for n in CELLS if n != "gru_rb"]


@pytest.mark.parametrize("name", FLAX_CELLS)
def test_round_trips_are_exact(name):
    cell = CELLS[name]
    params = random_params(cell, KEY)
    back = interop.from_flax_params(cell, interop.to_flax_params(cell, params))
    assert type(back) is type(params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)

    # and from Flax's own initialisation, through jaxrnn and back
    flax_cell = interop.flax_cell(cell)
    variables = flax_cell.init(KEY, flax_cell.initialize_carry(KEY, (2, INPUT)), jnp.ones((2, INPUT)))
    again = interop.to_flax_params(cell, interop.from_flax_params(cell, variables))
    jax.tree_util.tree_map(np.testing.assert_array_equal, again, variables)
    # the inner "params" collection is accepted too
    inner = interop.from_flax_params(cell, variables["params"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, inner, interop.from_flax_params(cell, variables))


def test_carry_conversion_swaps_lstm_order():
    cell = jr.LSTM(3)
    state = jr.LSTMState(h=jnp.ones((2, 3)), c=jnp.zeros((2, 3)))
    carry = interop.to_flax_carry(cell, state)
    np.testing.assert_array_equal(carry[0], state.c)
    np.testing.assert_array_equal(carry[1], state.h)
    back = interop.from_flax_carry(cell, carry)
    assert isinstance(back, jr.LSTMState)
    np.testing.assert_array_equal(back.h, state.h)
    np.testing.assert_array_equal(back.c, state.c)


def test_param_dtype_reaches_flax():
    with jax.enable_x64(True):
        flax_cell = interop.flax_cell(jr.GRU(2), param_dtype=jnp.float64)
        variables = flax_cell.init(
            KEY, flax_cell.initialize_carry(KEY, (1, 3)), jnp.ones((1, 3), jnp.float64)
        )
        params = interop.from_flax_params(jr.GRU(2), variables)
        assert all(leaf.dtype == jnp.float64 for leaf in params)


def test_errors():
    with pytest.raises(ValueError, match=r"GRU\(reset_after=False\) has no Flax counterpart"):
        interop.flax_cell(jr.GRU(2, reset_after=False))
    with pytest.raises(TypeError, match=r"cell must be a jaxrnn SimpleRNN, IRNN, LSTM or GRU, got str"):
        interop.flax_cell("lstm")
    with pytest.raises(ValueError, match=r"variables lack 'ii/kernel'.*top-level keys \['h', 'i'\]"):
        simple = interop.to_flax_params(jr.SimpleRNN(2), jr.SimpleRNN(2).init(KEY, 3))
        interop.from_flax_params(jr.LSTM(2), simple)
    with pytest.raises(ValueError, match=r"converted params.w_ih must have shape \(3, 20\) for LSTM\(hidden_size=5\)"):
        interop.from_flax_params(jr.LSTM(5), interop.to_flax_params(jr.LSTM(2), jr.LSTM(2).init(KEY, 3)))
    with pytest.raises(TypeError, match=r"variables must be a Flax variables dict"):
        interop.from_flax_params(jr.LSTM(2), [1, 2])
    with pytest.raises(ValueError, match=r"Flax's GRUCell always has biases; GRU\(bias=False\) has no Flax counterpart"):
        interop.flax_cell(jr.GRU(2, bias=False))
    with pytest.raises(ValueError, match=r"LSTM\(proj_size=1\) has no Flax counterpart"):
        interop.to_flax_params(jr.LSTM(2, proj_size=1), jr.LSTM(2, proj_size=1).init(KEY, 3))


# ---------------------------------------------------------------- PyTorch
# These use NumPy state dicts, so they run without torch installed;
# tests/test_interop_torch.py holds the conversions to PyTorch's modules.

TORCH_CELLS = [n for n in CELLS if n != "gru_rb"]


def _torch_state_dict(cell, rng, input_size=INPUT, suffixes=("",), layers=1):
    GH, H = cell.num_gates * cell.hidden_size, cell.hidden_size
    sd = {}
    for k in range(layers):
        n_in = input_size if k == 0 else H * len(suffixes)
        for sfx in suffixes:
            sd[f"weight_ih_l{k}{sfx}"] = rng.normal(size=(GH, n_in)).astype(np.float32)
            sd[f"weight_hh_l{k}{sfx}"] = rng.normal(size=(GH, H)).astype(np.float32)
            sd[f"bias_ih_l{k}{sfx}"] = rng.normal(size=(GH,)).astype(np.float32)
            sd[f"bias_hh_l{k}{sfx}"] = rng.normal(size=(GH,)).astype(np.float32)
    return sd


@pytest.mark.parametrize("name", TORCH_CELLS)
def test_torch_round_trip_is_exact(name):
    """jaxrnn -> PyTorch -> jaxrnn, for a stack of bidirectional layers."""
    cell = CELLS[name]
    H = cell.hidden_size
    params = ((random_params(cell, KEY), random_params(cell, jax.random.PRNGKey(1))),) * 2
    # the second layer takes 2H inputs: rebuild it with that size from the first's pieces
    second = tuple(
        p._replace(w_ih=jnp.concatenate([p.w_hh, p.w_hh[::-1]], axis=0)) for p in params[0]
    )
    params = (params[0], second)
    sd = interop.to_torch(cell, params, num_layers=2, bidirectional=True)
    assert sd["weight_ih_l1_reverse"].shape == (cell.num_gates * H, 2 * H)
    assert all(v.flags.writeable and v.flags.c_contiguous for v in sd.values())
    back = interop.from_torch(cell, sd, num_layers=2, bidirectional=True)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_torch_bias_folding():
    rng = np.random.default_rng(0)
    lstm, gru = jr.LSTM(HIDDEN), jr.GRU(HIDDEN)
    sd = _torch_state_dict(lstm, rng)
    p = interop.from_torch(lstm, sd)
    np.testing.assert_array_equal(p.w_ih, sd["weight_ih_l0"].T)
    np.testing.assert_array_equal(p.w_hh, sd["weight_hh_l0"].T)
    np.testing.assert_array_equal(p.b, sd["bias_ih_l0"] + sd["bias_hh_l0"])

    sd = _torch_state_dict(gru, rng)
    p = interop.from_torch(gru, sd)
    H = HIDDEN
    b_ih, b_hh = sd["bias_ih_l0"], sd["bias_hh_l0"]
    np.testing.assert_array_equal(p.b[: 2 * H], b_ih[: 2 * H] + b_hh[: 2 * H])
    np.testing.assert_array_equal(p.b[2 * H :], b_ih[2 * H :])
    np.testing.assert_array_equal(p.b_hn, b_hh[2 * H :])
    back = interop.to_torch(gru, p)
    np.testing.assert_array_equal(back["bias_ih_l0"], p.b)
    np.testing.assert_array_equal(back["bias_hh_l0"], np.concatenate([np.zeros(2 * H, np.float32), p.b_hn]))


def test_torch_structures():
    rng = np.random.default_rng(1)
    cell = jr.SimpleRNN(HIDDEN)
    single = interop.from_torch(cell, _torch_state_dict(cell, rng))
    assert isinstance(single, jr.SimpleRNNParams)
    one_layer = interop.from_torch(cell, _torch_state_dict(cell, rng), num_layers=1)
    assert isinstance(one_layer, tuple) and len(one_layer) == 1
    assert isinstance(one_layer[0], jr.SimpleRNNParams)
    pair = interop.from_torch(cell, _torch_state_dict(cell, rng, suffixes=("", "_reverse")), bidirectional=True)
    assert len(pair) == 2 and all(isinstance(p, jr.SimpleRNNParams) for p in pair)

    states = (jnp.ones((2, HIDDEN)), jnp.zeros((2, HIDDEN)))
    h = interop.to_torch_state(cell, states, bidirectional=True)
    assert h.shape == (2, 2, HIDDEN)
    back = interop.from_torch_state(cell, h, bidirectional=True)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, states)
    lstm_states = (jr.LSTMState(h=jnp.ones((2, HIDDEN)), c=2 * jnp.ones((2, HIDDEN))),) * 3
    hc = interop.to_torch_state(jr.LSTM(HIDDEN), lstm_states, num_layers=3)
    assert hc[0].shape == hc[1].shape == (3, 2, HIDDEN)
    back = interop.from_torch_state(jr.LSTM(HIDDEN), hc, num_layers=3)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, lstm_states)


def test_torch_errors():
    rng = np.random.default_rng(2)
    lstm = jr.LSTM(HIDDEN)
    sd = _torch_state_dict(lstm, rng, layers=2, suffixes=("", "_reverse"))
    with pytest.raises(ValueError, match=r"GRU\(reset_after=False\) has no PyTorch counterpart"):
        interop.from_torch(jr.GRU(2, reset_after=False), sd)
    with pytest.raises(ValueError, match=r"SimpleRNN\(activation=<.*\) has no PyTorch counterpart"):
        interop.to_torch(jr.SimpleRNN(2, activation=jnp.sin), None)
    with pytest.raises(TypeError, match=r"cell must be a jaxrnn SimpleRNN, IRNN, LSTM or GRU, got str"):
        interop.from_torch("lstm", sd)
    with pytest.raises(ValueError, match=r"bidirectional module's weights .*pass bidirectional=True"):
        interop.from_torch(lstm, sd, num_layers=2)
    with pytest.raises(ValueError, match=r"state_dict holds 2 layers .*expected 1; pass num_layers=2"):
        interop.from_torch(lstm, sd, bidirectional=True)
    with pytest.raises(ValueError, match=r"state_dict lacks 'weight_ih_l2'.*num_layers=3"):
        interop.from_torch(lstm, sd, num_layers=3, bidirectional=True)
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\] must have shape \(9, input_size\) for a torch nn.GRU\(hidden_size=3.*got shape \(16, 3\)"):
        interop.from_torch(jr.GRU(3), _torch_state_dict(lstm, rng))
    with pytest.raises(ValueError, match=r"state_dict has unexpected keys \['scale'\]"):
        interop.from_torch(lstm, {**_torch_state_dict(lstm, rng), "scale": np.ones(1)})
    with pytest.raises(TypeError, match=r"state_dict must be a mapping"):
        interop.from_torch(lstm, [1])
    with pytest.raises(TypeError, match=r"num_layers must be a positive int, got str"):
        interop.from_torch(lstm, sd, num_layers="2")
    params = interop.from_torch(lstm, sd, num_layers=2, bidirectional=True)
    with pytest.raises(TypeError, match=r"params must be a tuple of num_layers=3 layers, got 2 items"):
        interop.to_torch(lstm, params, num_layers=3, bidirectional=True)
    with pytest.raises(TypeError, match=r"params\[0\] must be a \(forward, backward\) pair"):
        interop.to_torch(lstm, tuple(p[0] for p in params), num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"params\[1\]\[0\].w_ih must take 8 inputs .*got 3"):
        interop.to_torch(lstm, (params[0], (params[0][0], params[0][1])), num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"hidden must have shape \(4, \*batch, 4\)"):
        interop.from_torch_state(jr.GRU(HIDDEN), np.zeros((2, 1, HIDDEN)), num_layers=2, bidirectional=True)


_H = HIDDEN
_S = jnp.zeros((2, _H))
BAD_STATES = {
    "to_torch_state h, c batches": (lambda: interop.to_torch_state(jr.LSTM(_H), jr.LSTMState(_S, jnp.zeros((3, _H)))), ValueError, r"state.h and state.c must have one shape, got \(2, 4\) and \(3, 4\)"),
    "to_torch_state hidden size": (lambda: interop.to_torch_state(jr.GRU(_H), jnp.zeros((2, 5))), ValueError, r"state must have shape \(\*batch, 4\).*got shape \(2, 5\)"),
    "to_torch_state layer batches": (lambda: interop.to_torch_state(jr.GRU(_H), (_S, jnp.zeros((3, _H))), num_layers=2), ValueError, r"must have one shape, got \(2, 4\) and \(3, 4\)"),
    "from_torch_state h, c batches": (lambda: interop.from_torch_state(jr.LSTM(_H), (np.zeros((1, 2, _H)), np.zeros((1, 3, _H)))), ValueError, r"hidden\[0\] \(h\) and hidden\[1\] \(c\) must have one batch shape, got \(1, 2, 4\) and \(1, 3, 4\)"),
    "from_torch_state integer": (lambda: interop.from_torch_state(jr.GRU(_H), np.zeros((1, 2, _H), np.int32)), TypeError, r"hidden must have a floating dtype, got int32"),
    "from_flax_carry LSTM array": (lambda: interop.from_flax_carry(jr.LSTM(_H), _S), TypeError, r"carry must be Flax's LSTM carry, the tuple \(c, h\), got an array of shape \(2, 4\)"),
    "from_flax_carry LSTM triple": (lambda: interop.from_flax_carry(jr.LSTM(_H), (_S, _S, _S)), TypeError, r"carry must be Flax's LSTM carry"),
    "from_flax_carry c, h batches": (lambda: interop.from_flax_carry(jr.LSTM(_H), (_S, jnp.zeros((3, _H)))), ValueError, r"carry\[0\] \(c\) and carry\[1\] \(h\) must have one shape"),
    "from_flax_carry GRU pair": (lambda: interop.from_flax_carry(jr.GRU(_H), (_S, _S)), TypeError, r"carry must be an array .*got a tuple of 2 items"),
    "to_flax_carry LSTM array": (lambda: interop.to_flax_carry(jr.LSTM(_H), _S), TypeError, r"state must be an LSTMState\(h, c\) for LSTM, got an array"),
    "to_flax_carry hidden size": (lambda: interop.to_flax_carry(jr.GRU(_H), jnp.zeros((2, 5))), ValueError, r"state must have shape \(\*batch, 4\)"),
    "flax_cell dtype": (lambda: interop.flax_cell(jr.LSTM(_H), dtype="foo"), TypeError, r"dtype must be a floating dtype, got 'foo'"),
    "flax_cell param_dtype": (lambda: interop.flax_cell(jr.LSTM(_H), param_dtype=jnp.int32), TypeError, r"param_dtype must be a floating dtype, got int32"),
    "from_flax_params leaf": (lambda: interop.from_flax_params(jr.LSTM(_H), {f"{s}{g}": {"kernel": 1, "bias": 2} for s in "ih" for g in "ifgo"}), TypeError, r"variables\['ii'\]\['kernel'\] must be an array .*got int 1"),
    "from_flax_params rank": (lambda: interop.from_flax_params(jr.SimpleRNN(_H), {"i": {"kernel": np.zeros(3), "bias": np.zeros(_H)}, "h": {"kernel": np.zeros((_H, _H))}}), ValueError, r"variables\['i'\]\['kernel'\] must have 2 dims .*got shape \(3,\)"),
    "from_torch keys": (lambda: interop.from_torch(jr.GRU(_H), {1: np.zeros(3)}), TypeError, r"state_dict keys must be str .*got int 1"),
    "torch_module batch_first": (lambda: interop.torch_module(jr.GRU(_H), 3, batch_first="yes"), TypeError, r"batch_first must be a bool, got str 'yes'"),
}


@pytest.mark.parametrize("case", list(BAD_STATES), ids=list(BAD_STATES))
def test_state_and_carry_conversions_reject_bad_input(case):
    make, error, pattern = BAD_STATES[case]
    with pytest.raises(error, match=pattern):
        make()


def test_import_jaxrnn_does_not_import_flax():
    import subprocess
    import sys

    code = "import sys, jaxrnn; jaxrnn.interop.to_flax_params; print(sorted(m for m in sys.modules if m.split('.')[0] == 'flax'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
