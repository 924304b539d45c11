"""Initializers that :mod:`jax.nn.initializers` lacks, and the cells' defaults.

Everything else (Glorot, orthogonal, normal, zeros, ...) is used straight from
:mod:`jax.nn.initializers`; these follow the same signature,
``init(key, shape, dtype) -> array``. The ``default_*`` initializers are the
cells' (and the Flax layers') defaults, one shared object each, so that two
configs built with the defaults compare (and hash) equal.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "default_b",
    "default_irnn_w_ih",
    "default_lru_c",
    "default_lru_d",
    "default_lru_w_ih",
    "default_w_hh",
    "default_w_ih",
    "identity",
    "scaled_identity",
]

default_w_ih: jax.nn.initializers.Initializer = jax.nn.initializers.glorot_uniform()
"""The default ``w_ih`` initializer (per gate block): Glorot-uniform."""

default_w_hh: jax.nn.initializers.Initializer = jax.nn.initializers.orthogonal()
"""The default ``w_hh`` initializer (per gate block): orthogonal."""

default_b: jax.nn.initializers.Initializer = jax.nn.initializers.zeros
"""The default bias initializer (``b``, GRU's ``b_hn``): zeros."""

default_irnn_w_ih: jax.nn.initializers.Initializer = jax.nn.initializers.normal(stddev=1e-3)
"""The IRNN's default ``w_ih`` initializer: normal, stddev 0.001 (Le et al., 2015)."""

default_lru_w_ih: jax.nn.initializers.Initializer = jax.nn.initializers.variance_scaling(
    0.5, "fan_in", "normal"
)
"""The LRU's input matrix ``B`` (real and imaginary parts, each): normal with
variance ``1/(2 I)`` (Orvieto et al., 2023, Appendix A)."""

default_lru_c: jax.nn.initializers.Initializer = jax.nn.initializers.variance_scaling(
    1.0, "fan_in", "normal"
)
"""The LRU's output matrix ``C`` (real and imaginary parts, each): normal with
variance ``1/H`` (Orvieto et al., 2023, Appendix A)."""


def default_lru_d(key: Any, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
    """The LRU's skip ``D``: N(0, 1) on the main diagonal of a matrix, zeros
    elsewhere (the paper's diagonal ``D`` when input and output sizes match)."""
    rows, cols = shape
    diag = jax.random.normal(key, (1, cols), dtype)
    return jnp.eye(rows, cols, dtype=dtype) * diag


def scaled_identity(scale: float = 1.0) -> jax.nn.initializers.Initializer:
    """Returns an initializer that builds ``scale * I``.

    The matrix must be two-dimensional; a non-square shape gets ``scale`` on
    its main diagonal (like ``numpy.eye``). This is the recurrent
    initialisation of the IRNN (Le, Jaitly & Hinton, 2015), where ``scale=1``
    makes the untrained ReLU recurrence an exact copy of its state.

    Args:
      scale: the value on the diagonal.

    Returns:
      An initializer ``init(key, shape, dtype=float32) -> array``; the key is
      ignored (the result is deterministic).

    Example:
      >>> import jax
      >>> from jaxrnn.initializers import scaled_identity
      >>> scaled_identity(0.5)(jax.random.PRNGKey(0), (2, 2))
      Array([[0.5, 0. ],
             [0. , 0.5]], dtype=float32)
    """

    def init(key: Any, shape: Any, dtype: Any = jnp.float32) -> jax.Array:
        del key
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(
                f"scaled_identity needs a 2-D shape, got shape {shape}"
            )
        return scale * jnp.eye(shape[0], shape[1], dtype=dtype)

    return init


def identity() -> jax.nn.initializers.Initializer:
    """Returns an initializer that builds the identity matrix ``I``.

    Same as :func:`scaled_identity` with ``scale=1``.
    """
    return scaled_identity(1.0)
