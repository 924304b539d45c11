"""Linear-recurrence cells: the parallel scan against the sequential twin, and
each cell's step against its paper's equations.

Cheap by design: every property is one test parametrised over the four cells
with the options sampled (not a full product), tiny shapes, and one compile
per case (the parallel and sequential runs, values and gradients, in one jit).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import INPUT, Precision, assert_trees_close, weighted_loss

import jaxrnn as jr
from jaxrnn.parallel._linear import linear_recurrence

KEY = jax.random.PRNGKey(0)
T = 7

CELLS = {
    "mingru": jr.MinGRU(4),
    "minlstm": jr.MinLSTM(3),
    "lru": jr.LRU(4, r_min=0.5, r_max=0.99),
    "rglru": jr.RGLRU(5),
}
F64 = Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12)

# These tests check numbers, not speed: without LLVM's optimisations XLA:CPU
# compiles an associative scan in half the time (measured: 9.0 s -> 4.2 s for
# the T = 10^4 value and gradient below), and compiling is most of their cost.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _random_like(template, seed, scale=1.0):
    """A tree shaped like ``template`` (arrays or shape structs), every entry
    random of both signs. NumPy draws: no compilation."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda t: jnp.asarray(scale * rng.standard_normal(t.shape), t.dtype), template
    )


def random_params(cell, dtype, seed=0):
    """Params with every entry random (no term hides behind a zero or a one)."""
    return _random_like(jax.eval_shape(lambda: cell.init(KEY, INPUT, dtype)), seed, 0.5)


def signed_state(cell, batch_shape, dtype, seed=2):
    """A random initial state of both signs (log-space cells must take any sign)."""
    return _random_like(jax.eval_shape(lambda: cell.initial_state(batch_shape, dtype)), seed)


def _lengths(batch_shape):
    """Lengths covering partial, full and empty sequences."""
    n = math.prod(batch_shape)
    return jnp.asarray(np.resize([3, T, 0, 5], n).reshape(batch_shape), jnp.int32)


# (cell, batch_shape, time_major, reverse, seq_lengths?, initial state), in
# float64; float32 is held to float64 by the long-sequence test, bfloat16 by
# test_half_precision_params.
TWIN_CASES = [
    ("mingru", (3,), False, True, True, "signed"),
    ("minlstm", (2, 1), True, False, True, "zero"),
    ("lru", (), False, True, True, "signed"),
    ("rglru", (1, 2), True, True, False, "none"),
]


@pytest.mark.parametrize(
    "name,batch_shape,time_major,reverse,with_lengths,init", TWIN_CASES, ids=str
)
def test_parallel_matches_scan(name, batch_shape, time_major, reverse, with_lengths, init):
    """impl="parallel" (associative scan) = impl="scan" (cell steps, autodiff):
    outputs, final state and gradients with respect to params, inputs and the
    initial state, in float64."""
    cell = CELLS[name]
    with jax.enable_x64(True):
        params = random_params(cell, jnp.float64)
        shape = (T, *batch_shape, INPUT) if time_major else (*batch_shape, T, INPUT)
        xs = _random_like(jax.ShapeDtypeStruct(shape, jnp.float64), 1)
        state = signed_state(cell, batch_shape, jnp.float64)
        if init == "zero":  # log-space cells: no log of the state, finite gradients
            state = jax.tree_util.tree_map(jnp.zeros_like, state)
        elif init == "none":
            state = None
        lengths = _lengths(batch_shape) if with_lengths else None
        argnums = (0, 1) if state is None else (0, 1, 2)

        def loss(impl, p, x, s):
            final, ys = jr.rnn(
                cell, p, x, s, seq_lengths=lengths, reverse=reverse,
                time_major=time_major, impl=impl,
            )
            return weighted_loss(final, ys), (final, ys)

        @jit
        def both(p, x, s):
            return [
                jax.value_and_grad(
                    lambda *a, i=impl: loss(i, *a), argnums, has_aux=True
                )(p, x, s)
                for impl in ("parallel", "scan")
            ]

        ((_, (final, ys)), grads), ((_, (want_final, want_ys)), want_grads) = both(params, xs, state)
    assert ys.dtype == jnp.float64 and ys.shape == (*shape[:-1], cell.hidden_size)
    assert_trees_close(ys, want_ys, F64)
    assert_trees_close(final, want_final, F64)
    assert_trees_close(grads, want_grads, F64)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    if lengths is not None:  # zero outputs past each length
        valid = np.arange(T) < np.asarray(lengths)[..., None]  # (*batch, T)
        assert not np.asarray(ys)[~(np.moveaxis(valid, -1, 0) if time_major else valid)].any()


