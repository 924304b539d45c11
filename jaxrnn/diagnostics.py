"""Diagnostics that show vanishing and exploding gradients.

Two views of the same product of Jacobians ``∂s_t/∂s_k = J_t ... J_{k+1}``:

- :func:`state_gradients` / :func:`state_gradient_norms`: the gradient of a
  loss with respect to the state after every step, ``dL/ds_t`` for all ``t``,
  from ONE backward pass. A zero *probe* is added to the state after every
  step; the cotangent of the probe at step ``t`` is ``dL/ds_t``, the total
  gradient (directly through ``s_t``'s own output and through every later
  step). Plotted against the distance ``T - t`` from the loss, its norm decays
  (vanishing) or grows (exploding) geometrically.
- :func:`jacobian_spectrum`: the top singular values of ``∂s_t/∂s_0`` as
  ``t`` grows, along the trajectory the inputs drive, and the per-step log
  growth rate of the largest; :func:`verdict` turns the rate into a word.

The state ``s`` is the whole recurrent state: ``h``, and ``(h, c)`` for an LSTM.

Example:
  >>> import jax, jax.numpy as jnp, jaxrnn as jr
  >>> cell = jr.SimpleRNN(8)
  >>> params = cell.init(jax.random.PRNGKey(0), input_size=2)
  >>> xs = jax.random.normal(jax.random.PRNGKey(1), (4, 30, 2))
  >>> norms = jr.diagnostics.state_gradient_norms(
  ...     cell, params, xs, lambda final, ys: jnp.sum(ys[:, -1]))
  >>> norms.shape                     # (batch, time)
  (4, 30)
  >>> spec = jr.diagnostics.jacobian_spectrum(cell, params, xs[0])
  >>> spec.log_singular_values.shape  # (time, num_singular)
  (30, 8)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from . import _checks
from ._layout import BatchLayout
from ._linear_cells import LinearCell
from ._rnn import IMPLS, rnn_with_info
from .cells import Cell, accumulation_dtype
from .kernels._engine import run_impl

__all__ = [
    "JacobianSpectrum",
    "growth_rate",
    "jacobian_spectrum",
    "newton_convergence",
    "state_gradient_norms",
    "state_gradients",
    "verdict",
]

Array = jax.Array
LossFn = Callable[[Any, Array], Array]



def _prepare(cell: Cell, params: Any, xs: Any, state: Any, impl: str, loss_fn: Any):
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a jaxrnn Cell, got {_checks.describe(cell)}")
    probed = tuple(i for i in IMPLS if i != "parallel")
    if impl not in probed:
        raise ValueError(
            f"impl must be one of {probed} (the probe needs a sequential engine), got {impl!r}"
        )
    if isinstance(cell, LinearCell) and impl != "scan":
        raise ValueError(
            f'{type(cell).__name__} is a linear-recurrence cell: probe it with impl="scan", '
            f"got impl={impl!r}"
        )
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(final_state, ys), got {_checks.describe(loss_fn)}")
    input_size = cell.check_params(params)
    _checks.sequence("xs", xs, input_size=input_size, dtype=params.w_ih.dtype)
    layout = BatchLayout.of(xs)
    if state is None:
        state = cell.initial_state(layout.batch_shape, accumulation_dtype(xs.dtype))
    return layout, state


def state_gradients(
    cell: Cell,
    params: Any,
    xs: Array,
    loss_fn: LossFn,
    state: Any = None,
    *,
    impl: str = "scan",
    residuals: Any = "auto",
) -> tuple[Array, Any]:
    """The loss and ``dL/ds_t`` for every step ``t``, in one backward pass.

    Args:
      cell: a :class:`~jaxrnn.Cell`.
      params: its params.
      xs: inputs ``(*batch, time, features)`` (batch-major).
      loss_fn: ``loss_fn(final_state, ys) -> scalar``, with ``ys`` shaped
        ``(*batch, time, H)`` as :func:`jaxrnn.rnn` returns them.
      state: the initial state; ``None`` means zeros.
      impl: ``"scan"`` (a ``lax.scan`` over ``cell(...)`` with the probe
        added after every step), or ``"fused"``, ``"pallas"`` or ``"auto"``
        (the fused engine's probe, with the inner loops of that ``impl``).
      residuals: the fused engine's residual policy.

    Returns:
      ``(loss, grads)``: ``grads`` is shaped like the state with a time axis
      after the batch dims, e.g. ``(*batch, time, H)`` (an
      :class:`~jaxrnn.LSTMState` of two such arrays for an LSTM); entry ``t``
      is the total gradient of the loss with respect to the state after step
      ``t`` (0-based: the state after reading ``xs[..., t, :]``).
    """
    layout, state = _prepare(cell, params, xs, state, impl, loss_fn)
    flat_xs = layout.flatten(xs)
    flat_state = layout.flatten_state(state)
    probe = jax.tree_util.tree_map(
        lambda s: jnp.zeros((layout.size, layout.num_steps, s.shape[-1]), s.dtype),
        flat_state,
    )

    def run(probe: Any) -> Array:
        if impl != "scan":
            final, ys = run_impl(
                impl, cell, params, flat_xs, flat_state, None, time_major=False,
                residuals=residuals, probe=probe,
            )
        else:
            final, ys = _scan_with_probe(cell, params, flat_xs, flat_state, probe)
        return loss_fn(layout.restore_state(final), layout.restore(ys))

    loss, grads = jax.value_and_grad(run)(probe)
    return loss, jax.tree_util.tree_map(layout.restore, grads)


def _scan_with_probe(cell: Cell, params: Any, xs: Array, state: Any, probe: Any):
    """``lax.scan`` over ``cell(...)``; ``probe[:, t]`` is added to the state
    after step ``t``. xs ``(B, T, I)``, probe leaves ``(B, T, H)``."""

    def body(carry: Any, inputs: Any) -> tuple[Any, Array]:
        x_t, p_t = inputs
        new, _ = cell(params, carry, x_t)
        new = jax.tree_util.tree_map(jnp.add, new, p_t)
        # The LRU's output reads the input too.
        return new, cell.outputs(params, new, x_t) if isinstance(cell, LinearCell) else cell.output(new)

    probe_tm = jax.tree_util.tree_map(lambda p: jnp.moveaxis(p, 1, 0), probe)
    final, ys = lax.scan(body, state, (jnp.moveaxis(xs, 1, 0), probe_tm))
    return final, jnp.moveaxis(ys, 0, 1)


def state_gradient_norms(
    cell: Cell,
    params: Any,
    xs: Array,
    loss_fn: LossFn,
    state: Any = None,
    *,
    impl: str = "scan",
    residuals: Any = "auto",
) -> Array:
    """``||dL/ds_t||`` for every example and step, from one backward pass.

    The norm is taken over all of the state's arrays together (``h``, and
    ``c`` for an LSTM), per example. See :func:`state_gradients` for the
    arguments.

    Returns:
      ``(*batch, time)``: entry ``t`` is the norm of the gradient with
      respect to the state after step ``t``; the distance from a loss on the
      last step is ``time - 1 - t``.
    """
    _, grads = state_gradients(cell, params, xs, loss_fn, state, impl=impl, residuals=residuals)
    squares = [jnp.sum(jnp.square(g.astype(jnp.float32)), axis=-1) for g in jax.tree_util.tree_leaves(grads)]
    return jnp.sqrt(sum(squares))


class JacobianSpectrum(NamedTuple):
    """Singular values of the state Jacobians ``∂s_t/∂s_0``.

    Fields (``*batch`` as in the inputs):
      log_singular_values: ``(*batch, time, k)`` natural logs of the top
        ``k`` singular values of ``∂s_t/∂s_0``, largest first; row ``t`` is
        the Jacobian of the state after step ``t`` (0-based). A singular
        value that is exactly zero (e.g. every ReLU unit dead) is ``-inf``.
      growth_rate: ``(*batch,)`` the per-step log growth rate of the largest
        singular value (see :func:`growth_rate`).
    """

    log_singular_values: Array
    growth_rate: Array


def jacobian_spectrum(
    cell: Cell,
    params: Any,
    xs: Array,
    state: Any = None,
    *,
    num_singular: int = 8,
) -> JacobianSpectrum:
    """Top singular values of ``∂s_t/∂s_0`` for every ``t``, along the
    trajectory that ``xs`` drives from ``state``.

    The product of per-step Jacobians is carried with its scale factored
    out (``P_t = e^{a_t} M_t`` with ``||M_t|| = 1``), so singular values far
    below float32's range (a vanishing gradient over thousands of steps)
    are reported exactly, as logs; singular values more than ~7 decades
    below the largest are lost to rounding.

    Args:
      cell: a :class:`~jaxrnn.Cell`.
      params: its params.
      xs: ``(*batch, time, features)``; every example gets its own spectrum.
      state: the initial state ``s_0``; ``None`` means zeros.
      num_singular: ``k``, at most the state size (``H``, or ``2H`` for an LSTM).

    Returns:
      A :class:`JacobianSpectrum`.
    """
    layout, state = _prepare(cell, params, xs, state, "scan", lambda f, y: 0.0)
    size = sum(
        np.prod(s.shape[len(layout.batch_shape):]) for s in jax.tree_util.tree_leaves(state)
    )
    k = _checks.positive_int("num_singular", num_singular)
    if k > size:
        raise ValueError(f"num_singular must be at most the state size {size}, got {k}")
    logsv = _spectrum(cell, params, layout.flatten(xs), layout.flatten_state(state), k)
    logsv = layout.restore(logsv)
    return JacobianSpectrum(logsv, growth_rate(logsv[..., 0]))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _spectrum(cell: Cell, params: Any, xs: Array, state: Any, k: int) -> Array:
    def one(xs: Array, s0: Any) -> Array:
        flat0, unravel = ravel_pytree(s0)

        def step(s_flat: Array, x: Array) -> Array:
            new, _ = cell(params, unravel(s_flat), x)
            return ravel_pytree(new)[0]

        def body(carry, x):
            s, m, scale = carry
            jac = jax.jacfwd(step)(s, x)
            m = jac @ m
            n = jnp.linalg.norm(m)
            # A zero product stays zero: its scale becomes -inf, M stays 0.
            scale = scale + jnp.log(n)
            m = m / jnp.where(n > 0, n, 1.0)
            # Directions ~30 decades below the largest carry nothing float32
            # can resolve; zeroing them keeps denormals (slow on CPUs) out.
            m = jnp.where(jnp.abs(m) < 1e-30, jnp.zeros_like(m), m)
            return (step(s, x), m, scale), (m, scale)

        eye = jnp.eye(flat0.shape[0], dtype=flat0.dtype)
        zero = jnp.zeros((), flat0.dtype)
        _, (ms, scales) = lax.scan(body, (flat0, eye, zero), xs)
        sv = jnp.linalg.svd(ms, compute_uv=False)[:, :k]  # (T, k), descending
        # log(0) = -inf: a singular value that is exactly zero (a dead unit, a
        # rank-deficient step) stays -inf rather than a made-up floor; a
        # non-finite product (NaN parameters, an overflow) gives NaN.
        log_sv = scales[:, None] + jnp.log(sv)
        return jnp.where(jnp.isnan(scales)[:, None], jnp.nan, log_sv)

    return jax.vmap(one)(xs, state)


def growth_rate(log_sv: Array) -> Array:
    """The per-step log growth rate of a singular value over time.

    The least-squares slope of ``log σ(t)`` against ``t`` (steps ``1..T``),
    in nats per step: ``log σ(t) ≈ c + rate·t``. Over ``n`` steps a gradient
    grows by about ``e^{rate·n}``. A series that reaches ``-inf`` (a zero
    Jacobian) has rate ``-inf``.

    Args:
      log_sv: ``(*batch, time)`` logs of one singular value.

    Returns:
      ``(*batch,)`` rates.
    """
    T = log_sv.shape[-1]
    if T < 2:
        return jnp.zeros(log_sv.shape[:-1], log_sv.dtype)
    # A Jacobian that is exactly zero (every unit dead) has log σ = -inf: the
    # gradient is gone, at rate -inf.
    dead = jnp.any(jnp.isneginf(log_sv), axis=-1) & ~jnp.any(jnp.isnan(log_sv), axis=-1)
    log_sv = jnp.where(jnp.isneginf(log_sv), 0.0, log_sv)
    t = jnp.arange(1, T + 1, dtype=log_sv.dtype)
    tc = t - jnp.mean(t)
    yc = log_sv - jnp.mean(log_sv, axis=-1, keepdims=True)
    slope = jnp.sum(yc * tc.reshape((1,) * (log_sv.ndim - 1) + (T,)), axis=-1) / jnp.sum(tc * tc)
    return jnp.where(dead, -jnp.inf, slope)


def verdict(rate: float, horizon: int = 100, factor: float = 10.0) -> str:
    """``"vanishing"``, ``"exploding"`` or ``"stable"`` for a growth rate.

    A gradient is called vanishing (exploding) when, at ``rate`` nats per
    step, it would shrink (grow) by more than ``factor`` over ``horizon``
    steps: ``|rate| > ln(factor) / horizon`` (for the defaults,
    ``|rate| > 0.023``).

    Args:
      rate: nats per step, e.g. :attr:`JacobianSpectrum.growth_rate`; NaN
        (non-finite parameters or states) counts as exploding, ``-inf`` (a
        zero Jacobian) as vanishing.
      horizon: the number of steps that matters (e.g. the task's length).
      factor: the change over ``horizon`` steps that counts as a problem.
    """
    rate = float(rate)
    if not math.isfinite(rate):
        return "exploding" if rate > 0 or math.isnan(rate) else "vanishing"
    limit = math.log(factor) / _checks.positive_int("horizon", horizon)
    if rate < -limit:
        return "vanishing"
    if rate > limit:
        return "exploding"
    return "stable"


def newton_convergence(
    cell: Cell,
    params: Any,
    xs: Array,
    state: Any = None,
    *,
    seq_lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    method: str = "deer",
    tol: float | None = None,
    max_iter: int | None = None,
    damping: float | None = None,
) -> Any:
    """How ``jr.rnn(..., impl="parallel", method=method)`` converges on ``xs``.

    Runs the Newton iterations (and no fallback) and reports them: how many
    ran, the final residual ``max |s_t − f(s_{t−1}, x_t)|``, whether it
    reached ``tol``, and the residual before every iteration. Arguments are
    those of :func:`jaxrnn.rnn`.

    Returns:
      A :class:`jaxrnn.parallel.NewtonInfo` (``fell_back`` is always False
      here).

    Example:
      >>> import jax, jaxrnn as jr
      >>> cell = jr.GRU(8)
      >>> params = cell.init(jax.random.PRNGKey(0), input_size=2)
      >>> xs = jax.random.normal(jax.random.PRNGKey(1), (4, 100, 2))
      >>> info = jr.diagnostics.newton_convergence(cell, params, xs, method="deer")
      >>> bool(info.converged), int(info.iterations) < 20
      (True, True)
    """
    if isinstance(cell, LinearCell):
        raise TypeError(
            f"{type(cell).__name__} is a linear-recurrence cell: its associative scan "
            "is exact in one pass, there are no Newton iterations to report"
        )
    _, _, info = rnn_with_info(
        cell, params, xs, state, seq_lengths=seq_lengths, reverse=reverse,
        time_major=time_major, impl="parallel", method=method, tol=tol,
        max_iter=max_iter, on_failure="nan", damping=damping,
    )
    return info
