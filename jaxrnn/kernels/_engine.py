"""The fused recurrence engine: one ``jax.custom_vjp`` kernel for every cell.

Every cell is the same computation (see :mod:`jaxrnn.cells`)::

    xz_t = x_t W_ih + b                    input projection
    hz_t = h_{t-1} W_hh (+ rb)             recurrent projection
    s_t  = pointwise(xz_t, hz_t, s_{t-1})

The time axis is cut into ``N`` chunks of ``C`` steps (padded at the end with
masked steps when ``C`` does not divide ``T``).

Forward: per chunk, one GEMM computes ``xz`` for all ``C`` steps; a scan over the
chunk does only ``hz_t`` and ``pointwise``. What is kept for the backward pass
depends on ``residuals``:

=============  ================================================  ===================
policy         kept                                              memory
=============  ================================================  ===================
``"gates"``    ``xz``, ``hz`` and the state at every step         ``T·B·(2·G·H + S)``
``"states"``   the state at every step (for GRU and plain RNNs    ``T·B·S``
               the outputs themselves)
``K`` (int)    the state entering every K-th step (chunks of K)   ``T/K·B·S``
=============  ================================================  ===================

Backward, chunk by chunk from the last: rebuild what the chunk needs (``"states"``:
its ``xz`` and ``hz`` with one GEMM each; ``K``: its forward scan first), run a
reverse scan that carries only the state gradient ``ds`` and does, per step,
``pointwise``'s VJP and one GEMM ``dh = dhz W_hhᵀ``; then, for the whole chunk at
once, ``dW_hh += Hᵀ dHZ``, ``dW_ih += Xᵀ dXZ``, the bias sums and ``dX = dXZ
W_ihᵀ`` (cuDNN's split into backward-data and backward-weights). No buffer of
``T·B·G·H`` exists except under ``"gates"``.

Masking, per-step gradient clipping and mixed precision are handled here once
for all cells. A cell whose step is not one GEMM plus elementwise work
(``GRU(reset_after=False)``) runs through the same scaffolding with the VJP of
its whole step; its recurrent weight gradient is then accumulated step by step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from ..cells import Cell, accumulation_dtype

Array = jax.Array

#: target chunk length for the "gates" and "states" policies
DEFAULT_CHUNK = 64

_tmap = jax.tree_util.tree_map


@dataclasses.dataclass(frozen=True)
class Options:
    """Static configuration of one kernel call (hashable)."""

    num_steps: int  # T
    chunk: int  # C
    residuals: str  # "gates", "states" or "checkpoints"
    masked: bool  # whether a per-step validity mask applies
    clipped: bool  # whether bptt_clip is set
    precision: Any
    unroll: Any

    @property
    def num_chunks(self) -> int:
        return -(-self.num_steps // self.chunk)

    @property
    def padded_steps(self) -> int:
        return self.num_chunks * self.chunk


def make_options(
    num_steps: int, residuals: Any, masked: bool, clipped: bool, precision: Any, unroll: Any
) -> Options:
    if isinstance(residuals, str):
        # Even chunks: N = ceil(T / 64) chunks of C = ceil(T / N) steps pad T
        # by fewer than N steps.
        n = max(1, -(-num_steps // DEFAULT_CHUNK))
        chunk = max(1, -(-num_steps // n))
        policy = residuals
    else:
        chunk = max(1, min(int(residuals), max(num_steps, 1)))
        policy = "checkpoints"
    padded = -(-num_steps // chunk) * chunk
    return Options(
        num_steps=num_steps,
        chunk=chunk,
        residuals=policy,
        masked=masked or padded != num_steps,
        clipped=clipped,
        precision=precision,
        unroll=unroll,
    )


# --------------------------------------------------------------------------
# helpers


def _inject(fn: Any, like: Any, ct: Array) -> Any:
    """The cotangent of a state for a cotangent ``ct`` of ``fn(state)``.

    ``fn`` is ``cell.output`` or ``cell.gemm_input``: a linear selection of
    the state, whose VJP does not depend on the primal ``like``.
    """
    return jax.vjp(fn, like)[1](ct)[0]


def _tree_add(a: Any, b: Any) -> Any:
    return _tmap(jnp.add, a, b)


def _select(valid: Array, a: Any, b: Any) -> Any:
    """``where(valid, a, b)`` leaf by leaf; ``valid`` is ``(B,)``."""
    return _tmap(lambda x, y: jnp.where(valid[:, None], x, y), a, b)


def _clip_tree(ct: Any, max_norm: Array) -> Any:
    """Scales each example's cotangent to norm at most ``max_norm`` (joint over leaves)."""
    sq = [jnp.sum(jnp.square(leaf), axis=-1) for leaf in jax.tree_util.tree_leaves(ct)]
    norm = jnp.sqrt(functools.reduce(jnp.add, sq))
    limit = max_norm.astype(norm.dtype)
    scale = limit / jnp.maximum(norm, limit)
    return _tmap(lambda g: g * scale[:, None].astype(g.dtype), ct)


