"""In-graph gradient clipping for backpropagation through time; no Optax.

:func:`clip_gradient` is identity forward and clips the cotangent's norm per
example backward; :func:`clip_per_example` is that rule on a cotangent, which
the fused engine applies inside its own backward pass. Both sit below
:mod:`jaxrnn.clipping` (which re-exports :func:`clip_gradient`) so that
``jaxrnn.rnn`` and ``jaxrnn.kernels`` do not import Optax.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from . import _checks
from .cells import PyTree

__all__ = ["clip_gradient", "clip_per_example"]


def _per_example_sq_norm(tree: Any) -> jax.Array:
    """Squared L2 norm over the last axis of every leaf, summed over leaves:
    shape ``(*leading dims, 1)`` (kept 2-D for a Pallas kernel, where the
    fused engine applies it per step)."""
    sq = [
        jnp.sum(jnp.square(leaf), axis=-1, keepdims=True)
        for leaf in jax.tree_util.tree_leaves(tree)
    ]
    return functools.reduce(jnp.add, sq)


@jax.custom_vjp
def _clip_gradient(x: Any, max_norm: Any) -> Any:
    del max_norm
    return x


def _clip_gradient_fwd(x: Any, max_norm: Any) -> tuple[Any, Any]:
    # Residuals: only max_norm; the cotangent alone decides the scale.
    return x, max_norm


def clip_per_example(ct: Any, max_norm: Any) -> Any:
    """Scales each example's cotangent to norm at most ``max_norm`` (joint over leaves).

    ``scale == 1`` exactly when the norm is within the limit, so small
    cotangents pass bit for bit; larger ones are rescaled to ``max_norm``.
    An infinite ``max_norm`` never clips. A traced one that is not positive
    (0, negative or NaN; a concrete one is refused) makes the cotangent NaN,
    the rule of ``jr.rnn(..., bptt_clip=...)``: the training step's finite
    check then skips the update instead of applying a wrong one. The comparison is on
    squared norms so that a zero cotangent has finite derivatives too
    (``sqrt`` is not differentiable at 0), for grad of grad. The fused engine
    applies the same function inside its backward pass.
    """
    sq = _per_example_sq_norm(ct)
    limit = jnp.asarray(max_norm, sq.dtype)
    clip = sq > jnp.square(limit)
    scale = jnp.where(clip, limit / jnp.sqrt(jnp.where(clip, sq, 1)), 1).astype(sq.dtype)
    scale = jnp.where(limit > 0, scale, jnp.nan).astype(sq.dtype)
    return jax.tree_util.tree_map(lambda g: g * scale.astype(g.dtype), ct)


def _clip_gradient_bwd(max_norm: Any, ct: Any) -> tuple[Any, Any]:
    return clip_per_example(ct, max_norm), jnp.zeros_like(jnp.asarray(max_norm))


_clip_gradient.defvjp(_clip_gradient_fwd, _clip_gradient_bwd)


def clip_gradient(x: PyTree, max_norm: float | jax.Array) -> PyTree:
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
        ``inf`` never clips. A traced value that is not positive (which
        cannot be refused under ``jit``) makes the cotangent NaN.

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
            f"the leaves of x must share their leading (per-example) dims, got {sorted(lead)}"
        )
    _checks.positive_scalar("max_norm", max_norm)
    return _clip_gradient(x, max_norm)
