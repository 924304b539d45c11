"""Each implementation as a :class:`Runner` for one case: inputs, the JAX
implementations (jaxrnn, lax.scan with remat, Flax, cuDNN) and PyTorch."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn as jr

from .grid import CELLS, IMPLS, Case, checkpoint_every, torch_or_none

#: the losses of the fwd+bwd pass (``--loss``), the first the default
LOSSES = ("readout", "linear")
READOUT_SIZE = 1  # O: the readout's outputs per step (w_out is (H, O))


@dataclasses.dataclass
class Inputs:
    cell: jr.Cell
    params: Any  # jaxrnn params in the run's dtype
    xs: jax.Array  # (B, T, I), the run's dtype
    loss: str  # one of LOSSES
    weights: tuple[jax.Array, ...]  # float32, fixed random: readout (w_out (H, O), target (B, T, O)); linear (w (B, T, H),)

    def as_float32(self) -> "Inputs":
        f32 = functools.partial(jax.tree_util.tree_map, lambda a: a.astype(jnp.float32))
        return Inputs(self.cell, f32(self.params), f32(self.xs), self.loss, self.weights)


def loss_shapes(case: Case, loss: str) -> tuple[tuple[int, ...], ...]:
    """The shapes of :attr:`Inputs.weights` for ``loss``."""
    if loss == "readout":
        return (case.H, READOUT_SIZE), (case.B, case.T, READOUT_SIZE)
    if loss == "linear":
        return ((case.B, case.T, case.H),)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def make_inputs(case: Case, dtype: Any, seed: int = 0, loss: str = "readout") -> Inputs:
    cell = CELLS[case.cell](case.H)
    key = jax.random.PRNGKey(seed)
    k_p, k_x, k_w = jax.random.split(key, 3)
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), cell.init(k_p, case.I))
    xs = jax.random.normal(k_x, (case.B, case.T, case.I), jnp.float32).astype(dtype)
    shapes = loss_shapes(case, loss)
    keys = (k_w,) if len(shapes) == 1 else jax.random.split(k_w, len(shapes))
    weights = tuple(jax.random.normal(k, shape, jnp.float32) for k, shape in zip(keys, shapes))
    if loss == "readout":  # w_out ~ N(0, 1/H): predictions of order one, like the targets
        weights = (weights[0] / np.sqrt(case.H), weights[1])
    return Inputs(cell, params, xs, loss, weights)


def abstract_inputs(case: Case, dtype: Any, loss: str = "readout") -> Inputs:
    """Shapes and dtypes of :func:`make_inputs`, for compiling without data."""
    cell = CELLS[case.cell](case.H)
    params = jax.eval_shape(
        lambda k: jax.tree_util.tree_map(lambda a: a.astype(dtype), cell.init(k, case.I)), jax.random.PRNGKey(0)
    )
    xs = jax.ShapeDtypeStruct((case.B, case.T, case.I), jnp.dtype(dtype))
    weights = tuple(jax.ShapeDtypeStruct(shape, jnp.dtype(jnp.float32)) for shape in loss_shapes(case, loss))
    return Inputs(cell, params, xs, loss, weights)


def loss_of(loss: str, ys: jax.Array, weights: tuple[jax.Array, ...]) -> jax.Array:
    """The scalar loss of the outputs ``ys`` (B, T, H), in float32.

    ``"readout"`` (the default): a linear readout and squared error,
    ``mean((ys @ w_out - target)**2)``, what training runs: its gradient with
    respect to ``ys`` depends on ``ys``. ``"linear"``: ``sum(ys * w)``, linear
    in the outputs, so its gradient is the constant ``w``.
    """
    ys = ys.astype(jnp.float32)
    if loss == "linear":
        (w,) = weights
        return jnp.sum(ys * w)
    w_out, target = weights
    # HIGHEST: the same float32 readout on every device (no TF32 on a GPU);
    # O = READOUT_SIZE columns, a small cost beside the recurrence.
    pred = jnp.einsum("bth,ho->bto", ys, w_out, precision=jax.lax.Precision.HIGHEST)
    return jnp.mean(jnp.square(pred - target))


@dataclasses.dataclass
class Runner:
    """Two blocking callables and converters of their results.

    ``fwd()`` returns ``(final_state, ys)``, ``fwdbwd()`` returns
    ``(loss, (dparams, dxs))``, both in jaxrnn's layout after ``convert_fwd``
    and ``convert_grad`` (NumPy float64 leaves).
    """

    fwd: Callable[[], Any] | None
    fwdbwd: Callable[[], Any] | None
    convert_fwd: Callable[[Any], Any]
    convert_grad: Callable[[Any], Any]
    compile_s: dict[str, float]
    temp_bytes: dict[str, int | None]
    peak_bytes: Callable[[], int | None] = lambda: device_peak_bytes()



def device_peak_bytes() -> int | None:
    """The device's peak bytes in use, where it reports them (GPU)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 (backends without memory statistics)
        return None
    return None if not stats else stats.get("peak_bytes_in_use")