def _zeros_acc(params: Any) -> Any:
    """Zero parameter gradients in the accumulation dtype (float32 for half params)."""
    return _tmap(lambda p: jnp.zeros(p.shape, accumulation_dtype(p.dtype)), params)


def _acc_add(acc: Any, g: Any) -> Any:
    return _tmap(lambda a, b: a + b.astype(a.dtype), acc, g)


def _chunked(x: Array, opts: Options) -> Array:
    """``(T, ...)`` -> ``(N, C, ...)``, zero-padded at the end."""
    pad = opts.padded_steps - x.shape[0]
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
    return x.reshape(opts.num_chunks, opts.chunk, *x.shape[1:])


def _unchunked(x: Array, opts: Options) -> Array:
    """``(N, C, ...)`` -> ``(T, ...)``."""
    return x.reshape(opts.padded_steps, *x.shape[2:])[: opts.num_steps]


def _validity(lengths: Array | None, batch: int, opts: Options) -> Array:
    """``(N, C, B)`` booleans: step ``t`` is valid for example ``b``."""
    t = jnp.arange(opts.padded_steps, dtype=jnp.int32)[:, None]
    if lengths is None:
        valid = jnp.broadcast_to(t < opts.num_steps, (opts.padded_steps, batch))
    else:
        valid = t < lengths[None, :]
    return valid.reshape(opts.num_chunks, opts.chunk, batch)


def _flat_projection(fn: Any, x: Array) -> Array:
    """Applies a projection to ``(C, B, F)`` as ONE GEMM over ``C·B`` rows."""
    C, B = x.shape[:2]
    z = fn(x.reshape(C * B, x.shape[-1]))
    return z.reshape(C, B, z.shape[-1])


# --------------------------------------------------------------------------
# forward


def _forward_chunk(
    cell: Cell, params: Any, opts: Options, s0: Any, x_c: Array, valid_c: Array
) -> tuple[Any, tuple[Any, Array, Array | None]]:
    """Runs one chunk: ``x_c (C, B, I)``; returns the last state and
    ``(states (C, B, ...), xz (C, B, G·H), hz (C, B, G·H) or None)``."""
    xz_c = _flat_projection(lambda x: cell.input_projection(params, x, opts.precision), x_c)
    keep_hz = opts.residuals == "gates" and cell.elementwise

    def step(s, inputs):
        xz_t, valid_t = inputs
        if cell.elementwise:
            hz_t = cell.recurrent_projection(params, cell.gemm_input(s), opts.precision)
            new = cell.pointwise(xz_t, hz_t, s)
        else:
            hz_t = None
            new = cell.step_from_projection(params, xz_t, s, opts.precision)
        if opts.masked:
            new = _select(valid_t, new, s)
        return new, (new, hz_t if keep_hz else None)

    last, (states, hz_c) = lax.scan(step, s0, (xz_c, valid_c), unroll=opts.unroll)
    return last, (states, xz_c, hz_c)


def _forward(
    cell: Cell, params: Any, opts: Options, xs: Array, s0: Any, valid: Array
) -> tuple[Any, Any, Any]:
    """All chunks; returns ``(final, states (N, C, B, ...), residuals)``."""
    policy = opts.residuals

    def chunk(s, inputs):
        x_c, valid_c = inputs
        last, (states, xz_c, hz_c) = _forward_chunk(cell, params, opts, s, x_c, valid_c)
        if policy == "gates":
            res = (xz_c, hz_c)
        elif policy == "checkpoints":
            res = s  # the state entering this chunk
        else:
            res = None
        return last, (states, res)

    final, (states, res) = lax.scan(chunk, s0, (_chunked(xs, opts), valid))
    return final, states, res


