"""The seam: the two sequential loops of the engine, behind one interface.

Everything else in the engine is batched over a chunk's ``C·B`` rows: the
input GEMMs, the rebuilt projections of the "states" policy, the
weight-gradient GEMMs, masking of outputs, chunking and the ``custom_vjp``.
What is left is two loops over the steps of one chunk:

- ``forward_chunk``: ``s_t = step(s_{t-1}, x_t)`` for ``t = 0 .. C-1``;
- ``backward_chunk``: the same, in reverse, carrying the state gradient.

An :class:`InnerLoops` runs them. The engine builds each step function once
per chunk, before the loop, for the kind of cell (see ``._forward`` and
``._backward``), so a loop sees only ``step(weights, carry, x_t) -> (carry,
y_t)``: ``weights`` is a pytree of the arrays the step reads besides its
per-step inputs (``W_hh``, ``W_hhᵀ``, the clip threshold), passed as an
argument and never closed over, so that an implementation can stage them in
fast memory once per chunk (a Pallas kernel: VMEM or shared memory) and call
``step`` inside its own loop. ``xs`` is a NamedTuple of time-major
``(C, B, ...)`` arrays (``None`` fields allowed); the outputs are stacked the
same way. :data:`XLA` (``lax.scan``, tuned for XLA's CPU backend) is the one
implementation today; another plugs in through ``Options.loops``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jax import lax

Step = Callable[[Any, Any, Any], tuple[Any, Any]]  # (weights, carry, x_t) -> (carry, y_t)


class InnerLoops(Protocol):
    """The sequential loops of one chunk (hashable: it is part of the static options)."""

    #: whether the steps take the projections as gate blocks (see ``._gates``):
    #: ``xz``/``hz`` as tuples of ``G`` arrays ``(C, B, H)``, ``W_hh`` in blocks
    gate_blocks: bool

    def forward_chunk(
        self, step: Step, weights: Any, init: Any, xs: Any, *, unroll: Any
    ) -> tuple[Any, Any]:
        """Runs ``step`` over ``t = 0 .. C-1``; returns ``(last carry, stacked y_t)``."""
        ...

    def backward_chunk(
        self, step: Step, weights: Any, init: Any, xs: Any, *, unroll: Any
    ) -> tuple[Any, Any]:
        """Runs ``step`` over ``t = C-1 .. 0``; returns ``(first carry, stacked y_t)``
        with ``y_t`` at index ``t``."""
        ...


@dataclasses.dataclass(frozen=True)
class XlaLoops:
    """The loops as ``lax.scan`` (see :func:`_scan` for what XLA's CPU backend needs)."""

    gate_blocks = False

    def forward_chunk(
        self, step: Step, weights: Any, init: Any, xs: Any, *, unroll: Any
    ) -> tuple[Any, Any]:
        return _scan(lambda c, x: step(weights, c, x), init, xs, reverse=False, unroll=unroll)

    def backward_chunk(
        self, step: Step, weights: Any, init: Any, xs: Any, *, unroll: Any
    ) -> tuple[Any, Any]:
        return _scan(lambda c, x: step(weights, c, x), init, xs, reverse=True, unroll=unroll)


XLA = XlaLoops()


def _scan(step: Any, init: Any, xs: Any, *, reverse: bool, unroll: Any) -> Any:
    """``lax.scan(step, init, xs)`` with each step's inputs read one step ahead.

    ``lax.scan`` hands ``step`` slices of ``xs`` that XLA fuses, as
    dynamic slices, into the step's elementwise kernels; XLA's CPU backend
    then emits those kernels without vectorising their ``exp`` and ``tanh``
    (an LSTM step at B=32, H=64 took ~30 us instead of ~5). Here the slice
    for step ``t + 1`` is taken at the end of step ``t`` and carried, so the
    kernels read plain buffers, and the carry and outputs leave each step
    through a barrier, so the output writes do not pull the elementwise work
    into themselves either.
    """
    tmap = jax.tree_util.tree_map
    length = jax.tree_util.tree_leaves(xs)[0].shape[0]
    first = length - 1 if reverse else 0

    def at(t):
        return tmap(lambda a: lax.dynamic_index_in_dim(a, t, keepdims=False), xs)

    def body(carry, t):
        c, x_t = carry
        c, y = step(c, x_t)
        c, y = lax.optimization_barrier((c, y))
        nxt = jnp.clip(t - 1 if reverse else t + 1, 0, length - 1)
        return (c, at(nxt)), y

    x0 = tmap(lambda a: a[first], xs)
    (c, _), ys = lax.scan(
        body, (init, x0), jnp.arange(length, dtype=jnp.int32), reverse=reverse, unroll=unroll
    )
    return c, ys
