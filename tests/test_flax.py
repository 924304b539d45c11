"""jaxrnn.flax modules against Flax's own nn.RNN / nnx.RNN and against jr.rnn."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import INPUT

import jaxrnn as jr
import jaxrnn.flax as jf
from jaxrnn import interop

H = 4
BATCH, STEPS = 3, 6
TOL = {"rtol": 1e-5, "atol": 1e-5}
LINEN = {"lstm": jf.LSTM, "gru": jf.GRU, "tanh": jf.SimpleRNN, "irnn": jf.IRNN}
NNX = {"lstm": jf.nnx.LSTM, "gru": jf.nnx.GRU, "tanh": jf.nnx.SimpleRNN, "irnn": jf.nnx.IRNN}
# No zero length here: for it nn.RNN returns the carry after the last padding
# step (it indexes step -1), jaxrnn the initial carry.
LENGTHS = jnp.array([6, 3, 1], jnp.int32)
# nnx modules initialise eagerly at construction; where the test loads its own
# weights right after, cheap initializers spare the orthogonal one's compilations.
ZEROS = jax.nn.initializers.zeros
CHEAP = {"w_ih_init": ZEROS, "w_hh_init": ZEROS}

# (name, call options): one case per semantic corner of nn.RNN, each
# compiled once per library, so that the file stays fast.
CASES = {
    "carry_lengths": {"seq_lengths": LENGTHS, "return_carry": True, "initial_carry": True},
    "reverse_lengths": {"seq_lengths": LENGTHS, "return_carry": True, "reverse": True, "keep_order": False},
    "reverse_keep_time_major": {"reverse": True, "keep_order": True, "time_major": True, "return_carry": True},
}
LINEN_CASES = [("lstm", c) for c in CASES] + [("gru", c) for c in CASES] + [
    ("tanh", "reverse_lengths"),
    ("irnn", "carry_lengths"),
]


def _module_cell(name):
    return LINEN[name](H).cell


def _numpy_tree(template, rng, scale=0.5):
    """``template``'s structure filled with NumPy draws (no compilation)."""
    return jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(scale * rng.normal(size=leaf.shape), jnp.float32), template
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(BATCH, STEPS, INPUT)), jnp.float32)
    out = {}
    for name in LINEN:
        cell = _module_cell(name)
        shapes = cell._param_shapes(INPUT)
        params = cell.params_type(**{f: jnp.zeros(shapes[f]) for f in cell.params_type._fields})
        state = jax.tree_util.tree_map(jnp.abs, _numpy_tree(cell.initial_state((BATCH,)), rng))
        out[name] = (_numpy_tree(params, rng), state)
    return out, xs


def _valid_mask(options, time_major):
    """Where Flax's outputs are defined the same way as ours (not padding)."""
    if "seq_lengths" not in options:
        return np.ones((STEPS, BATCH, 1) if time_major else (BATCH, STEPS, 1), bool)
    mask = np.arange(STEPS)[None, :] < np.asarray(options["seq_lengths"])[:, None]
    return mask.T[..., None] if time_major else mask[..., None]


def _call_options(name, case, state):
    cell = _module_cell(name)
    opts = dict(CASES[case])
    if opts.pop("initial_carry", False):
        opts["initial_carry"] = interop.to_flax_carry(cell, state)
    return opts


def _assert_same(ours, theirs, options, time_major):
    (carry, ys), (carry_ref, ys_ref) = ours, theirs
    mask = _valid_mask(options, time_major)
    np.testing.assert_allclose(np.where(mask, ys, 0), np.where(mask, ys_ref, 0), **TOL)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), carry, carry_ref)
    # our padding outputs are zeros (Flax's run the cell over the padding)
    np.testing.assert_array_equal(np.where(mask, 0, ys), 0)


@pytest.mark.parametrize("name,case", LINEN_CASES)
def test_linen_matches_nn_rnn(data, name, case):
    params_by_cell, xs = data
    params, state = params_by_cell[name]
    cell = _module_cell(name)
    opts = _call_options(name, case, state)
    time_major = opts.get("time_major", False)
    if time_major:
        xs = jnp.swapaxes(xs, 0, 1)

    module = LINEN[name](H)
    ours = module.apply({"params": params._asdict()}, xs, **opts)
    flax_rnn = nn.RNN(interop.flax_cell(cell))
    theirs = flax_rnn.apply({"params": {"cell": interop.to_flax_params(cell, params)["params"]}}, xs, **opts)
    assert isinstance(ours[0], tuple) == isinstance(theirs[0], tuple)  # LSTM: (c, h) both
    _assert_same(ours, theirs, opts, time_major)


