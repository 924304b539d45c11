"""Stage 2 of the engine: the forward pass, chunk by chunk.

Per chunk, one GEMM computes ``xz`` for all ``C`` steps; the inner loop (see
``._loops``) does only ``hz_t`` and ``pointwise``. What is kept for the
backward pass depends on ``residuals``:

=============  ================================================  ===================
policy         kept                                              memory
=============  ================================================  ===================
``"gates"``    ``xz``, ``hz`` and the state at every step         ``T·B·(2·G·H + S)``
               (an additive cell: ``xz + hz`` only)
``"states"``   the state at every step (for GRU and plain RNNs    ``T·B·S``
               the outputs themselves)
``K`` (int)    the state entering every K-th step (chunks of K)   ``T/K·B·S``
=============  ================================================  ===================
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._sharding import vary, varying_axes
from ..cells import Cell
from . import _gates as gates
from ._chunks import Options, flat_projection, put, select, take, tmap, validity, zone_forward

Array = jax.Array


class StepInputs(NamedTuple):
    """What the forward loop reads per step, time-major ``(C, B, ...)``."""

    xz: Any  # the input projection x_t W_ih + b, (C, B, G·H) (or its G blocks, see ._gates)
    valid: Array  # whether the step is within each length, (C, B, 1)
    rmask: Array | None  # recurrent dropout's mask on the GEMM input, (C, B, H), or None
    zone: Any  # zoneout's keep masks, bool, shaped like the state per step, or None


def forward_step(cell: Cell, opts: Options) -> Any:
    """The step function of the forward loop, ``(params, s, x_t) -> (s', (s', kept))``,
    chosen once for the kind of cell. ``kept`` is the pre-activation the
    "gates" policy keeps (``hz``, or ``xz + hz`` for an additive cell), else
    ``None``."""
    keep = opts.residuals == "gates" and cell.elementwise

    blocks = opts.loops.gate_blocks  # the projections as gate blocks (see ._gates)
    pointwise = gates.pointwise(cell, blocks)

    def elementwise(w, s, x):
        # w: the params, or ._gates.ForwardWeights in gate blocks.
        h = cell.gemm_input(s)
        if x.rmask is not None:
            h = h * x.rmask
        if blocks:
            hz = gates.recurrent(w, h, opts.precision)
        else:
            hz = cell.recurrent_projection(w, h, opts.precision)
        kept = (tmap(jnp.add, x.xz, hz) if cell.additive else hz) if keep else None
        return pointwise(x.xz, hz, s), kept

    def whole_step(params, s, x):
        return cell.step_from_projection(params, x.xz, s, opts.precision), None

    core = elementwise if cell.elementwise else whole_step

    def step(params, s, x):
        new, kept = core(params, s, x)
        new = zone_forward(opts, new, s, x.zone)
        if opts.masked:
            new = select(x.valid, new, s)
        return new, (new, kept)

    return step


def forward_chunk(
    cell: Cell,
    params: Any,
    opts: Options,
    s0: Any,
    x_c: Array,
    valid_c: Array,
    rmask_c: Array | None = None,
    zone_c: Any = None,
) -> tuple[Any, tuple[Any, Array | None, Array | None]]:
    """Runs one chunk: ``x_c (C, B, I)``, with recurrent dropout's mask
    ``rmask_c (C, B, H)`` and zoneout's masks ``zone_c`` when they apply
    (see :func:`dropout_chunk`); returns the last state and
    ``(states (C, B, ...), xz (C, B, G·H), hz (C, B, G·H) or None)``; with
    ``"gates"`` and an additive cell, ``(states, None, xz + hz)``."""
    xz_c = flat_projection(lambda x: cell.input_projection(params, x, opts.precision), x_c)
    if opts.loops.gate_blocks:
        weights, xz_in = gates.forward_weights(cell, params), gates.split(xz_c, cell.num_gates)
    else:
        weights, xz_in = params, xz_c
    last, (states, hz_c) = opts.loops.forward_chunk(
        forward_step(cell, opts),
        weights,
        s0,
        StepInputs(xz_in, valid_c, rmask_c, zone_c),
        unroll=opts.unroll,
    )
    if opts.loops.gate_blocks:
        hz_c = gates.join(hz_c)
    if hz_c is not None and cell.additive:
        return last, (states, None, hz_c)  # hz_c holds xz + hz
    return last, (states, xz_c, hz_c)


def dropout_chunk(
    rmask: Array | None, zone: Any, start: Any, size: int, opts: Options
) -> tuple[Array | None, Any]:
    """One chunk's dropout inputs, time-major: recurrent dropout's per-sequence
    mask ``rmask (B, H)`` repeated over the chunk's steps (a per-step input,
    so that every loop, the Pallas kernels included, reads it like ``xz``),
    and zoneout's per-step masks sliced out of ``zone`` (the layout of ``xs``)."""
    rmask_c = None if rmask is None else jnp.broadcast_to(rmask[None], (size, *rmask.shape))
    zone_c = None if zone is None else tmap(lambda q: take(q, start, size, opts), zone)
    return rmask_c, zone_c


