"""Gradient clipping.

This module holds :func:`clip_gradient`, the identity-forward /
clipped-backward function that per-step (Graves-style) BPTT clipping is built
on. Optax-style gradient transformations (norm, per-leaf, adaptive and
z-score clipping) join it here.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from . import _checks

__all__ = ["clip_gradient"]


def _check_max_norm(max_norm: Any) -> None:
    if isinstance(max_norm, bool) or not (
        isinstance(max_norm, numbers.Real)
        or (hasattr(max_norm, "shape") and hasattr(max_norm, "dtype"))
    ):
        raise TypeError(
            f"max_norm must be a positive float, got {_checks.describe(max_norm)}"
        )
    if hasattr(max_norm, "shape") and tuple(max_norm.shape) != ():
        raise ValueError(
            f"max_norm must be a scalar, got shape {tuple(max_norm.shape)}"
        )
    if _checks.is_concrete(max_norm) and not float(max_norm) > 0:
        raise ValueError(f"max_norm must be a positive float, got {float(max_norm)}")


def _per_example_norm(tree: Any) -> jax.Array:
    """L2 norm over the last axis of every leaf, summed over leaves: shape = leading dims."""
    sq = [jnp.sum(jnp.square(leaf), axis=-1) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.sqrt(functools.reduce(jnp.add, sq))


@jax.custom_vjp
def _clip_gradient(x: Any, max_norm: Any) -> Any:
    del max_norm
    return x


def _clip_gradient_fwd(x: Any, max_norm: Any) -> tuple[Any, Any]:
    # Residuals: only max_norm; the cotangent alone decides the scale.
    return x, max_norm


def _clip_gradient_bwd(max_norm: Any, ct: Any) -> tuple[Any, Any]:
    norm = _per_example_norm(ct)
    limit = jnp.asarray(max_norm, norm.dtype)
    # scale == 1 exactly when norm <= max_norm, so small cotangents pass
    # through bit for bit; above it, the cotangent is rescaled to max_norm.
    scale = limit / jnp.maximum(norm, limit)
    clipped = jax.tree_util.tree_map(
        lambda g: g * scale[..., None].astype(g.dtype), ct
    )
    return clipped, jnp.zeros_like(jnp.asarray(max_norm))


_clip_gradient.defvjp(_clip_gradient_fwd, _clip_gradient_bwd)


def clip_gradient(x: Any, max_norm: Any) -> Any:
    """Identity in the forward pass; clips the cotangent's norm in the backward.

    The norm is taken per example over the last axis; when ``x`` is a pytree
    (an :class:`~jaxrnn.LSTMState`, say) it is the joint norm over the last
    axis of all its leaves, which must share their leading dims. A cotangent
    whose norm is at most ``max_norm`` passes unchanged; a larger one is
    scaled down to norm ``max_norm``, its direction kept.

    Used inside a scan body on the carried state, it clips the state
    gradient at every step of backpropagation through time, as in
    Graves (2013). It is what ``jr.rnn(..., bptt_clip=...)`` applies.

    Args:
      x: an array ``(*batch, features)`` or a pytree of such arrays.
      max_norm: a positive scalar (it may be traced); it gets no gradient.

    Returns:
      ``x`` itself.

    References:
      Graves, "Generating Sequences With Recurrent Neural Networks",
      arXiv:1308.0850, 2013 (section 4: clipping derivatives in BPTT).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxrnn.clipping import clip_gradient
      >>> g = jax.grad(lambda x: 10.0 * clip_gradient(x, 1.0).sum())(jnp.ones((2, 4)))
      >>> jnp.linalg.norm(g, axis=-1)
      Array([1., 1.], dtype=float32)
    """
    leaves = jax.tree_util.tree_leaves(x)
    if not leaves:
        raise ValueError("x must hold at least one array, got an empty pytree")
    for leaf in leaves:
        _checks.array("x", leaf)
        if leaf.ndim < 1:
            raise ValueError(
                "x must have a feature axis (ndim >= 1) to take the norm over, "
                f"got {_checks.describe(leaf)}"
            )
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"x must be floating, got {_checks.describe(leaf)}")
    lead = {tuple(leaf.shape[:-1]) for leaf in leaves}
    if len(lead) > 1:
        raise ValueError(
            "the leaves of x must share their leading (per-example) dims, got "
            f"{sorted(lead)}"
        )
    _check_max_norm(max_norm)
    return _clip_gradient(x, max_norm)