def _load_nnx_cell(name, params):
    """An nnx cell holding ``params`` (nnx's GRUCell has no b_hn: zero it)."""
    rngs = nnx.Rngs(0)
    if name == "lstm":
        cell = nnx.LSTMCell(INPUT, H, kernel_init=ZEROS, recurrent_kernel_init=ZEROS, rngs=rngs)
        for k, g in enumerate(("i", "f", "g", "o")):
            blk = slice(k * H, (k + 1) * H)
            getattr(cell, "i" + g if g != "f" else "if_").kernel[...] = params.w_ih[:, blk]
            getattr(cell, "h" + g).kernel[...] = params.w_hh[:, blk]
            getattr(cell, "h" + g).bias[...] = params.b[blk]
        return cell, params
    if name == "gru":
        cell = nnx.GRUCell(INPUT, H, kernel_init=ZEROS, recurrent_kernel_init=ZEROS, rngs=rngs)
        params = params._replace(b_hn=jnp.zeros_like(params.b_hn))
    else:
        cell = nnx.SimpleCell(INPUT, H, kernel_init=ZEROS, recurrent_kernel_init=ZEROS, rngs=rngs)
    cell.dense_i.kernel[...] = params.w_ih
    cell.dense_i.bias[...] = params.b
    cell.dense_h.kernel[...] = params.w_hh
    return cell, params


@pytest.mark.parametrize("name", ["lstm", "gru", "tanh"])
def test_nnx_matches_nnx_rnn(data, name):
    params_by_cell, xs = data
    params, state = params_by_cell[name]
    cell, params = _load_nnx_cell(name, params)
    module = NNX[name](INPUT, H, **CHEAP, rngs=nnx.Rngs(3))
    module.set_params(params)
    for case in ("carry_lengths", "reverse_lengths"):
        opts = _call_options(name, case, state)
        ours = module(xs, **opts)
        theirs = nnx.RNN(cell)(xs, **opts)
        _assert_same(ours, theirs, opts, False)


def test_module_shares_weights_with_rnn(data):
    params_by_cell, xs = data
    layer = jf.GRU(H, return_carry=True, residuals="gates")
    variables = layer.lazy_init(jax.random.PRNGKey(0), xs)
    assert set(variables["params"]) == {"w_ih", "w_hh", "b", "b_hn"}
    params = jr.GRUParams(**variables["params"])
    final, ys = jr.rnn(layer.cell, params, xs, residuals="gates")
    carry, ys_mod = layer.apply(variables, xs)
    np.testing.assert_array_equal(ys_mod, ys)
    np.testing.assert_array_equal(carry, final)
    # and back: functional params into the module
    other = params_by_cell["gru"][0]
    _, ys_other = layer.apply({"params": other._asdict()}, xs)
    np.testing.assert_array_equal(ys_other, jr.rnn(layer.cell, other, xs, residuals="gates")[1])


def test_gradients_equal_those_of_rnn(data):
    params_by_cell, xs = data
    params, state = params_by_cell["lstm"]
    carry = interop.to_flax_carry(jr.LSTM(H), state)

    def loss_module(p, xs, carry):
        (c, h), ys = jf.LSTM(H, return_carry=True).apply({"params": p}, xs, initial_carry=carry, seq_lengths=LENGTHS)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(c * h)

    def loss_rnn(p, xs, state):
        final, ys = jr.rnn(jr.LSTM(H), p, xs, state, seq_lengths=LENGTHS)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(final.c * final.h)

    g_mod = jax.grad(loss_module, argnums=(0, 1, 2))(params._asdict(), xs, carry)
    g_rnn = jax.grad(loss_rnn, argnums=(0, 1, 2))(params, xs, state)
    jax.tree_util.tree_map(np.testing.assert_array_equal, g_mod[0], g_rnn[0]._asdict())
    np.testing.assert_array_equal(g_mod[1], g_rnn[1])
    np.testing.assert_array_equal(g_mod[2][0], g_rnn[2].c)
    np.testing.assert_array_equal(g_mod[2][1], g_rnn[2].h)

    # nnx: the same numbers through nnx.grad
    module = jf.nnx.LSTM(INPUT, H, return_carry=True, **CHEAP, rngs=nnx.Rngs(0))
    module.set_params(params)

    def loss_nnx(m):
        (c, h), ys = m(xs, initial_carry=carry, seq_lengths=LENGTHS)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(c * h)

    g_nnx = nnx.grad(loss_nnx)(module)
    for field in ("w_ih", "w_hh", "b"):
        np.testing.assert_allclose(g_nnx[field][...], getattr(g_rnn[0], field), rtol=1e-6, atol=1e-6)


