"""The fused engine against its reference twin, impl="scan"."""

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
    kernel_calls,
    lowered_grad,
    random_inputs,
    random_params,
    random_state,
    weighted_loss,
)
from jax.test_util import check_grads

import jaxrnn as jr
from jaxrnn.kernels import default_chunk

KEY = jax.random.PRNGKey(0)
B = 3
# T = 20 with the default chunk of 8 gives two full chunks and a tail of 4;
# residuals=3 gives six chunks of 3 and a tail of 2.
T = 20
assert default_chunk(T) == default_chunk(T, batch_size=B) == 8
POLICIES = ["gates", "states", 3]
LENGTHS = jnp.array([T, 9, 0])
VARIANTS = {
    "plain": dict(),
    "lengths+reverse": dict(seq_lengths=LENGTHS, reverse=True),
    "lengths+clip": dict(seq_lengths=jnp.array([T, 2, 17]), bptt_clip=0.05),
}


setup = functools.partial(random_inputs, batch=B, steps=T)


def value_and_grads(cell, params, xs, state, **kw):
    """``((final, ys), (dparams, dxs, dstate))`` of ``weighted_loss``, one trace."""

    def f(p, x, s):
        out = jr.rnn(cell, p, x, s, **kw)
        return weighted_loss(*out), out

    grads, out = jax.jit(jax.grad(f, argnums=(0, 1, 2), has_aux=True))(params, xs, state)
    return out, grads


def test_fused_equals_scan_fp64(cell):
    """Values and gradients (params, inputs, initial state) to ~1e-10, for every
    residual policy and every variant."""
    with jax.enable_x64(True):
        prec = Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12)
        params, xs, state = setup(cell, jnp.float64)
        for name, kw in VARIANTS.items():
            scan = value_and_grads(cell, params, xs, state, impl="scan", **kw)
            for residuals in POLICIES:
                fused = value_and_grads(
                    cell, params, xs, state, impl="fused", residuals=residuals, **kw
                )
                try:
                    assert_trees_close(fused, scan, prec)
                except AssertionError as e:
                    raise AssertionError(f"variant {name}, residuals {residuals}: {e}") from None


def test_fused_equals_scan_fp32(cell):
    prec = Precision(np.dtype("float32"), rtol=1e-5, atol=1e-5)
    params, xs, state = setup(cell, jnp.float32)
    kw = VARIANTS["lengths+reverse"]
    scan = value_and_grads(cell, params, xs, state, impl="scan", **kw)
    for residuals in ("gates", "states"):
        fused = value_and_grads(cell, params, xs, state, impl="fused", residuals=residuals, **kw)
        assert_trees_close(fused, scan, prec)


@pytest.mark.parametrize("residuals", POLICIES, ids=str)
def test_check_grads(cell, residuals):
    with jax.enable_x64(True):
        params, xs, state = setup(cell, jnp.float64, batch=2, steps=7)
        lengths = jnp.array([7, 4])

        def run(p, x, s):
            return jr.rnn(cell, p, x, s, seq_lengths=lengths, residuals=residuals)

        check_grads(run, (params, xs, state), order=1, modes=["rev"])


def test_default_impl_is_fused():
    cell = CELLS["lstm"]
    params, xs, state = setup(cell, jnp.float32)
    jaxpr = str(jax.make_jaxpr(lambda p: jr.rnn(cell, p, xs, state))(params))
    assert "custom_vjp_call" in jaxpr
    jaxpr_scan = str(jax.make_jaxpr(lambda p: jr.rnn(cell, p, xs, state, impl="scan"))(params))
    assert "custom_vjp_call" not in jaxpr_scan


@pytest.mark.parametrize("batch_shape", [(), (2, 3)], ids=str)
@pytest.mark.parametrize("time_major", [False, True])
def test_batch_dims_and_time_major(batch_shape, time_major):
    cell = CELLS["gru"]
    params = random_params(cell, KEY)
    xs = jax.random.normal(KEY, (*batch_shape, T, INPUT))
    if time_major:
        xs = jnp.moveaxis(xs, -2, 0)
    state = random_state(cell, jax.random.PRNGKey(3), batch_shape)
    lengths = jax.random.randint(KEY, batch_shape, 0, T + 1)
    kw = dict(seq_lengths=lengths, reverse=True, time_major=time_major)
    fused = value_and_grads(cell, params, xs, state, impl="fused", **kw)
    scan = value_and_grads(cell, params, xs, state, impl="scan", **kw)
    assert fused[0][1].shape == xs.shape[:-1] + (cell.hidden_size,)
    assert_trees_close(fused, scan, Precision(np.dtype("float32"), 1e-5, 1e-5))


