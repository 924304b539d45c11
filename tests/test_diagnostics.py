"""Diagnostics: state-gradient norms and Jacobian spectra, exact on a linear
recurrence, held to brute-force autodiff, and both impls in agreement."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn as jr
from jaxrnn import diagnostics as D

H, I, T, B = 3, 2, 12, 2


def _identity(x):
    return x


LINEAR = jr.SimpleRNN(H, activation=_identity)


def linear_params(diag):
    """``h' = diag(a) h``: the state Jacobian is ``diag(a)`` at every step."""
    p = LINEAR.init(jax.random.PRNGKey(0), I)
    return p._replace(w_hh=jnp.diag(jnp.asarray(diag, jnp.float32)), w_ih=jnp.zeros_like(p.w_ih))


def last_sum(final, ys):
    del final
    return jnp.sum(ys[:, -1])


# jitted with the cell, loss and impl static: the two values of ``a`` share a compilation
_norms = jax.jit(D.state_gradient_norms, static_argnums=(0, 3), static_argnames="impl")


@pytest.mark.parametrize("impl", ["scan", "fused"])
@pytest.mark.parametrize("a", [0.9, 1.1])
def test_norms_of_a_linear_recurrence_are_powers(impl, a):
    """h' = a h, L = sum(h_T): dL/dh_t = a^(T-1-t) in every unit."""
    params = linear_params([a] * H)
    xs = jnp.ones((B, T, I))
    norms = _norms(LINEAR, params, xs, last_sum, impl=impl)
    assert norms.shape == (B, T)
    expected = np.sqrt(H) * a ** (T - 1 - np.arange(T))
    np.testing.assert_allclose(norms, np.broadcast_to(expected, (B, T)), rtol=1e-5)


@pytest.fixture(scope="module")
def lstm_case():
    cell = jr.LSTM(4)
    params = cell.init(jax.random.PRNGKey(1), I)
    xs = jax.random.normal(jax.random.PRNGKey(2), (B, 7, I))
    state = jr.LSTMState(*jax.random.normal(jax.random.PRNGKey(3), (2, B, 4)))

    def loss_fn(final, ys):
        w = jnp.sin(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        return jnp.sum(w * ys) + jnp.sum(jnp.cos(final.c))

    return cell, params, xs, state, loss_fn


def test_probe_gradient_is_the_total_state_gradient(lstm_case):
    """dL/ds_0 (the state after the first step) pulled back through the first
    step equals the gradient with respect to the initial state."""
    cell, params, xs, state, loss_fn = lstm_case
    loss, grads = D.state_gradients(cell, params, xs, loss_fn, state)
    assert isinstance(grads, jr.LSTMState) and grads.h.shape == (B, 7, 4)

    def full(s0):
        final, ys = jr.rnn(cell, params, xs, s0, impl="scan")
        return loss_fn(final, ys)

    np.testing.assert_allclose(loss, full(state), rtol=1e-6)
    d_init = jax.grad(full)(state)
    _, pull = jax.vjp(lambda s: cell(params, s, xs[:, 0])[0], state)
    (pulled,) = pull(jax.tree_util.tree_map(lambda g: g[:, 0], grads))
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), pulled, d_init)
    # At the last step only the direct terms remain: w at the output, -sin(c) on c.
    np.testing.assert_allclose(grads.c[:, -1], -jnp.sin(full_final_c(cell, params, xs, state)), rtol=1e-5, atol=1e-6)


def full_final_c(cell, params, xs, state):
    return jr.rnn(cell, params, xs, state, impl="scan")[0].c


def test_fused_and_scan_agree(lstm_case):
    # (tests/test_kernels.py holds the engine's probe to the scan for every
    # residual policy; here the default one, through the public function)
    residuals = "states"
    cell, params, xs, state, loss_fn = lstm_case
    l1, g1 = D.state_gradients(cell, params, xs, loss_fn, state, impl="scan")
    l2, g2 = D.state_gradients(cell, params, xs, loss_fn, state, impl="fused", residuals=residuals)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), g1, g2)