def to_float64(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: np.asarray(np.asarray(a, np.float32), np.float64), tree)


def compile_(fn: Callable, args: tuple) -> tuple[Any, float, int | None]:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    try:
        temp = int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # noqa: BLE001 (some backends report no memory analysis)
        temp = None
    return compiled, seconds, temp


def jax_runner(
    apply: Callable[[Any, jax.Array], tuple[Any, jax.Array]],
    native: Any,
    inputs: Inputs,
    from_native_grads: Callable[[Any], Any],
    passes: tuple[str, ...],
    execute: bool = True,
    grad_memory: bool = False,
) -> Runner:
    """A Runner for a JAX function ``apply(native_params, xs) -> (final, ys)``
    whose final state is already in jaxrnn's layout. With ``grad_memory``, the
    gradient alone (``jax.grad``, no loss value) is compiled too, for its
    memory only (``temp_bytes["grad"]``)."""

    def loss(p, x, weights):
        return loss_of(inputs.loss, apply(p, x)[1], weights)

    args = (native, inputs.xs, inputs.weights)
    fns = {"fwd": (apply, args[:2]), "fwdbwd": (jax.value_and_grad(loss, argnums=(0, 1)), args)}
    calls: dict[str, Any] = {"fwd": None, "fwdbwd": None}
    compile_s, temp = {}, {}
    for name in passes:
        fn, fn_args = fns[name]
        compiled, compile_s[name], temp[name] = compile_(fn, fn_args)
        if execute:
            calls[name] = functools.partial(lambda c, a: jax.block_until_ready(c(*a)), compiled, fn_args)
    if grad_memory:
        _, compile_s["grad"], temp["grad"] = compile_(jax.grad(loss, argnums=(0, 1)), args)
    return Runner(
        fwd=calls["fwd"],
        fwdbwd=calls["fwdbwd"],
        convert_fwd=to_float64,
        convert_grad=lambda r: to_float64((r[0], (from_native_grads(r[1][0]), r[1][1]))),
        compile_s=compile_s,
        temp_bytes=temp,
    )


def jaxrnn_default_apply(cell: jr.Cell) -> Callable:
    """``jr.rnn(cell, params, xs)``: no impl, no residuals, what a user writes
    first (whatever defaults this jaxrnn has)."""

    def apply(params, xs):
        return jr.rnn(cell, params, xs)

    return apply


def jaxrnn_apply(cell: jr.Cell, impl: str, residuals: Any, precision: Any) -> Callable:
    def apply(params, xs):
        return jr.rnn(cell, params, xs, impl=impl, residuals=residuals, precision=precision)

    return apply


def remat_scan_apply(cell: jr.Cell) -> Callable:
    def apply(params, xs):
        state = cell.initial_state((xs.shape[0],), jr.cells.accumulation_dtype(xs.dtype))
        step = jax.checkpoint(lambda s, x: cell(params, s, x), prevent_cse=False)
        final, ys = jax.lax.scan(step, state, jnp.swapaxes(xs, 0, 1))
        return final, jnp.swapaxes(ys, 0, 1).astype(xs.dtype)

    return apply