def test_pallas_impl_matches_scan(data):
    # impl reaches jr.rnn from both kinds of layer: the Pallas loops (the
    # interpreter on CPU) give the scan reference's outputs and gradients.
    params_by_cell, xs = data
    params, _ = params_by_cell["gru"]
    close = lambda a, b: np.testing.assert_allclose(a, b, **TOL)

    def score(h, ys):
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h * h), ys

    def loss_linen(p, xs, impl):
        layer = jf.GRU(H, impl=impl, return_carry=True)
        return score(*layer.apply({"params": p}, xs, seq_lengths=LENGTHS))

    grad_linen = jax.grad(loss_linen, argnums=(0, 1), has_aux=True)
    g_scan, ys_scan = grad_linen(params._asdict(), xs, "scan")
    g_linen, ys_linen = grad_linen(params._asdict(), xs, "pallas")
    close(ys_linen, ys_scan)
    jax.tree_util.tree_map(close, g_linen, g_scan)

    module = jf.nnx.GRU(INPUT, H, impl="pallas", return_carry=True, **CHEAP, rngs=nnx.Rngs(0))
    module.set_params(params)
    g_nnx, ys_nnx = nnx.grad(lambda m: score(*m(xs, seq_lengths=LENGTHS)), has_aux=True)(module)
    close(ys_nnx, ys_scan)
    for field in params._fields:
        close(g_nnx[field][...], g_scan[0][field])

    # and it is the Pallas path that ran: it refuses the cell it cannot run
    with pytest.raises(ValueError, match="pallas"):
        jf.GRU(H, reset_after=False, impl="pallas", **CHEAP).init(jax.random.PRNGKey(0), xs)
    with pytest.raises(ValueError, match="pallas"):
        jf.nnx.GRU(INPUT, H, reset_after=False, impl="pallas", **CHEAP, rngs=nnx.Rngs(0))(xs)


def test_dtype_and_param_dtype(data):
    _, xs = data
    layer = jf.LSTM(H, dtype=jnp.bfloat16, return_carry=True)
    variables = layer.lazy_init(jax.random.PRNGKey(0), xs)
    assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(variables))
    (c, h), ys = layer.apply(variables, xs)
    assert ys.dtype == jnp.bfloat16 and c.dtype == h.dtype == jnp.float32
    # it is jr.rnn on bf16 inputs and bf16 params
    p16 = jax.tree_util.tree_map(lambda p: p.astype(jnp.bfloat16), jr.LSTMParams(**variables["params"]))
    final, ys_ref = jr.rnn(layer.cell, p16, xs.astype(jnp.bfloat16))
    np.testing.assert_array_equal(ys.astype(jnp.float32), ys_ref.astype(jnp.float32))
    np.testing.assert_array_equal(h, final.h)
    # gradients reach the float32 params in float32
    grads = jax.grad(lambda v: jnp.sum(layer.apply(v, xs)[1].astype(jnp.float32)))(variables)
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))
    # dtype=None promotes: bf16 inputs with float32 params compute in float32
    ys32 = jax.eval_shape(layer.clone(dtype=None).apply, variables, xs.astype(jnp.bfloat16))[1]
    assert ys32.dtype == jnp.float32
    # param_dtype
    v16 = jf.SimpleRNN(H, param_dtype=jnp.bfloat16).lazy_init(jax.random.PRNGKey(0), xs)
    assert all(v.dtype == jnp.bfloat16 for v in jax.tree_util.tree_leaves(v16))
    m = jf.nnx.GRU(INPUT, H, dtype=jnp.bfloat16, **CHEAP, rngs=nnx.Rngs(0))
    assert m.w_ih[...].dtype == jnp.float32 and nnx.eval_shape(lambda m: m(xs), m).dtype == jnp.bfloat16