def test_compositions():
    """jit, vmap over data and over params, grad of grad, jax.checkpoint, donation."""
    cell = CELLS["lstm"]
    prec = Precision(np.dtype("float32"), 1e-5, 1e-5)
    params, xs, state = setup(cell, jnp.float32)

    def run(impl):
        return lambda p, x, s: jr.rnn(cell, p, x, s, impl=impl)

    # vmap over a data axis and over an ensemble of params
    xs3 = jnp.stack([xs, -xs, 0.5 * xs])
    s3 = jax.tree_util.tree_map(lambda a: jnp.stack([a, a, a]), state)
    assert_trees_close(
        jax.vmap(run("fused"), (None, 0, 0))(params, xs3, s3),
        jax.vmap(run("scan"), (None, 0, 0))(params, xs3, s3),
        prec,
    )
    ensemble = jax.vmap(lambda k: random_params(cell, k))(jax.random.split(KEY, 3))
    loss = lambda impl: lambda p: weighted_loss(*run(impl)(p, xs, state))  # noqa: E731
    assert_trees_close(
        jax.vmap(jax.grad(loss("fused")))(ensemble),
        jax.vmap(jax.grad(loss("scan")))(ensemble),
        prec,
    )
    # reverse over reverse: the gradient of a function of the gradient
    gg = lambda impl: jax.grad(lambda p: jnp.sum(jax.grad(loss(impl))(p).w_hh ** 2))  # noqa: E731
    assert_trees_close(jax.jit(gg("fused"))(params), jax.jit(gg("scan"))(params), Precision(np.dtype("float32"), 1e-4, 1e-5))
    # jax.checkpoint around it
    ckpt = jax.checkpoint(lambda p: loss("fused")(p))
    assert_trees_close(jax.grad(ckpt)(params), jax.grad(loss("scan"))(params), prec)
    # donation of the inputs
    donated = jax.jit(jax.value_and_grad(loss("fused")), donate_argnums=0)
    want = jax.value_and_grad(loss("scan"))(params)
    assert_trees_close(donated(jax.tree_util.tree_map(jnp.copy, params)), want, prec)


def test_forward_mode_error_points_to_scan():
    cell = CELLS["gru"]
    params, xs, state = setup(cell, jnp.float32)
    f = lambda x: jr.rnn(cell, params, x, state)[1]  # noqa: E731
    with pytest.raises(TypeError, match=r'forward-mode .* use impl="scan"'):
        jax.jvp(f, (xs,), (xs,))
    with pytest.raises(TypeError, match=r'use impl="scan"'):
        jax.jacfwd(lambda x: jr.rnn(cell, params, x, state)[1].sum())(xs)
    # and the reference supports it
    jax.jvp(lambda x: jr.rnn(cell, params, x, state, impl="scan")[1], (xs,), (xs,))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_half_precision(name, dtype):
    """Half-precision inputs and weights, float32 state and accumulation."""
    cell = CELLS[name]
    params = random_params(cell, KEY, dtype=dtype)
    xs = jax.random.normal(KEY, (B, T, INPUT), dtype)
    final, ys = jr.rnn(cell, params, xs, seq_lengths=LENGTHS)
    assert ys.dtype == jnp.dtype(dtype)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(final))
    loose = Precision(np.dtype("float32"), rtol=2e-2, atol=2e-2)
    fused = value_and_grads(cell, params, xs, cell.initial_state((B,), jnp.float32), impl="fused", seq_lengths=LENGTHS)
    scan = value_and_grads(cell, params, xs, cell.initial_state((B,), jnp.float32), impl="scan", seq_lengths=LENGTHS)
    assert_trees_close(fused[0], scan[0], loose)
    # gradients come back in the dtype of their primal
    assert all(g.dtype == jnp.dtype(dtype) for g in jax.tree_util.tree_leaves(fused[1][0]))
    assert fused[1][2].dtype == jnp.float32 if name == "gru" else fused[1][2].h.dtype == jnp.float32
    # against a float32 run of the same weights, both are close
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    _, ys32 = jr.rnn(cell, p32, xs.astype(jnp.float32), seq_lengths=LENGTHS)
    assert_trees_close(ys.astype(jnp.float32), ys32, Precision(np.dtype("float32"), 5e-2, 5e-2))


