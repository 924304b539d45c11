"""The Pallas kernels (``impl="pallas"``) against their twin ``impl="scan"``,
run by the Pallas interpreter on the CPU, and their lowering for CUDA
(Triton) and TPU (Mosaic), run from the CPU with ``jax.export``: the
lowering is where an operation a backend lacks, or a shape it cannot
take, shows up, so a kernel that only works in interpret mode fails here."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    CELLS,
    INPUT,
    Precision,
    TRITON_CALL,
    assert_trees_close,
    kernel_calls,
    lowered_grad,
    random_inputs,
    rnn_value_and_grad,
    weighted_loss,
)

import jaxrnn as jr
from jaxrnn.kernels import _pallas
from jaxrnn.kernels._pallas import PallasLoops


@dataclasses.dataclass(frozen=True)
class MinimalGatedUnit(jr.Cell):
    """A user's cell with two gates that writes only ``pointwise`` (the MGU of
    Zhou et al. 2016, reset_after form): the default ``pointwise_blocks``."""

    params_type = jr.cells.SimpleRNNParams
    num_gates = 2

    def init_params(self, key, input_size, dtype):
        k1, k2 = jax.random.split(key)
        H = self.hidden_size
        return jr.cells.SimpleRNNParams(
            w_ih=0.3 * jax.random.normal(k1, (input_size, 2 * H), dtype),
            w_hh=0.3 * jax.random.normal(k2, (H, 2 * H), dtype),
            b=jnp.zeros((2 * H,), dtype),
        )

    def pointwise(self, xz, hz, state):
        xf, xn = jnp.split(xz, 2, axis=-1)
        hf, hn = jnp.split(hz, 2, axis=-1)
        f = jax.nn.sigmoid(xf + hf)
        n = jnp.tanh(xn + f * hn)
        return (1 - f) * state + f * n


KERNEL_CELLS = {
    **{name: cell for name, cell in CELLS.items() if cell.elementwise},
    "user_mgu": MinimalGatedUnit(4),
}
POLICIES = ["gates", "states", 3]
# T = 7: one chunk under "gates" and "states"; two chunks and a tail under 3.
B, T = 3, 7
VARIANTS = {
    "lengths+reverse": {"seq_lengths": jnp.array([T, 4, 0]), "reverse": True},
    "lengths+clip": {"seq_lengths": jnp.array([T, 2, 5]), "bptt_clip": 0.05},
    "plain+clip": {"bptt_clip": 0.5},
}
# The full grid: every cell under every policy, the variants rotated over
# them (each cell meets each policy and each variant). It runs with -m slow;
# the default run samples it: every cell once and every policy for the LSTM.
GRID = [
    (name, policy, list(VARIANTS)[(i + j) % len(VARIANTS)])
    for i, name in enumerate(KERNEL_CELLS)
    for j, policy in enumerate(POLICIES)
]
SAMPLE = [case for k, case in enumerate(GRID) if k % 4 == 0 or case[0] == "lstm"]
TWINS = [
    case if case in SAMPLE else pytest.param(*case, marks=pytest.mark.slow) for case in GRID
]


@pytest.fixture
def tiled(monkeypatch):
    """Two examples per kernel program, so that B=3 runs two programs and
    pads the batch (the interpreter's own rule is one program)."""
    monkeypatch.setattr(_pallas, "PALLAS", PallasLoops(block_batch=2))


def _value_and_grad(cell, impl, params, xs, state, **kw):
    return rnn_value_and_grad(cell, params, xs, state, impl=impl, **kw)


@pytest.mark.parametrize(("name", "policy", "variant"), TWINS)
def test_interpreted_kernels_equal_scan_fp64(tiled, name, policy, variant):
    cell = KERNEL_CELLS[name]
    prec = Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12)
    with jax.enable_x64(True):
        params, xs, state = random_inputs(cell, jnp.float64, batch=B, steps=T)
        kw = dict(VARIANTS[variant])
        want = _value_and_grad(cell, "scan", params, xs, state, **kw)
        got = _value_and_grad(cell, "pallas", params, xs, state, residuals=policy, **kw)
        assert_trees_close(got, want, prec)


