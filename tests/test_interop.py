"""Weight conversion to and from Flax linen cells."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS, INPUT, random_params

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