def test_stack_and_bidirectional():
    """A stack with a bidirectional layer: stacked_rnn's parallel and scan
    runs agree (fp64; each cell's gradients are the twin test's)."""
    with jax.enable_x64(True):
        layers = [(CELLS["mingru"], CELLS["lru"]), CELLS["rglru"]]
        params = _random_like(
            jax.eval_shape(lambda: jr.init_stacked(KEY, layers, INPUT, jnp.float64)), 0, 0.5
        )
        xs = _random_like(jax.ShapeDtypeStruct((2, T, INPUT), jnp.float64), 1)
        lengths = jnp.array([T, 4], jnp.int32)
        got, want = jit(
            lambda p, x: [jr.stacked_rnn(layers, p, x, seq_lengths=lengths, impl=i)
                          for i in ("parallel", "scan")]
        )(params, xs)
        assert_trees_close(got, want, F64)


# ---------------------------------------------------------------------------
# the cells against their papers' equations (NumPy, linear space)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _g(v):  # Feng et al.'s positive activation
    return np.where(v >= 0, v + 0.5, _sigmoid(v))


def numpy_step(cell, params, state, x):
    """One step from the papers' equations: ``(new_state, y)`` as NumPy arrays."""
    p = {k: np.asarray(v) for k, v in params._asdict().items()}
    x = np.asarray(x)
    H = cell.hidden_size
    if isinstance(cell, jr.LRU):
        h = np.asarray(state.re) + 1j * np.asarray(state.im)
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        B = p["w_ih"][:, :H] + 1j * p["w_ih"][:, H:]
        h = lam * h + np.exp(p["gamma_log"]) * (x @ B)
        y = (h @ (p["c_re"] + 1j * p["c_im"])).real + x @ p["d"]
        return (h.real, h.imag), y
    h = np.asarray(state)
    blocks = np.split(x @ p["w_ih"] + p["b"], cell.num_gates, axis=-1)
    if isinstance(cell, jr.MinGRU):
        k, h_tilde = blocks
        z = _sigmoid(k)
        h = (1 - z) * h + z * _g(h_tilde)
    elif isinstance(cell, jr.MinLSTM):
        f, i, h_tilde = (*map(_sigmoid, blocks[:2]), blocks[2])
        h = f / (f + i) * h + i / (f + i) * _g(h_tilde)
    else:  # RG-LRU, Griffin eqs. (1)-(4)
        u, k_r, k_i = blocks
        r, i = _sigmoid(k_r), _sigmoid(k_i)
        a_t = _sigmoid(p["lam"]) ** (cell.c * r)
        h = a_t * h + np.sqrt(1 - a_t**2) * (i * u)
    return h, h


def test_step_matches_equations():
    """One step of each cell (fp64) against its paper's equations in NumPy."""
    with jax.enable_x64(True):
        inputs = {
            name: (random_params(cell, jnp.float64), signed_state(cell, (2,), jnp.float64),
                   _random_like(jax.ShapeDtypeStruct((2, INPUT), jnp.float64), 1))
            for name, cell in CELLS.items()
        }
        steps = jit(lambda inputs: {n: CELLS[n](*args) for n, args in inputs.items()})(inputs)
        for name, (new_state, y) in steps.items():
            want_state, want_y = numpy_step(CELLS[name], *inputs[name])
            assert_trees_close(tuple(jax.tree_util.tree_leaves(new_state)),
                               tuple(jax.tree_util.tree_leaves(want_state)), F64)
            assert_trees_close(y, want_y, F64)


# ---------------------------------------------------------------------------
# long sequences


def _numpy_recurrence(a, b, h0, log_space):
    """The sequential recurrence in float64 NumPy: ``(T, ...)`` -> ``(T, ...)``."""
    a, b = (np.exp(a), np.exp(b)) if log_space else (a, b)
    hs, h = np.empty_like(b), h0
    for t in range(b.shape[0]):
        h = a[t] * h + b[t]
        hs[t] = h
    return hs


@pytest.mark.parametrize(
    "name", ["mingru", pytest.param("lru", marks=pytest.mark.slow)]
)  # the log-space scan by default, the complex one with -m slow
def test_long_sequence_float32(name):
    """T = 10^4 in float32 with a long memory, masked past its length: finite
    values and gradients, outputs within float32 rounding of a float64
    sequential run of the paper's equations (NumPy)."""
    cell, num_steps, length = CELLS[name], 10_000, 9_990
    params = jax.tree_util.tree_map(np.array, random_params(cell, jnp.float32))  # writable
    if name == "mingru":  # z ~ 0.05: a memory of about 20 steps
        params.b[: cell.hidden_size] -= 3.0
    else:  # |lambda| = 0.99: a memory of about 100 steps
        params.nu_log[:] = np.log(0.01)
    xs = _random_like(jax.ShapeDtypeStruct((num_steps, 1, INPUT), jnp.float32), 1)
    state = signed_state(cell, (1,), jnp.float32)
    lengths = jnp.array([length], jnp.int32)

    def loss(p, x, s):
        final, ys = jr.rnn(cell, p, x, s, seq_lengths=lengths, time_major=True, impl="parallel")
        return jnp.mean(ys**2) + sum(jnp.sum(f) for f in jax.tree_util.tree_leaves(final)), ys

    (_, ys), grads = jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))(params, xs, state)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))

    to64 = lambda tree: jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), tree)
    p64, h, x64, want = to64(params), to64(state), to64(xs), []
    for t in range(length):
        h, y = numpy_step(cell, p64, h, x64[t])
        h = jr.LRUState(*h) if name == "lru" else h
        want.append(y)
    np.testing.assert_allclose(np.asarray(ys[:length], np.float64), want, rtol=1e-3, atol=1e-4)
    assert not np.asarray(ys[length:]).any()


