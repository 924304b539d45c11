"""The fused recurrence engine (``jr.rnn(..., impl="fused")``).

One ``jax.custom_vjp`` kernel serves every cell: the cell supplies its
parameter layout and its elementwise ``pointwise`` step, the engine the rest
(hoisted input GEMMs, the hand-written backward pass, residual policies,
masking, per-step gradient clipping, mixed precision).
"""

from ._engine import default_chunk as default_chunk
from ._engine import fused_rnn as fused_rnn

__all__ = ["fused_rnn", "default_chunk"]
