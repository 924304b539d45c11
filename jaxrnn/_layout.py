"""The batch layout of a sequence call: ``*batch`` dims folded into one, and back.

Every entry point (:func:`jaxrnn.rnn`, the diagnostics, the Flax layers)
takes inputs ``(*batch, time, features)``, or ``(time, *batch, features)``
time-major, with any number of batch dims (zero included), and the engine
runs on one batch dim. :class:`BatchLayout` does that fold, and its inverse,
in one place; both are free reshapes.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class BatchLayout(NamedTuple):
    """The layout of ``xs``: its batch shape, its length and where time is."""

    batch_shape: tuple[int, ...]  # the leading (or, time-major, trailing) batch dims
    num_steps: int  # the length of the time axis
    time_major: bool  # whether time is the leading axis

    @classmethod
    def of(cls, xs: Any, time_major: bool = False) -> BatchLayout:
        """The layout of ``xs`` (at least 2 dims: time and features)."""
        if time_major:
            return cls(tuple(xs.shape[1:-1]), xs.shape[0], True)
        return cls(tuple(xs.shape[:-2]), xs.shape[-2], False)

    @property
    def size(self) -> int:
        """``B``: the batch dims' product."""
        return math.prod(self.batch_shape)

    @property
    def time_axis(self) -> int:
        """The time axis of a flat sequence: 0 time-major, else 1."""
        return 0 if self.time_major else 1

    def flatten(self, xs: Any) -> Array:
        """``(*batch, T, F)`` -> ``(B, T, F)``; time-major ``(T, *batch, F)`` -> ``(T, B, F)``."""
        features = xs.shape[-1]
        if self.time_major:
            return jnp.asarray(xs).reshape(self.num_steps, self.size, features)
        return jnp.asarray(xs).reshape(self.size, self.num_steps, features)

    def restore(self, ys: Array) -> Array:
        """The inverse of :meth:`flatten`, for any number of features."""
        features = ys.shape[-1]
        if self.time_major:
            return ys.reshape(self.num_steps, *self.batch_shape, features)
        return ys.reshape(*self.batch_shape, self.num_steps, features)

    def flatten_state(self, state: Any) -> Any:
        """A state tree with leaves ``(*batch, H)`` -> leaves ``(B, H)``."""
        return jax.tree_util.tree_map(
            lambda s: jnp.asarray(s).reshape(self.size, s.shape[-1]), state
        )

    def restore_state(self, state: Any) -> Any:
        """The inverse of :meth:`flatten_state`."""
        return jax.tree_util.tree_map(
            lambda s: s.reshape(*self.batch_shape, s.shape[-1]), state
        )
