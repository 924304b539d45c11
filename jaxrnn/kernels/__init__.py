"""The fused recurrence engine (``jr.rnn(..., impl="fused")``).

One ``jax.custom_vjp`` kernel serves every cell: the cell supplies its
parameter layout and its elementwise ``pointwise`` step, the engine the rest
(hoisted input GEMMs, the hand-written backward pass, residual policies,
masking, per-step gradient clipping, mixed precision). Read it in stages:
``_chunks`` (options, chunking), ``_forward``, ``_backward``, ``_engine``
(the ``custom_vjp``); the sequential loops sit behind one seam, ``_loops``, implemented by
``lax.scan`` (``impl="fused"``) and by Pallas kernels (``_pallas``,
``impl="pallas"``).
"""

from ._chunks import DEFAULT_RESIDUAL_BUDGET as DEFAULT_RESIDUAL_BUDGET
from ._chunks import default_chunk as default_chunk
from ._chunks import residual_bytes as residual_bytes
from ._chunks import residual_policy as residual_policy
from ._engine import fused_rnn as fused_rnn
from ._pallas import PALLAS_BY_DEFAULT as PALLAS_BY_DEFAULT

__all__ = [
    "DEFAULT_RESIDUAL_BUDGET",
    "PALLAS_BY_DEFAULT",
    "default_chunk",
    "fused_rnn",
    "residual_bytes",
    "residual_policy",
]