def test_recurrence_edge_cases():
    """The scan itself: a zero initial state in log space (finite gradients),
    an all-masked sequence (log b = -inf everywhere), an empty time axis."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        la = -np.logaddexp(0.0, rng.standard_normal((5, 2, 3)))  # log a < 0
        lb = rng.standard_normal((5, 2, 3))
        lb[:, 1] = -np.inf  # example 1: b = 0 at every step
        h0 = np.zeros((2, 3))
        h0[1] = [-1.0, 0.0, 2.0]

        def loss(la, lb, h0):
            hs = linear_recurrence(la, lb, h0, 0, True)
            return jnp.sum(jnp.sin(hs)), hs

        (_, hs), grads = jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))(la, lb, h0)
        np.testing.assert_allclose(hs, _numpy_recurrence(la, lb, h0, True), rtol=1e-12, atol=1e-14)
        assert all(np.isfinite(g).all() for g in grads)
        assert not np.asarray(grads[1][:, 1]).any()  # b = 0 exactly: no gradient to log b
        assert linear_recurrence(la[:0], lb[:0], h0, 0, True).shape == (0, 2, 3)

    cell = CELLS["lru"]
    state = signed_state(cell, (2,), jnp.float32)
    params = random_params(cell, jnp.float32)
    final, ys = jr.rnn(cell, params, jnp.zeros((2, 0, INPUT)), state, impl="parallel")
    assert ys.shape == (2, 0, cell.hidden_size)
    assert_trees_close(final, state, F64)


# ---------------------------------------------------------------------------
# initialisation, dtypes, validation


def test_published_init():
    """Layouts, and the published initialisations: the LRU's ring
    ``r_min <= |lambda| <= r_max`` with gamma = sqrt(1 - |lambda|^2), the
    RG-LRU's ``a^c`` uniform in [0.9, 0.999]."""
    H, I = 64, 3
    for cell, shapes in [
        (jr.MinGRU(H), {"w_ih": (I, 2 * H), "b": (2 * H,)}),
        (jr.MinLSTM(H), {"w_ih": (I, 3 * H), "b": (3 * H,)}),
        (jr.LRU(H), {"w_ih": (I, 2 * H), "nu_log": (H,), "theta_log": (H,),
                     "gamma_log": (H,), "c_re": (H, H), "c_im": (H, H), "d": (I, H)}),
        (jr.RGLRU(H), {"w_ih": (I, 3 * H), "b": (3 * H,), "lam": (H,)}),
    ]:
        params = jax.eval_shape(lambda cell=cell: cell.init(KEY, I))
        assert params._fields[0] == "w_ih"
        assert {k: v.shape for k, v in params._asdict().items()} == shapes
        assert all(v.dtype == jnp.float32 for v in params)

    rings = [(0.0, 1.0, 2 * math.pi), (0.9, 0.999, math.pi / 10)]
    cells = [jr.LRU(H, *ring) for ring in rings] + [jr.RGLRU(H)]
    drawn = jit(lambda key: [cell.init(key, I) for cell in cells])(KEY)  # one compile
    for (r_min, r_max, max_phase), p in zip(rings, drawn):
        p = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), p)
        modulus = np.exp(-np.exp(p.nu_log))
        assert r_min - 1e-6 <= modulus.min() and modulus.max() <= r_max + 1e-6
        assert modulus.max() < 1 and np.isfinite(p.gamma_log).all()
        phase = np.exp(p.theta_log)
        assert 0 <= phase.min() and phase.max() <= max_phase * (1 + 1e-6)
        np.testing.assert_allclose(np.exp(p.gamma_log), np.sqrt(1 - modulus**2), rtol=1e-4)
        np.testing.assert_array_equal(p.d, np.eye(I, H) * p.d)  # the paper's diagonal D
        assert 0.5 < p.w_ih.std() * np.sqrt(2 * I) < 2  # N(0, 1/(2I))
    a_c = jax.nn.sigmoid(drawn[-1].lam) ** 8.0
    assert 0.9 - 1e-6 <= a_c.min() < 0.92 and 0.98 < a_c.max() <= 0.999 + 1e-6


