"""Backpropagation through time: jaxrnn against the RNNs people use today.

For each cell (LSTM, GRU, tanh RNN), sequence length T and (batch B, hidden H),
with input size I = H, this times the forward pass and the forward+backward
pass of:

=============  ==============================================================
impl           what
=============  ==============================================================
fused-gates    ``jr.rnn(impl="fused", residuals="gates")``
fused-states   ``jr.rnn(impl="fused", residuals="states")`` (the default)
fused-ckpt     ``jr.rnn(impl="fused", residuals=K)``, ``K = ceil(sqrt(T))``
scan           ``jr.rnn(impl="scan")``: autodiff through ``lax.scan``
scan-remat     ``lax.scan`` over ``jax.checkpoint(cell step)``: keeps only
               the carry of every step and recomputes the step in the backward
flax           Flax ``nn.RNN`` over ``nn.LSTMCell`` / ``nn.GRUCell`` /
               ``nn.SimpleCell`` (weights from ``jaxrnn.interop.to_flax_params``)
torch          PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (CPU or CUDA), when
               torch is importable (weights from ``jaxrnn.interop.to_torch``)
cudnn          ``jax.experimental.rnn.lstm`` (cuDNN), LSTM, float32, GPU only
=============  ==============================================================

"fwd" is the jitted forward (outputs and final state); "fwd+bwd" is
``jax.value_and_grad`` of ``sum(ys * w)`` (``w`` fixed random weights) with
respect to the params and the inputs, jitted (torch: the same loss,
``.backward()``).

Method. Before anything is timed, every implementation's outputs, final state
and gradients (params, in jaxrnn's layout, and inputs) are checked against
jaxrnn's reference (``impl="scan"``, float32, ``Precision.HIGHEST``): the
relative L2 error of each array must be below a tolerance set by the dtype and
the device. An implementation that fails is reported and not timed. For T above
``--check-steps`` the check runs the same implementation (same K) at
T = ``--check-steps``. Compilation is ahead of time and timed apart; each call
blocks on its results; the figure is the median of ``--repeats`` calls, fewer
when they would take more than ``--budget`` seconds together (a call longer than
that is timed once, by its first call after compilation).

Reported: time per step, tokens per second (B*T / time), achieved GFLOP/s as a
share of the device's GEMM peak measured in the same run (a square matmul in
the run's dtype), and memory: the compiled temporary bytes of each jitted
function (``memory_analysis().temp_size_in_bytes``, deterministic), and the
device's peak bytes in use where it reports them (GPU). FLOPs are the model's:
``2*B*(I+H)*G*H`` per step forward (G gates), three times that for
forward+backward; recomputation is not counted.

Output (``--out DIR``, default ``benchmarks/results/bptt-<time>/``):
``results.json`` (machine, versions, command, every row), ``results.md`` (the
tables) and three plots (``time_per_step.png``, ``memory.png``,
``speedup_vs_flax.png``). ``--docs`` also writes the tables into
``docs/benchmarks.md`` (between its markers) and the plots into
``docs/benchmarks/``. What runs at which size: see :func:`plan`.

Run::

    python benchmarks/bptt.py --quick          # < 2 min on 2 CPU cores
    python benchmarks/bptt.py                  # the default grid (see --help)
    python benchmarks/bptt.py --dtype bf16     # on a GPU
"""

# No `from __future__ import annotations`: `jaxrnn bench` loads this file
# without registering it in sys.modules, and dataclasses then cannot resolve
# string annotations.
import argparse
import dataclasses
import datetime
import functools
import json
import math
import os
import pathlib
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# JAX must not take 75% of a GPU's memory up front: PyTorch runs in the same
# process, and the device's peak bytes should show what the runs use.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn as jr

try:
    from tqdm import tqdm
except ImportError:  # the bench extra installs it; run without a bar otherwise

    def tqdm(iterable, **_):  # type: ignore[no-redef]
        return iterable


HERE = pathlib.Path(__file__).resolve().parent
DOCS_DIR = HERE.parent / "docs" / "benchmarks"
DOCS_PAGE = HERE.parent / "docs" / "benchmarks.md"

CELLS: dict[str, Callable[[int], jr.Cell]] = {
    "lstm": jr.LSTM,
    "gru": jr.GRU,  # reset_after=True: Flax's GRUCell, PyTorch's nn.GRU, cuDNN's GRU
    "tanh": jr.SimpleRNN,
}
GATES = {"lstm": 4, "gru": 3, "tanh": 1}
IMPLS = (
    "fused-gates",
    "fused-states",
    "fused-ckpt",
    "scan",
    "scan-remat",
    "flax",
    "torch",
    "cudnn",
)
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}

DEFAULT_T = (100, 1000, 10000, 100000)
DEFAULT_SIZES = ((8, 128), (32, 128), (64, 256), (64, 512))
QUICK = {"cells": ("lstm",), "T": (100, 1000), "sizes": ((8, 64),), "repeats": 3}
SMALL = (8, 128)  # sizes up to B*H = 8*128 run at T >= 10000 in the default grid


# --------------------------------------------------------------------------
# the grid and what runs where


@dataclasses.dataclass(frozen=True)
class Case:
    cell: str
    T: int
    B: int
    H: int

    @property
    def I(self) -> int:
        return self.H

    def label(self) -> str:
        return f"{self.cell} T={self.T} B={self.B} H={self.H}"


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: str  # "time" (check, then time), "memory" (compile only) or "skip"
    reason: str = ""
    passes: tuple[str, ...] = ("fwd", "fwdbwd")