def test_init_follows_the_cell_config(data):
    _, xs = data
    v = jf.LSTM(H, forget_bias=2.5).lazy_init(jax.random.PRNGKey(0), xs)["params"]
    np.testing.assert_array_equal(v["b"][H : 2 * H], 2.5)
    np.testing.assert_array_equal(np.delete(np.asarray(v["b"]), np.s_[H : 2 * H]), 0.0)
    v = jf.IRNN(H, scale=0.5).lazy_init(jax.random.PRNGKey(0), xs)["params"]
    np.testing.assert_array_equal(v["w_hh"], 0.5 * np.eye(H))
    m = jf.nnx.IRNN(INPUT, H, scale=0.5, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(m.w_hh[...], 0.5 * np.eye(H))
    assert m.get_params().w_ih.shape == (INPUT, H)
    r = jf.SimpleRNN(H, activation="relu").lazy_init(jax.random.PRNGKey(0), xs)["params"]
    assert r["w_ih"].shape == (INPUT, H) and jf.SimpleRNN(H, activation="relu").cell.activation == "relu"


def test_stacks_match_stacked_rnn(data):
    _params_by_cell, xs = data
    stack = jf.Stack([nn.Bidirectional(jf.GRU(H), jf.GRU(H)), jf.LSTM(H)], return_carry=True)
    variables = stack.lazy_init(jax.random.PRNGKey(0), xs)
    layers = stack.cells()
    assert layers == ((jr.GRU(H), jr.GRU(H)), jr.LSTM(H))
    params = stack.to_jaxrnn(variables)
    finals, ys = jr.stacked_rnn(layers, params, xs, seq_lengths=LENGTHS)
    carries, ys_mod = stack.apply(variables, xs, seq_lengths=LENGTHS)
    np.testing.assert_allclose(ys_mod, ys, **TOL)
    np.testing.assert_allclose(carries[0][1], finals[0][1], **TOL)
    np.testing.assert_allclose(carries[1][1], finals[1].h, **TOL)
    again = stack.from_jaxrnn(params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again, jax.tree_util.tree_map(jnp.asarray, dict(variables)))

    nstack = jf.nnx.Stack(
        [
            nnx.Bidirectional(jf.nnx.GRU(INPUT, H, **CHEAP, rngs=nnx.Rngs(0)), jf.nnx.GRU(INPUT, H, **CHEAP, rngs=nnx.Rngs(1))),
            jf.nnx.LSTM(2 * H, H, **CHEAP, rngs=nnx.Rngs(2)),
        ]
    )
    (fw, bw), top = nstack.cells()
    assert (type(fw), type(bw), type(top)) == (jr.GRU, jr.GRU, jr.LSTM)
    nstack.set_params(params)
    np.testing.assert_allclose(nstack(xs, seq_lengths=LENGTHS), ys, **TOL)
    jax.tree_util.tree_map(np.testing.assert_array_equal, nstack.get_params(), params)


def test_errors(data):
    params_by_cell, xs = data
    layer = jf.LSTM(H)
    variables = {"params": params_by_cell["lstm"][0]._asdict()}
    with pytest.raises(TypeError, match=r"initial_carry must be Flax's LSTM carry, the tuple \(c, h\), or a jaxrnn LSTMState"):
        layer.apply(variables, xs, initial_carry=jnp.zeros((BATCH, H)))
    with pytest.raises(TypeError, match=r"dtype must be a floating dtype, got int32"):
        jf.GRU(H, dtype=jnp.int32).lazy_init(jax.random.PRNGKey(0), xs)
    with pytest.raises(
        TypeError, match=r"inputs must have a floating, integer or boolean dtype, got complex64"
    ):
        layer.apply(variables, xs.astype(jnp.complex64))
    with pytest.raises(ValueError, match=r"hidden_size must be a positive int, got 0"):
        jf.LSTM(0).lazy_init(jax.random.PRNGKey(0), xs)
    with pytest.raises(ValueError, match=r"Stack takes no reverse/keep_order"):
        jf.Stack([jf.LSTM(H)]).lazy_init(jax.random.PRNGKey(0), xs, reverse=True)
    with pytest.raises(TypeError, match=r"layers\[0\] must be a jaxrnn.flax layer .*got RNN"):
        jf.Stack([nn.RNN(nn.GRUCell(H))]).cells()
    m = jf.nnx.GRU(INPUT, H, **CHEAP, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"params.w_ih must have shape \(3, 12\) and dtype float32 \(this module's\), got shape \(5, 12\)"):
        m.set_params(jr.GRU(H).init(jax.random.PRNGKey(0), 5))
    with pytest.raises(ValueError, match=r"xs must have 3 features"):
        m(xs[..., :2])
    with pytest.raises(TypeError, match=r"rngs must be an nnx.Rngs, got int"):
        jf.nnx.GRU(INPUT, H, rngs=0)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: jf.Stack([]), r"layers must be a non-empty sequence of modules, got list \[\]"),
        (lambda: jf.Stack(None), r"layers must be a non-empty sequence of modules, got NoneType"),
        (lambda: jf.Stack([jf.LSTM(H), 3]), r"layers\[1\] must be a flax.linen module, got int 3"),
        (lambda: jf.nnx.Stack([3]), r"layers\[0\] must be a flax.nnx module, got int 3"),
    ],
)
def test_stacks_reject_bad_layers(make, pattern):
    with pytest.raises(TypeError, match=pattern):
        make()


