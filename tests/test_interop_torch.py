"""PyTorch interop against PyTorch's own modules (skipped without torch)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CELLS, INPUT, random_state

import jaxrnn as jr
from jaxrnn import interop

torch = pytest.importorskip("torch")

TORCH_CELLS = ["tanh", "relu", "irnn", "lstm", "gru"]
BATCH, STEPS = 2, 5
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _run_torch(module, xs, hidden=None):
    with torch.no_grad():
        if hidden is None:
            ys, hn = module(torch.tensor(np.asarray(xs)))
        else:
            h = tuple(map(torch.from_numpy, hidden)) if isinstance(hidden, tuple) else torch.from_numpy(hidden)
            ys, hn = module(torch.tensor(np.asarray(xs)), h)
    return ys.numpy(), hn


def _numpy_params(cell, rng, input_size):
    """Random params drawn by NumPy (no compilation, unlike random_params)."""
    shapes = cell._param_shapes(input_size)
    return cell.params_type(
        **{f: jnp.asarray(0.5 * rng.normal(size=shapes[f]), jnp.float32) for f in cell.params_type._fields}
    )


def _assert_hidden_close(cell, ours, theirs):
    if isinstance(cell, jr.LSTM):
        np.testing.assert_allclose(ours[0], theirs[0].numpy(), **TOL)
        np.testing.assert_allclose(ours[1], theirs[1].numpy(), **TOL)
    else:
        np.testing.assert_allclose(ours, theirs.numpy(), **TOL)


@pytest.mark.parametrize("layout", ["single", "stack2_bidir"])
@pytest.mark.parametrize("name", TORCH_CELLS)
def test_outputs_match_torch(name, layout):
    """PyTorch's module with its own initialisation, converted to jaxrnn."""
    cell = CELLS[name]
    num_layers, bidir = (None, False) if layout == "single" else (2, True)
    torch.manual_seed(0)
    module = interop.torch_module(cell, INPUT, num_layers=num_layers or 1, bidirectional=bidir)
    xs = np.random.default_rng(0).normal(size=(BATCH, STEPS, INPUT)).astype(np.float32)
    ys_torch, hn = _run_torch(module, xs)

    params = interop.from_torch(cell, module.state_dict(), num_layers=num_layers, bidirectional=bidir)
    if layout == "single":
        final, ys = jr.rnn(cell, params, jnp.asarray(xs))
    else:
        final, ys = jr.stacked_rnn([(cell, cell)] * 2, params, jnp.asarray(xs))
    np.testing.assert_allclose(ys, ys_torch, **TOL)
    _assert_hidden_close(
        cell, interop.to_torch_state(cell, final, num_layers=num_layers, bidirectional=bidir), hn
    )


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_jaxrnn_weights_in_torch_time_major_with_initial_state(name):
    """jaxrnn params and states into a time-major (batch_first=False) stack."""
    cell = CELLS[name]
    rng = np.random.default_rng(3)
    params = tuple(_numpy_params(cell, rng, n) for n in (INPUT, cell.hidden_size))
    states = tuple(random_state(cell, k, (BATCH,)) for k in jax.random.split(jax.random.PRNGKey(3)))
    xs = jnp.asarray(rng.normal(size=(STEPS, BATCH, INPUT)), jnp.float32)

    module = interop.torch_module(cell, INPUT, num_layers=2, batch_first=False)
    sd = interop.to_torch(cell, params, num_layers=2)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    h0 = interop.to_torch_state(cell, states, num_layers=2)
    ys_torch, hn = _run_torch(module, xs, h0)

    finals, ys = jr.stacked_rnn([cell, cell], params, xs, states, time_major=True)
    np.testing.assert_allclose(ys, ys_torch, **TOL)
    back = interop.from_torch_state(cell, hn, num_layers=2)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), back, finals)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_torch_round_trip_moves_biases_only(name):
    """PyTorch -> jaxrnn -> PyTorch: weights exact, biases moved, same sums."""
    cell = CELLS[name]
    torch.manual_seed(1)
    module = interop.torch_module(cell, INPUT, bidirectional=True)
    sd = {k: v.numpy() for k, v in module.state_dict().items()}
    again = interop.to_torch(cell, interop.from_torch(cell, module.state_dict(), bidirectional=True), bidirectional=True)
    assert sorted(again) == sorted(sd)
    H = cell.hidden_size
    for sfx in ("", "_reverse"):
        for w in ("weight_ih", "weight_hh"):
            np.testing.assert_array_equal(again[f"{w}_l0{sfx}"], sd[f"{w}_l0{sfx}"])
        total = again[f"bias_ih_l0{sfx}"] + again[f"bias_hh_l0{sfx}"]
        np.testing.assert_allclose(total, sd[f"bias_ih_l0{sfx}"] + sd[f"bias_hh_l0{sfx}"], rtol=1e-6)
        if name == "gru":  # the candidate's recurrent bias stays where it was
            np.testing.assert_array_equal(again[f"bias_hh_l0{sfx}"][2 * H :], sd[f"bias_hh_l0{sfx}"][2 * H :])


