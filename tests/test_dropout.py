"""Dropout, recurrent dropout and zoneout: the fused engine (and the Pallas
kernels) held to the scan reference with the same key, values and gradients;
the masks' semantics; stacks; and the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELLS,
    Precision,
    assert_trees_close,
    kernel_calls,
    lowered_grad,
    random_inputs,
    rnn_value_and_grad,
)

import jaxrnn as jr

B, T = 3, 7
KEY = jax.random.key(7)
RATES = {
    "dropout": {"dropout": 0.3},
    "recurrent": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.3},
    "all": {"dropout": 0.2, "recurrent_dropout": 0.3, "zoneout": 0.25},
    "zoneout-inference": {"zoneout": 0.3, "deterministic": True},
}
VARIANTS = {
    "plain": {},
    "lengths+reverse": {"seq_lengths": jnp.array([T, 4, 0]), "reverse": True},
    "lengths+clip": {"seq_lengths": jnp.array([T, 2, 5]), "bptt_clip": 0.05},
}
POLICIES = ["gates", "states", 3]
# Sampled: every cell, every policy and every kind of dropout at least once
# (gru_rb is a whole-step cell: no recurrent dropout).
TWINS = [
    ("lstm", "all", "gates", "lengths+reverse"),
    ("lstm", "zoneout", "states", "lengths+clip"),
    ("lstm", "zoneout-inference", 3, "plain"),
    ("gru", "recurrent", 3, "lengths+reverse"),
    ("gru", "all", "states", "plain"),
    ("tanh", "all", 3, "lengths+clip"),
    ("relu", "dropout", "gates", "plain"),
    ("irnn", "recurrent", "gates", "lengths+clip"),
    ("gru_rb", "zoneout", "states", "lengths+reverse"),
    ("gru_rb", "zoneout-inference", 3, "plain"),
]


def _value_and_grad(cell, impl, params, xs, state, **kw):
    return rnn_value_and_grad(cell, params, xs, state, impl=impl, key=KEY, **kw)


@pytest.mark.parametrize(("name", "rates", "policy", "variant"), TWINS)
def test_fused_equals_scan_with_the_same_key_fp64(name, rates, policy, variant):
    cell = CELLS[name]
    prec = Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12)
    with jax.enable_x64(True):
        params, xs, state = random_inputs(cell, jnp.float64, batch=B, steps=T)
        kw = {**RATES[rates], **VARIANTS[variant]}
        want = _value_and_grad(cell, "scan", params, xs, state, **kw)
        got = _value_and_grad(cell, "fused", params, xs, state, residuals=policy, **kw)
        assert_trees_close(got, want, prec)


def test_fused_equals_scan_fp32_time_major():
    cell = CELLS["lstm"]
    params, xs, state = random_inputs(cell, jnp.float32, batch=B, steps=T)
    xs = jnp.swapaxes(xs, 0, 1)
    kw = dict(RATES["all"], time_major=True)
    want = _value_and_grad(cell, "scan", params, xs, state, **kw)
    got = _value_and_grad(cell, "fused", params, xs, state, **kw)
    assert_trees_close(got, want, Precision(np.dtype("float32"), rtol=2e-5, atol=2e-5))


def test_pallas_kernels_take_the_masks():
    # The masks are per-step inputs of the seam's loops, so the kernels run
    # them as they run xz (here by the interpreter).
    cell = CELLS["gru"]
    params, xs, state = random_inputs(cell, jnp.float32, batch=B, steps=T)
    kw = dict(RATES["all"], seq_lengths=jnp.array([T, 3, 5]))
    want = _value_and_grad(cell, "scan", params, xs, state, **kw)
    got = _value_and_grad(cell, "pallas", params, xs, state, **kw)
    assert_trees_close(got, want, Precision(np.dtype("float32"), rtol=2e-5, atol=2e-5))


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_pallas_kernels_with_dropout_lower_for_gpu_and_tpu(platform):
    cell = jr.LSTM(32)
    params = jax.eval_shape(lambda: cell.init(jax.random.PRNGKey(0), 8))
    xs = jax.ShapeDtypeStruct((16, 12, 8), jnp.float32)

    def loss(params, xs):
        _, ys = jr.rnn(
            cell, params, xs, impl="pallas", recurrent_dropout=0.2, zoneout=0.1, key=KEY
        )
        return jnp.sum(ys**2)

    assert kernel_calls(lowered_grad(loss, platform, params, xs), platform) >= 2


# --------------------------------------------------------------------------
# what the masks mean


def _grad_wrt_xs(cell, params, xs, **kw):
    return jax.grad(lambda xs: jnp.sum(jr.rnn(cell, params, xs, key=KEY, **kw)[1] ** 2))(xs)


def test_input_dropout_is_one_mask_per_sequence():
    cell = jr.GRU(4)
    params = cell.init(jax.random.PRNGKey(0), 8)
    xs = jax.random.normal(jax.random.PRNGKey(1), (5, 6, 8))
    g = np.asarray(_grad_wrt_xs(cell, params, xs, dropout=0.5))
    dropped = g == 0  # (B, T, I): a dropped feature gets no gradient at any step
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[:, :1]).all()  # the same features at every step
    assert not (dropped == dropped[:1]).all()  # but not the same for every sequence


def test_recurrent_dropout_drops_the_state_the_gemm_reads_not_the_outputs():
    # With W_ih = 0 and no bias, a tanh RNN's state after step 1 is
    # tanh((h0 ⊙ m) W_hh): with W_hh = I it is tanh(h0 ⊙ m), zero exactly
    # where the mask dropped, and h0/(1-p) scaled elsewhere.
    cell = jr.SimpleRNN(64)
    H, p = 64, 0.5
    params = jr.cells.SimpleRNNParams(
        w_ih=jnp.zeros((1, H)), w_hh=jnp.eye(H), b=jnp.zeros((H,))
    )
    h0 = jnp.full((2, H), 0.1)
    _, ys = jr.rnn(cell, params, jnp.zeros((2, 3, 1)), h0, recurrent_dropout=p, key=KEY)
    y1 = np.asarray(ys[:, 0])
    kept = y1 != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(y1[kept], np.tanh(0.1 / (1 - p)), rtol=1e-6)
    # the same mask at every step: a dropped unit stays dropped
    assert (np.asarray(ys[:, 1] != 0) == kept).all()


def test_zoneout_keeps_units_at_rate_and_inference_takes_the_expectation():
    cell = jr.SimpleRNN(64)
    params = cell.init(jax.random.PRNGKey(0), 4)
    xs = jax.random.normal(jax.random.PRNGKey(1), (8, 20, 4))
    p = 0.3
    _, ys = jr.rnn(cell, params, xs, zoneout=p, key=KEY)
    unchanged = np.asarray(ys[:, 1:] == ys[:, :-1]).mean()
    assert abs(unchanged - p) < 0.03
    # Inference: s_t = p s_{t-1} + (1 - p) f(s_{t-1}, x_t), by hand.
    _, ys_inf = jr.rnn(cell, params, xs, zoneout=p, deterministic=True)
    h = jnp.zeros((8, 64))
    for t in range(xs.shape[1]):
        h = p * h + (1 - p) * cell(params, h, xs[:, t])[0]
        np.testing.assert_allclose(ys_inf[:, t], h, rtol=1e-5, atol=1e-6)


def test_deterministic_and_zero_rates_are_the_plain_run():
    cell = jr.LSTM(4)
    params = cell.init(jax.random.PRNGKey(0), 3)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3))
    _, plain = jr.rnn(cell, params, xs)
    _, det = jr.rnn(cell, params, xs, dropout=0.5, recurrent_dropout=0.5, deterministic=True)
    np.testing.assert_array_equal(det, plain)
    _, zero = jr.rnn(cell, params, xs, dropout=0.0, key=None)
    np.testing.assert_array_equal(zero, plain)


def test_keys_decide_the_masks_under_jit():
    cell = jr.GRU(4)
    params = cell.init(jax.random.PRNGKey(0), 3)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3))
    run = jax.jit(lambda key: jr.rnn(cell, params, xs, dropout=0.3, zoneout=0.3, key=key)[1])
    a, b, c = run(KEY), run(KEY), run(jax.random.key(8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_stacks_draw_per_layer_and_drop_between_layers_like_pytorch():
    layers = [jr.LSTM(4), (jr.GRU(3), jr.GRU(3)), jr.SimpleRNN(2)]
    params = jr.init_stacked(jax.random.PRNGKey(0), layers, 3)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 3))
    kw = dict(dropout=0.2, recurrent_dropout=0.2, zoneout=0.1, layer_dropout=0.5, key=KEY)
    _, fused = jr.stacked_rnn(layers, params, xs, impl="fused", **kw)
    _, scan = jr.stacked_rnn(layers, params, xs, impl="scan", **kw)
    np.testing.assert_allclose(fused, scan, rtol=1e-5, atol=1e-6)
    _, plain = jr.stacked_rnn(layers, params, xs)
    _, det = jr.stacked_rnn(layers, params, xs, deterministic=True, layer_dropout=0.5)
    np.testing.assert_array_equal(det, plain)
    # Only between layers: one layer with layer_dropout is the plain layer.
    _, one = jr.stacked_rnn(layers[:1], params[:1], xs, layer_dropout=0.5, key=KEY)
    np.testing.assert_array_equal(one, jr.stacked_rnn(layers[:1], params[:1], xs)[1])


def test_input_dropout_reaches_the_parallel_paths():
    cell = jr.MinGRU(4)
    params = cell.init(jax.random.PRNGKey(0), 3)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 3))
    _, a = jr.rnn(cell, params, xs, dropout=0.4, key=KEY)
    _, b = jr.rnn(cell, params, xs, dropout=0.4, key=KEY, impl="scan")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, jr.rnn(cell, params, xs)[1])


# --------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        (dict(dropout=0.1), ValueError, "dropout=0.1 needs key"),
        (dict(zoneout=1.0, key=KEY), ValueError, r"zoneout must be in \[0, 1\), got 1.0"),
        (dict(recurrent_dropout=-0.1, key=KEY), ValueError, "recurrent_dropout must be in"),
        (dict(dropout=jnp.float32(0.1), key=KEY), TypeError, "dropout must be a float"),
        (dict(dropout=0.1, key=3), TypeError, "key"),
        (dict(zoneout=0.1, deterministic=1), TypeError, "deterministic must be a bool"),
        (dict(zoneout=0.1, key=KEY, impl="parallel"), ValueError, "zoneout acts inside"),
    ],
)
def test_bad_options_are_named(kw, error, message):
    cell = jr.GRU(4)
    params = cell.init(jax.random.PRNGKey(0), 3)
    with pytest.raises(error, match=message):
        jr.rnn(cell, params, jnp.ones((2, 5, 3)), **kw)


def test_recurrent_dropout_needs_one_recurrent_gemm():
    cell = jr.GRU(4, reset_after=False)
    params = cell.init(jax.random.PRNGKey(0), 3)
    with pytest.raises(ValueError, match="recurrent_dropout drops the input"):
        jr.rnn(cell, params, jnp.ones((2, 5, 3)), recurrent_dropout=0.2, key=KEY)
    cell = jr.MinGRU(4)
    params = cell.init(jax.random.PRNGKey(0), 3)
    with pytest.raises(ValueError, match="recurrent_dropout acts inside"):
        jr.rnn(cell, params, jnp.ones((2, 5, 3)), recurrent_dropout=0.2, key=KEY)


# --------------------------------------------------------------------------
# the command line


def test_train_takes_the_dropout_flags(tmp_path, capsys):
    from jaxrnn import cli

    args = ["train", "--task", "adding", "-T", "6", "--steps", "4", "--eval-every", "2",
            "--hidden", "3", "--batch", "4", "--cell", "gru", "--optimizer", "sgd",
            "--dropout", "0.1", "--recurrent-dropout", "0.2", "--zoneout", "0.3",
            "--out", str(tmp_path / "run"), "--no-progress"]
    assert cli.main(args) == 0
    config = (tmp_path / "run" / "config.json").read_text()
    assert '"recurrent_dropout": 0.2' in config and '"zoneout": 0.3' in config
    capsys.readouterr()
    assert cli.main([*args[:-3], "--zoneout", "1.5"]) == 2
    assert "expected a rate in [0, 1), got 1.5" in capsys.readouterr().err


def test_torch_stack_with_dropout_in_eval_mode_equals_deterministic_stack():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5, batch_first=True).double().eval()
    xs = np.random.default_rng(0).normal(size=(2, 6, 3))
    with torch.no_grad():
        want = module(torch.from_numpy(xs))[0].numpy()
    with jax.enable_x64(True):
        cell = jr.LSTM(4)
        params = jr.interop.from_torch(cell, module.state_dict(), num_layers=2)
        _, ys = jr.stacked_rnn(
            [cell, cell], params, jnp.asarray(xs), layer_dropout=0.5, deterministic=True
        )
        np.testing.assert_allclose(ys, want, rtol=1e-10, atol=1e-12)