def test_half_precision_params():
    """bfloat16 params and inputs: float32 state, bfloat16 outputs, both impls agree."""
    cell = CELLS["lru"]
    params = random_params(cell, jnp.bfloat16)
    xs = _random_like(jax.ShapeDtypeStruct((2, T, INPUT), jnp.bfloat16), 1)
    run = jit(lambda p, x: [jr.rnn(cell, p, x, impl=i) for i in ("parallel", "scan")])
    (final, ys), (want_final, want_ys) = run(params, xs)
    assert ys.dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(final))
    assert_trees_close(final, want_final, Precision(np.dtype("float32"), 1e-5, 1e-5))
    # bf16 outputs: one rounding of the same float32 values
    assert_trees_close(ys, want_ys, Precision(np.dtype("float32"), 1e-2, 1e-2))


@pytest.mark.parametrize("name", list(CELLS))
def test_bad_arguments(name):
    """Bad params, states and inputs raise, naming the argument."""
    cell = CELLS[name]
    params = random_params(cell, jnp.float32)
    state = signed_state(cell, (2,), jnp.float32)
    x = jnp.ones((2, INPUT))
    last = params._fields[-1]
    wrong_shape = params._replace(**{last: jnp.zeros((7,) * getattr(params, last).ndim)})
    with pytest.raises(ValueError, match=f"params.{last} must have shape"):
        cell(wrong_shape, state, x)
    with pytest.raises(TypeError, match="params must be a"):
        cell(tuple(params), state, x)
    with pytest.raises(TypeError, match="all of params must share one dtype"):
        cell(params._replace(**{last: getattr(params, last).astype(jnp.float16)}), state, x)
    leaf = "state.re" if name == "lru" else "state"
    with pytest.raises(ValueError, match=f"{leaf} must have shape"):
        cell(params, cell.initial_state((3,)), x)
    with pytest.raises(TypeError, match=f"{leaf} must have dtype"):
        cell(params, cell.initial_state((2,), jnp.float16), x)
    if name == "lru":
        with pytest.raises(TypeError, match="state must be LRUState"):
            cell(params, state.re, x)
    with pytest.raises(ValueError, match="xs must have 3 features"):
        jr.rnn(cell, params, jnp.ones((2, T, INPUT + 1)))
    with pytest.raises(NotImplementedError, match="linear-recurrence cell"):
        cell.pointwise(x, x, state)


def test_bad_configs():
    for make, match in [
        (lambda: jr.LRU(4, r_min=0.5, r_max=0.4), "r_min must not exceed r_max"),
        (lambda: jr.LRU(4, r_max=1.5), r"r_max must lie in \[0, 1\]"),
        (lambda: jr.LRU(4, max_phase=0.0), "max_phase must be positive"),
        (lambda: jr.RGLRU(4, c=0.0), "c must be positive"),
        (lambda: jr.RGLRU(4, a_max=1.0), r"a_max must lie in \(0, 1\)"),
        (lambda: jr.MinGRU(0), "hidden_size must be a positive int"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match="w_ih_init must be an initializer"):
        jr.MinLSTM(4, w_ih_init=1.0)
    assert hash(jr.LRU(4)) == hash(jr.LRU(4)) and jr.RGLRU(4) == jr.RGLRU(4)


@pytest.mark.parametrize("make", [jr.MinGRU, jr.MinLSTM, jr.RGLRU], ids=["mingru", "minlstm", "rglru"])
def test_bias_false(make):
    """No b at all (None: no leaf, no gradient); the parallel scan equals the
    sequential reference, values and gradients, and equals the biased cell
    with b = 0."""
    cell, biased = make(4, bias=False), make(4)
    with jax.enable_x64(True):
        params = cell.init(KEY, INPUT, jnp.float64)
        assert params.b is None
        xs = jax.random.normal(jax.random.PRNGKey(1), (2, T, INPUT), jnp.float64)

        def loss(p, impl):
            return weighted_loss(*jr.rnn(cell, p, xs, impl=impl))

        g_par = jax.grad(loss)(params, "parallel")
        g_scan = jax.grad(loss)(params, "scan")
        assert g_par.b is None
        assert_trees_close(g_par, g_scan, F64)
        zero_b = params._replace(b=jnp.zeros(biased._param_shapes(INPUT)["b"], jnp.float64))
        assert_trees_close(
            jr.rnn(cell, params, xs, impl="scan"), jr.rnn(biased, zero_b, xs, impl="scan"), F64
        )
        with pytest.raises(ValueError, match=r"params.b must be None for .*bias=False"):
            cell.check_params(zero_b)