def test_bias_free_module_and_bfloat16_tensors():
    cell = jr.GRU(3)
    module = torch.nn.GRU(INPUT, 3, bias=False, batch_first=True)
    params = interop.from_torch(cell, module.state_dict())
    assert not np.any(params.b) and not np.any(params.b_hn)
    np.testing.assert_array_equal(params.w_hh, module.weight_hh_l0.detach().numpy().T)

    bf16 = interop.from_torch(cell, module.to(torch.bfloat16).state_dict())
    assert all(leaf.dtype == jnp.bfloat16 for leaf in bf16)
    np.testing.assert_array_equal(
        np.asarray(bf16.w_ih, np.float32), module.weight_ih_l0.detach().float().numpy().T
    )


def test_prefix_selects_a_submodule():
    model = torch.nn.Sequential(torch.nn.Linear(2, INPUT), torch.nn.LSTM(INPUT, 4))
    params = interop.from_torch(jr.LSTM(4), model.state_dict(), prefix="1.")
    np.testing.assert_array_equal(params.w_ih, model[1].weight_ih_l0.detach().numpy().T)
    sd = interop.to_torch(jr.LSTM(4), params, prefix="1.")
    assert sorted(sd) == sorted(k for k in model.state_dict() if k.startswith("1."))
    with pytest.raises(ValueError, match=r"keys start with one of \['1\.'\]: pass it as prefix="):
        interop.from_torch(jr.LSTM(4), model.state_dict())


# --------------------------------------------------------------------------
# bias=False and nn.LSTM(proj_size=P): peers in float64

PEERS = {
    # name: (jaxrnn cell, layout (num_layers or None, bidirectional))
    "tanh_nobias": (jr.SimpleRNN(4, bias=False), (None, False)),
    "relu_nobias": (jr.SimpleRNN(4, activation="relu", bias=False), (None, False)),
    "lstm_nobias": (jr.LSTM(4, bias=False), (None, False)),
    "gru_nobias": (jr.GRU(4, bias=False), (2, True)),
    "lstm_proj": (jr.LSTM(4, proj_size=3), (2, True)),
    "lstm_proj_nobias": (jr.LSTM(4, proj_size=2, bias=False), (None, False)),
}