def availability(impl: str, case: Case, dtype: str, backend: str) -> str | None:
    """Why ``impl`` cannot run ``case`` here at all (None: it can)."""
    if impl == "torch" and _torch() is None:
        return "PyTorch is not installed (pip install torch==2.13.0)"
    if impl == "torch" and not hasattr(jr.interop, "to_torch"):
        return "jaxrnn.interop.to_torch is not available in this jaxrnn"
    if impl == "cudnn":
        if backend != "gpu":
            return "jax.experimental.rnn.lstm needs a CUDA GPU"
        if case.cell != "lstm":
            return "jax.experimental.rnn has only an LSTM"
        if dtype != "fp32":
            return "jax.experimental.rnn.lstm takes float32 only"
    return None


MEMORY_IMPLS = ("fused-gates", "fused-states", "fused-ckpt", "scan")  # compiled where not timed


def plan(impl: str, case: Case, dtype: str, backend: str, full: bool) -> Plan:
    """What the default grid does with ``impl`` at ``case``.

    A CPU run is bounded (about 20 minutes on 2 cores): T=100 is timed for
    small sizes only (B*H <= 8*128; compilation dominates there); T=1000 for
    every size; at T >= 10000, ``impl="scan"``, ``"scan-remat"``, Flax and
    PyTorch take seconds to minutes per call and ``impl="scan"`` GBs, so only
    small sizes are timed and larger ones give the compiled memory of the
    engine's policies and ``impl="scan"`` (compilation only). At T >= 100000
    only the checkpointed engine is timed (LSTM, small sizes,
    forward+backward, one call); the other policies and ``impl="scan"`` give
    their compiled memory. On a GPU everything up to T = 10000 is timed, and
    at T >= 100000 the small sizes. ``full`` times everything.
    """
    why = availability(impl, case, dtype, backend)
    if why is not None:
        return Plan("skip", why)
    small = case.B * case.H <= SMALL[0] * SMALL[1]
    big = f"B*H > {SMALL[0]}*{SMALL[1]}"
    gpu = backend != "cpu"
    if full or (gpu and case.T < 100000) or (small and case.T < 100000) or 100 < case.T < 10000:
        return Plan("time")
    if case.T <= 100:
        return Plan("skip", f"T={case.T}, {big}: only small sizes at short T on a CPU (without --full)")
    if small and (gpu or (impl == "fused-ckpt" and case.cell == "lstm")):
        return Plan("time", passes=("fwdbwd",))
    where = "" if gpu else " on a CPU"
    if impl in MEMORY_IMPLS and (small or gpu or case.T < 100000):
        size = "" if small else f", {big}"
        return Plan("memory", f"T={case.T}{size}: compiled memory only{where} (without --full)", ("fwdbwd",))
    return Plan("skip", f"T={case.T}{'' if small else ', ' + big}: not run{where} (without --full)")


CKPT_EVERY: int | None = None  # main() sets it from --ckpt-every


def checkpoint_every(T: int) -> int:
    """K of ``fused-ckpt``: ``--ckpt-every``, by default ceil(sqrt(T)), so
    memory grows like sqrt(T)."""
    return CKPT_EVERY if CKPT_EVERY is not None else max(1, math.ceil(math.sqrt(T)))


# --------------------------------------------------------------------------
# inputs and the loss


@dataclasses.dataclass
class Inputs:
    cell: jr.Cell
    params: Any  # jaxrnn params in the run's dtype
    xs: jax.Array  # (B, T, I), the run's dtype
    w: jax.Array  # (B, T, H) float32: the loss weights

    def as_float32(self) -> "Inputs":
        f32 = functools.partial(jax.tree_util.tree_map, lambda a: a.astype(jnp.float32))
        return Inputs(self.cell, f32(self.params), f32(self.xs), self.w)


def make_inputs(case: Case, dtype: Any, seed: int = 0) -> Inputs:
    cell = CELLS[case.cell](case.H)
    key = jax.random.PRNGKey(seed)
    k_p, k_x, k_w = jax.random.split(key, 3)
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), cell.init(k_p, case.I))
    xs = jax.random.normal(k_x, (case.B, case.T, case.I), jnp.float32).astype(dtype)
    w = jax.random.normal(k_w, (case.B, case.T, case.H), jnp.float32)
    return Inputs(cell, params, xs, w)


def abstract_inputs(case: Case, dtype: Any) -> Inputs:
    """Shapes and dtypes of :func:`make_inputs`, for compiling without data."""
    cell = CELLS[case.cell](case.H)
    params = jax.eval_shape(
        lambda k: jax.tree_util.tree_map(lambda a: a.astype(dtype), cell.init(k, case.I)), jax.random.PRNGKey(0)
    )
    xs = jax.ShapeDtypeStruct((case.B, case.T, case.I), jnp.dtype(dtype))
    w = jax.ShapeDtypeStruct((case.B, case.T, case.H), jnp.dtype(jnp.float32))
    return Inputs(cell, params, xs, w)