def forward(
    cell: Cell,
    params: Any,
    opts: Options,
    xs: Array,
    s0: Any,
    lengths: Array | None,
    rmask: Array | None = None,
    zone: Any = None,
) -> tuple[Any, Any, Any]:
    """Runs every chunk, writing the states into per-step buffers.

    ``rmask`` is recurrent dropout's mask ``(B, H)`` on the GEMM input
    (scaled: ``0`` or ``1/(1-p)``), ``zone`` zoneout's boolean keep masks,
    one per state leaf in the layout of ``xs``; ``None`` when they do not
    apply.

    Returns:
      ``(final, seqs, res)``: ``seqs`` holds every state leaf per step
      (under "checkpoints" only the output ``h``), masked to zero past each
      length; ``res`` is ``(chunks, tail)`` of the policy's extras: the
      ``(xz, hz)`` of each chunk under "gates", the state entering each chunk
      under "checkpoints", ``None`` under "states".
    """
    B = xs.shape[1 - opts.time_axis]
    full = opts.residuals != "checkpoints"

    def run(s, seqs, start, size):
        valid = validity(lengths, start, size, B)
        last, (states, xz, hz) = forward_chunk(
            cell, params, opts, s, take(xs, start, size, opts), valid,
            *dropout_chunk(rmask, zone, start, size, opts),
        )
        if opts.masked:
            states = _zero_past_lengths(valid, states)
        written = states if full else cell.output(states)
        seqs = tmap(lambda q, part: put(q, part, start, opts), seqs, written)
        extra = (xz, hz) if opts.residuals == "gates" else (s if not full else None)
        return last, seqs, extra

    def chunk(carry, c):
        s, seqs = carry
        last, seqs, extra = run(s, seqs, c * opts.chunk, opts.chunk)
        return (last, seqs), extra

    seqs = _seq_buffers(cell, s0, xs, opts, full)
    (s, seqs), extras = lax.scan(chunk, (s0, seqs), jnp.arange(opts.num_chunks, dtype=jnp.int32))
    tail = None
    if opts.tail:
        s, seqs, tail = run(s, seqs, opts.num_chunks * opts.chunk, opts.tail)
    return s, seqs, (extras, tail)


def _seq_buffers(cell: Cell, s0: Any, xs: Array, opts: Options, full: bool) -> Any:
    """Zero per-step buffers in the caller's layout: every state leaf when
    ``full``, else only the output ``h``."""
    T = opts.num_steps

    def buf(leaf):
        shape = list(xs.shape[:-1]) + [leaf.shape[-1]]
        shape[opts.time_axis] = T
        return vary(jnp.zeros(shape, leaf.dtype), varying_axes(xs))

    return tmap(buf, s0) if full else buf(cell.output(s0))


def _zero_past_lengths(valid: Array, states: Any) -> Any:
    """Zeroes each example's states past its length: ``valid (C, B, 1)``."""
    return tmap(lambda q: jnp.where(valid, q, jnp.zeros_like(q)), states)
