"""Stage 3 of the engine: the backward pass, chunk by chunk from the last.

For each chunk: rebuild what it needs (``"states"``: its ``xz`` and ``hz``
with one GEMM each; ``K``: its forward loop first), run the reverse loop (see
``._loops``), which carries only the state gradient ``ds`` and does, per
step, ``pointwise``'s VJP and one GEMM ``dh = dhz W_hhᵀ``; then, for the
whole chunk at once, ``dW_hh += Hᵀ dHZ``, ``dW_ih += Xᵀ dXZ``, the bias sums
and ``dX = dXZ W_ihᵀ`` (cuDNN's split into backward-data and
backward-weights). No buffer of ``T·B·G·H`` exists except under ``"gates"``.

The reverse step is built once per chunk, for the kind of cell:

- additive (``pointwise`` reads ``xz + hz``): one pre-activation buffer, and
  ``dxz = dhz``;
- elementwise: the VJP of ``pointwise`` in ``xz``, ``hz`` and the state;
- whole-step (``elementwise = False``, ``GRU(reset_after=False)``): the VJP of
  ``step_from_projection``, its parameter gradient accumulated step by step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._gradclip import clip_per_example
from ..cells import Cell, accumulation_dtype
from . import _gates as gates
from ._chunks import (
    Options,
    acc_add,
    flat_projection,
    put,
    select,
    state_at,
    take,
    tmap,
    tree_add,
    validity,
    zeros_acc,
    zone_backward,
)
from ._forward import dropout_chunk, forward_chunk

Array = jax.Array


class Residuals(NamedTuple):
    """What the forward pass keeps for the backward (the custom_vjp's residuals)."""

    params: Any  # the caller's params
    xs: Array  # the caller's inputs, in their layout
    s0: Any  # the initial state
    lengths: Array | None  # (B,) or None
    clip: Array | None  # bptt_clip as a scalar, or None
    probe: Any  # see fused_rnn, or None
    seqs: Any  # the state after every step (None under "checkpoints")
    extras: (
        Any  # (per full chunk, tail): (xz, hz) under "gates", the entry state under "checkpoints"
    )
    rmask: Array | None  # recurrent dropout's mask (B, H), or None
    zone: Any  # zoneout's keep masks in the layout of xs, or None


class Weights(NamedTuple):
    """The arrays every reverse step reads (the loops' ``weights``)."""

    params: Any  # None in gate blocks (only a whole-step cell reads them)
    w_hh_t: Any  # W_hhᵀ, materialised once per backward pass (see transposed), or G blocks
    clip: Array | None  # (1, 1)


class Chunk(NamedTuple):
    """One chunk's inputs to its backward pass, time-major."""

    x: Array  # inputs (C, B, I)
    dy: Array  # output cotangents (C, B, H)
    valid: Array  # (C, B, 1)
    entry: Any  # the state entering the chunk
    states: Any  # the state after each step (C, B, ...)
    gates: tuple[Array | None, Array | None] | None  # kept by "gates", or None
    rmask: Array | None  # recurrent dropout's mask (C, B, H), or None
    zone: Any  # zoneout's keep masks (C, B, ...) per state leaf, or None


class StepInputs(NamedTuple):
    """What the reverse loop reads per step, time-major ``(C, B, ...)``."""

    xz: Array | None  # input projection; None for an additive cell
    hz: Array | None  # recurrent projection (additive: xz + hz); None for whole-step
    prev: Any  # the state entering the step
    dy: Array  # the output's cotangent
    valid: Array  # whether the step is within each length
    rmask: Array | None  # recurrent dropout's mask on the GEMM input, or None
    zone: Any  # zoneout's keep masks, or None


# --------------------------------------------------------------------------
# the reverse step, one per kind of cell


def _inject(fn: Any, like: Any, ct: Array) -> Any:
    """The cotangent of a state for a cotangent ``ct`` of ``fn(state)``.

    ``fn`` is ``cell.output`` or ``cell.gemm_input``: a linear selection of
    the state, whose VJP does not depend on the primal ``like``.
    """
    return jax.vjp(fn, like)[1](ct)[0]


def _through_gemm(
    cell: Cell, opts: Options, w: Weights, x: StepInputs, dhz: Any, ds_prev: Any
) -> Any:
    """Adds the gradient that reaches the previous state through
    ``hz = (h ⊙ m) W_hh`` (``dhz`` whole, or in gate blocks with
    ``w.w_hh_t`` in blocks; ``m`` recurrent dropout's mask, if any)."""
    if isinstance(dhz, tuple):
        dh = gates.through_gemm(w.w_hh_t, dhz, opts.precision)
    else:
        dh = jnp.matmul(
            dhz.astype(w.w_hh_t.dtype),
            w.w_hh_t,
            precision=opts.precision,
            preferred_element_type=dhz.dtype,
        )
    if x.rmask is not None:
        dh = dh * x.rmask
    return tree_add(ds_prev, _inject(cell.gemm_input, x.prev, dh))


# Each core maps the total cotangent of a step's new state to
# (ds_prev, dparams_t or None, dxz_t or None, dhz_t or None).


def _additive_core(cell: Cell, opts: Options, w: Weights, total: Any, x: StepInputs) -> tuple:
    pointwise = gates.pointwise(cell, opts.loops.gate_blocks)
    _, vjp = jax.vjp(lambda a, s: pointwise(a, tmap(jnp.zeros_like, a), s), x.hz, x.prev)
    dhz, ds_prev = vjp(total)
    return _through_gemm(cell, opts, w, x, dhz, ds_prev), None, None, dhz


def _elementwise_core(cell: Cell, opts: Options, w: Weights, total: Any, x: StepInputs) -> tuple:
    _, vjp = jax.vjp(gates.pointwise(cell, opts.loops.gate_blocks), x.xz, x.hz, x.prev)
    dxz, dhz, ds_prev = vjp(total)
    return _through_gemm(cell, opts, w, x, dhz, ds_prev), None, dxz, dhz


def _whole_step_core(cell: Cell, opts: Options, w: Weights, total: Any, x: StepInputs) -> tuple:
    def step_fn(p, xz, s):
        return cell.step_from_projection(p, xz, s, opts.precision)

    _, vjp = jax.vjp(step_fn, w.params, x.xz, x.prev)
    dp_t, dxz, ds_prev = vjp(total)
    return ds_prev, dp_t, dxz, None


def _is_additive(cell: Cell) -> bool:
    return cell.elementwise and cell.additive


def backward_step(cell: Cell, opts: Options, probed: bool) -> Any:
    """The step function of the reverse loop,
    ``(weights, (ds, dp), x_t) -> ((ds_prev, dp), (dxz_t, dhz_t, dL/ds_t))``,
    with the core for the kind of cell chosen here, once."""
    if not cell.elementwise:
        core = _whole_step_core
    elif cell.additive:
        core = _additive_core
    else:
        core = _elementwise_core

    def step(w: Weights, carry: Any, x: StepInputs) -> Any:
        ds, dp = carry
        total = tree_add(ds, _inject(cell.output, x.prev, x.dy))
        if opts.masked:
            # An example past its length contributes nothing at this step
            # (a zero cotangent through the step's VJP) ...
            total = select(x.valid, total, tmap(jnp.zeros_like, total))
        # Zoneout: a unit that kept its value passes its gradient straight
        # to the previous state; the rest goes through the cell.
        to_cell, kept = zone_backward(opts, total, x.zone)
        ds_prev, dp_t, dxz, dhz = core(cell, opts, w, to_cell, x)
        if kept is not None:
            ds_prev = tree_add(ds_prev, kept)
        if dp_t is not None:
            dp = acc_add(dp, dp_t)
        if opts.clipped:
            ds_prev = clip_per_example(ds_prev, w.clip)
        if opts.masked:
            # ... and passes its state gradient through unchanged.
            ds_prev = select(x.valid, ds_prev, ds)
        return (ds_prev, dp), (dxz, dhz, total if probed else None)

    return step


# --------------------------------------------------------------------------
# one chunk


def _step_inputs(
    cell: Cell, params: Any, opts: Options, chunk: Chunk, prev: Any, h_prev: Array
) -> StepInputs:
    """The reverse loop's per-step inputs: the projections kept by "gates", or
    rebuilt here with one ``C·B``-row GEMM each (``h_prev``: the GEMM's input,
    recurrent dropout's mask applied)."""
    if chunk.gates is not None:
        xz, hz = chunk.gates
    else:
        xz = flat_projection(lambda x: cell.input_projection(params, x, opts.precision), chunk.x)
        hz = None
        if cell.elementwise:
            hz = flat_projection(
                lambda h: cell.recurrent_projection(params, h, opts.precision), h_prev
            )
    if _is_additive(cell):
        # One buffer for the pre-activations xz + hz (the gates policy kept
        # exactly that), and dxz = dhz: one buffer for both gradients.
        hz = hz if xz is None else xz + hz
        xz = None
    if opts.loops.gate_blocks:
        xz = None if xz is None else gates.split(xz, cell.num_gates)
        hz = gates.split(hz, cell.num_gates)
    return StepInputs(xz, hz, prev, chunk.dy, chunk.valid, chunk.rmask, chunk.zone)


def backward_chunk(
    cell: Cell, opts: Options, params: Any, w: Weights, ds: Any, chunk: Chunk, probed: bool
) -> tuple[Any, Any, Array, Any]:
    """The reverse loop of one chunk, then its batched weight gradients.

    Args:
      ds: cotangent of the state leaving the chunk.

    Returns:
      ``(ds_entry, dparams, dx_c, dstates_c)``: ``dstates_c`` holds the
      cotangent of the state after each step, ``dL/ds_t`` (only when
      ``probed``, else ``None``).
    """
    prev = tmap(lambda e, s: jnp.concatenate([e[None], s[:-1]]), chunk.entry, chunk.states)
    h_prev = cell.gemm_input(prev)  # (C, B, H): what the recurrent GEMM read,
    if chunk.rmask is not None:  # recurrent dropout's mask applied
        h_prev = h_prev * chunk.rmask
    # Only a whole-step cell accumulates parameter gradients per step.
    init = (ds, None if cell.elementwise else zeros_acc(params))
    (ds_entry, dp), (dxz, dhz, dstates) = opts.loops.backward_chunk(
        backward_step(cell, opts, probed),
        w,
        init,
        _step_inputs(cell, params, opts, chunk, prev, h_prev),
        unroll=opts.unroll,
    )
    if opts.loops.gate_blocks:
        dxz, dhz = gates.join(dxz), gates.join(dhz)
    if _is_additive(cell):
        dxz = dhz
    dp = zeros_acc(params) if dp is None else dp
    dp, dx = _input_grads(cell, params, opts, chunk.x, dxz, dp)
    if dhz is not None:
        dp = _recurrent_grads(cell, params, opts, h_prev, dhz, dp)
    return ds_entry, dp, dx, dstates


# --------------------------------------------------------------------------
# the chunk's weight gradients: one GEMM or reduction over C·B rows each


def _flat(a: Array) -> Array:
    return a.reshape(-1, a.shape[-1])


def gemm_grads(cell: Cell, params: Any) -> bool:
    """Whether the projections' gradients can be written as row-major GEMMs:
    the cell declares :attr:`~jaxrnn.Cell.plain_projections` and its weights
    are full precision NamedTuple fields."""
    return (
        cell.plain_projections
        and hasattr(params, "_replace")
        and all(accumulation_dtype(w.dtype) == w.dtype for w in (params.w_ih, params.w_hh))
    )


def _input_grads(
    cell: Cell, params: Any, opts: Options, x_c: Array, dxz_c: Array, dp: Any
) -> tuple[Any, Array]:
    """``dW_ih``, ``db`` and ``dx`` of one chunk."""
    dxz = _flat(dxz_c)
    if gemm_grads(cell, params):
        # (dxz @ W_ihᵀ, once per chunk, is left to XLA: a transposed copy
        # of W_ih would cost its size in memory for no measurable gain.)
        dx = jnp.matmul(
            dxz, params.w_ih.T, precision=opts.precision, preferred_element_type=dxz.dtype
        )
        dp = _acc_fields(dp, w_ih=_nn_dot(transposed(_flat(x_c)), dxz, opts), b=dxz.sum(0))
    else:
        _, vjp_in = jax.vjp(
            lambda p, x: cell.input_projection(p, x, opts.precision), params, _flat(x_c)
        )
        dp_in, dx = vjp_in(dxz)
        dp = acc_add(dp, dp_in)
    return dp, dx.reshape(x_c.shape[:2] + dx.shape[-1:])


def _recurrent_grads(
    cell: Cell, params: Any, opts: Options, h_prev: Array, dhz_c: Array, dp: Any
) -> Any:
    """``dW_hh`` and the recurrent bias's gradient of one chunk."""
    dhz = _flat(dhz_c)
    if gemm_grads(cell, params):
        dp = _acc_fields(dp, w_hh=_nn_dot(transposed(_flat(h_prev)), dhz, opts))
        rb, vjp_rb = jax.vjp(cell.recurrent_bias, params)
        if rb is not None:
            dp = acc_add(dp, vjp_rb(dhz.sum(0))[0])
        return dp
    _, vjp_rec = jax.vjp(
        lambda p: cell.recurrent_projection(p, _flat(h_prev), opts.precision), params
    )
    return acc_add(dp, vjp_rec(dhz)[0])


def _acc_fields(acc: Any, **grads: Array) -> Any:
    """Adds ``grads`` to the named fields of an accumulator NamedTuple; a
    field that is ``None`` (an absent parameter: ``bias=False``) stays ``None``."""
    return acc._replace(
        **{
            k: getattr(acc, k) + g.astype(getattr(acc, k).dtype)
            for k, g in grads.items()
            if getattr(acc, k) is not None
        }
    )


def _nn_dot(a: Array, b: Array, opts: Options) -> Array:
    """``a @ b`` with both operands row-major and contracted the plain way."""
    return jnp.matmul(a, b, precision=opts.precision, preferred_element_type=a.dtype)


def transposed(w: Array) -> Array:
    """``wᵀ`` as its own row-major array.

    A dot that contracts ``w``'s second axis (``dhz @ w.T``) or the rows of
    both operands (``xᵀ @ dz``) makes XLA's CPU GEMM repack an operand at
    every call: at B=8, H=128 the backward step's ``dhz @ W_hhᵀ`` costs
    ~2.7x a plain ``a @ b``. Transposing once and hiding the transpose
    behind a barrier (so that XLA does not fold it back into the dot)
    leaves only plain row-major GEMMs.
    """
    return lax.optimization_barrier(w.T)


# --------------------------------------------------------------------------
# every chunk


def backward(
    cell: Cell, opts: Options, res: Residuals, d_final: Any, d_ys: Array
) -> tuple[Any, Array, Any, Any]:
    """The tail, then every chunk in reverse.

    Returns:
      ``(dparams, dxs, ds0, dprobe)``; ``dprobe`` (``None`` without a
      ``probe``) holds ``dL/ds_t`` for every step in the layout of ``probe``.
    """
    params, xs = res.params, res.xs
    B = xs.shape[1 - opts.time_axis]
    extras, tail_extra = res.extras
    probed = res.probe is not None
    # The clip threshold as (1, 1): it meets (B, 1) per-example norms, and
    # a Pallas kernel holds no 0-d arrays.
    clip = None if res.clip is None else res.clip.reshape(1, 1)
    if opts.loops.gate_blocks:
        w = Weights(None, gates.backward_weights(cell, params), clip)
    else:
        w = Weights(params, transposed(params.w_hh), clip)

    def run(ds, dp, dxs, dpr, start, size, extra):
        valid = validity(res.lengths, start, size, B)
        x_c = take(xs, start, size, opts)
        rmask_c, zone_c = dropout_chunk(res.rmask, res.zone, start, size, opts)
        if opts.residuals == "checkpoints":
            entry = extra
            _, (states, _, _) = forward_chunk(
                cell, params, opts, entry, x_c, valid, rmask_c, zone_c
            )
        else:
            entry = state_at(res.seqs, res.s0, start, opts)
            states = tmap(lambda q: take(q, start, size, opts), res.seqs)
        gates = extra if opts.residuals == "gates" else None
        chunk = Chunk(
            x_c, take(d_ys, start, size, opts), valid, entry, states, gates, rmask_c, zone_c
        )
        ds, dp_c, dx_c, dst_c = backward_chunk(cell, opts, params, w, ds, chunk, probed)
        if probed:
            dpr = tmap(lambda q, part: put(q, part, start, opts), dpr, dst_c)
        return ds, tree_add(dp, dp_c), put(dxs, dx_c, start, opts), dpr

    dpr = tmap(jnp.zeros_like, res.probe) if probed else None
    ds, dp, dxs = d_final, zeros_acc(params), jnp.zeros_like(xs)
    if opts.tail:
        ds, dp, dxs, dpr = run(
            ds, dp, dxs, dpr, opts.num_chunks * opts.chunk, opts.tail, tail_extra
        )

    def chunk(carry, inputs):
        c, extra = inputs
        return run(*carry, c * opts.chunk, opts.chunk, extra), None

    (ds0, dparams, dxs, dpr), _ = lax.scan(
        chunk,
        (ds, dp, dxs, dpr),
        (jnp.arange(opts.num_chunks, dtype=jnp.int32), extras),
        reverse=True,
    )
    dparams = tmap(lambda g, p: g.astype(p.dtype), dparams, params)
    return dparams, dxs, ds0, dpr