@pytest.fixture
def highway(monkeypatch):
    """examples/custom_cell.py's HighwayRNN: a user's own cell."""
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).parents[1] / "examples" / "custom_cell.py"
    spec = importlib.util.spec_from_file_location("custom_cell", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "custom_cell", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module.HighwayRNN


def test_any_cell_gets_a_linen_and_an_nnx_layer(data, highway):
    _, xs = data
    cell = highway(H)
    layer = jf.RNN(cell, return_carry=True, reverse=True, keep_order=True)
    variables = layer.lazy_init(jax.random.PRNGKey(0), xs)
    params = cell.params_type(**variables["params"])
    cell.check_params(params)
    final, ys = jr.rnn(cell, params, xs, seq_lengths=LENGTHS, reverse=True)
    carry, ys_mod = layer.apply(variables, xs, seq_lengths=LENGTHS)
    np.testing.assert_array_equal(ys_mod, ys)
    np.testing.assert_array_equal(carry, final)
    # nnx: the same layer, loaded with the same params
    module = jf.nnx.RNN(cell, INPUT, rngs=nnx.Rngs(0))
    assert isinstance(module.get_params(), cell.params_type)
    module.set_params(params)
    np.testing.assert_array_equal(module(xs), jr.rnn(cell, params, xs)[1])
    # a named layer is RNN over its cell
    assert isinstance(jf.nnx.GRU(INPUT, H, **CHEAP, rngs=nnx.Rngs(0)), jf.nnx.RNN)
    assert jf.LSTM(H, forget_bias=2.0, return_carry=True).cell == jr.LSTM(H, 2.0)
    with pytest.raises(TypeError, match=r"cell must be a jaxrnn Cell .*got int 3"):
        jf.RNN(3)
    with pytest.raises(TypeError, match=r"cell must be a jaxrnn Cell .*got str"):
        jf.nnx.RNN("lstm", INPUT, rngs=nnx.Rngs(0))


def test_parameters_are_drawn_once(data, highway):
    _, xs = data
    calls = []

    class Counted(highway):
        def init_params(self, key, input_size, dtype):
            calls.append(key)
            return super().init_params(key, input_size, dtype)

    cell = Counted(H)
    variables = jf.RNN(cell).lazy_init(jax.random.PRNGKey(0), xs)
    assert len(calls) == 1 and set(variables["params"]) == set(cell.params_type._fields)
    jf.RNN(cell).apply(variables, xs)
    assert len(calls) == 1  # apply draws nothing
    jf.nnx.RNN(cell, INPUT, rngs=nnx.Rngs(0))
    assert len(calls) == 2


def test_integer_inputs_are_promoted_as_flax_does():
    """Four of Flax's own nnx tests feed int32 sequences to nn.RNN; ours take them too."""
    xs = jnp.arange(2 * 5 * 3, dtype=jnp.int32).reshape(2, 5, 3) % 4
    layer = jf.GRU(H)
    variables = layer.init(jax.random.PRNGKey(0), xs)
    ys = layer.apply(variables, xs)
    assert ys.dtype == jnp.float32
    np.testing.assert_array_equal(ys, layer.apply(variables, xs.astype(jnp.float32)))
    nlayer = jf.nnx.GRU(3, H, rngs=nnx.Rngs(0))
    nys = nlayer(xs)
    assert nys.dtype == jnp.float32
    np.testing.assert_array_equal(nys, nlayer(xs.astype(jnp.float32)))
    # The reference it follows (Flax itself needs standard promotion for it).
    with jax.numpy_dtype_promotion("standard"):
        ref, _ = nn.RNN(nn.GRUCell(H)).init_with_output(jax.random.PRNGKey(0), xs)
    assert ref.dtype == jnp.float32


def test_parallel_paths_through_both_layers(data):
    # A linear-recurrence cell (associative scan under "auto") and a GRU
    # solved by Newton (impl="parallel") give the scan reference's outputs,
    # carries and gradients through linen and nnx. (The other linear cells
    # meet the same layer code; their twins are in test_linear_cells.py.)
    cell = jr.MinGRU(H)
    _, xs = data
    close = lambda a, b: np.testing.assert_allclose(a, b, **TOL)

    def loss(p, layer):
        carry, ys = layer.apply({"params": p}, xs, seq_lengths=LENGTHS)
        leaves = jax.tree_util.tree_leaves(carry)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c * c) for c in leaves), ys

    for fast, ref in [
        (jf.RNN(cell, return_carry=True), jf.RNN(cell, return_carry=True, impl="scan")),
        (
            jf.GRU(H, impl="parallel", method="quasi", return_carry=True),
            jf.GRU(H, impl="scan", return_carry=True),
        ),
    ]:
        params = ref.init(jax.random.PRNGKey(0), xs)["params"]
        (g_fast, ys_fast) = jax.grad(loss, has_aux=True)(params, fast)
        (g_ref, ys_ref) = jax.grad(loss, has_aux=True)(params, ref)
        close(ys_fast, ys_ref)
        jax.tree_util.tree_map(close, g_fast, g_ref)

    module = jf.nnx.RNN(cell, INPUT, rngs=nnx.Rngs(0))
    _, want = jr.rnn(cell, module.get_params(), xs, seq_lengths=LENGTHS, impl="scan")
    close(module(xs, seq_lengths=LENGTHS), want)