def test_precision_argument():
    cell = CELLS["lstm"]
    params, xs, state = setup(cell, jnp.float32)
    hi = value_and_grads(cell, params, xs, state, precision=jax.lax.Precision.HIGHEST)
    ref = value_and_grads(cell, params, xs, state, impl="scan", precision=jax.lax.Precision.HIGHEST)
    assert_trees_close(hi, ref, Precision(np.dtype("float32"), 1e-5, 1e-5))


def _temp_bytes(cell, steps, impl, residuals="states", budget=None):
    params = cell.init(KEY, 32)
    xs = jnp.ones((8, steps, 32))

    def loss(p, x):
        _, ys = jr.rnn(cell, p, x, impl=impl, residuals=residuals, residual_budget=budget)
        return jnp.sum(ys)

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_memory_states_policy():
    """LSTM, T=512, B=8, I=32, H=64: fused "states" needs at most 1/5 of scan's temp memory."""
    cell = jr.LSTM(64)
    scan = _temp_bytes(cell, 512, "scan")
    states = _temp_bytes(cell, 512, "fused", "states")
    gates = _temp_bytes(cell, 512, "fused", "gates")
    assert states <= scan / 5, (states, scan)
    assert states < gates < scan, (states, gates, scan)


def test_memory_checkpoints_policy():
    """LSTM, T=4096: residuals=64 needs at most 1/20 of scan's temp memory."""
    cell = jr.LSTM(64)
    scan = _temp_bytes(cell, 4096, "scan")
    ckpt = _temp_bytes(cell, 4096, "fused", 64)
    assert ckpt <= scan / 20, (ckpt, scan)