def test_interpreted_kernels_equal_scan_fp32_time_major():
    cell = KERNEL_CELLS["gru"]
    params, xs, state = random_inputs(cell, jnp.float32, batch=B, steps=T)
    xs = jnp.swapaxes(xs, 0, 1)
    kw = {"time_major": True, "seq_lengths": jnp.array([T, 5, 1])}
    want = _value_and_grad(cell, "scan", params, xs, state, **kw)
    got = _value_and_grad(cell, "pallas", params, xs, state, **kw)
    assert_trees_close(got, want, Precision(np.dtype("float32"), rtol=2e-5, atol=2e-5))


def test_interpreted_kernels_bf16_params_keep_an_fp32_state():
    cell = KERNEL_CELLS["lstm"]
    params, xs, _ = random_inputs(cell, jnp.bfloat16, batch=B, steps=4)
    final, ys = jr.rnn(cell, params, xs, impl="pallas")
    ref_final, _ = jr.rnn(cell, params, xs, impl="fused")
    assert final.h.dtype == jnp.float32 and ys.dtype == jnp.bfloat16
    # The same products on the same bf16 inputs, accumulated in fp32.
    assert_trees_close(final, ref_final, Precision(np.dtype("float32"), rtol=1e-5, atol=1e-5))
    got = _value_and_grad(cell, "pallas", params, xs, None)
    want = _value_and_grad(cell, "fused", params, xs, None)
    assert_trees_close(got, want, Precision(np.dtype("float32"), rtol=2e-2, atol=2e-2))


def test_vmap_over_params_and_probe():
    cell = KERNEL_CELLS["tanh"]
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    ensemble = jax.vmap(lambda k: cell.init(k, INPUT))(keys)
    xs = jax.random.normal(jax.random.PRNGKey(4), (B, 4, INPUT))

    def grads(impl):
        return jax.vmap(
            jax.grad(lambda p: weighted_loss(*jr.rnn(cell, p, xs, impl=impl)))
        )(ensemble)

    prec = Precision(np.dtype("float32"), rtol=1e-5, atol=1e-6)
    assert_trees_close(grads("pallas"), grads("scan"), prec)
    # The fused engine's gradient probe (diagnostics) runs through the kernels too.
    params = jax.tree_util.tree_map(lambda a: a[0], ensemble)
    loss_fn = lambda final, ys: jnp.sum(ys**2)
    got = jr.diagnostics.state_gradients(cell, params, xs, loss_fn, impl="pallas")
    want = jr.diagnostics.state_gradients(cell, params, xs, loss_fn, impl="scan")
    assert_trees_close(got, want, prec)


def test_a_cell_the_kernels_cannot_run_is_refused_by_name():
    cell = CELLS["gru_rb"]
    params, xs, _ = random_inputs(cell, jnp.float32, batch=B, steps=4)
    with pytest.raises(ValueError, match=r'impl="pallas".*GRU\(reset_after=False\)'):
        jr.rnn(cell, params, xs, impl="pallas")
    # "auto" runs it with the XLA engine instead.
    final, _ = jr.rnn(cell, params, xs, impl="auto")
    assert final.shape == (B, cell.hidden_size)


# --------------------------------------------------------------------------
# lowering for CUDA and TPU, from the CPU



def _export(cell, dtype, hidden, platform, *, impl="pallas", batch=16, policy="states"):
    """Exports a jitted training gradient (forward and backward kernels) for
    ``platform``; returns the StableHLO text."""
    cell = dataclasses.replace(cell, hidden_size=hidden)
    params = jax.eval_shape(lambda: cell.init(jax.random.PRNGKey(0), 8, dtype))
    xs = jax.ShapeDtypeStruct((batch, 12, 8), dtype)
    lengths = jax.ShapeDtypeStruct((batch,), jnp.int32)

    def loss(params, xs, lengths):
        _, ys = jr.rnn(
            cell, params, xs, seq_lengths=lengths, impl=impl, residuals=policy, bptt_clip=1.0
        )
        return jnp.sum(ys.astype(jnp.float32) ** 2)

    return lowered_grad(loss, platform, params, xs, lengths)


