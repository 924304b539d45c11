"""``impl="parallel"`` for nonlinear cells: Newton's method over the sequence
(DEER, quasi-DEER, ELK, quasi-ELK), held to the sequential reference, and the
scans it is built from.

The linear-recurrence cells have their own file (test_linear_cells.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELLS,
    Precision,
    assert_trees_close,
    random_inputs,
    rnn_value_and_grad,
    weighted_loss,
)

import jaxrnn as jr
from jaxrnn.parallel import _scan

B, T = 3, 7
METHODS = jr.parallel.METHODS
VARIANTS = {
    "lengths+reverse": {"seq_lengths": jnp.array([T, 4, 0]), "reverse": True},
    "time_major": {"time_major": True},
    "lengths": {"seq_lengths": jnp.array([2, T, 5])},
}
NONLINEAR = ["tanh", "relu", "irnn", "lstm", "gru", "gru_rb"]
# The default run: every cell once, every method and every variant at least
# once; the full product runs with -m slow.
SAMPLE = [
    (name, METHODS[i % len(METHODS)], list(VARIANTS)[i % len(VARIANTS)])
    for i, name in enumerate(NONLINEAR)
]
TWINS = SAMPLE + [
    pytest.param(name, method, variant, marks=pytest.mark.slow)
    for name in NONLINEAR
    for method in METHODS
    for variant in VARIANTS
    if (name, method, variant) not in SAMPLE
]


def _inputs(cell, dtype, time_major=False):
    params, xs, state = random_inputs(cell, dtype, batch=B, steps=T)
    # Scaled so the random weights (std 0.5) give dynamics that contract,
    # where Newton converges in a few iterations.
    params = jax.tree_util.tree_map(lambda p: 0.6 * p, params)
    if time_major:
        xs = jnp.swapaxes(xs, 0, 1)
    return params, xs, state


@pytest.mark.parametrize(("name", "method", "variant"), TWINS)
def test_newton_equals_scan_fp64(name, method, variant):
    cell = CELLS[name]
    prec = Precision(np.dtype("float64"), rtol=1e-9, atol=1e-11)
    kw = dict(VARIANTS[variant])
    with jax.enable_x64(True):
        params, xs, state = _inputs(cell, jnp.float64, kw.get("time_major", False))
        want = rnn_value_and_grad(cell, params, xs, state, impl="scan", **kw)
        got = rnn_value_and_grad(cell, params, xs, state, impl="parallel", method=method, **kw)
        assert_trees_close(got, want, prec)


@pytest.mark.parametrize("method", METHODS)
def test_newton_converges_and_says_how(method):
    cell = CELLS["lstm"]
    with jax.enable_x64(True):
        params, xs, state = _inputs(cell, jnp.float64)
        info = jax.jit(
            lambda xs: jr.diagnostics.newton_convergence(cell, params, xs, state, method=method)
        )(xs)
    assert bool(info.converged) and not bool(info.fell_back)
    assert float(info.residual) <= jr.parallel.default_tol(jnp.float64)
    k = int(info.iterations)
    if method in ("deer", "quasi"):  # undamped: exact after T iterations
        assert k <= T
    history = np.asarray(info.history)
    assert history[k] == float(info.residual) and np.all(np.isnan(history[k + 1:]))
    assert history[0] > history[k]


def test_newton_equals_scan_fp32_longer():
    cell = CELLS["gru"]
    params, xs, state = random_inputs(cell, jnp.float32, batch=2, steps=40)
    prec = Precision(np.dtype("float32"), rtol=2e-4, atol=2e-5)
    want = rnn_value_and_grad(cell, params, xs, state, impl="scan")
    got = rnn_value_and_grad(cell, params, xs, state, impl="parallel", method="deer")
    assert_trees_close(got, want, prec)


def test_stacks_and_bidirectional_run_in_parallel():
    layers = [(CELLS["lstm"], CELLS["tanh"])]
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(
            lambda p: 0.5 * p, jr.init_stacked(jax.random.PRNGKey(0), layers, 3, jnp.float64)
        )
        xs = jax.random.normal(jax.random.PRNGKey(1), (2, T, 3), jnp.float64)
        lengths = jnp.array([T, 3])

        def loss(params, impl, **kw):
            finals, ys = jr.stacked_rnn(layers, params, xs, seq_lengths=lengths, impl=impl, **kw)
            return weighted_loss(finals, ys)

        grad = jax.jit(jax.value_and_grad(loss), static_argnums=1, static_argnames="method")
        want = grad(params, "scan")
        got = grad(params, "parallel", method="quasi")
        assert_trees_close(got, want, Precision(np.dtype("float64"), 1e-9, 1e-11))


def test_a_run_that_does_not_converge_falls_back_exactly():
    # One iteration cannot solve 7 steps of a random GRU: the sequential scan
    # computes the values; the quasi method's gradient refinement stops after
    # one iteration too, and its fallback (the sequential adjoint) is exact.
    method = "quasi"
    cell = CELLS["gru"]
    prec = Precision(np.dtype("float64"), rtol=1e-9, atol=1e-11)
    with jax.enable_x64(True):
        params, xs, state = random_inputs(cell, jnp.float64, batch=B, steps=T)
        want = rnn_value_and_grad(cell, params, xs, state, impl="scan")
        got = rnn_value_and_grad(
            cell, params, xs, state, impl="parallel", method=method, max_iter=1
        )
        assert_trees_close(got, want, prec)
        info = jr.diagnostics.newton_convergence(cell, params, xs, state, method=method, max_iter=1)
        assert not bool(info.converged) and int(info.iterations) == 1
        assert float(info.residual) > jr.parallel.default_tol(jnp.float64)


def test_nan_or_raise_instead_of_falling_back():
    cell = CELLS["lstm"]
    params, xs, state = random_inputs(cell, jnp.float32, batch=B, steps=T)
    kw = dict(impl="parallel", max_iter=1)
    _, ys = jr.rnn(cell, params, xs, state, on_failure="nan", **kw)
    assert bool(jnp.all(jnp.isnan(ys)))
    with pytest.raises(jr.parallel.NotConvergedError, match="did not converge after 1 iter"):
        jr.rnn(cell, params, xs, state, on_failure="raise", **kw)
    run = jax.jit(lambda xs: jr.rnn(cell, params, xs, state, on_failure="raise", **kw)[1])
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(run(xs))


def test_parallel_options_are_checked_by_name():
    cell = CELLS["gru"]
    params, xs, state = random_inputs(cell, jnp.float32, batch=B, steps=T)
    with pytest.raises(ValueError, match="method must be one of"):
        jr.rnn(cell, params, xs, impl="parallel", method="newton")
    with pytest.raises(ValueError, match=r'method, tol apply to impl="parallel" only'):
        jr.rnn(cell, params, xs, method="deer", tol=1e-3)
    with pytest.raises(ValueError, match="on_failure must be one of"):
        jr.rnn(cell, params, xs, impl="parallel", on_failure="ignore")
    with pytest.raises(ValueError, match="max_iter must be a positive int"):
        jr.rnn(cell, params, xs, impl="parallel", max_iter=0)
    with pytest.raises(ValueError, match="bptt_clip clips the state gradient"):
        jr.rnn(cell, params, xs, impl="parallel", bptt_clip=1.0)
    with pytest.raises(TypeError, match="tol must be a concrete positive float"):
        jax.jit(lambda t: jr.rnn(cell, params, xs, impl="parallel", tol=t))(1e-3)
    with pytest.raises(ValueError, match="impl must be one of"):
        jr.diagnostics.state_gradients(cell, params, xs, lambda f, y: jnp.sum(y), impl="parallel")


# --------------------------------------------------------------------------
# the scans


def _random_problem(key, dense, steps=9, batch=2, size=3):
    ka, kc, ky, k0 = jax.random.split(key, 4)
    shape = (steps, batch, size, size) if dense else (steps, batch, size)
    a = 0.7 * jax.random.normal(ka, shape, jnp.float64)
    c = jax.random.normal(kc, (steps, batch, size), jnp.float64)
    y = jax.random.normal(ky, (steps, batch, size), jnp.float64)
    s0 = jax.random.normal(k0, (batch, size), jnp.float64)
    return a, c, y, s0


def _sequential_solution(alg, a, c, s0):
    def body(s, ac):
        s = alg.matvec(ac[0], s) + ac[1]
        return s, s

    return jax.lax.scan(body, s0, (a, c))[1]


@pytest.mark.parametrize("dense", [True, False])
def test_kalman_smoother_is_the_damped_least_squares_step(dense):
    """ELK's step: the minimiser of Σ|x_t − A_t x_{t−1} − c_t|² + λ Σ|x_t − y_t|²,
    against the normal equations solved densely; λ → 0 gives the linear
    recurrence's solution (DEER's step)."""
    alg = _scan.DENSE if dense else _scan.DIAG
    with jax.enable_x64(True):
        a, c, y, s0 = _random_problem(jax.random.PRNGKey(3), dense)
        steps, batch, size = c.shape
        lam = 0.3
        smoother = jax.jit(_scan.kalman_smoother_mean, static_argnums=0)
        got = smoother(alg, a, c, y, s0, lam)
        amat = np.asarray(a if dense else jax.vmap(jax.vmap(jnp.diag))(a))
        s0, c, y = np.asarray(s0), np.asarray(c), np.asarray(y)
        for b in range(batch):
            # Residual rows r_t = x_t − A_t x_{t−1} − c_t over x = (x_1..x_T).
            n = steps * size
            rows = np.zeros((n, n))
            rhs = np.zeros(n)
            for t in range(steps):
                rows[t * size:(t + 1) * size, t * size:(t + 1) * size] = np.eye(size)
                if t > 0:
                    rows[t * size:(t + 1) * size, (t - 1) * size:t * size] = -amat[t, b]
                rhs[t * size:(t + 1) * size] = c[t, b] + (amat[0, b] @ s0[b] if t == 0 else 0)
            lhs = rows.T @ rows + lam * np.eye(n)
            want = np.linalg.solve(lhs, rows.T @ rhs + lam * y[:, b].reshape(-1))
            np.testing.assert_allclose(np.asarray(got[:, b]).reshape(-1), want, rtol=1e-8, atol=1e-10)
        undamped = smoother(alg, a, c, y, s0, 1e-12)
        want = _sequential_solution(alg, a, jnp.asarray(c), jnp.asarray(s0))
        np.testing.assert_allclose(undamped, want, rtol=1e-7, atol=1e-9)
