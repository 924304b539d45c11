r"""Linear recurrences in parallel over time: ``h_t = a_t * h_{t-1} + b_t``.

A linear recurrence is a prefix "sum" under an associative operator on
``(a, b)`` pairs (Blelloch 1990; Martin & Cundy 2018):

.. math::
    (a_1, b_1) \bullet (a_2, b_2) = (a_1 a_2,\; a_2 b_1 + b_2),

so :func:`jax.lax.associative_scan` computes all ``T`` states in
``O(log T)`` depth: with ``(A_t, B_t)`` the prefix of steps ``1..t``,
``h_t = A_t h_0 + B_t``. In log space (Feng et al. 2024; Heinsen 2023), for
``b > 0``, the pairs ``(log a, log b)`` combine as

.. math::
    (\alpha_1, \beta_1) \bullet (\alpha_2, \beta_2)
    = (\alpha_1 + \alpha_2,\; \mathrm{logaddexp}(\beta_1 + \alpha_2, \beta_2)),

and the initial state enters in linear space, ``h_t = e^{B_t} + e^{A_t} h_0``:
no logarithm of the state is ever taken, so ``h_0`` may have any sign, zero
included.

The derivative is written by hand (a ``jax.custom_vjp`` inside
:func:`linear_recurrence`): the transpose of a linear recurrence is the same
recurrence run backwards,

.. math::
    \delta_t = g_t + a_{t+1} \delta_{t+1}, \quad
    \bar b_t = \delta_t, \quad \bar a_t = \delta_t h_{t-1}, \quad
    \bar h_0 = a_1 \delta_1

(``g_t`` the cotangent of ``h_t``; for a log-space pair
``\bar\alpha_t = \bar a_t a_t`` and ``\bar\beta_t = \delta_t b_t``), one more
associative scan. It keeps only ``a`` (or ``log a, log b``) and the states,
and no ``-inf`` (a masked step's ``log b``) ever reaches a derivative of
``logaddexp``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["linear_recurrence", "run_linear"]

Array = jax.Array
Pair = tuple[Array, Array]


def _combine(e1: Pair, e2: Pair) -> Pair:
    """``(a1, b1) . (a2, b2)``: step 1, then step 2."""
    a1, b1 = e1
    a2, b2 = e2
    return a1 * a2, a2 * b1 + b2


def _combine_log(e1: Pair, e2: Pair) -> Pair:
    """:func:`_combine` on ``(log a, log b)`` pairs."""
    la1, lb1 = e1
    la2, lb2 = e2
    return la1 + la2, jnp.logaddexp(lb1 + la2, lb2)


def _slice(x: Array, start: int, stop: int | None, axis: int) -> Array:
    return lax.slice_in_dim(x, start, stop, axis=axis)


def _states(a: Array, b: Array, h0: Array, axis: int, log_space: bool) -> Array:
    if a.shape[axis] == 0:
        return jnp.zeros(a.shape, h0.dtype)
    combine: Callable[[Pair, Pair], Pair] = _combine_log if log_space else _combine
    a_cum, b_cum = lax.associative_scan(combine, (a, b), axis=axis)
    h0 = jnp.expand_dims(h0, axis)
    if log_space:
        return jnp.exp(b_cum) + jnp.exp(a_cum) * h0
    return b_cum + a_cum * h0


@functools.partial(jax.jit, static_argnames=("axis", "log_space"))
def linear_recurrence(
    a: Array, b: Array, h0: Array, axis: int = 0, log_space: bool = False
) -> Array:
    """All states of ``h_t = a_t * h_{t-1} + b_t``, by associative scans.

    Args:
      a: coefficients, time along ``axis`` (e.g. ``(T, B, N)``); real or complex.
        ``log a`` when ``log_space``.
      b: shaped and typed like ``a``; ``log b`` when ``log_space`` (``-inf``
        for ``b = 0``).
      h0: the state before the first step: ``a``'s shape without ``axis``,
        in the dtype of the states (that of ``b``; real when ``log_space``).
      axis: the time axis (a Python int).
      log_space: whether ``a`` and ``b`` are logarithms (a Python bool).

    Returns:
      ``h`` shaped like ``a``: entry ``t`` is the state after step ``t``.
      Reverse-mode differentiable (a hand-written VJP, one reverse scan);
      forward mode is not defined. Jitted, so that an eager call compiles
      the scan once rather than dispatching its ``O(log T)`` levels op by
      op (3 s for ``T = 10`` on a CPU); under an outer ``jit`` it is inlined.
    """
    return _recurrence(a, b, h0, axis, log_space)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _recurrence(a: Array, b: Array, h0: Array, axis: int, log_space: bool) -> Array:
    return _states(a, b, h0, axis, log_space)


def _recurrence_fwd(
    a: Array, b: Array, h0: Array, axis: int, log_space: bool
) -> tuple[Array, tuple[Array, Array | None, Array, Array]]:
    hs = _states(a, b, h0, axis, log_space)
    # Residuals: the coefficients (both, in log space: the backward needs
    # exp(log b), which cannot be recovered stably from the states), the
    # states, and h0 (the state before step 1).
    return hs, (a, b if log_space else None, hs, h0)


def _recurrence_bwd(
    axis: int, log_space: bool, res: tuple[Array, Array | None, Array, Array], g: Array
) -> tuple[Array, Array, Array]:
    a, log_b, hs, h0 = res
    if a.shape[axis] == 0:
        return jnp.zeros_like(a), jnp.zeros_like(a), jnp.zeros_like(h0)
    a_lin = jnp.exp(a) if log_space else a
    # delta_t = g_t + a_{t+1} delta_{t+1}: the same recurrence, backwards in
    # time, with the coefficients shifted by one step (a_{T+1} = 0).
    last = jnp.zeros_like(_slice(a_lin, 0, 1, axis))
    a_next = jnp.concatenate([_slice(a_lin, 1, None, axis), last], axis=axis)
    _, delta = lax.associative_scan(_combine, (a_next, g), reverse=True, axis=axis)
    h_prev = jnp.concatenate(
        [jnp.expand_dims(h0, axis), _slice(hs, 0, hs.shape[axis] - 1, axis)], axis=axis
    )
    ct_a = delta * h_prev
    ct_b = delta
    ct_h0 = jnp.squeeze(_slice(a_lin * delta, 0, 1, axis), axis)
    if log_space:
        # d/d(log a) = a d/da; d/d(log b) = b d/db (zero where log b = -inf).
        ct_a = ct_a * a_lin
        ct_b = ct_b * jnp.exp(log_b)
    return ct_a, ct_b, ct_h0


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def run_linear(
    cell: Any,
    params: Any,
    xs: Array,
    state: Any,
    lengths: Array | None,
    *,
    time_major: bool,
    precision: Any = None,
) -> tuple[Any, Array]:
    """Runs a :class:`~jaxrnn.LinearCell` over a sequence by associative scans.

    The contract of :func:`jaxrnn.kernels._engine.run_impl`: ``jr.rnn`` has
    already flattened the batch dims, zeroed the inputs past each length
    and, for ``reverse``, reversed each sequence within its length.

    Args:
      cell: a :class:`~jaxrnn.LinearCell`.
      params: its params NamedTuple.
      xs: inputs ``(B, T, I)``, or ``(T, B, I)`` when ``time_major``.
      state: the initial state, leaves ``(B, H)`` in the accumulation dtype.
      lengths: ``(B,)`` int32 lengths in ``[0, T]``, or ``None`` (all ``T``).
      time_major: whether time is the leading axis of ``xs``.
      precision: passed to the cell's matrix products.

    Returns:
      ``(final_state, ys)``: the state at each sequence's last valid step
      (``state`` for a length of zero), and the outputs in the layout of
      ``xs`` with ``hidden_size`` features, in the state's dtype; zero at
      and past each length.
    """
    axis = 0 if time_major else 1
    num_steps = xs.shape[axis]
    h0 = cell.state_to_carry(state)  # (B, N)
    if num_steps == 0:
        ys = jnp.zeros((*xs.shape[:-1], cell.hidden_size), h0.real.dtype)
        return state, ys
    a, b = cell.coefficients(params, xs, precision)  # (..., N) in xs's layout
    valid = None
    if lengths is not None:
        valid = jnp.arange(num_steps, dtype=jnp.int32)[:, None] < lengths[None, :]  # (T, B)
        valid = (valid if time_major else valid.T)[..., None]
        # Past its length a sequence keeps its state: a = 1, b = 0 there
        # (log a = 0, log b = -inf in log space).
        a_pad, b_pad = (0.0, -jnp.inf) if cell.log_space else (1.0, 0.0)
        a = jnp.where(valid, a, jnp.full((), a_pad, a.dtype))
        b = jnp.where(valid, b, jnp.full((), b_pad, b.dtype))
    hs = linear_recurrence(a, b, h0, axis, cell.log_space)
    final = cell.carry_to_state(jnp.squeeze(_slice(hs, num_steps - 1, None, axis), axis))
    ys = cell.outputs(params, cell.carry_to_state(hs), xs, precision)
    if valid is not None:
        ys = jnp.where(valid, ys, jnp.zeros((), ys.dtype))
    return final, ys