# --------------------------------------------------------------------------
# backward


def _backward_chunk(
    cell: Cell,
    params: Any,
    opts: Options,
    clip: Array | None,
    ds: Any,
    entry: Any,
    states_c: Any,
    x_c: Array,
    dy_c: Array,
    valid_c: Array,
    gates: tuple[Array, Array | None] | None,
) -> tuple[Any, Any, Array]:
    """The reverse scan of one chunk, then its batched weight gradients.

    Args:
      ds: cotangent of the state leaving the chunk.
      entry: the state entering the chunk.
      states_c: the states after each step of the chunk ``(C, B, ...)``.
      gates: ``(xz, hz)`` kept by the forward, or ``None`` to recompute.

    Returns:
      ``(ds_entry, dparams, dx_c)``.
    """
    prev = _tmap(lambda e, s: jnp.concatenate([e[None], s[:-1]]), entry, states_c)
    h_prev = cell.gemm_input(prev)  # (C, B, H)
    proj_in = lambda p, x: cell.input_projection(p, x, opts.precision)  # noqa: E731
    proj_rec = lambda p, h: cell.recurrent_projection(p, h, opts.precision)  # noqa: E731
    if gates is not None:
        xz_c, hz_c = gates
    else:
        xz_c = _flat_projection(functools.partial(proj_in, params), x_c)
        hz_c = (
            _flat_projection(functools.partial(proj_rec, params), h_prev)
            if cell.elementwise
            else None
        )
    w_hh = params.w_hh

    def step(carry, inputs):
        ds, dp = carry
        xz_t, hz_t, s_prev, dy_t, valid_t = inputs
        total = _tree_add(ds, _inject(cell.output, s_prev, dy_t))
        if opts.masked:
            # An example past its length contributes nothing at this step
            # (a zero cotangent through the step's VJP) ...
            total = _select(valid_t, total, _tmap(jnp.zeros_like, total))
        if cell.elementwise:
            _, vjp = jax.vjp(cell.pointwise, xz_t, hz_t, s_prev)
            dxz, dhz, ds_prev = vjp(total)
            dh = jnp.matmul(
                dhz.astype(w_hh.dtype),
                w_hh.T,
                precision=opts.precision,
                preferred_element_type=dhz.dtype,
            )
            ds_prev = _tree_add(ds_prev, _inject(cell.gemm_input, s_prev, dh))
        else:
            # Not one GEMM plus elementwise work: the VJP of the whole step,
            # its recurrent weight gradient accumulated here, step by step.
            step_fn = lambda p, xz, s: cell.step_from_projection(p, xz, s, opts.precision)  # noqa: E731
            _, vjp = jax.vjp(step_fn, params, xz_t, s_prev)
            dp_t, dxz, ds_prev = vjp(total)
            dp = _acc_add(dp, dp_t)
            dhz = None
        if opts.clipped:
            ds_prev = _clip_tree(ds_prev, clip)
        if opts.masked:
            # ... and passes its state gradient through unchanged.
            ds_prev = _select(valid_t, ds_prev, ds)
        return (ds_prev, dp), (dxz, dhz)

    (ds_entry, dp), (dxz_c, dhz_c) = lax.scan(
        step,
        (ds, _zeros_acc(params)),
        (xz_c, hz_c, prev, dy_c, valid_c),
        reverse=True,
        unroll=opts.unroll,
    )
    # The whole chunk's weight, bias and input gradients, one GEMM each.
    C, B = x_c.shape[:2]
    flat = lambda a: a.reshape(C * B, a.shape[-1])  # noqa: E731
    _, vjp_in = jax.vjp(proj_in, params, flat(x_c))
    dp_in, dx = vjp_in(flat(dxz_c).astype(xz_c.dtype))
    dp = _acc_add(dp, dp_in)
    if dhz_c is not None:
        _, vjp_rec = jax.vjp(lambda p: proj_rec(p, flat(h_prev)), params)
        dp = _acc_add(dp, vjp_rec(flat(dhz_c).astype(hz_c.dtype))[0])
    return ds_entry, dp, dx.reshape(C, B, -1)