def test_auto_residuals_take_the_fastest_policy_that_fits():
    """residuals="auto" (the default): "gates" within the budget, else
    "states", else every K-th state; the choice shows in compiled memory."""
    cell, T, B = jr.LSTM(64), 128, 8
    sizes = jr.kernels.residual_bytes(cell, T, B)
    assert sizes["states"] == T * B * 2 * 64 * 4 < sizes["gates"]

    def pick(budget):
        return jr.kernels.residual_policy(cell, T, B, budget=budget)

    assert pick(None) == pick(sizes["gates"]) == "gates"
    assert pick(sizes["gates"] - 1) == pick(sizes["states"]) == "states"
    k = pick(sizes["states"] // 10)
    assert isinstance(k, int) and -(-T // k) * B * 2 * 64 * 4 <= sizes["states"] // 10 + B * 512
    for budget, explicit in [
        (None, "gates"), (sizes["states"], "states"), (sizes["states"] // 10, k),
    ]:
        auto = _temp_bytes(cell, T, "fused", "auto", budget)
        assert auto == _temp_bytes(cell, T, "fused", explicit), (budget, explicit)


def test_user_cell_gets_a_fused_kernel(monkeypatch):
    """A cell written as layout + pointwise (examples/custom_cell.py) runs fused."""
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).parents[1] / "examples" / "custom_cell.py"
    spec = importlib.util.spec_from_file_location("custom_cell", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "custom_cell", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    from jaxrnn.kernels._backward import gemm_grads

    class ScaledInput(module.HighwayRNN):
        """Overrides a projection: the engine must fall back to its VJP."""

        def input_projection(self, params, x, precision=None):
            return 0.5 * super().input_projection(params, x, precision)

    # The cell contract: layout + pointwise gets the plain-GEMM fast path,
    # and overriding a projection (without saying otherwise) turns it off.
    assert module.HighwayRNN.plain_projections and module.HighwayRNN.additive
    assert not ScaledInput.plain_projections
    for cell in (module.HighwayRNN(4), ScaledInput(4)):
        with jax.enable_x64(True):
            params, xs, state = setup(cell, jnp.float64)
            assert gemm_grads(cell, params) == cell.plain_projections
            kw = VARIANTS["lengths+clip"]
            scan = value_and_grads(cell, params, xs, state, impl="scan", **kw)
            # every policy for the fallback (its own branch of the backward);
            # the fast path's policies are covered by the named cells' tests
            for residuals in POLICIES if not cell.plain_projections else ["states"]:
                fused = value_and_grads(cell, params, xs, state, residuals=residuals, **kw)
                assert_trees_close(fused, scan, Precision(np.dtype("float64"), 1e-10, 1e-12))


@pytest.mark.parametrize("shape", [(2, 0, INPUT), (0, 5, INPUT)], ids=["no steps", "no examples"])
def test_empty_inputs(shape):
    cell = CELLS["lstm"]
    params = random_params(cell, KEY)
    xs = jnp.ones(shape)
    state = random_state(cell, KEY, shape[:1])
    fused = value_and_grads(cell, params, xs, state)
    scan = value_and_grads(cell, params, xs, state, impl="scan")
    assert fused[0][1].shape == shape[:2] + (cell.hidden_size,)
    assert_trees_close(fused, scan, Precision(np.dtype("float32"), 1e-6, 1e-6))


@pytest.mark.parametrize("residuals", ["gates", 3], ids=str)
def test_probe_receives_state_gradients(cell, residuals):
    """The engine's private ``probe`` gets dL/ds_t for every step: what a zero
    added to the state after each step of a plain scan receives."""
    from jaxrnn.kernels._engine import fused_rnn

    with jax.enable_x64(True):
        params, xs, state = setup(cell, jnp.float64)
        probe = jax.tree_util.tree_map(
            lambda s: jnp.zeros((B, T) + s.shape[1:], s.dtype), state
        )

        def scan_loss(pr):
            def step(s, inputs):
                x, p = inputs
                s, _ = cell(params, s, x)
                s = jax.tree_util.tree_map(jnp.add, s, p)
                return s, cell.output(s)

            time_major = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), pr)
            final, ys = jax.lax.scan(step, state, (jnp.swapaxes(xs, 0, 1), time_major))
            return weighted_loss(final, jnp.swapaxes(ys, 0, 1))

        def fused_loss(pr):
            out = fused_rnn(
                cell, params, xs, state, None, time_major=False, residuals=residuals, probe=pr
            )
            return weighted_loss(*out)

        expected = jax.grad(scan_loss)(probe)
        got = jax.jit(jax.grad(fused_loss))(probe)
        assert_trees_close(got, expected, Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12))
        # Not trivially zero: the gradient reaches the first step.
        assert float(jnp.abs(cell.output(got)[:, 0]).max()) > 0


# --------------------------------------------------------------------------
# cell options: bias=False, gate_fn/activation_fn, residual, proj_size


def _gate(x):
    """A smooth gate that is not the sigmoid (so that gate_fn shows)."""
    return 0.5 * (jnp.tanh(x) + 1.0)


OPTION_CELLS = {
    "tanh_nobias_residual": jr.SimpleRNN(4, bias=False, residual=True),
    "irnn_nobias": jr.IRNN(4, scale=0.9, bias=False),
    "lstm_nobias_fns": jr.LSTM(4, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
    "gru_nobias_fns": jr.GRU(4, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
    "gru_rb_nobias": jr.GRU(4, reset_after=False, bias=False, gate_fn=_gate),
    "lstmp": jr.LSTM(4, proj_size=3),
    "lstmp_nobias": jr.LSTM(4, proj_size=2, bias=False),
}


def _option_twins(cell, dtype, prec, policies, variants):
    params, xs, state = setup(cell, dtype)
    assert all(leaf is not None for leaf in jax.tree_util.tree_leaves(params))
    for name in variants:
        kw = VARIANTS[name]
        scan = value_and_grads(cell, params, xs, state, impl="scan", **kw)
        for residuals in policies:
            fused = value_and_grads(cell, params, xs, state, impl="fused", residuals=residuals, **kw)
            try:
                assert_trees_close(fused, scan, prec)
            except AssertionError as e:
                raise AssertionError(f"variant {name}, residuals {residuals}: {e}") from None
            # no gradient for an absent parameter: the same None fields
            grads = fused[1][0]
            assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)


@pytest.mark.parametrize("name", list(OPTION_CELLS))
def test_cell_options_fused_equals_scan_fp64(name):
    """bias=False (no bias gradients at all), gate_fn/activation_fn, residual
    and LSTM(proj_size) through the fused engine: values and gradients of
    params, inputs and initial state, with seq_lengths and reverse."""
    cell = OPTION_CELLS[name]
    with jax.enable_x64(True):
        prec = Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12)
        _option_twins(cell, jnp.float64, prec, ["states"], ["lengths+reverse"])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTION_CELLS))