# --------------------------------------------------------------------------
# cell options, learned initial state, dropout


def _gate(x):
    return 0.5 * (jnp.tanh(x) + 1.0)


OPTION_LAYERS = {
    # name: (linen layer, nnx layer, the jaxrnn cell they must run)
    "lstmp_nobias_fns": (
        jf.LSTM(H, proj_size=2, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
        lambda: jf.nnx.LSTM(INPUT, H, proj_size=2, bias=False, gate_fn=_gate,
                            activation_fn=jax.nn.soft_sign, rngs=nnx.Rngs(0)),
        jr.LSTM(H, proj_size=2, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
    ),
    "gru_nobias_fns": (
        jf.GRU(H, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
        lambda: jf.nnx.GRU(INPUT, H, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign,
                           rngs=nnx.Rngs(0)),
        jr.GRU(H, bias=False, gate_fn=_gate, activation_fn=jax.nn.soft_sign),
    ),
    "tanh_residual_nobias": (
        jf.SimpleRNN(H, residual=True, bias=False),
        lambda: jf.nnx.SimpleRNN(INPUT, H, residual=True, bias=False, rngs=nnx.Rngs(0)),
        jr.SimpleRNN(H, residual=True, bias=False),
    ),
    "irnn_nobias": (
        jf.IRNN(H, bias=False),
        lambda: jf.nnx.IRNN(INPUT, H, bias=False, rngs=nnx.Rngs(0)),
        jr.IRNN(H, bias=False),
    ),
}


@pytest.mark.parametrize("name", list(OPTION_LAYERS))
def test_named_layers_take_the_cell_options(name):
    """bias, gate_fn/activation_fn, residual and proj_size are layer
    attributes: the layers run the cell they configure, declare no bias
    parameter, and compute what jr.rnn computes with their params."""
    linen_layer, make_nnx, cell = OPTION_LAYERS[name]
    xs = jax.random.normal(jax.random.PRNGKey(1), (BATCH, STEPS, INPUT))
    assert linen_layer.cell == cell
    variables = linen_layer.init(jax.random.PRNGKey(0), xs)
    assert "b" not in variables["params"] and "b_hn" not in variables["params"]
    params = cell.params_type(**{f: variables["params"].get(f) for f in cell.params_type._fields})
    _, want = jr.rnn(cell, params, xs)
    np.testing.assert_array_equal(linen_layer.apply(variables, xs), want)
    # Stack converts such layers both ways
    stack = jf.Stack([linen_layer])
    sv = stack.init(jax.random.PRNGKey(0), xs)
    back = stack.from_jaxrnn(stack.to_jaxrnn(sv))
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, sv)

    layer = make_nnx()
    assert layer.cell == cell
    assert "b" not in nnx.state(layer, nnx.Param)
    _, want = jr.rnn(cell, layer.get_params(), xs)
    np.testing.assert_array_equal(layer(xs), want)
    layer.set_params(params)
    np.testing.assert_array_equal(layer(xs), linen_layer.apply(variables, xs))


def test_learned_initial_state_linen_and_nnx():
    """learn_initial_state: an initial_h (and initial_c) parameter drawn by
    carry_init, broadcast over the batch; its gradient through the fused
    engine is the scan twin's, and not zero; a given initial_carry wins."""
    xs = jax.random.normal(jax.random.PRNGKey(1), (BATCH, STEPS, INPUT))
    normal = jax.nn.initializers.normal(1.0)

    def grads(impl):
        layer = jf.LSTM(H, proj_size=2, learn_initial_state=True, carry_init=normal, impl=impl,
                        return_carry=True)
        variables = layer.init(jax.random.PRNGKey(0), xs)

        def loss(v):
            (c, h), ys = layer.apply(v, xs, seq_lengths=LENGTHS)
            return jnp.sum(ys**2) + jnp.sum(jnp.sin(c)) + jnp.sum(h)

        return variables, jax.grad(loss)(variables)["params"]

    variables, g_fused = grads("fused")
    _, g_scan = grads("scan")
    p = variables["params"]
    assert (p["initial_h"].shape, p["initial_c"].shape) == ((2,), (H,))
    assert float(jnp.abs(p["initial_c"]).max()) > 0  # carry_init drew them
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), g_fused, g_scan)
    assert float(jnp.abs(g_fused["initial_h"]).min()) > 0
    assert float(jnp.abs(g_fused["initial_c"]).min()) > 0
    # the learned state is the default carry, and it is what jr.rnn gets
    layer = jf.LSTM(H, proj_size=2, learn_initial_state=True)
    state = jr.LSTMState(*(jnp.broadcast_to(p[f"initial_{k}"], (BATCH,) + p[f"initial_{k}"].shape)
                           for k in ("h", "c")))
    params = jr.LSTMPParams(**{f: p[f] for f in jr.LSTMPParams._fields})
    np.testing.assert_array_equal(layer.apply(variables, xs), jr.rnn(layer.cell, params, xs, state)[1])
    zeros = (jnp.zeros((BATCH, H)), jnp.zeros((BATCH, 2)))
    np.testing.assert_array_equal(
        layer.apply(variables, xs, initial_carry=zeros), jr.rnn(layer.cell, params, xs)[1]
    )

    m = jf.nnx.GRU(INPUT, H, learn_initial_state=True, carry_init=normal, impl="fused",
                   rngs=nnx.Rngs(0))
    m_scan = jf.nnx.GRU(INPUT, H, learn_initial_state=True, carry_init=normal, impl="scan",
                        rngs=nnx.Rngs(0))
    g = [nnx.grad(lambda mod: jnp.sum(mod(xs, seq_lengths=LENGTHS) ** 2))(mod) for mod in (m, m_scan)]
    np.testing.assert_allclose(g[0]["initial_h"][...], g[1]["initial_h"][...], **TOL)
    assert float(jnp.abs(g[0]["initial_h"][...]).min()) > 0
    np.testing.assert_array_equal(m.get_initial_state((BATCH,)), jnp.broadcast_to(m.initial_h[...], (BATCH, H)))


