"""Dropout for recurrent networks: the rates, their checks, and the masks.

Three kinds, under Keras's names, each drawn once per call of
:func:`jaxrnn.rnn` from its ``key``:

- ``dropout``: variational dropout on the inputs, one mask ``(B, I)`` per
  sequence, the same at every step (Gal & Ghahramani 2016);
- ``recurrent_dropout``: the same on the state that the recurrent GEMM reads,
  ``hz_t = (h_{t-1} ⊙ m) W_hh``, one mask ``(B, H)`` per sequence (Gal &
  Ghahramani; Keras's ``recurrent_dropout``). The state itself and the
  outputs are not dropped;
- ``zoneout``: each unit of the state keeps its previous value with
  probability ``p``, drawn afresh at every step and for every state leaf (an
  LSTM's ``h`` and ``c`` apart), ``s_t = m_t ⊙ s_{t-1} + (1 - m_t) ⊙ s̃_t``
  (Krueger et al. 2017).

Dropout masks are scaled by ``1 / (1 - p)`` (inverted dropout), so that with
``deterministic=True`` they are the identity. Zoneout at inference applies its
expectation, ``s_t = p·s_{t-1} + (1 - p)·s̃_t``, as the paper does.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _checks

Array = jax.Array

RATES = ("dropout", "recurrent_dropout", "zoneout")


class Masks(NamedTuple):
    """The masks of one call, for the flat batch ``B`` (see :func:`draw`)."""

    inputs: Array | None  # (B, I) in the dtype of xs: 0 or 1/(1-p)
    recurrent: Array | None  # (B, H) in the state dtype: 0 or 1/(1-p)
    zone: Any  # bool, a tree like the state of (T, B, H) leaves (time-major), or None
    zoneout: float | None  # the rate, when zoneout applies as its expectation


def check_rate(name: str, value: Any) -> float:
    """A dropout rate: a Python number in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a float in [0, 1) (a Python number: it decides which "
            f"masks exist, so it cannot be traced), got {_checks.describe(value)}"
        )
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def check(
    dropout: Any, recurrent_dropout: Any, zoneout: Any, key: Any, deterministic: Any
) -> tuple[float, float, float]:
    """Checks the rates, ``key`` and ``deterministic``; returns the rates."""
    rates = tuple(check_rate(n, v) for n, v in zip(RATES, (dropout, recurrent_dropout, zoneout)))
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool, got {_checks.describe(deterministic)}")
    active = [f"{n}={v}" for n, v in zip(RATES, rates) if v > 0]
    if active and not deterministic:
        if key is None:
            raise ValueError(
                f"{', '.join(active)} needs key, a PRNG key to draw its masks from "
                "(jax.random.key(0)); for inference pass deterministic=True instead"
            )
        _checks.prng_key("key", key)
    return rates  # type: ignore[return-value]


def check_cell(cell: Any, rates: tuple[float, float, float], impl: str, linear: bool) -> None:
    """``recurrent_dropout`` and ``zoneout`` need a sequential run of a cell
    whose step is one recurrent GEMM and ``pointwise`` (see
    :attr:`jaxrnn.Cell.elementwise`)."""
    _, recurrent, zone = rates
    inside = [f"{n}" for n, v in (("recurrent_dropout", recurrent), ("zoneout", zone)) if v > 0]
    if not inside:
        return
    name = type(cell).__name__
    if linear or impl == "parallel":
        verb = "act" if len(inside) > 1 else "acts"
        raise ValueError(
            f"{' and '.join(inside)} {verb} inside the recurrence, which the parallel-in-time "
            f"path (impl={impl!r} for {name}) solves as a whole; use impl=\"scan\", or "
            '"fused" for a cell with a recurrent GEMM; dropout (on the inputs) works everywhere'
        )
    if recurrent > 0 and not cell.elementwise:
        raise ValueError(
            f"recurrent_dropout drops the input of the recurrent GEMM, but this {name} "
            "reads its state in more than one GEMM (cell.elementwise is False); "
            "use GRU(reset_after=True), or zoneout"
        )


def draw(
    key: Any,
    rates: tuple[float, float, float],
    deterministic: bool,
    xs_flat: Array,
    time_axis: int,
    state: Any,
    gemm_input: Any,
) -> Masks:
    """Draws the masks for ``xs_flat`` (``(B, T, I)`` or ``(T, B, I)``) and the
    flat ``state``; ``gemm_input(state)`` is the part the recurrent GEMM reads."""
    dropout, recurrent, zoneout = rates
    if deterministic or not any(rates):
        return Masks(None, None, None, zoneout if zoneout > 0 else None)
    k_in, k_rec, k_zone = jax.random.split(key, 3)
    B = xs_flat.shape[1 - time_axis]
    T = xs_flat.shape[time_axis]

    def scaled(k: Array, p: float, shape: tuple[int, ...], dtype: Any) -> Array:
        keep = jax.random.bernoulli(k, 1.0 - p, shape)
        return jnp.where(keep, jnp.asarray(1.0 / (1.0 - p), dtype), jnp.zeros((), dtype))

    inputs = None
    if dropout > 0:
        inputs = scaled(k_in, dropout, (B, xs_flat.shape[-1]), xs_flat.dtype)
    rec = None
    if recurrent > 0:
        h = gemm_input(state)
        rec = scaled(k_rec, recurrent, h.shape, h.dtype)
    zone = None
    if zoneout > 0:
        leaves, tree = jax.tree_util.tree_flatten(state)
        keys = jax.random.split(k_zone, len(leaves))
        zone = jax.tree_util.tree_unflatten(
            tree,
            [jax.random.bernoulli(k, zoneout, (T, *leaf.shape)) for k, leaf in zip(keys, leaves)],
        )
    return Masks(inputs, rec, zone, None)


def drop_inputs(xs: Array, mask: Array | None, time_axis: int) -> Array:
    """``xs ⊙ mask`` with the per-sequence ``mask (B, I)`` at every step."""
    if mask is None:
        return xs
    return xs * jnp.expand_dims(mask, time_axis)


def zone_in_layout(zone: Any, time_axis: int) -> Any:
    """Zoneout's time-major masks in the layout of ``xs``."""
    if zone is None or time_axis == 0:
        return zone
    return jax.tree_util.tree_map(lambda q: jnp.swapaxes(q, 0, 1), zone)


def layer_dropout(key: Array, p: float, ys: Array) -> Array:
    """Plain (per element, per step) inverted dropout on a layer's outputs,
    as PyTorch's ``nn.LSTM(dropout=p)`` applies between stacked layers."""
    keep = jax.random.bernoulli(key, 1.0 - p, ys.shape)
    return jnp.where(keep, ys / jnp.asarray(1.0 - p, ys.dtype), jnp.zeros((), ys.dtype))
