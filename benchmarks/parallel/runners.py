"""Inputs and the compiled fwd+bwd function of each implementation."""

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

from .grid import METHODS, Case

#: the seed of every case's params and inputs (the iteration counts at
#: initialisation use the same params and adding-problem inputs as the timed
#: Newton rows of the same T)
SEED = 0


@dataclasses.dataclass
class Inputs:
    cell: jr.Cell
    params: Any  # the cell's params, float32
    xs: jax.Array  # (B, T, I)
    w_out: jax.Array  # (H, 1), N(0, 1/H)
    target: jax.Array  # (B, T, 1), N(0, 1)


def cell_params(case: Case, key: jax.Array) -> Any:
    """The cell's params at initialisation: a Newton case's are those of the
    adding-problem model (``jr.tasks.Adding.init_params``), which is also what
    :mod:`.iterations` trains."""
    cell = case.make_cell()
    if case.part == "newton":
        return jr.tasks.Adding(case.T).init_params(cell, key)["cell"]
    return cell.init(key, case.I)


def params_key() -> jax.Array:
    """The key of every case's cell params (and of the trained models' start)."""
    return jax.random.split(jax.random.PRNGKey(SEED))[0]


def make_inputs(case: Case) -> Inputs:
    """Fixed random inputs of ``case``: N(0, 1) for a linear cell, adding-problem
    sequences (``jr.tasks.Adding(T).sample``) for a Newton one.

    The readout and targets come from NumPy: JAX's random normals compile
    for seconds on a CPU, which a ``--quick`` run would spend on inputs.
    """
    k_x = jax.random.split(jax.random.PRNGKey(SEED))[1]
    rng = np.random.default_rng(SEED)
    if case.part == "newton":
        xs, _ = _adding_sample(case.T, case.B, k_x)
    else:
        xs = jnp.asarray(rng.standard_normal((case.B, case.T, case.I), np.float32))
    w_out = jnp.asarray(rng.standard_normal((case.H, 1), np.float32) / np.sqrt(case.H, dtype=np.float32))
    target = jnp.asarray(rng.standard_normal((case.B, case.T, 1), np.float32))
    return Inputs(case.make_cell(), _params(case, params_key()), xs, w_out, target)


_params = jax.jit(cell_params, static_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _adding_sample(T: int, B: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jr.tasks.Adding(T).sample(key, B)


def rnn_options(impl: str) -> dict[str, Any]:
    """``jr.rnn``'s options for a row: a Newton method runs ``impl="parallel"``
    with its defaults (tol, max_iter, on_failure="fallback")."""
    if impl in METHODS:
        return {"impl": "parallel", "method": impl}
    return {"impl": impl}


def loss_fn(cell: jr.Cell, impl: str) -> Callable[..., jax.Array]:
    """``mean((ys @ w_out - target)²)``: a linear readout and squared error
    at every step (the default loss of benchmarks.bptt)."""
    options = rnn_options(impl)

    def loss(params, xs, w_out, target):
        _, ys = jr.rnn(cell, params, xs, **options)
        pred = jnp.einsum("bth,ho->bto", ys, w_out, precision=jax.lax.Precision.HIGHEST)
        return jnp.mean(jnp.square(pred - target))

    return loss


@dataclasses.dataclass
class Compiled:
    """A compiled fwd+bwd: ``call()`` blocks and returns ``(loss, (dparams, dxs))``."""

    call: Callable[[], Any] | None  # None: compiled for its memory only
    compile_s: float
    memory: dict[str, int | None]  # temp, argument, output bytes and their total


def memory_of(compiled: Any) -> dict[str, int | None]:
    """The compiled function's temporary, argument and output bytes
    (``memory_analysis()``, deterministic) and their sum."""
    try:
        m = compiled.memory_analysis()
        out = {"temp": int(m.temp_size_in_bytes), "argument": int(m.argument_size_in_bytes),
               "output": int(m.output_size_in_bytes)}
    except Exception:  # noqa: BLE001 (backends without a memory analysis)
        return {"temp": None, "argument": None, "output": None, "total": None}
    out["total"] = out["temp"] + out["argument"] + out["output"]
    return out


def compile_fwdbwd(case: Case, impl: str, inputs: Inputs, execute: bool = True) -> Compiled:
    """``jax.value_and_grad`` of the loss with respect to the params and the
    inputs, jitted and compiled ahead of time (timed apart)."""
    fn = jax.value_and_grad(loss_fn(inputs.cell, impl), argnums=(0, 1))
    args = (inputs.params, inputs.xs, inputs.w_out, inputs.target)
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    call = functools.partial(lambda c, a: jax.block_until_ready(c(*a)), compiled, args) if execute else None
    return Compiled(call, seconds, memory_of(compiled))


@functools.cache
def newton_info_fn(cell: jr.Cell, method: str) -> Callable[[Any, jax.Array], Any]:
    """``jr.diagnostics.newton_convergence`` jitted for one cell and method,
    made once (cells are hashable): compiled once per shape, which the timed
    rows, the counts at initialisation and those of trained params share."""
    return jax.jit(functools.partial(jr.diagnostics.newton_convergence, cell, method=method))


def info_dict(info: Any) -> dict[str, Any]:
    """A :class:`jaxrnn.parallel.NewtonInfo` as JSON: iterations, final
    residual, converged, and the residual history up to the last iteration."""
    iterations = int(info.iterations)
    history = np.asarray(info.history, np.float64)[: iterations + 1]
    return {"iterations": iterations, "residual": float(info.residual), "converged": bool(info.converged),
            "history": [float(h) for h in history]}


def to_float64(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)