def test_spectrum_of_a_diagonal_recurrence_is_exact():
    """Singular values of diag(a)^t are a_i^t: logs t·ln a_i, largest first."""
    a = np.array([0.5, 0.9, 1.1])
    params = linear_params(a)
    spec = D.jacobian_spectrum(LINEAR, params, jnp.ones((B, 40, I)), num_singular=3)
    t = np.arange(1, 41)[:, None]
    expected = t * np.log(a[::-1])[None, :]
    np.testing.assert_allclose(spec.log_singular_values[0], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(spec.growth_rate, np.log(1.1), rtol=1e-4)
    # 1.1^40 = 45: more than tenfold over 40 steps is exploding; over 20 steps (6.7x) stable.
    assert D.verdict(spec.growth_rate[0], horizon=40) == "exploding"
    assert D.verdict(spec.growth_rate[0], horizon=20) == "stable"
    assert D.verdict(np.log(0.5)) == "vanishing" and D.verdict(np.log(1.5)) == "exploding"
    assert D.verdict(0.0) == "stable" and D.verdict(float("nan")) == "exploding"


def test_spectrum_matches_brute_force_jacobians():
    """A tanh RNN: the product of scaled Jacobians equals jacfwd of h_t w.r.t. h_0,
    even when the singular values underflow float32 as plain numbers."""
    cell = jr.SimpleRNN(4)
    params = cell.init(jax.random.PRNGKey(4), I)
    xs = jax.random.normal(jax.random.PRNGKey(5), (6, I))
    h0 = 0.3 * jnp.ones((4,))
    spec = D.jacobian_spectrum(cell, params, xs, h0, num_singular=4)
    assert spec.log_singular_values.shape == (6, 4)
    # For a SimpleRNN the output is the state: one jacfwd gives dh_t/dh_0 for every t.
    jac = jax.jacfwd(lambda h: jr.rnn(cell, params, xs, h, impl="scan")[1])(h0)  # (T, H, H)
    sv = np.linalg.svd(np.asarray(jac, np.float64), compute_uv=False)
    np.testing.assert_allclose(spec.log_singular_values, np.log(sv), rtol=1e-3, atol=1e-3)


def test_growth_rate_is_the_slope():
    logsv = jnp.asarray([[0.1 * k + 2.0 for k in range(1, 11)], [-0.3 * k for k in range(1, 11)]])
    np.testing.assert_allclose(D.growth_rate(logsv), [0.1, -0.3], rtol=1e-5)


def test_bad_input_is_named():
    params = linear_params([0.5] * H)
    xs = jnp.ones((B, T, I))
    with pytest.raises(ValueError, match="impl must be one of"):
        D.state_gradient_norms(LINEAR, params, xs, last_sum, impl="cudnn")
    with pytest.raises(ValueError, match=r"xs must have 2 features .*got shape \(2, 12, 5\)"):
        D.state_gradient_norms(LINEAR, params, jnp.ones((B, T, 5)), last_sum)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        D.state_gradient_norms(LINEAR, params, xs, "mse")
    with pytest.raises(ValueError, match="num_singular must be at most the state size 3"):
        D.jacobian_spectrum(LINEAR, params, xs, num_singular=4)


def test_a_dead_relu_network_has_rate_minus_infinity():
    """Every unit below zero: the Jacobian is exactly 0, log σ = -inf, vanishing."""
    cell = jr.SimpleRNN(H, activation="relu")
    p = cell.init(jax.random.PRNGKey(0), I)
    p = p._replace(b=-jnp.ones((H,)), w_ih=jnp.zeros_like(p.w_ih))
    spec = D.jacobian_spectrum(cell, p, jnp.ones((1, 5, I)), num_singular=2)
    assert np.isneginf(spec.log_singular_values).all()
    assert np.isneginf(spec.growth_rate).all()
    assert D.verdict(spec.growth_rate[0]) == "vanishing"