def loss_of(ys: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(ys.astype(jnp.float32) * w)


# --------------------------------------------------------------------------
# implementations: each builds a Runner for a case


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


def _np(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: np.asarray(np.asarray(a, np.float32), np.float64), tree)


def _compile(fn: Callable, args: tuple) -> tuple[Any, float, int | None]:
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

    def loss(p, x, w):
        return loss_of(apply(p, x)[1], w)

    args = (native, inputs.xs, inputs.w)
    fns = {"fwd": (apply, args[:2]), "fwdbwd": (jax.value_and_grad(loss, argnums=(0, 1)), args)}
    calls: dict[str, Any] = {"fwd": None, "fwdbwd": None}
    compile_s, temp = {}, {}
    for name in passes:
        fn, fn_args = fns[name]
        compiled, compile_s[name], temp[name] = _compile(fn, fn_args)
        if execute:
            calls[name] = functools.partial(lambda c, a: jax.block_until_ready(c(*a)), compiled, fn_args)
    if grad_memory:
        _, compile_s["grad"], temp["grad"] = _compile(jax.grad(loss, argnums=(0, 1)), args)
    return Runner(
        fwd=calls["fwd"],
        fwdbwd=calls["fwdbwd"],
        convert_fwd=_np,
        convert_grad=lambda r: _np((r[0], (from_native_grads(r[1][0]), r[1][1]))),
        compile_s=compile_s,
        temp_bytes=temp,
    )


def _jaxrnn_apply(cell: jr.Cell, impl: str, residuals: Any, precision: Any) -> Callable:
    def apply(params, xs):
        return jr.rnn(cell, params, xs, impl=impl, residuals=residuals, precision=precision)

    return apply


def _remat_scan_apply(cell: jr.Cell) -> Callable:
    def apply(params, xs):
        state = cell.initial_state((xs.shape[0],), jr.cells.accumulation_dtype(xs.dtype))
        step = jax.checkpoint(lambda s, x: cell(params, s, x), prevent_cse=False)
        final, ys = jax.lax.scan(step, state, jnp.swapaxes(xs, 0, 1))
        return final, jnp.swapaxes(ys, 0, 1).astype(xs.dtype)

    return apply


def _flax_apply(cell: jr.Cell, dtype: Any) -> Callable:
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
    if impl.startswith("fused-"):
        residuals = {"fused-gates": "gates", "fused-states": "states", "fused-ckpt": K}[impl]
        return run(_jaxrnn_apply(cell, "fused", residuals, precision), params, from_native_grads=same)
    if impl == "scan":
        return run(_jaxrnn_apply(cell, "scan", "states", precision), params, from_native_grads=same)
    if impl == "scan-remat":
        return run(_remat_scan_apply(cell), params, from_native_grads=same)
    if impl == "flax":
        # nn.RNN keeps its cell's variables under "cell".
        native = {"params": {"cell": jr.interop.to_flax_params(cell, params)["params"]}}
        return run(
            _flax_apply(cell, params.w_ih.dtype), native,
            from_native_grads=lambda g: jr.interop.from_flax_params(cell, g["params"]["cell"]),
        )
    if impl == "cudnn":
        return run(
            cudnn_apply(case.I, case.H), cudnn_pack(params),
            from_native_grads=lambda g: cudnn_unpack(g, case.I, case.H),
        )
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


TORCH_THREADS = os.cpu_count() or 1  # main() sets it from --torch-threads


@functools.cache
def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def build_torch(case: Case, inputs: Inputs, passes: tuple[str, ...]) -> Runner:
    """A Runner for PyTorch's nn.LSTM / nn.GRU / nn.RNN on CUDA if present, else CPU."""
    torch = _torch()
    torch.set_num_threads(TORCH_THREADS)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tdtype = {jnp.dtype(jnp.float32): torch.float32, jnp.dtype(jnp.bfloat16): torch.bfloat16}[inputs.xs.dtype]
    f32 = inputs.as_float32()
    module = jr.interop.torch_module(inputs.cell, case.I, batch_first=True)
    state_dict = jr.interop.to_torch(inputs.cell, f32.params)
    module.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in state_dict.items()})
    module = module.to(device=device, dtype=tdtype)
    x = torch.from_numpy(np.array(f32.xs)).to(device=device, dtype=tdtype)
    w = torch.from_numpy(np.array(inputs.w)).to(device)
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
        ys = module(x_grad)[0]
        loss = (ys.float() * w).sum()
        loss.backward()
        sync()
        grads = {name: p.grad for name, p in module.named_parameters()}
        return loss.detach(), grads, x_grad.grad

    def to_np(t):
        return np.asarray(t.detach().float().cpu().numpy(), np.float64)

    def convert_grad(result):
        loss, grads, dx = result
        grads = {k: to_np(v) for k, v in grads.items()}
        # jaxrnn's b is torch's bias_ih (+ bias_hh, equal gradients): keep one.
        for k in grads:
            if k.startswith("bias_hh"):
                keep = grads[k][2 * case.H :].copy() if case.cell == "gru" else None
                grads[k][:] = 0.0
                if keep is not None:  # GRU's n block of bias_hh is b_hn
                    grads[k][2 * case.H :] = keep
        dparams = jr.interop.from_torch(inputs.cell, grads)
        return _np((to_np(loss), (dparams, dx.float().cpu().numpy())))

    return Runner(
        fwd=fwd if "fwd" in passes else None,
        fwdbwd=fwdbwd if "fwdbwd" in passes else None,
        convert_fwd=lambda r: _np((jr.interop.from_torch_state(inputs.cell, r[0]), to_np(r[1]))),
        convert_grad=convert_grad,
        compile_s={},
        temp_bytes={p: None for p in passes},
        peak_bytes=(lambda: int(torch.cuda.max_memory_allocated())) if device == "cuda" else (lambda: None),
    )


def build(impl: str, case: Case, inputs: Inputs, passes: tuple[str, ...], execute: bool = True) -> Runner:
    """The Runner of ``impl`` at ``case`` (``fused-ckpt`` uses K from ``case.T``)."""
    if impl == "torch":
        return build_torch(case, inputs, passes)
    return build_jax(impl, case, inputs, passes, checkpoint_every(case.T), execute=execute)


# --------------------------------------------------------------------------
# checking


def tolerance(dtype: str, backend: str) -> float:
    """Largest relative L2 error accepted per array: float32 on a CPU is exact
    up to summation order; GPUs run float32 GEMMs in TF32 by default."""
    if dtype == "bf16":
        return 5e-2
    return 2e-4 if backend == "cpu" else 1e-2