def _backward(
    cell: Cell,
    params: Any,
    opts: Options,
    clip: Array | None,
    xs: Array,
    s0: Any,
    valid: Array,
    states: Any,
    res: Any,
    d_final: Any,
    d_states_h: Array,
) -> tuple[Any, Array, Any]:
    """Reverse scan over chunks; returns ``(dparams, dxs, ds0)``."""
    policy = opts.residuals
    xs_c = _chunked(xs, opts)
    dys_c = _chunked(d_states_h, opts)
    if policy == "checkpoints":
        entries = res
    else:
        # The state entering chunk c is the last state of chunk c - 1.
        entries = _tmap(
            lambda a, s: jnp.concatenate([a[None], s[:-1, -1]]), s0, states
        )

    def chunk(carry, inputs):
        ds, dp = carry
        x_c, dy_c, valid_c, entry, states_c, gates = inputs
        if policy == "checkpoints":
            _, (states_c, _, _) = _forward_chunk(cell, params, opts, entry, x_c, valid_c)
        ds, dp_c, dx_c = _backward_chunk(
            cell, params, opts, clip, ds, entry, states_c, x_c, dy_c, valid_c, gates
        )
        return (ds, _tree_add(dp, dp_c)), dx_c

    (ds0, dparams), dxs_c = lax.scan(
        chunk,
        (d_final, _zeros_acc(params)),
        (
            xs_c,
            dys_c,
            valid,
            entries,
            None if policy == "checkpoints" else states,
            res if policy == "gates" else None,
        ),
        reverse=True,
    )
    dparams = _tmap(lambda g, p: g.astype(p.dtype), dparams, params)
    return dparams, _unchunked(dxs_c, opts), ds0


# --------------------------------------------------------------------------
# the custom_vjp kernel


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(cell, opts, params, xs, s0, lengths, clip):
    final, states, _ = _forward(cell, params, opts, xs, s0, _validity(lengths, xs.shape[1], opts))
    return final, _unchunked(cell.output(states), opts)


def _fused_fwd(cell, opts, params, xs, s0, lengths, clip):
    valid = _validity(lengths, xs.shape[1], opts)
    final, states, res = _forward(cell, params, opts, xs, s0, valid)
    keep_states = opts.residuals != "checkpoints"
    # Residuals: the inputs (xs, params, s0 are the caller's own arrays),
    # the lengths and clip threshold, the per-step states unless
    # checkpointing, and the policy's extras (gates or checkpoints).
    residuals = (params, xs, s0, lengths, clip, states if keep_states else None, res)
    return (final, _unchunked(cell.output(states), opts)), residuals


def _fused_bwd(cell, opts, residuals, cts):
    params, xs, s0, lengths, clip, states, res = residuals
    d_final, d_ys = cts
    valid = _validity(lengths, xs.shape[1], opts)
    dparams, dxs, ds0 = _backward(
        cell, params, opts, clip, xs, s0, valid, states, res, d_final, d_ys
    )
    d_clip = None if clip is None else jnp.zeros_like(clip)
    return dparams, dxs, ds0, None, d_clip


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_rnn(
    cell: Cell,
    params: Any,
    xs: Array,
    state: Any,
    seq_lengths: Array | None,
    *,
    residuals: Any = "states",
    bptt_clip: Any = None,
    precision: Any = None,
    unroll: Any = 1,
) -> tuple[Any, Array]:
    """The fused kernel on the internal layout: ``xs (T, B, I)``, ``state (B, ...)``.

    Validation, batch dims, ``time_major`` and ``reverse`` are
    :func:`jaxrnn.rnn`'s job; this runs forward in time over valid steps.

    Returns:
      ``(final_state, ys (T, B, H))``; ``ys`` are zero past each length.
    """
    opts = make_options(
        xs.shape[0], residuals, seq_lengths is not None, bptt_clip is not None, precision, unroll
    )
    clip = (
        None
        if bptt_clip is None
        else jnp.asarray(bptt_clip, accumulation_dtype(params.w_hh.dtype))
    )
    final, ys = _fused(cell, opts, params, xs, state, seq_lengths, clip)
    if seq_lengths is not None:
        t = jnp.arange(xs.shape[0], dtype=jnp.int32)[:, None]
        ys = jnp.where((t < seq_lengths[None, :])[..., None], ys, jnp.zeros_like(ys))
    return final, ys