# (cell, dtype, hidden, policy): every kernel cell at a small and the
# largest Triton size of its dtype; bf16 and fp16 at the 2-byte limit.
LOWERINGS = [
    *[(name, "float32", 32, POLICIES[i % 3]) for i, name in enumerate(KERNEL_CELLS)],
    ("lstm", "float32", 128, "gates"),
    ("gru", "float32", 128, 4),
    ("lstm", "bfloat16", 256, "states"),
    ("gru", "bfloat16", 256, "gates"),
    ("tanh", "float16", 64, "states"),
]


@pytest.mark.parametrize(("name", "dtype", "hidden", "policy"), LOWERINGS)
@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_kernels_lower_for_gpu_and_tpu(platform, name, dtype, hidden, policy):
    cell = KERNEL_CELLS[name]
    if platform == "cuda" and name == "user_mgu":
        pytest.skip("the user cell without pointwise_blocks is refused on CUDA (tested below)")
    text = _export(cell, jnp.dtype(dtype), hidden, platform, policy=policy)
    # The forward and the backward loop, each a kernel.
    assert kernel_calls(text, platform) >= 2


@pytest.mark.parametrize(
    ("name", "dtype", "hidden", "message"),
    [
        ("lstm", "float32", 512, "hidden_size up to 128 for float32"),
        ("gru", "bfloat16", 512, "hidden_size up to 256 for bfloat16"),
        ("tanh", "float32", 24, "power of two"),
        ("user_mgu", "float32", 32, "pointwise_blocks"),
    ],
)
def test_shapes_triton_cannot_take_fail_to_lower_with_the_limit(name, dtype, hidden, message):
    cell = KERNEL_CELLS[name]
    with pytest.raises(ValueError, match=rf'impl="pallas" cannot run here: .*{message}'):
        _export(cell, jnp.dtype(dtype), hidden, "cuda")
    # The same function lowers for the TPU, where the limits differ.
    if name != "user_mgu":
        assert "tpu_custom_call" in _export(cell, jnp.dtype(dtype), hidden, "tpu")


def test_a_platform_without_a_pallas_backend_refuses_to_lower():
    with pytest.raises(ValueError, match="no Pallas backend for this platform"):
        _export(KERNEL_CELLS["tanh"], jnp.float32, 32, "rocm")


def test_tpu_refuses_float64():
    with jax.enable_x64(True), pytest.raises(ValueError, match="TPUs have no float64"):
            _export(KERNEL_CELLS["lstm"], jnp.float64, 128, "tpu")


def test_auto_takes_the_kernels_only_where_measured_and_supported(monkeypatch):
    lstm = KERNEL_CELLS["lstm"]
    # Today no platform is listed: "auto" is the XLA engine on CUDA too.
    assert _pallas.PALLAS_BY_DEFAULT == frozenset()
    assert TRITON_CALL not in _export(lstm, jnp.float32, 32, "cuda", impl="auto")
    # Once CUDA is listed, "auto" lowers to the kernels where Triton takes
    # the shape, and to the XLA loops where it does not, without an error.
    monkeypatch.setattr(_pallas, "PALLAS_BY_DEFAULT", frozenset({"cuda"}))
    assert TRITON_CALL in _export(lstm, jnp.float32, 32, "cuda", impl="auto")
    assert TRITON_CALL not in _export(lstm, jnp.float32, 24, "cuda", impl="auto")
    # and another platform keeps the XLA engine.
    assert "tpu_custom_call" not in _export(lstm, jnp.float32, 32, "tpu", impl="auto")


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_every_tile_configuration_lowers(platform):
    """Exhaustive: every kernel cell, dtype, hidden size within the limits
    and residual policy."""
    sizes = {"float32": [16, 32, 64, 128], "bfloat16": [16, 64, 256], "float16": [16, 128, 256]}
    for name, (dtype, hs), policy in itertools.product(KERNEL_CELLS, sizes.items(), POLICIES):
        if platform == "cuda" and name == "user_mgu":
            continue
        for hidden in hs:
            text = _export(KERNEL_CELLS[name], jnp.dtype(dtype), hidden, platform, policy=policy)
            assert kernel_calls(text, platform) >= 2, (name, dtype, hidden, policy)