def relative_errors(got: Any, want: Any) -> list[float]:
    errors = []
    for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        if g.shape != r.shape:
            return [math.inf]
        scale = float(np.linalg.norm(r)) or 1.0
        errors.append(float(np.linalg.norm(g - r)) / scale)
    return errors


@dataclasses.dataclass
class Reference:
    fwd: Any  # (final, ys), numpy
    fwdbwd: Any  # (loss, (dparams, dxs)), numpy
    runner: Runner  # what computed them
    first_seconds: dict[str, float]  # the time of each first call


def reference(case: Case, inputs: Inputs, backend: str) -> Reference:
    """jaxrnn's impl="scan" in float32 at Precision.HIGHEST on ``inputs``.

    On a CPU, float32 matmuls are float32 whatever the precision, so the
    float32 ``scan`` row reuses this runner instead of compiling its twin.
    """
    precision = None if backend == "cpu" else jax.lax.Precision.HIGHEST
    runner = build_jax("scan", case, inputs.as_float32(), ("fwd", "fwdbwd"), K=1, precision=precision)
    (fwd, t_fwd), (fwdbwd, t_fwdbwd) = timed_first(runner.fwd), timed_first(runner.fwdbwd)
    return Reference(_np(fwd), _np(fwdbwd), runner, {"fwd": t_fwd, "fwdbwd": t_fwdbwd})


def check(runner: Runner, results: dict[str, Any], ref: Reference, tol: float) -> tuple[float, str | None]:
    """The largest relative error over outputs, final state, loss and
    gradients, and a message naming those above ``tol`` (None if none is)."""
    errors: dict[str, float] = {}
    if "fwd" in results:
        final, ys = runner.convert_fwd(results["fwd"])
        errors["final state"] = max(relative_errors(final, ref.fwd[0]))
        errors["outputs"] = max(relative_errors(ys, ref.fwd[1]))
    if "fwdbwd" in results:
        loss, (dp, dx) = runner.convert_grad(results["fwdbwd"])
        errors["loss"] = max(relative_errors(loss, ref.fwdbwd[0]))
        errors["param gradients"] = max(relative_errors(dp, ref.fwdbwd[1][0]))
        errors["input gradients"] = max(relative_errors(dx, ref.fwdbwd[1][1]))
    worst = max(errors.values())
    bad = [f"{name} {e:.1e}" for name, e in errors.items() if not e <= tol]  # NaN fails too
    if bad:
        return worst, f"relative error above {tol:.0e}: " + ", ".join(bad)
    return worst, None


# --------------------------------------------------------------------------
# timing


def time_calls(fn: Callable[[], Any], first_seconds: float, repeats: int, budget: float) -> tuple[float, int]:
    """Median seconds of ``repeats`` calls of ``fn`` (already called once, in
    ``first_seconds``); calls longer than ``budget`` are timed once, by that
    first post-compilation call."""
    if first_seconds >= budget:
        return first_seconds, 1
    n = max(1, min(repeats, int(budget / max(first_seconds, 1e-9))))
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), n