@pytest.mark.parametrize("name", list(PEERS))
def test_bias_free_and_projected_modules_match_torch_in_float64(name):
    """PyTorch's own module (its initialisation, an initial state) -> jaxrnn:
    outputs and final states equal in float64, and back to the same state dict."""
    cell, (num_layers, bidir) = PEERS[name]
    layers = num_layers or 1
    torch.manual_seed(1)
    module = interop.torch_module(cell, INPUT, num_layers=layers, bidirectional=bidir).double()
    sd = module.state_dict()
    assert any(k.startswith("bias") for k in sd) == cell.bias
    assert any(k.startswith("weight_hr") for k in sd) == (getattr(cell, "proj_size", None) is not None)
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(BATCH, STEPS, INPUT))
    rows = layers * (2 if bidir else 1)
    P = getattr(cell, "proj_size", None) or cell.hidden_size
    h0 = rng.normal(size=(rows, BATCH, P))
    hidden = (h0, rng.normal(size=(rows, BATCH, cell.hidden_size))) if isinstance(cell, jr.LSTM) else h0
    ys_torch, hn = _run_torch(module, xs, hidden)

    with jax.enable_x64(True):
        params = interop.from_torch(cell, sd, num_layers=num_layers, bidirectional=bidir)
        states = interop.from_torch_state(cell, hidden, num_layers=num_layers, bidirectional=bidir)
        leaves = jax.tree_util.tree_leaves(params)
        assert all(leaf.dtype == jnp.float64 for leaf in leaves)
        if not cell.bias:  # no bias parameters at all: not zeros, None
            assert all(p.b is None for p in jax.tree_util.tree_leaves(
                params, is_leaf=lambda p: hasattr(p, "_fields")))
        if num_layers is None:
            final, ys = jr.rnn(cell, params, jnp.asarray(xs), states)
        else:
            layer = (cell, cell) if bidir else cell
            final, ys = jr.stacked_rnn([layer] * layers, params, jnp.asarray(xs), states)
        np.testing.assert_allclose(ys, ys_torch, rtol=1e-12, atol=1e-12)
        ours = interop.to_torch_state(cell, final, num_layers=num_layers, bidirectional=bidir)
        for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(hn)):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-12, atol=1e-12)

        again = interop.to_torch(cell, params, num_layers=num_layers, bidirectional=bidir)
    assert sorted(again) == sorted(sd)
    for k, v in again.items():
        if k.startswith("weight") or not cell.bias:
            np.testing.assert_array_equal(v, sd[k].numpy())
    module.load_state_dict({k: torch.from_numpy(v) for k, v in again.items()})
    ys_again, _ = _run_torch(module, xs, hidden)
    np.testing.assert_allclose(ys_again, ys_torch, rtol=1e-12, atol=1e-12)


def test_projection_and_bias_mismatches_are_named():
    proj = torch.nn.LSTM(INPUT, 4, proj_size=2).state_dict()
    with pytest.raises(ValueError, match=r"proj_size > 0; make the cell with jr.LSTM\(hidden_size, proj_size=P\)"):
        interop.from_torch(jr.LSTM(4), proj)
    with pytest.raises(ValueError, match=r"weight_hh_l0'\] must have shape \(16, 3\)"):
        interop.from_torch(jr.LSTM(4, proj_size=3), proj)
    with pytest.raises(ValueError, match=r"lacks 'weight_hr_l0'"):
        interop.from_torch(jr.LSTM(4, proj_size=2), {k: v for k, v in proj.items() if "hr" not in k})
    with pytest.raises(ValueError, match=r"holds bias keys .* bias=False: make it with bias=True"):
        interop.from_torch(jr.GRU(4, bias=False), torch.nn.GRU(INPUT, 4).state_dict())
    for cell in (jr.SimpleRNN(4, residual=True), jr.GRU(4, gate_fn=jax.nn.hard_sigmoid),
                 jr.LSTM(4, activation_fn=jax.nn.soft_sign)):
        with pytest.raises(ValueError, match="no PyTorch counterpart"):
            interop.to_torch(cell, cell.init(jax.random.PRNGKey(0), INPUT))
    # torch_module builds the counterpart
    m = interop.torch_module(jr.LSTM(4, proj_size=2, bias=False), INPUT)
    assert (m.proj_size, m.bias) == (2, False)
