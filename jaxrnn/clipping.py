"""Gradient clipping: Optax transformations, and in-graph BPTT clipping.

Optax-style factories returning ``optax.GradientTransformation`` (NamedTuple
states, branch-free under ``jit``, composable with ``optax.chain``):

- :func:`clip_by_norm`: each leaf's own L2 norm (Keras ``clipnorm``);
- :func:`clip_by_global_norm`: Optax's rule, with the pre-clip norm and
  whether it fired recorded in the state;
- :func:`adaptive_clip`: a percentile of recent norms (AutoClip);
- :func:`zscore_clip`: clips norms that are outliers against an EMA (ZClip).

Value clipping is :func:`optax.clip` and NaN-safety
:func:`optax.apply_if_finite`; they chain with these as usual.

:func:`clip_gradient` is a function, not a transform: identity forward,
per-example norm-clipped cotangent backward, usable inside any scan; it is
what ``jr.rnn(..., bptt_clip=...)`` applies at every step. It lives in the
optax-free ``jaxrnn._gradclip`` (so the sequence driver and the engine do not
import Optax) and is re-exported here.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import _checks
from ._gradclip import clip_gradient as clip_gradient

__all__ = [
    "clip_by_norm",
    "clip_by_global_norm",
    "adaptive_clip",
    "zscore_clip",
    "ClipByGlobalNormState",
    "AdaptiveClipState",
    "ZScoreClipState",
    "clip_gradient",
    "cosine_similarity",
]


def _safe_scale(norm: jax.Array, limit: jax.Array) -> jax.Array:
    """``min(1, limit / norm)``, exactly 1 unless ``norm > limit``, and never NaN.

    The naive ``limit / max(norm, limit)`` is ``inf / inf`` for an infinite
    limit and ``0 / 0`` for a zero norm at a zero limit (a collapsed adaptive
    threshold). Here an infinite or NaN limit never clips, a norm at or under
    the limit passes bit for bit, and the divisor is kept away from 0 even in
    the branch ``where`` discards, so gradients through the scale stay finite.
    """
    clip = norm > limit
    return jnp.where(clip, limit / jnp.where(clip, norm, 1), 1).astype(norm.dtype)


# --------------------------------------------------------------------------
# Optax transformations


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive float, got {_checks.describe(value)}")
    if not value > 0:
        raise ValueError(f"{name} must be a positive float, got {value}")
    return float(value)


def _is_float(leaf: Any) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def _global_norm(updates: Any) -> jax.Array:
    """The L2 norm over the floating leaves of ``updates``, float32.

    Integer (and ``float0``) leaves are no gradients, say a step counter kept
    in the params: they neither count in the norm nor get scaled.
    """
    floats = [
        g if jnp.finfo(g.dtype).bits >= 32 else g.astype(jnp.float32)  # fp16 squares overflow
        for g in jax.tree_util.tree_leaves(updates)
        if _is_float(g)
    ]
    return optax.tree.norm(floats).astype(jnp.float32)


def _scale_to(updates: Any, norm: jax.Array, limit: jax.Array) -> Any:
    """Scales the floating leaves of ``updates`` by ``min(1, limit / norm)``,
    branch-free, NaN-free (see :func:`_safe_scale`); exact below the limit.
    Other leaves pass unchanged (a scale cast to int would zero them)."""
    scale = _safe_scale(norm, limit)
    return jax.tree_util.tree_map(
        lambda g: g * scale.astype(g.dtype) if _is_float(g) else g, updates
    )


def cosine_similarity(a: Any, b: Any) -> jax.Array:
    """The cosine of the angle between two gradient trees, over their floating
    leaves, in float32.

    What clipping did to a gradient's direction: ``cosine_similarity(clipped,
    grads)`` is 1 for norm clipping, which only rescales, and falls below 1
    when value clipping (``optax.clip``) cuts the largest elements and not
    the rest. Two zero trees are parallel (1); a tree with an ``inf`` or
    ``NaN`` gives ``NaN``.

    Example:
      >>> import jax.numpy as jnp, optax, jaxrnn as jr
      >>> g = {"w": jnp.array([3.0, 1.0])}
      >>> clipped, _ = optax.clip(0.5).update(g, optax.EmptyState())  # [0.5, 0.5]
      >>> round(float(jr.clipping.cosine_similarity(clipped, g)), 3)
      0.894
    """
    fa = [x for x in jax.tree_util.tree_leaves(a) if _is_float(x)]
    fb = [x for x in jax.tree_util.tree_leaves(b) if _is_float(x)]
    if len(fa) != len(fb) or any(x.shape != y.shape for x, y in zip(fa, fb)):
        raise ValueError(
            "a and b must have the same floating leaves and shapes, got "
            f"{[x.shape for x in fa]} and {[y.shape for y in fb]}"
        )
    dot = sum(
        (jnp.vdot(x.astype(jnp.float32), y.astype(jnp.float32)) for x, y in zip(fa, fb)),
        jnp.zeros((), jnp.float32),
    )
    norms = _global_norm(fa) * _global_norm(fb)
    return jnp.where(norms > 0, dot / jnp.where(norms > 0, norms, 1), 1.0).astype(jnp.float32)


def clip_by_norm(max_norm: float) -> optax.GradientTransformation:
    """Clips each leaf's own L2 norm to ``max_norm`` (Keras ``clipnorm``).

    Unlike :func:`clip_by_global_norm`, each parameter array is scaled on its
    own, so the direction of the whole update can change. Leaves that are not
    floating (integer counters, ``float0``) pass unchanged.

    Args:
      max_norm: the largest norm a leaf may keep; ``inf`` never clips.

    Returns:
      An ``optax.GradientTransformation`` with an empty state.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxrnn.clipping import clip_by_norm
      >>> tx = clip_by_norm(1.0)
      >>> grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.5])}
      >>> g, _ = tx.update(grads, tx.init(None))
      >>> g["a"], g["b"]
      (Array([0.6, 0.8], dtype=float32), Array([0.5], dtype=float32))
    """
    max_norm = _positive("max_norm", max_norm)

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params

        def clip_leaf(g):
            if not _is_float(g):
                return g
            return _scale_to(g, _global_norm(g), jnp.float32(max_norm))

        return jax.tree_util.tree_map(clip_leaf, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


class ClipByGlobalNormState(NamedTuple):
    """State of :func:`clip_by_global_norm`, for logging."""

    global_norm: jax.Array  # () float32: norm of the last update before clipping
    clipped: jax.Array  # () bool: whether the last update was clipped


def _positive_threshold(name: str, value: Any) -> Any:
    """A positive float, or a scalar floating array (positive where concrete)."""
    if not isinstance(value, jax.Array) or isinstance(value, bool):
        return _positive(name, value)
    if value.ndim != 0 or not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(f"{name} must be a positive float or a scalar float array, "
                         f"got an array of shape {value.shape} and dtype {value.dtype}")
    if not isinstance(value, jax.core.Tracer) and not float(value) > 0:
        raise ValueError(f"{name} must be a positive float, got {float(value)}")
    return value


def clip_by_global_norm(max_norm: float | jax.Array) -> optax.GradientTransformation:
    """Scales the whole update so its global L2 norm is at most ``max_norm``.

    The rule is Optax's ``clip_by_global_norm`` (Pascanu, Mikolov & Bengio
    2013): the direction of the update is kept. The state records the norm
    before clipping and whether clipping fired, so a training loop can log
    them. The norm is over the floating leaves; other leaves (integer
    counters, ``float0``) pass unchanged, where Optax's version fails on them.
    A zero update stays zero.

    Args:
      max_norm: the largest global norm an update may keep; ``inf`` never
        clips (the state still logs the norm). A scalar array is accepted
        too, traced included (as in Optax), so that runs with different
        thresholds can train side by side under ``jax.vmap``; its value is
        checked where it is concrete.

    Returns:
      An ``optax.GradientTransformation`` whose state is a
      :class:`ClipByGlobalNormState`.

    References:
      Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent
      neural networks", ICML 2013.
    """
    max_norm = _positive_threshold("max_norm", max_norm)

    def init_fn(params: Any) -> ClipByGlobalNormState:
        del params
        return ClipByGlobalNormState(jnp.zeros((), jnp.float32), jnp.zeros((), bool))

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params, state
        norm = _global_norm(updates)
        limit = jnp.asarray(max_norm).astype(jnp.float32)
        return _scale_to(updates, norm, limit), ClipByGlobalNormState(norm, norm > limit)

    return optax.GradientTransformation(init_fn, update_fn)


class AdaptiveClipState(NamedTuple):
    """State of :func:`adaptive_clip`."""

    norms: jax.Array  # (history,) float32: ring buffer of past global norms; NaN = empty
    count: jax.Array  # () int32: norms recorded so far (finite and positive ones only)
    global_norm: jax.Array  # () float32: norm of the last update before clipping
    threshold: jax.Array  # () float32: the threshold applied to it (inf: none yet)
    clipped: jax.Array  # () bool: whether the last update was clipped


def adaptive_clip(percentile: float = 10.0, history: int = 1000) -> optax.GradientTransformation:
    """AutoClip: clips the global norm to a percentile of the recent norms.

    Each update's global norm joins a ring buffer of the last ``history``
    norms; the update is then clipped (direction kept) to the
    ``percentile``-th percentile of the buffer. A norm far above what
    training has seen so far is cut back to a typical one, with no threshold
    to tune by hand.

    Only finite, positive norms enter the buffer: a zero gradient (a batch
    that teaches nothing) passes as a zero update and leaves the threshold
    alone, instead of dragging it to 0 for good; a non-finite one passes
    unclipped for the training step to skip. Until the first norm is
    recorded the threshold is ``inf`` (no clipping).

    Args:
      percentile: in (0, 100]; the paper's recommended range is 5 to 25.
      history: how many recent norms to keep (the paper keeps all; a window
        keeps the threshold following the trend of training).

    Returns:
      An ``optax.GradientTransformation`` whose state is an
      :class:`AdaptiveClipState` of fixed shape.

    References:
      Seetharaman, Wichern, Pardo, Le Roux, "AutoClip: Adaptive Gradient
      Clipping for Source Separation Networks", MLSP 2020.
    """
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real):
        raise TypeError(f"percentile must be a float in (0, 100], got {_checks.describe(percentile)}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be a float in (0, 100], got {percentile}")
    history = _checks.positive_int("history", history)

    def init_fn(params: Any) -> AdaptiveClipState:
        del params
        # One fresh array per field: a training step donates the state, and
        # XLA refuses to donate one buffer twice.
        return AdaptiveClipState(
            norms=jnp.full((history,), jnp.nan, jnp.float32),
            count=jnp.zeros((), jnp.int32),
            global_norm=jnp.zeros((), jnp.float32),
            threshold=jnp.full((), jnp.inf, jnp.float32),
            clipped=jnp.zeros((), bool),
        )

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        norm = _global_norm(updates)
        record = jnp.isfinite(norm) & (norm > 0)
        norms = jnp.where(record, state.norms.at[state.count % history].set(norm), state.norms)
        # Unfilled slots are NaN and ignored; with none filled, nothing clips.
        threshold = jnp.nanpercentile(norms, percentile)
        threshold = jnp.where(jnp.isnan(threshold), jnp.inf, threshold)
        new_state = AdaptiveClipState(
            norms, state.count + record.astype(jnp.int32), norm, threshold, norm > threshold
        )
        return _scale_to(updates, norm, threshold), new_state

    return optax.GradientTransformation(init_fn, update_fn)


class ZScoreClipState(NamedTuple):
    """State of :func:`zscore_clip`."""

    mean: jax.Array  # () float32: EMA of the (clipped) global norm
    var: jax.Array  # () float32: EMA of its variance
    count: jax.Array  # () int32: norms recorded (finite and positive ones only)
    global_norm: jax.Array  # () float32: norm of the last update before clipping
    clipped: jax.Array  # () bool: whether the last update was clipped


def zscore_clip(
    z_threshold: float = 2.5, decay: float = 0.97, warmup: int = 25
) -> optax.GradientTransformation:
    """ZClip: clips global norms that are outliers against their recent history.

    The mean and variance of the global norm are tracked with exponential
    moving averages. After ``warmup`` updates (during which nothing is
    clipped and the statistics are plain averages), a norm ``g`` whose
    z-score ``z = (g - mean) / std`` exceeds ``z_threshold`` is clipped to
    ``mean + (z_threshold / z) * std`` (ZClip's reciprocal rule: the larger
    the spike, the harder the cut), direction kept. The statistics are then
    updated with the clipped norm, so a spike does not inflate them. Zero
    and non-finite norms leave the statistics alone (a zero update stays
    zero; a non-finite one is for the training step to skip), so a run of
    empty batches cannot shrink them to a point that clips everything.

    Args:
      z_threshold: the z-score above which a norm is clipped.
      decay: the EMA decay of mean and variance, in (0, 1).
      warmup: updates before clipping starts.

    Returns:
      An ``optax.GradientTransformation`` whose state is a
      :class:`ZScoreClipState`.

    References:
      Kumar, Owen, Ashkboos et al., "ZClip: Adaptive Spike Mitigation for
      LLM Pre-Training", arXiv:2504.02507, 2025.
    """
    z_threshold = _positive("z_threshold", z_threshold)
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 < decay < 1:
        raise ValueError(f"decay must be a float in (0, 1), got {decay!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    warmup = int(warmup)

    def init_fn(params: Any) -> ZScoreClipState:
        del params
        # One fresh array per field: a training step donates the state, and
        # XLA refuses to donate one buffer twice.
        return ZScoreClipState(
            mean=jnp.zeros((), jnp.float32),
            var=jnp.zeros((), jnp.float32),
            count=jnp.zeros((), jnp.int32),
            global_norm=jnp.zeros((), jnp.float32),
            clipped=jnp.zeros((), bool),
        )

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        norm = _global_norm(updates)
        record = jnp.isfinite(norm) & (norm > 0)
        active = state.count >= max(warmup, 1)
        std = jnp.sqrt(state.var)
        z = (norm - state.mean) / jnp.maximum(std, 1e-12)
        clip = active & (z > z_threshold)
        limit = jnp.where(clip, state.mean + (z_threshold / jnp.maximum(z, 1e-12)) * std, norm)
        kept = jnp.minimum(norm, limit)
        # Statistics: running averages during warmup, EMAs after it.
        n = state.count.astype(jnp.float32) + 1.0
        w = jnp.where(active, 1.0 - decay, 1.0 / n)
        mean = state.mean + w * (kept - state.mean)
        var = jnp.where(
            state.count == 0, 0.0, (1.0 - w) * (state.var + w * (kept - state.mean) ** 2)
        )
        mean = jnp.where(record, mean, state.mean)
        var = jnp.where(record, var, state.var)
        count = state.count + record.astype(jnp.int32)
        new_state = ZScoreClipState(mean, var, count, norm, clip)
        return _scale_to(updates, norm, jnp.maximum(limit, 1e-12)), new_state

    return optax.GradientTransformation(init_fn, update_fn)