def flax_apply(cell: jr.Cell, dtype: Any) -> Callable:
    import flax.linen as nn

    module = nn.RNN(jr.interop.flax_cell(cell, dtype=dtype, param_dtype=dtype), return_carry=True)

    def apply(variables, xs):
        carry, ys = module.apply(variables, xs)
        return jr.interop.from_flax_carry(cell, carry), ys

    return apply


# cuDNN's packed LSTM weights (jax.experimental.rnn, one layer, one direction):
# [W_ih (4H, I), W_hh (4H, H), b_ih (4H,), b_hh (4H,)], flattened row-major and
# concatenated; gate order i, f, g, o (jaxrnn's). jaxrnn's single bias goes into
# b_ih, b_hh is zero (their gradients are equal, so either gives b's gradient).


def cudnn_pack(params: jr.LSTMParams) -> jax.Array:
    """jaxrnn LSTM params -> the flat weight vector of ``jax.experimental.rnn.lstm``."""
    return jnp.concatenate(
        [params.w_ih.T.ravel(), params.w_hh.T.ravel(), params.b.ravel(), jnp.zeros_like(params.b)]
    )


def cudnn_unpack(flat: jax.Array, input_size: int, hidden_size: int) -> jr.LSTMParams:
    """The inverse of :func:`cudnn_pack` (``b`` is read from ``b_ih``)."""
    G, I, H = 4 * hidden_size, input_size, hidden_size
    w_ih, w_hh, b = jnp.split(flat[: G * (I + H + 1)], [G * I, G * (I + H)])
    return jr.LSTMParams(w_ih=w_ih.reshape(G, I).T, w_hh=w_hh.reshape(G, H).T, b=b)


def cudnn_apply(input_size: int, hidden_size: int, lstm: Callable | None = None) -> Callable:
    """``apply(flat_weights, xs) -> (LSTMState, ys)`` through cuDNN (or ``lstm``,
    e.g. a reference with the same signature)."""
    if lstm is None:
        from jax.experimental import rnn as jrnn

        lstm = jrnn.lstm

    def apply(weights, xs):
        B, T = xs.shape[0], xs.shape[1]
        zeros = jnp.zeros((1, B, hidden_size), jnp.float32)
        lengths = jnp.full((B,), T, jnp.int32)
        ys, h_n, c_n = lstm(
            xs, zeros, zeros, weights, lengths, input_size=input_size,
            hidden_size=hidden_size, num_layers=1, dropout=0.0, bidirectional=False,
        )
        return jr.LSTMState(h=h_n[0], c=c_n[0]), ys

    return apply


def build_jax(
    impl: str, case: Case, inputs: Inputs, passes: tuple[str, ...], K: int, precision: Any = None,
    execute: bool = True, grad_memory: bool = False,
) -> Runner:
    """A Runner for one of the JAX implementations."""
    cell, params = inputs.cell, inputs.params
    run = functools.partial(jax_runner, inputs=inputs, passes=passes, execute=execute, grad_memory=grad_memory)
    same = lambda g: g
    if impl == "fused-default":
        return run(jaxrnn_default_apply(cell), params, from_native_grads=same)
    if impl.startswith(("fused-", "pallas-")):
        # pallas-*: the same engine and residual policy, each chunk's
        # recurrence one Pallas kernel (a shape the kernel refuses raises a
        # ValueError when compile_ lowers it; the run reports it as a skip).
        engine, policy = impl.split("-")
        residuals = {"gates": "gates", "states": "states", "ckpt": K}[policy]
        return run(jaxrnn_apply(cell, engine, residuals, precision), params, from_native_grads=same)
    if impl == "scan":
        return run(jaxrnn_apply(cell, "scan", "states", precision), params, from_native_grads=same)
    if impl == "scan-remat":
        return run(remat_scan_apply(cell), params, from_native_grads=same)
    if impl == "flax":
        # nn.RNN keeps its cell's variables under "cell".
        native = {"params": {"cell": jr.interop.to_flax_params(cell, params)["params"]}}
        return run(
            flax_apply(cell, params.w_ih.dtype), native,
            from_native_grads=lambda g: jr.interop.from_flax_params(cell, g["params"]["cell"]),
        )
    if impl == "cudnn":
        return run(
            cudnn_apply(case.I, case.H), cudnn_pack(params),
            from_native_grads=lambda g: cudnn_unpack(g, case.I, case.H),
        )
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")