RATES = {"dropout": 0.3, "recurrent_dropout": 0.25, "zoneout": 0.2}


class _DropoutKey(nn.Module):
    """What a top-level module's first make_rng("dropout") returns."""

    @nn.compact
    def __call__(self):
        return self.make_rng("dropout")


def test_dropout_through_the_layers():
    """The rates are layer attributes; linen draws the key from the "dropout"
    stream, nnx from its fork of rngs.dropout (or the call's rngs): the same
    outputs as jr.rnn with that key. deterministic=True is jr.rnn's
    deterministic run (no dropout, zoneout by its expectation)."""
    xs = jax.random.normal(jax.random.PRNGKey(1), (BATCH, STEPS, INPUT))
    key = jax.random.PRNGKey(7)
    layer = jf.GRU(H, **RATES)
    variables = layer.init(jax.random.PRNGKey(0), xs, deterministic=True)
    params = jr.GRUParams(**variables["params"])

    ys = layer.apply(variables, xs, deterministic=False, rngs={"dropout": key})
    _, want = jr.rnn(layer.cell, params, xs, key=_DropoutKey().apply({}, rngs={"dropout": key}), **RATES)
    np.testing.assert_array_equal(ys, want)
    _, plain = jr.rnn(layer.cell, params, xs)
    assert not np.allclose(ys, plain)
    _, expected = jr.rnn(layer.cell, params, xs, deterministic=True, **RATES)
    np.testing.assert_array_equal(layer.apply(variables, xs, deterministic=True), expected)
    # the attribute, overridden by the call (nn.Dropout's convention)
    eval_layer = jf.GRU(H, deterministic=True, **RATES)
    np.testing.assert_array_equal(eval_layer.apply(variables, xs), expected)
    np.testing.assert_array_equal(
        eval_layer.apply(variables, xs, deterministic=False, rngs={"dropout": key}), ys
    )
    with pytest.raises(ValueError, match="deterministic must be given"):
        layer.apply(variables, xs)
    stack = jf.Stack([jf.GRU(H, **RATES)])
    np.testing.assert_array_equal(
        stack.apply({"params": {"layers_0": variables["params"]}}, xs, deterministic=True), expected
    )

    m = jf.nnx.GRU(INPUT, H, **RATES, rngs=nnx.Rngs(0, dropout=5))
    m.set_params(params)
    np.testing.assert_array_equal(m(xs, rngs=key), jr.rnn(layer.cell, params, xs, key=key, **RATES)[1])
    stream_key = nnx.Rngs(0, dropout=5)["dropout"].fork()()
    np.testing.assert_array_equal(m(xs), jr.rnn(layer.cell, params, xs, key=stream_key, **RATES)[1])
    assert not np.array_equal(m(xs), m(xs))  # the stream moves on
    m.eval()
    assert m.deterministic is True
    np.testing.assert_array_equal(m(xs), expected)
    np.testing.assert_array_equal(m(xs, deterministic=False, rngs=key), m(xs, deterministic=False, rngs=key))
    # a layer whose Rngs has no dropout stream needs the call's
    bare = jf.nnx.GRU(INPUT, H, dropout=0.3, rngs=nnx.Rngs(params=0))
    with pytest.raises(ValueError, match="no dropout stream .* pass rngs"):
        bare(xs)
    assert bare(xs, rngs=key).shape == (BATCH, STEPS, H)