def test_cell_options_fused_equals_scan_sweep(name):
    cell = OPTION_CELLS[name]
    _option_twins(
        cell, jnp.float32, Precision(np.dtype("float32"), 1e-5, 1e-5), ["gates", "states"],
        ["lengths+reverse"],
    )
    with jax.enable_x64(True):
        prec = Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12)
        _option_twins(cell, jnp.float64, prec, POLICIES, list(VARIANTS))


def test_lstmp_fused_equals_scan_fp32_and_shapes():
    cell = OPTION_CELLS["lstmp"]
    params, xs, state = setup(cell, jnp.float32)
    assert isinstance(params, jr.LSTMPParams)
    assert (params.w_hh.shape, params.w_hr.shape) == ((3, 16), (4, 3))
    assert (state.h.shape, state.c.shape) == ((B, 3), (B, 4))
    kw = VARIANTS["lengths+reverse"]
    scan = value_and_grads(cell, params, xs, state, impl="scan", **kw)
    fused = value_and_grads(cell, params, xs, state, impl="fused", residuals=3, **kw)
    assert fused[0][1].shape == (B, T, 3)
    assert_trees_close(fused, scan, Precision(np.dtype("float32"), 1e-5, 1e-5))


def test_learned_initial_state_gradient_fused_equals_scan():
    """A learned (H,) initial state broadcast over the batch (the recipe in
    jr.rnn's docstring): its gradient through the engine is the scan's, and
    not zero; for an LSTMP's (h (P,), c (H,)) too."""
    with jax.enable_x64(True):
        for cell in (CELLS["gru"], OPTION_CELLS["lstmp"]):
            params, xs, _ = setup(cell, jnp.float64)
            s0 = random_state(cell, jax.random.PRNGKey(5), (), jnp.float64)

            def loss(s0, impl, cell=cell, params=params, xs=xs):
                state = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (B,) + a.shape), s0)
                out = jr.rnn(cell, params, xs, state, impl=impl, seq_lengths=LENGTHS)
                return weighted_loss(*out)

            g_scan = jax.grad(loss)(s0, "scan")
            g_fused = jax.jit(jax.grad(loss), static_argnums=(1, 2))(s0, "fused", cell)
            assert_trees_close(g_fused, g_scan, Precision(np.dtype("float64"), 1e-10, 1e-12))
            assert all(float(jnp.abs(g).max()) > 1e-3 for g in jax.tree_util.tree_leaves(g_fused))


def test_cell_options_run_in_the_pallas_kernels():
    """bias=False and custom gate functions take the Pallas path (the
    interpreter on CPU); an LSTMP is refused by name."""
    for name in ("lstm_nobias_fns", "gru_nobias_fns"):
        cell = OPTION_CELLS[name]
        params, xs, state = setup(cell, jnp.float32, batch=2, steps=5)
        scan = value_and_grads(cell, params, xs, state, impl="scan")
        pallas = value_and_grads(cell, params, xs, state, impl="pallas")
        assert_trees_close(pallas, scan, Precision(np.dtype("float32"), 1e-5, 1e-5))
    cell = OPTION_CELLS["lstmp"]
    params, xs, state = setup(cell, jnp.float32, batch=2, steps=5)
    with pytest.raises(ValueError, match=r"LSTM\(proj_size=3\) is not: .*impl=\"fused\""):
        jr.rnn(cell, params, xs, impl="pallas")


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_cell_options_lower_for_gpu_and_tpu(platform):
    """bias=False and custom gate functions lower to the Triton and Mosaic
    kernels (forward and backward), exported from the CPU."""
    for cell in (
        jr.LSTM(32, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
        jr.GRU(32, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
    ):
        params = jax.eval_shape(lambda c=cell: c.init(KEY, 8, jnp.float32))
        xs = jax.ShapeDtypeStruct((16, 12, 8), jnp.float32)

        def loss(params, xs, cell=cell):
            return jnp.sum(jr.rnn(cell, params, xs, impl="pallas")[1] ** 2)

        assert kernel_calls(lowered_grad(loss, platform, params, xs), platform) >= 2
