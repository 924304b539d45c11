"""Initializers that :mod:`jax.nn.initializers` lacks.

Everything else (Glorot, orthogonal, normal, zeros, ...) is used straight from
:mod:`jax.nn.initializers`; these follow the same signature,
``init(key, shape, dtype) -> array``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["identity", "scaled_identity"]


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