def timed_first(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def gemm_peak(dtype: Any, n: int, repeats: int = 5) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` by ``n x n`` matmul in ``dtype`` on the default device."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    jax.block_until_ready(f(a, a))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a, a))
        samples.append(time.perf_counter() - start)
    seconds = statistics.median(samples)
    return {"n": n, "dtype": jnp.dtype(dtype).name, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}


def model_flops(case: Case, which: str) -> float:
    fwd = 2.0 * case.B * (case.I + case.H) * GATES[case.cell] * case.H * case.T
    return fwd if which == "fwd" else 3.0 * fwd


def device_peak_bytes() -> int | None:
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 (backends without memory statistics)
        return None
    return None if not stats else stats.get("peak_bytes_in_use")


# --------------------------------------------------------------------------
# one row


def run_one(
    impl: str, case: Case, p: Plan, inputs: Inputs, ref: Callable[[Case], Reference],
    check_inputs: Callable[[Case], Inputs], args: argparse.Namespace, backend: str, peak: float,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cell": case.cell, "T": case.T, "B": case.B, "H": case.H, "I": case.I, "impl": impl,
        "residuals": checkpoint_every(case.T) if impl == "fused-ckpt" else None,
        "status": p.mode, "reason": p.reason, "check": None, "fwd": None, "fwdbwd": None,
        "grad_temp_bytes": None,
    }
    if p.mode == "skip":
        row["status"] = "skipped"
        return row
    if args.grad_memory and impl in MEMORY_IMPLS and case.T >= 1000:
        # jax.grad alone: no loss value, so the outputs need not be kept (the
        # measure of tests/test_kernels.py); compiled from shapes only.
        shapes = abstract_inputs(case, DTYPES[args.dtype])
        grad_only = build_jax(impl, case, shapes, (), checkpoint_every(case.T), execute=False, grad_memory=True)
        row["grad_temp_bytes"] = grad_only.temp_bytes["grad"]
    if p.mode == "memory":
        runner = build(impl, case, inputs, p.passes, execute=False)
        for name in p.passes:
            row[name] = {"compile_s": runner.compile_s.get(name), "temp_bytes": runner.temp_bytes.get(name)}
        row["status"] = "memory-only"
        return row

    tol = args.rtol if args.rtol is not None else tolerance(args.dtype, backend)
    if impl == "scan" and case.T <= args.check_steps and backend == "cpu" and args.dtype == "fp32":
        reused = ref(case)  # the reference is this very computation
        runner, worst, failure = reused.runner, 0.0, None
        firsts = {name: (None, reused.first_seconds[name]) for name in p.passes}
    elif case.T <= args.check_steps:
        runner = build(impl, case, inputs, p.passes)
        firsts = {name: timed_first(getattr(runner, name)) for name in p.passes}
        worst, failure = check(runner, {k: v[0] for k, v in firsts.items()}, ref(case), tol)
    else:  # check the same implementation (same K) on a shorter sequence
        short = dataclasses.replace(case, T=args.check_steps)
        c_inputs = check_inputs(short)
        if impl == "torch":
            c_runner = build_torch(short, c_inputs, p.passes)
        else:
            c_runner = build_jax(impl, short, c_inputs, p.passes, checkpoint_every(case.T))
        c_results = {name: getattr(c_runner, name)() for name in p.passes}
        worst, failure = check(c_runner, c_results, ref(short), tol)
        del c_runner, c_results
        runner = build(impl, case, inputs, p.passes) if failure is None else None
        firsts = {name: timed_first(getattr(runner, name)) for name in p.passes} if runner else {}
    row["check"] = {"max_rel_err": worst, "tolerance": tol, "steps": min(case.T, args.check_steps)}
    if failure is not None:
        row["status"], row["reason"] = "check failed", failure
        return row

    for name in p.passes:
        fn = getattr(runner, name)
        seconds, n = time_calls(fn, firsts[name][1], args.repeats, args.budget)
        flops = model_flops(case, name)
        row[name] = {
            "seconds": seconds,
            "repeats": n,
            "us_per_step": seconds / case.T * 1e6,
            "tokens_per_s": case.B * case.T / seconds,
            "gflops": flops / seconds / 1e9,
            "peak_share": flops / seconds / 1e9 / peak,
            "compile_s": runner.compile_s.get(name),
            "temp_bytes": runner.temp_bytes.get(name),
        }
    row["device_peak_bytes"] = runner.peak_bytes()
    row["status"] = "ok"
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Speedups over flax/torch/scan (fwd+bwd time) and memory relative to
    scan (fwd+bwd compiled temp bytes), per (cell, T, B, H)."""
    by_key = {(r["cell"], r["T"], r["B"], r["H"], r["impl"]): r for r in rows}
    for r in rows:
        key = (r["cell"], r["T"], r["B"], r["H"])
        mine = r["fwdbwd"] or {}
        for peer in ("flax", "torch", "scan"):
            other = (by_key.get((*key, peer)) or {}).get("fwdbwd") or {}
            ok = mine.get("seconds") and other.get("seconds")
            r[f"speedup_vs_{peer}"] = other["seconds"] / mine["seconds"] if ok else None
        scan = (by_key.get((*key, "scan")) or {}).get("fwdbwd") or {}
        ok = mine.get("temp_bytes") is not None and scan.get("temp_bytes")
        r["memory_vs_scan"] = mine["temp_bytes"] / scan["temp_bytes"] if ok else None
        scan_grad = (by_key.get((*key, "scan")) or {}).get("grad_temp_bytes")
        ok = r.get("grad_temp_bytes") is not None and scan_grad
        r["grad_memory_vs_scan"] = r["grad_temp_bytes"] / scan_grad if ok else None


# --------------------------------------------------------------------------
# reports


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _mb(b: Any) -> str:
    return "—" if b is None else f"{b / 1e6:.1f}"


def _grad_mb(r: dict[str, Any]) -> str:
    g = r.get("grad_temp_bytes")
    return "" if g is None else f" ({g / 1e6:.1f})"


def memory_ratio(r: dict[str, Any]) -> float:
    """Memory relative to scan: of ``jax.grad`` alone where measured (the
    outputs excluded, as in tests/test_kernels.py), else of fwd+bwd."""
    g = r.get("grad_memory_vs_scan")
    return g if g is not None else r["memory_vs_scan"]


def _ratio_text(r: dict[str, Any]) -> str:
    text = _fmt(r.get("memory_vs_scan"), ".3f")
    g = r.get("grad_memory_vs_scan")
    return text if g is None else f"{text} ({g:.3f})"


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The lead's targets (fp32, fwd+bwd, CPU): (target, measured, verdict)."""
    by = {(r["cell"], r["T"], r["B"], r["H"], r["impl"]): r for r in rows}
    out = []

    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("met" if ok else "NOT met")

    for cell in ("lstm", "gru"):
        for impl in ("fused-states", "fused-gates"):
            for (B, H), need in (((8, 128), 2.0), ((32, 128), 2.0), ((64, 256), 1.3)):
                r = by.get((cell, 1000, B, H, impl))
                if r is None or r["status"] != "ok":
                    continue
                s, t = r["speedup_vs_flax"], r["speedup_vs_torch"]
                out.append((f"{cell} T=1000 ({B},{H}): {impl} ≥ {need}× Flax", _fmt(s, ".2f", "×"), verdict(None if s is None else s >= need)))
                out.append((f"{cell} T=1000 ({B},{H}): {impl} ≥ 1× PyTorch", _fmt(t, ".2f", "×"), verdict(None if t is None else t >= 1.0)))
            r = by.get((cell, 1000, 64, 512, impl))
            if r is not None and r["fwdbwd"] and r["fwdbwd"].get("peak_share"):
                s = r["fwdbwd"]["peak_share"]
                out.append((f"{cell} T=1000 (64,512): {impl} ≥ 70% of GEMM peak", f"{s:.0%}", verdict(s >= 0.7)))
    for r in rows:
        if r["impl"] == "fused-states" and r["memory_vs_scan"] is not None and r["T"] >= 1000:
            m = memory_ratio(r)
            out.append((f"{r['cell']} T={r['T']} ({r['B']},{r['H']}): states memory ≤ 1/5 of scan", _ratio_text(r), verdict(m <= 0.2)))
    for r in rows:
        if r["impl"] == "fused-ckpt" and r["T"] == 10000 and r["memory_vs_scan"] is not None:
            m = memory_ratio(r)
            out.append((f"{r['cell']} T=10000 ({r['B']},{r['H']}): ckpt memory ≤ 1/20 of scan", _ratio_text(r), verdict(m <= 0.05)))
            st = (by.get((r["cell"], 10000, r["B"], r["H"], "fused-states")) or {}).get("fwdbwd") or {}
            if r["fwdbwd"] and r["fwdbwd"].get("seconds") and st.get("seconds"):
                q = r["fwdbwd"]["seconds"] / st["seconds"]
                out.append((f"{r['cell']} T=10000 ({r['B']},{r['H']}): ckpt time ≤ 1.4× states", f"{q:.2f}×", verdict(q <= 1.4)))
    r = by.get(("lstm", 100000, 8, 128, "fused-ckpt"))
    if r is not None:
        ok = r["status"] == "ok"
        out.append(("lstm T=100000 (8,128): fused-ckpt fwd+bwd runs", f"{r['fwdbwd']['seconds']:.1f} s" if ok else r["status"], verdict(ok)))
    return out


def markdown(result: dict[str, Any]) -> str:
    meta, rows = result["meta"], result["rows"]
    peak = meta["gemm_peak"]
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "  ",
        (f"dtype: {meta['dtype']}; GEMM peak: {peak['gflops']:.1f} GFLOP/s "
         f"({peak['n']}×{peak['n']} {peak['dtype']} matmul); {meta['date']}"),
        "",
    ]
    goal = targets(rows)
    if goal:
        lines += ["### Targets", "", "| target | measured | |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in goal]
        lines.append("")
    lines += [
        "### Results",
        "",
        ("Times are medians (µs per step); tok/s and GFLOP/s are for fwd+bwd; "
         "memory is the compiled temporary memory of the fwd+bwd function; "
         "×Flax, ×torch, ×scan are fwd+bwd speedups (above 1: faster than that peer); "
         "mem/scan is memory relative to `impl=\"scan\"`. In parentheses: the same for `jax.grad` "
         "alone (no loss value, so the outputs need not be kept; the measure of the engine's tests), "
         "which the memory targets use."),
        "",
    ]
    header = "| cell | T | B | H | impl | fwd µs/step | fwd+bwd µs/step | tok/s | GFLOP/s | % peak | temp MB | mem/scan | ×Flax | ×torch | ×scan |"
    device_peak = any(r.get("device_peak_bytes") for r in rows)
    if device_peak:
        header += " device peak MB |"
    shown = [r for r in rows if r["status"] in ("ok", "memory-only")]
    for cell in CELLS:
        cell_rows = [r for r in shown if r["cell"] == cell]
        if not cell_rows:
            continue
        lines += [f"#### {cell}", "", header, "|" + "---|" * (header.count("|") - 1)]
        for r in cell_rows:
            f, fb = r["fwd"] or {}, r["fwdbwd"] or {}
            impl = r["impl"] + (f" (K={r['residuals']})" if r["residuals"] else "")
            if r["status"] == "memory-only":
                impl += " †"
            lines.append(
                f"| {cell} | {r['T']} | {r['B']} | {r['H']} | {impl} | "
                f"{_fmt(f.get('us_per_step'), '.1f')} | {_fmt(fb.get('us_per_step'), '.1f')} | "
                f"{_fmt(fb.get('tokens_per_s'), '.3g')} | {_fmt(fb.get('gflops'), '.1f')} | "
                f"{_fmt(fb.get('peak_share') and 100 * fb['peak_share'], '.0f', '%')} | "
                f"{_mb(fb.get('temp_bytes'))}{_grad_mb(r)} | "
                f"{_ratio_text(r)} | {_fmt(r['speedup_vs_flax'], '.2f', '×')} | "
                f"{_fmt(r['speedup_vs_torch'], '.2f', '×')} | {_fmt(r['speedup_vs_scan'], '.2f', '×')} |"
                + (f" {_mb(r.get('device_peak_bytes'))} |" if device_peak else "")
            )
        lines.append("")
    if any(r["status"] == "memory-only" for r in rows):
        lines.append("† compiled memory only (not run; see *Not timed*).")
    if device_peak:
        lines.append("Device peak: JAX rows show the process's peak bytes in use so far (JAX cannot reset it); "
                     "PyTorch rows the peak of their own calls (`torch.cuda.max_memory_allocated`).")
    lines.append("")
    failed = [r for r in rows if r["status"] in ("check failed", "error")]
    if failed:
        lines += ["### Failures", ""]
        lines += [f"- {r['impl']} at {Case(r['cell'], r['T'], r['B'], r['H']).label()}: {r['status']}: {r['reason']}" for r in failed]
        lines.append("")
    skipped = skip_summary(rows)
    if skipped:
        lines += ["### Not timed", ""]
        lines += [f"- {reason}: {', '.join(items)}" for reason, items in skipped.items()]
        lines.append("")
    return "\n".join(lines)