def test_stacks_take_layer_dropout():
    """Stack(layer_dropout=p): PyTorch's dropout between layers (not after
    the top one), from the "dropout" stream (linen) or a fork of
    rngs.dropout (nnx); deterministic runs are jr.stacked_rnn's."""
    from jaxrnn._dropout import layer_dropout

    xs = jax.random.normal(jax.random.PRNGKey(1), (BATCH, STEPS, INPUT))
    key = jax.random.PRNGKey(9)
    stack = jf.Stack([jf.GRU(H), jf.LSTM(H)], layer_dropout=0.5)
    variables = stack.init(jax.random.PRNGKey(0), xs, deterministic=True)
    cells, params = stack.cells(), stack.to_jaxrnn(variables)
    _, ys0 = jr.rnn(cells[0], params[0], xs)
    dropped = layer_dropout(_DropoutKey().apply({}, rngs={"dropout": key}), 0.5, ys0)
    _, want = jr.rnn(cells[1], params[1], dropped)
    got = stack.apply(variables, xs, deterministic=False, rngs={"dropout": key})
    np.testing.assert_array_equal(got, want)
    _, plain = jr.stacked_rnn(cells, params, xs)
    assert not np.allclose(got, plain)
    np.testing.assert_array_equal(stack.apply(variables, xs, deterministic=True), plain)
    with pytest.raises(ValueError, match="deterministic must be given"):
        stack.apply(variables, xs)

    m = jf.nnx.Stack(
        [jf.nnx.GRU(INPUT, H, rngs=nnx.Rngs(0)), jf.nnx.LSTM(H, H, rngs=nnx.Rngs(1))],
        layer_dropout=0.5, rngs=nnx.Rngs(dropout=3),
    )
    m.set_params(params)
    stream_key = nnx.Rngs(dropout=3)["dropout"].fork()()
    _, want = jr.rnn(cells[1], params[1], layer_dropout(stream_key, 0.5, ys0))
    np.testing.assert_array_equal(m(xs), want)
    m.eval()
    np.testing.assert_array_equal(m(xs), plain)