def build_torch(case: Case, inputs: Inputs, passes: tuple[str, ...], threads: int) -> Runner:
    """A Runner for PyTorch's nn.LSTM / nn.GRU / nn.RNN on CUDA if present, else CPU."""
    torch = torch_or_none()
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tdtype = {jnp.dtype(jnp.float32): torch.float32, jnp.dtype(jnp.bfloat16): torch.bfloat16}[inputs.xs.dtype]
    f32 = inputs.as_float32()
    module = jr.interop.torch_module(inputs.cell, case.I, batch_first=True)
    state_dict = jr.interop.to_torch(inputs.cell, f32.params)
    module.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in state_dict.items()})
    module = module.to(device=device, dtype=tdtype)
    x = torch.from_numpy(np.array(f32.xs)).to(device=device, dtype=tdtype)
    weights = [torch.from_numpy(np.array(a)).to(device) for a in inputs.weights]
    x_grad = x.clone().requires_grad_(True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def final_state(out):
        hidden = out[1]
        return tuple(h.float().cpu() for h in hidden) if case.cell == "lstm" else hidden.float().cpu()

    def fwd():
        with torch.no_grad():
            out = module(x)
        sync()
        return final_state(out), out[0]

    def fwdbwd():
        module.zero_grad(set_to_none=True)
        x_grad.grad = None
        ys = module(x_grad)[0].float()
        if inputs.loss == "linear":
            loss = (ys * weights[0]).sum()
        else:  # readout: the float32 matmul of loss_of (torch uses no TF32 for it by default)
            loss = ((ys @ weights[0] - weights[1]) ** 2).mean()
        loss.backward()
        sync()
        grads = {name: p.grad for name, p in module.named_parameters()}
        return loss.detach(), grads, x_grad.grad

    def toto_float64(t):
        return np.asarray(t.detach().float().cpu().numpy(), np.float64)

    def convert_grad(result):
        loss, grads, dx = result
        grads = {k: toto_float64(v) for k, v in grads.items()}
        # jaxrnn's b is torch's bias_ih (+ bias_hh, equal gradients): keep one.
        for k in grads:
            if k.startswith("bias_hh"):
                keep = grads[k][2 * case.H :].copy() if case.cell == "gru" else None
                grads[k][:] = 0.0
                if keep is not None:  # GRU's n block of bias_hh is b_hn
                    grads[k][2 * case.H :] = keep
        dparams = jr.interop.from_torch(inputs.cell, grads)
        return to_float64((toto_float64(loss), (dparams, dx.float().cpu().numpy())))

    return Runner(
        fwd=fwd if "fwd" in passes else None,
        fwdbwd=fwdbwd if "fwdbwd" in passes else None,
        convert_fwd=lambda r: to_float64((jr.interop.from_torch_state(inputs.cell, r[0]), toto_float64(r[1]))),
        convert_grad=convert_grad,
        compile_s={},
        temp_bytes={p: None for p in passes},
        peak_bytes=(lambda: int(torch.cuda.max_memory_allocated())) if device == "cuda" else (lambda: None),
    )


def build(
    impl: str, case: Case, inputs: Inputs, passes: tuple[str, ...], *, K: int, torch_threads: int,
    execute: bool = True,
) -> Runner:
    """The Runner of ``impl`` at ``case`` (``fused-ckpt`` and ``pallas-ckpt`` keep every ``K``-th state)."""
    if impl == "torch":
        return build_torch(case, inputs, passes, torch_threads)
    return build_jax(impl, case, inputs, passes, K, execute=execute)
