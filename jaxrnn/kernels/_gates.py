"""Gate blocks: the step functions' layout for loops that cannot slice a value.

A cell's projections are ``G`` gate blocks of ``H`` columns side by side
(``(B, G·H)``), and its ``pointwise`` splits them. Inside a Triton kernel a
value cannot be sliced or concatenated (only whole blocks can be read from
memory), and ``G·H`` (384 for a GRU at H=128) is not a power of two, which
Triton's tensors must be. So when the inner loops ask for it
(``InnerLoops.gate_blocks``), the engine hands the steps every ``(…, G·H)``
array as a tuple of ``G`` arrays of ``(…, H)``, each its own buffer, and the
steps call :meth:`jaxrnn.Cell.pointwise_blocks` instead of ``pointwise``.
The splitting and joining happen here, in XLA, outside the loops.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..cells import Cell, accumulation_dtype

Array = jax.Array


class ForwardWeights(NamedTuple):
    """What the forward step reads in gate blocks."""

    w_hh: tuple[Array, ...]  # G blocks (H, H) of W_hh
    rb: tuple[Array, ...] | None  # G blocks (1, H) of the recurrent bias, or None


def split(a: Array, num_gates: int) -> tuple[Array, ...]:
    """``(…, G·H)`` → ``G`` arrays ``(…, H)`` (XLA, outside the loops)."""
    return tuple(jnp.split(a, num_gates, axis=-1))


def join(blocks: Any) -> Any:
    """The inverse of :func:`split`; ``None`` stays ``None``."""
    return None if blocks is None else jnp.concatenate(blocks, axis=-1)


def pointwise(cell: Cell, blocks: bool) -> Any:
    """The cell's elementwise step for the layout: ``pointwise`` on whole
    projections, ``pointwise_blocks`` on gate blocks."""
    return cell.pointwise_blocks if blocks else cell.pointwise


def forward_weights(cell: Cell, params: Any) -> ForwardWeights:
    G = cell.num_gates
    rb = cell.recurrent_bias(params)
    rb = None if rb is None else split(rb.reshape(1, -1), G)
    return ForwardWeights(split(params.w_hh, G), rb)


def backward_weights(cell: Cell, params: Any) -> tuple[Array, ...]:
    """``W_hhᵀ`` in ``G`` row blocks ``(H, H)``: block ``k`` is gate ``k``'s ``W_hhᵀ``."""
    return tuple(blk.T for blk in split(params.w_hh, cell.num_gates))


def recurrent(w: ForwardWeights, h: Array, precision: Any) -> tuple[Array, ...]:
    """``h W_hh (+ rb)`` as ``G`` blocks: one GEMM per gate."""
    acc = accumulation_dtype(w.w_hh[0].dtype)
    hz = tuple(
        jnp.matmul(h.astype(blk.dtype), blk, precision=precision, preferred_element_type=acc)
        for blk in w.w_hh
    )
    if w.rb is None:
        return hz
    return tuple(z + b.astype(z.dtype) for z, b in zip(hz, w.rb))


def through_gemm(w_t: tuple[Array, ...], dhz: tuple[Array, ...], precision: Any) -> Array:
    """``dh = dhz W_hhᵀ`` summed over the gate blocks."""
    out = None
    for g, blk in zip(dhz, w_t):
        part = jnp.matmul(
            g.astype(blk.dtype), blk, precision=precision, preferred_element_type=g.dtype
        )
        out = part if out is None else out + part
    return out