def skip_summary(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] in ("skipped", "memory-only"):
            item = f"{r['impl']} {r['cell']} T={r['T']} ({r['B']},{r['H']})"
            out.setdefault(r["reason"], []).append(item)
    return out


def plots(result: dict[str, Any], out: pathlib.Path) -> list[pathlib.Path]:
    """time_per_step.png, memory.png and speedup_vs_flax.png (fwd+bwd)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    cells = [c for c in CELLS if any(r["cell"] == c and r["status"] in ("ok", "memory-only") for r in rows)]
    sizes = sorted({(r["B"], r["H"]) for r in rows})
    styles = ["-", "--", ":", "-."]
    colors = {impl: f"C{k}" for k, impl in enumerate(IMPLS)}
    markers = dict(zip(IMPLS, "os^vDx+*"))
    subtitle = f"{result['meta']['dtype']}, fwd+bwd; {result['meta']['device']}"
    written = []

    def per_t(metric: str, ylabel: str, name: str, statuses: tuple[str, ...], scale: float = 1.0) -> None:
        fig, axes = plt.subplots(1, max(1, len(cells)), figsize=(5 * max(1, len(cells)), 4), squeeze=False)
        for ax, cell in zip(axes[0], cells):
            for impl in IMPLS:
                for k, size in enumerate(sizes):
                    style = styles[k % len(styles)]
                    pts = sorted(
                        (r["T"], r["fwdbwd"][metric])
                        for r in rows
                        if r["cell"] == cell and r["impl"] == impl and (r["B"], r["H"]) == size
                        and r["status"] in statuses and r["fwdbwd"] and r["fwdbwd"].get(metric) is not None
                    )
                    if pts:
                        t, y = zip(*pts)
                        y = [v * scale for v in y]
                        ax.plot(t, y, style, marker=markers[impl], color=colors[impl], label=f"{impl} B={size[0]} H={size[1]}")
            ax.set(xscale="log", yscale="log", xlabel="T (steps)", ylabel=ylabel, title=cell)
            ax.grid(True, which="both", alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
        fig.suptitle(subtitle)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    per_t("us_per_step", "µs per step", "time_per_step.png", ("ok",))
    per_t("temp_bytes", "compiled temporary memory (MB)", "memory.png", ("ok", "memory-only"), 1e-6)

    groups = sorted({(r["cell"], r["T"], r["B"], r["H"]) for r in rows if r["speedup_vs_flax"] is not None},
                    key=lambda g: (list(CELLS).index(g[0]), g[1], g[2], g[3]))
    impls = [i for i in IMPLS if i != "flax" and any(r["impl"] == i and r["speedup_vs_flax"] for r in rows)]
    if groups and impls:
        fig, ax = plt.subplots(figsize=(min(30, max(6, 0.9 * len(groups) + 2)), 4.5))
        width = 0.8 / len(impls)
        by = {(r["cell"], r["T"], r["B"], r["H"], r["impl"]): r["speedup_vs_flax"] for r in rows}
        for k, impl in enumerate(impls):
            xs = [g + k * width for g in range(len(groups))]
            ax.bar(xs, [by.get((*grp, impl)) or 0 for grp in groups], width, color=colors[impl], label=impl)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{c}\nT={t}\n{b}×{h}" for c, t, b, h in groups], fontsize="small")
        ax.set(ylabel="speedup over Flax nn.RNN (fwd+bwd)", title=subtitle)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / "speedup_vs_flax.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


BEGIN, END = "<!-- bptt:begin (written by benchmarks/bptt.py --docs) -->", "<!-- bptt:end -->"


def write_docs(md: str, pngs: list[pathlib.Path], quick: bool, page: pathlib.Path = DOCS_PAGE) -> None:
    """Puts the tables and plots of this run into the docs: the plots into
    ``docs/benchmarks/``, the tables between the markers of ``docs/benchmarks.md``."""
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"--docs: {page} lacks the markers {BEGIN!r} and {END!r}")
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for path in pngs:
        shutil.copy(path, DOCS_DIR / path.name)
    rel = DOCS_DIR.relative_to(page.parent).as_posix()
    block = [BEGIN, ""]
    if quick:
        block += ["!!! note \"An example: a `--quick` run\"",
                  ("    A small grid that shows the output's form; it is not the full benchmark "
                   "(see [Running it](#running-it)). Its timings are only as good as the machine was "
                   "quiet: see the load average in its first lines."), ""]
    block += [md, ""]
    block += [f"![{p.stem.replace('_', ' ')}]({rel}/{p.name})\n" for p in pngs]
    block += ["", END]
    head, rest = text.split(BEGIN, 1)
    page.write_text(head + "\n".join(block) + rest.split(END, 1)[1])
    print(f"wrote the tables into {page} and the plots into {DOCS_DIR}")


# --------------------------------------------------------------------------
# the run


def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    import flax
    import jaxlib

    out = {"jaxrnn": jr.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
           "numpy": np.__version__, "python": platform.python_version()}
    torch = _torch()
    if torch is not None:
        out["torch"] = torch.__version__
    return out


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t)


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for item in text.split(","):
        try:
            b, h = item.lower().split("x")
            out.append((int(b), int(h)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--sizes takes BxH pairs like 8x128,64x256, got {item!r}") from None
    return tuple(out)


def _names(allowed: tuple[str, ...], flag: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(t for t in text.split(",") if t)
        bad = [n for n in names if n not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{flag} takes names from {', '.join(allowed)}, got {', '.join(bad)}")
        return names

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bptt.py",
        description="Times BPTT (forward, forward+backward) of jaxrnn against Flax, PyTorch and cuDNN.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--cells", type=_names(tuple(CELLS), "--cells"), default=tuple(CELLS), help="comma-separated cells")
    p.add_argument("--T", type=_ints, default=DEFAULT_T, help="comma-separated sequence lengths")
    p.add_argument("--sizes", type=_sizes, default=DEFAULT_SIZES, help="comma-separated BxH, e.g. 8x128,64x256")
    p.add_argument("--impls", type=_names(IMPLS, "--impls"), default=IMPLS, help="comma-separated implementations")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    p.add_argument("--budget", type=float, default=5.0, help="seconds of timed calls per measurement at most")
    p.add_argument("--check-steps", type=int, default=10000, help="check longer runs at this T")
    p.add_argument("--rtol", type=float, default=None, help="relative L2 tolerance of the check (default: by dtype and device)")
    p.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default benchmarks/results/bptt-<time>)")
    p.add_argument("--quick", action="store_true", help="a small grid: lstm; T=100,1000; 8x64; 3 repeats")
    p.add_argument("--full", action="store_true", help="time every combination (no skipping of long/large ones)")
    p.add_argument("--docs", action="store_true", help="also write the Markdown and plots to docs/benchmarks/")
    p.add_argument("--ckpt-every", type=int, default=None, help="K of fused-ckpt (residuals=K); default ceil(sqrt(T))")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads for PyTorch on CPU")
    p.add_argument("--peak-size", type=int, default=None, help="n of the n x n GEMM that measures the peak (default 2048 on CPU, 8192 on GPU)")
    p.add_argument("--no-grad-memory", dest="grad_memory", action="store_false",
                   help="skip compiling jax.grad alone (the memory without the outputs) for the engine and scan at T >= 1000")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns 0, or 1 if a check failed or a run raised.

    Args:
      argv: command-line arguments (``None``: ``sys.argv[1:]``); see ``--help``.

    Returns:
      The process exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.quick:
        defaults = parser().parse_args([])
        for key, value in QUICK.items():
            if getattr(args, key) == getattr(defaults, key):
                setattr(args, key, value)
    if args.repeats < 1 or args.check_steps < 1 or (args.ckpt_every is not None and args.ckpt_every < 1):
        raise SystemExit("--repeats, --check-steps and --ckpt-every must be positive")
    dtype = DTYPES[args.dtype]
    global TORCH_THREADS, CKPT_EVERY
    TORCH_THREADS = args.torch_threads
    CKPT_EVERY = args.ckpt_every
    backend = jax.default_backend()
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or HERE / "results" / f"bptt-{stamp:%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)

    device = jax.devices()[0]
    kind = f"{cpu_name()}, {os.cpu_count()} cores" if backend == "cpu" else device.device_kind
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = f"{cpu_name()}, {os.cpu_count()} cores; JAX {backend}: {device.device_kind} x{len(jax.devices())}"
    if load is not None:
        machine += f"; load average {load:.1f} at the start"
    peak = gemm_peak(dtype, args.peak_size or (2048 if backend == "cpu" else 8192))
    print(f"{machine}\nGEMM peak ({peak['n']}x{peak['n']} {peak['dtype']}): {peak['gflops']:.1f} GFLOP/s")

    cases = [Case(c, T, B, H) for c in args.cells for T in args.T for B, H in args.sizes]
    tasks = [(case, impl, plan(impl, case, args.dtype, backend, args.full)) for case in cases for impl in args.impls]
    skipped = {}
    for case, impl, p in tasks:
        if p.mode != "time":
            skipped.setdefault(f"{p.mode}: {p.reason}", []).append(f"{impl} {case.label()}")
    for reason, items in skipped.items():
        print(f"[{len(items)} not timed] {reason}")

    rows: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    refs: dict[Case, Reference] = {}

    def inputs_for(case: Case) -> Inputs:
        return make_inputs(case, dtype)

    def case_inputs(case: Case, p: Plan) -> Inputs:
        """This case's arrays, made once per case; shapes only for memory-only rows."""
        if p.mode == "memory":
            return abstract_inputs(case, dtype)
        if current.get("inputs") is None:
            current["inputs"] = inputs_for(case)
        return current["inputs"]

    def ref(case: Case) -> Reference:
        if case not in refs:
            same = current.get("case") == case and current.get("inputs") is not None
            refs[case] = reference(case, current["inputs"] if same else inputs_for(case), backend)
        return refs[case]

    bar = tqdm(tasks, desc="bptt", unit="run", dynamic_ncols=True)
    for case, impl, p in bar:
        if current.get("case") != case:
            for old in [c for c in refs if c.T != args.check_steps]:
                del refs[old]  # keep the short-sequence references the checks of long runs reuse
            current = {"case": case, "inputs": None}
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{impl} {case.label()}")
        try:
            inputs = None if p.mode == "skip" else case_inputs(case, p)
            row = run_one(impl, case, p, inputs, ref, inputs_for, args, backend, peak["gflops"])
        except Exception as e:  # noqa: BLE001 (report and go on: one broken peer must not sink a long run)
            row = {"cell": case.cell, "T": case.T, "B": case.B, "H": case.H, "I": case.I, "impl": impl,
                   "residuals": None, "status": "error", "reason": f"{type(e).__name__}: {e}"[:500],
                   "check": None, "fwd": None, "fwdbwd": None, "grad_temp_bytes": None}
        if row["status"] in ("check failed", "error"):
            print(f"\n{impl} at {case.label()}: {row['status']}: {row['reason']}", file=sys.stderr)
        rows.append(row)
    add_ratios(rows)

    meta = {
        "command": " ".join(["python", "benchmarks/bptt.py", *argv]),
        "machine": machine,
        "device": kind,
        "backend": backend,
        "versions": versions(),
        "dtype": args.dtype,
        "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
        "gemm_peak": peak,
        "args": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()},
    }
    result = {"meta": meta, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (out / "results.md").write_text(md)
    pngs = [] if args.no_plots else plots(result, out)
    print("\n" + md)
    print(f"wrote {out}/results.json, results.md" + (", " + ", ".join(p.name for p in pngs) if pngs else ""))
    if args.docs:
        write_docs(md, pngs, quick=args.quick)
    return 1 if any(r["status"] in ("check failed", "error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
