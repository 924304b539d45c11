"""Stage 1 of the engine: options, the chunk length, and slicing chunks.

The time axis is cut into ``N`` chunks of ``C`` steps and, when ``C`` does not
divide ``T``, a shorter tail chunk. Chunks are sliced straight out of the
caller's arrays (batch- or time-major), so no transposed or padded copy of the
inputs, outputs or their gradients is ever made. Inside a chunk everything is
time-major: ``(C, B, ...)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._sharding import vary, varying_axes
from ..cells import accumulation_dtype
from ._loops import XLA, InnerLoops

Array = jax.Array

tmap = jax.tree_util.tree_map


@dataclasses.dataclass(frozen=True)
class Options:
    """Static configuration of one kernel call (hashable)."""

    num_steps: int  # T
    chunk: int  # C: steps per chunk
    time_axis: int  # 0 (time-major) or 1 (batch-major) in the caller's arrays
    residuals: str  # "gates", "states" or "checkpoints"
    masked: bool  # whether seq_lengths apply
    clipped: bool  # whether bptt_clip is set
    precision: Any
    unroll: Any
    loops: InnerLoops = XLA  # the two sequential loops (see ._loops)
    #: zoneout's rate when it applies as its expectation (deterministic:
    #: ``s_t = p·s_{t-1} + (1-p)·s̃_t``); ``None`` otherwise. Training-time
    #: zoneout comes as per-step masks instead (see :func:`zone_forward`).
    zoneout: float | None = None

    @property
    def num_chunks(self) -> int:
        """Full chunks; a tail of ``T mod C`` steps follows them."""
        return self.num_steps // self.chunk

    @property
    def tail(self) -> int:
        return self.num_steps % self.chunk


def default_chunk(num_steps: int, batch_size: int | None = None) -> int:
    """Chunk length ``C`` of the "gates" and "states" policies.

    The backward pass holds a few ``C·B·G·H`` chunk buffers (memory grows
    with ``C``) and pays a fixed cost per chunk (time grows with ``T / C``);
    ``C ~ sqrt(T) / 2`` balances the two. The chunk's weight-gradient GEMMs
    are ``C·B`` rows tall, though, and at a small batch that is too short to
    run at speed (LSTM, T=1000, B=8, H=128 on CPU: 208 µs/step at C=16,
    160 at C=32), so ``C`` grows towards ``512 / B`` rows' worth, as far as
    ``T / 48``: the chunk buffers then stay a small part of what "states"
    keeps (``T·B·S``). Clamped to [8, 64]; ``batch_size=None`` gives the rule
    without the batch term.

    Example:
      >>> from jaxrnn.kernels import default_chunk
      >>> default_chunk(1000)
      16
      >>> default_chunk(1000, batch_size=8), default_chunk(1000, batch_size=64)
      (21, 16)
    """
    chunk = num_steps**0.5 / 2
    if batch_size:
        chunk = max(chunk, min(_TARGET_ROWS / batch_size, num_steps / 48))
    return int(min(64, max(8, round(chunk))))


# Rows the batched weight-gradient GEMMs of one chunk are grown towards.
_TARGET_ROWS = 512


#: The bytes ``residuals="auto"`` lets one call's residuals take, by the
#: platform it is traced on (``jax.default_backend()``), when the caller
#: gives no ``residual_budget``: host memory is plentiful, an accelerator's
#: is shared with the model and every other layer's activations.
DEFAULT_RESIDUAL_BUDGET: dict[str, int] = {"cpu": 2 * 2**30, "gpu": 2**30, "tpu": 2**30}


def residual_bytes(cell: Any, num_steps: int, batch_size: int, dtype: Any = None) -> dict[str, int]:
    """What each residual policy keeps for the backward pass, in bytes.

    ``"gates"`` keeps the state and both projections at every step (an
    additive cell: their sum), ``T·B·(S + 2·G·H)``; ``"states"`` the state,
    ``T·B·S``; ``S`` is the state's size (``2·H`` for an LSTM) and the
    itemsize that of the state (:func:`~jaxrnn.cells.accumulation_dtype`).

    Example:
      >>> import jaxrnn as jr
      >>> from jaxrnn.kernels import residual_bytes
      >>> residual_bytes(jr.LSTM(128), num_steps=1000, batch_size=8)
      {'gates': 24576000, 'states': 8192000}
    """
    itemsize = jnp.dtype(accumulation_dtype(dtype or jnp.float32)).itemsize
    state = sum(
        leaf.shape[-1]
        for leaf in jax.tree_util.tree_leaves(jax.eval_shape(lambda: cell.initial_state((1,))))
    )
    gates = cell.num_gates * cell.hidden_size * (1 if cell.additive else 2)
    per_step = batch_size * itemsize
    return {
        "gates": num_steps * per_step * (state + gates),
        "states": num_steps * per_step * state,
    }


def residual_policy(
    cell: Any, num_steps: int, batch_size: int, dtype: Any = None, budget: int | None = None
) -> str | int:
    """The policy ``residuals="auto"`` takes: the fastest that fits ``budget``.

    ``"gates"`` (the fastest backward: nothing recomputed) when its
    residuals fit, else ``"states"`` (one GEMM per chunk recomputed), else
    ``K``, every K-th state, with the smallest ``K`` that fits (each chunk's
    forward recomputed). ``budget`` is in bytes; ``None`` takes
    :data:`DEFAULT_RESIDUAL_BUDGET` for the platform being traced on.

    Example:
      >>> import jaxrnn as jr
      >>> from jaxrnn.kernels import residual_policy
      >>> residual_policy(jr.LSTM(128), 1000, 8)
      'gates'
      >>> residual_policy(jr.LSTM(128), 1000, 8, budget=10 * 2**20)
      'states'
      >>> residual_policy(jr.LSTM(128), 1000, 8, budget=2**20)
      8
    """
    if budget is None:
        budget = DEFAULT_RESIDUAL_BUDGET.get(jax.default_backend(), 2**30)
    sizes = residual_bytes(cell, num_steps, batch_size, dtype)
    if sizes["gates"] <= budget:
        return "gates"
    if sizes["states"] <= budget:
        return "states"
    return int(min(num_steps, max(2, -(-sizes["states"] // max(budget, 1)))))


def make_options(
    num_steps: int,
    batch_size: int,
    time_axis: int,
    residuals: Any,
    masked: bool,
    clipped: bool,
    precision: Any,
    unroll: Any,
    loops: InnerLoops = XLA,
    zoneout: float | None = None,
) -> Options:
    if isinstance(residuals, str):
        chunk, policy = default_chunk(num_steps, batch_size), residuals
    else:
        chunk, policy = int(residuals), "checkpoints"
    return Options(
        num_steps=num_steps,
        chunk=max(1, min(chunk, num_steps)),
        time_axis=time_axis,
        residuals=policy,
        masked=masked,
        clipped=clipped,
        precision=precision,
        unroll=unroll,
        loops=loops,
        zoneout=zoneout,
    )


# --------------------------------------------------------------------------
# slicing chunks out of the caller's arrays


def take(seq: Array, start: Any, size: int, opts: Options) -> Array:
    """Steps ``[start, start + size)`` of a sequence, time-major: ``(size, B, ...)``."""
    part = lax.dynamic_slice_in_dim(seq, start, size, axis=opts.time_axis)
    return jnp.swapaxes(part, 0, 1) if opts.time_axis == 1 else part


def put(seq: Array, part: Array, start: Any, opts: Options) -> Array:
    """Writes a time-major ``part (size, B, ...)`` at step ``start`` of ``seq``."""
    if opts.time_axis == 1:
        part = jnp.swapaxes(part, 0, 1)
    return lax.dynamic_update_slice_in_dim(seq, part.astype(seq.dtype), start, axis=opts.time_axis)


def state_at(seqs: Any, s0: Any, t: Any, opts: Options) -> Any:
    """The state after step ``t - 1`` read from per-step sequences (``s0`` at ``t = 0``)."""
    prev = tmap(lambda q: take(q, jnp.maximum(t - 1, 0), 1, opts)[0], seqs)
    return tmap(lambda p, a: jnp.where(t > 0, p, a), prev, s0)


def validity(lengths: Array | None, start: Any, size: int, batch: int) -> Array:
    """``(size, B, 1)`` booleans: whether step ``start + i`` is within each
    length (a trailing unit axis, so that a step's ``(B, 1)`` slice
    broadcasts against ``(B, H)`` states, also inside a Pallas kernel)."""
    t = start + jnp.arange(size, dtype=jnp.int32)[:, None, None]
    if lengths is None:
        return jnp.ones((size, batch, 1), bool)
    return t < lengths[None, :, None]


# --------------------------------------------------------------------------
# small tree helpers shared by the stages


def tree_add(a: Any, b: Any) -> Any:
    return tmap(jnp.add, a, b)


def select(valid: Array, a: Any, b: Any) -> Any:
    """``where(valid, a, b)`` leaf by leaf; ``valid`` is ``(B, 1)``."""
    return tmap(lambda x, y: jnp.where(valid, x, y), a, b)


def zone_forward(opts: Options, new: Any, prev: Any, keep: Any) -> Any:
    """Zoneout (Krueger et al. 2017) of one step: each unit keeps its
    previous value where ``keep`` (booleans shaped like the state, ``(B, H)``
    per leaf: training) or, with ``opts.zoneout = p`` and no masks, moves by
    its expectation ``p·prev + (1-p)·new`` (inference)."""
    if keep is not None:
        return tmap(lambda k, o, n: jnp.where(k, o, n), keep, prev, new)
    if opts.zoneout is not None:
        p = opts.zoneout
        return tmap(lambda o, n: p * o + (1.0 - p) * n, prev, new)
    return new


def zone_backward(opts: Options, total: Any, keep: Any) -> tuple[Any, Any]:
    """The VJP of :func:`zone_forward`: splits the cotangent ``total`` of the
    step's state into ``(to the cell's new state, straight to the previous
    state)``; ``(total, None)`` without zoneout."""
    if keep is not None:
        zero = tmap(jnp.zeros_like, total)
        return select_leaves(keep, zero, total), select_leaves(keep, total, zero)
    if opts.zoneout is not None:
        p = opts.zoneout
        return tmap(lambda g: (1.0 - p) * g, total), tmap(lambda g: p * g, total)
    return total, None


def select_leaves(mask: Any, a: Any, b: Any) -> Any:
    """``where(mask, a, b)`` with one mask per leaf (``mask`` a tree like ``a``)."""
    return tmap(lambda m, x, y: jnp.where(m, x, y), mask, a, b)


def zeros_acc(params: Any) -> Any:
    """Zero parameter gradients in the accumulation dtype (float32 for half params)."""
    return tmap(
        lambda p: vary(jnp.zeros(p.shape, accumulation_dtype(p.dtype)), varying_axes(p)), params
    )


def acc_add(acc: Any, g: Any) -> Any:
    return tmap(lambda a, b: a + b.astype(a.dtype), acc, g)


def flat_projection(fn: Any, x: Array) -> Array:
    """Applies a projection to ``(C, B, F)`` as ONE GEMM over ``C·B`` rows."""
    C, B = x.shape[:2]
    z = fn(x.reshape(C * B, x.shape[-1]))
    return z.reshape(C, B, z.shape[-1])
