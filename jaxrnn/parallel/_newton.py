"""Nonlinear cells solved for every step at once by Newton's method.

A run of a cell is the solution of ``T`` equations ``s_t = f(s_{t-1}, x_t)``.
Newton's method linearises all of them around the current guess ``s^k``::

    s_t = f(s^k_{t-1}, x_t) + J_t (s_{t-1} - s^k_{t-1}),   J_t = ∂f/∂s (s^k_{t-1}, x_t)

which is a *linear* recurrence in ``s``, solved by an associative scan in
``O(log T)`` depth (:mod:`._scan`). The methods differ in the scan:

- ``"deer"`` (Lim et al., 2024): the full ``S × S`` Jacobians; ``O(S³)`` work
  per step, quadratic convergence near the solution.
- ``"quasi"`` (quasi-DEER, Gonzalez et al., 2024): only their diagonals;
  ``O(S)`` memory and work per step, more iterations.
- ``"elk"`` and ``"quasi-elk"`` (Gonzalez et al., 2024): a Levenberg-Marquardt
  step computed as a parallel Kalman smoother, its damping adapted (from
  ``damping``) so that every step taken lowers the squared residual; stable
  where undamped Newton overshoots.

Every method reaches the exact solution in at most ``T`` iterations in exact
arithmetic (after ``k`` iterations the first ``k`` steps are exact), and
usually in far fewer when the dynamics contract. The run stops when the
largest residual ``|s_t − f(s_{t−1}, x_t)|`` is at most ``tol``; a run that
does not get there falls back to the sequential scan, returns NaN or raises,
as the caller chooses, and :class:`NewtonInfo` says which happened.

The gradient does not differentiate the iterations. At the solution, the
implicit function theorem gives the adjoint recurrence
``λ_t = ḡ_t + J_{t+1}ᵀ λ_{t+1}`` (``ḡ`` the cotangent of the states), again
linear: solved in one dense reverse scan for ``"deer"``/``"elk"``, and by
iterative refinement with diagonal reverse scans (exact to ``tol``, at most
``T`` refinements) for the quasi methods. Parameter and input gradients are
then one batched VJP of ``f`` over all steps.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import _checks
from ..cells import Cell
from ._scan import DENSE, DIAG, affine_recurrence, kalman_smoother_mean

Array = jax.Array

METHODS = ("deer", "quasi", "elk", "quasi-elk")
"""The Newton methods of ``jr.rnn(..., impl="parallel", method=...)``."""
ON_FAILURE = ("fallback", "raise", "nan")
"""What a parallel run that does not reach ``tol`` may do (``on_failure=``)."""
DEFAULT_DAMPING = 0.01
"""ELK's initial damping ``λ``: the weight of ``|s − s^k|²`` against the
linearised residual in a Levenberg-Marquardt step (then divided by 10 after a
step that lowers the squared residual, multiplied by 10 after one that does
not)."""
DEFAULT_MAX_ITER = 100
"""Newton iterations allowed by default (``"deer"`` and ``"quasi"``: never
more than ``T``, after which they are exact)."""


class NotConvergedError(RuntimeError):
    """A parallel (Newton) run stopped before its residual reached ``tol``
    with ``on_failure="raise"``."""


class NewtonInfo(NamedTuple):
    """How a parallel Newton run went.

    Attributes:
      iterations: Newton iterations run (int32 scalar).
      residual: the largest ``|s_t − f(s_{t−1}, x_t)|`` of the last Newton
        iterate, over every step and example.
      converged: whether ``residual <= tol``.
      fell_back: whether the sequential scan computed the result instead
        (``on_failure="fallback"`` and not converged).
      history: the residual before each iteration and after the last,
        ``(max_iter + 1,)``, NaN past the last one run.
    """

    iterations: Array
    residual: Array
    converged: Array
    fell_back: Array
    history: Array


@dataclasses.dataclass(frozen=True)
class NewtonOptions:
    """The static options of a parallel run (validated by :func:`newton_options`)."""

    method: str = "deer"
    tol: float | None = None
    max_iter: int | None = None
    on_failure: str = "fallback"
    damping: float = DEFAULT_DAMPING


def default_tol(dtype: Any) -> float:
    """The default ``tol`` for states of ``dtype``: about 100 ulps of a unit value
    (``1e-5`` for float32, ``2e-14`` for float64)."""
    eps = float(jnp.finfo(jnp.dtype(dtype)).eps)
    return float(np.float32(100 * eps)) if eps > 1e-10 else 100 * eps


def newton_options(
    method: Any = None,
    tol: Any = None,
    max_iter: Any = None,
    on_failure: Any = None,
    damping: Any = None,
) -> NewtonOptions:
    """Checks the options of ``impl="parallel"`` (``None``: the default);
    raises naming the argument."""
    method = "deer" if method is None else method
    on_failure = "fallback" if on_failure is None else on_failure
    damping = DEFAULT_DAMPING if damping is None else damping
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if on_failure not in ON_FAILURE:
        raise ValueError(f"on_failure must be one of {ON_FAILURE}, got {on_failure!r}")
    if tol is not None:
        tol = _static_positive("tol", tol)
    if max_iter is not None:
        max_iter = _checks.positive_int("max_iter", max_iter)
    damping = _static_positive("damping", damping)
    return NewtonOptions(method, tol, max_iter, on_failure, damping)


def _static_positive(name: str, value: Any) -> float:
    _checks.positive_scalar(name, value)
    if not _checks.is_concrete(value):
        raise TypeError(
            f"{name} must be a concrete positive float (it shapes the compiled "
            "loop), got a traced value"
        )
    return float(value)


# --------------------------------------------------------------------------
# the state as one flat vector per example


@dataclasses.dataclass(frozen=True)
class _Problem:
    """What the solver needs besides arrays: the cell, the options and how
    the state pytree flattens into one ``(S,)`` vector per example."""

    cell: Cell
    opts: NewtonOptions
    tol: float
    max_iter: int
    treedef: Any
    sizes: tuple[int, ...]
    precision: Any

    def flat(self, state: Any) -> Array:
        return jnp.concatenate(jax.tree_util.tree_leaves(state), axis=-1)

    def unflat(self, s: Array) -> Any:
        cuts = np.cumsum(self.sizes)[:-1].tolist()
        return jax.tree_util.tree_unflatten(self.treedef, jnp.split(s, cuts, axis=-1))

    def step(self, params: Any, s: Array, x: Array, valid: Array) -> Array:
        """``f``: one example's step on flat states; padding keeps the state."""
        new, _ = self.cell(params, self.unflat(s), x, precision=self.precision)
        return jnp.where(valid, self.flat(new), s)

    def f(self, params: Any, s_prev: Array, xs: Array, valid: Array) -> Array:
        """Every step at once: ``s_prev, xs (T, B, ·)`` -> ``(T, B, S)``."""
        step = jax.vmap(jax.vmap(self.step, (None, 0, 0, 0)), (None, 0, 0, 0))
        return step(params, s_prev, xs, valid)

    def jacobians(self, params: Any, s_prev: Array, xs: Array, valid: Array) -> Array:
        """``∂f/∂s`` at every step: ``(T, B, S, S)``."""
        jac = jax.jacfwd(self.step, argnums=1)
        jac = jax.vmap(jax.vmap(jac, (None, 0, 0, 0)), (None, 0, 0, 0))
        return jac(params, s_prev, xs, valid)

    @property
    def diagonal(self) -> bool:
        return self.opts.method.startswith("quasi")

    @property
    def algebra(self) -> Any:
        return DIAG if self.diagonal else DENSE


def _shift(s: Array, s0: Array) -> Array:
    """``s_{t-1}`` for every ``t``: ``[s0, s_1, ..., s_{T-1}]``."""
    return jnp.concatenate([s0[None], s[:-1]], axis=0)


def _max_abs(x: Array) -> Array:
    """The largest ``|x|``; ``inf`` when any element is not finite."""
    m = jnp.max(jnp.abs(x))
    return jnp.where(jnp.all(jnp.isfinite(x)), m, jnp.inf)


def _sequential(prob: _Problem, params: Any, xs: Array, s0: Array, valid: Array) -> Array:
    """The fallback: the plain sequential scan of ``f``."""
    step = jax.vmap(prob.step, (None, 0, 0, 0))

    def body(s: Array, inputs: tuple[Array, Array]) -> tuple[Array, Array]:
        x, v = inputs
        s = step(params, s, x, v)
        return s, s

    return lax.scan(body, s0, (xs, valid))[1]


# --------------------------------------------------------------------------
# the forward solve


def _iterate(prob: _Problem, params: Any, xs: Array, s0: Array, valid: Array):
    """Newton iterations from the guess ``s_t = s0``; returns ``(s, k, residual, history)``.

    The ELK methods adapt their damping as Levenberg-Marquardt does: a step
    that lowers ``Σ |s_t − f(s_{t−1}, x_t)|²`` is taken and the damping
    divided by 10; one that does not is refused and the damping multiplied
    by 10. So they take near-Newton steps where Newton works, and short
    steps where it would overshoot; every iteration, taken or refused,
    counts.
    """
    alg = prob.algebra
    f = functools.partial(prob.f, params)
    elk = prob.opts.method in ("elk", "quasi-elk")

    def newton_step(s: Array, fs: Array, lam: Array) -> Array:
        s_prev = _shift(s, s0)
        a = alg.from_dense(prob.jacobians(params, s_prev, xs, valid))
        offset = fs - alg.matvec(a, s_prev)  # s_t = A_t s_{t-1} + offset_t
        if elk:
            return kalman_smoother_mean(alg, a, offset, s, s0, lam)
        # s_0 is known: step 1's right-hand side is f(s_0, x_1) itself.
        return affine_recurrence(alg, a, offset.at[0].set(fs[0]))

    def residual(s: Array) -> tuple[Array, Array, Array]:
        fs = f(_shift(s, s0), xs, valid)
        r = s - fs
        merit = jnp.sum(r * r)
        return fs, _max_abs(r), jnp.where(jnp.isfinite(merit), merit, jnp.inf)

    s = jnp.broadcast_to(s0, (xs.shape[0],) + s0.shape)
    fs, res, merit = residual(s)
    history = jnp.full((prob.max_iter + 1,), jnp.nan, res.dtype).at[0].set(res)
    lam = jnp.asarray(prob.opts.damping, res.dtype)

    def cond(carry: tuple) -> Array:
        _, _, res, _, k, _, _ = carry
        return jnp.isfinite(res) & (res > prob.tol) & (k < prob.max_iter)

    def body(carry: tuple) -> tuple:
        s, fs, res, merit, k, history, lam = carry
        new = newton_step(s, fs, lam)
        fs_new, res_new, merit_new = residual(new)
        if elk:
            take = merit_new < merit
            pick = lambda a, b: jnp.where(take, a, b)
            s, fs, res, merit = pick(new, s), pick(fs_new, fs), pick(res_new, res), pick(merit_new, merit)
            lam = jnp.clip(jnp.where(take, lam / 10, lam * 10), 1e-8, 1e8)
        else:
            s, fs, res, merit = new, fs_new, res_new, merit_new
        return s, fs, res, merit, k + 1, history.at[k + 1].set(res), lam

    s, _, res, _, k, history, _ = lax.while_loop(
        cond, body, (s, fs, res, merit, jnp.zeros((), jnp.int32), history, lam)
    )
    return s, k, res, history


def _solve_impl(prob: _Problem, params: Any, xs: Array, s0: Array, valid: Array):
    s, k, res, history = _iterate(prob, params, xs, s0, valid)
    converged = res <= prob.tol
    fell_back = jnp.zeros((), bool)
    if prob.opts.on_failure == "fallback":
        fell_back = ~converged
        s = lax.cond(
            converged, lambda: s, lambda: _sequential(prob, params, xs, s0, valid)
        )
    elif prob.opts.on_failure == "nan":
        s = jnp.where(converged, s, jnp.full_like(s, jnp.nan))
    return s, NewtonInfo(k, res, converged, fell_back, history)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _solve(prob: _Problem, params: Any, xs: Array, s0: Array, valid: Array):
    return _solve_impl(prob, params, xs, s0, valid)


def _solve_fwd(prob, params, xs, s0, valid):
    s, info = _solve_impl(prob, params, xs, s0, valid)
    return (s, info), (params, xs, s0, valid, s)


# --------------------------------------------------------------------------
# the backward pass: the adjoint recurrence at the solution


def _adjoint(prob: _Problem, params: Any, xs: Array, s0: Array, valid: Array, s: Array, g: Array):
    """``λ_t = g_t + J_{t+1}ᵀ λ_{t+1}`` (``λ_T = g_T``), in parallel."""
    s_prev = _shift(s, s0)

    def later(v: Array) -> Array:  # v_{t+1} at t, zero at T
        return jnp.concatenate([v[1:], jnp.zeros_like(v[:1])], axis=0)

    if not prob.diagonal:
        # One dense reverse scan: exact.
        jt = DENSE.transpose(prob.jacobians(params, s_prev, xs, valid))
        return affine_recurrence(DENSE, later(jt), g, reverse=True), jnp.ones((), bool)

    # Quasi methods: iterative refinement, each a diagonal reverse scan;
    # the products J_{t+1}ᵀ λ_{t+1} are exact VJPs (no dense matrix).
    _, f_vjp = jax.vjp(lambda sp: prob.f(params, sp, xs, valid), s_prev)
    d = later(jnp.diagonal(prob.jacobians(params, s_prev, xs, valid), axis1=-2, axis2=-1))

    def solve_diag(r: Array) -> Array:
        return affine_recurrence(DIAG, d, r, reverse=True)

    def misfit(lam: Array) -> Array:
        return g - (lam - later(f_vjp(lam)[0]))

    scale = jnp.maximum(_max_abs(g), jnp.finfo(g.dtype).tiny)
    lam = solve_diag(g)
    r = misfit(lam)

    def cond(carry: tuple) -> Array:
        _, r, k = carry
        err = _max_abs(r)
        return jnp.isfinite(err) & (err > prob.tol * scale) & (k < prob.max_iter)

    def body(carry: tuple) -> tuple:
        lam, r, k = carry
        lam = lam + solve_diag(r)
        return lam, misfit(lam), k + 1

    lam, r, _ = lax.while_loop(cond, body, (lam, r, jnp.zeros((), jnp.int32)))
    return lam, _max_abs(r) <= prob.tol * scale


def _sequential_adjoint(prob, params, xs, s0, valid, s, g):
    """The fallback: the ordinary reverse sweep of VJPs."""
    s_prev = _shift(s, s0)
    step = jax.vmap(prob.step, (None, 0, 0, 0))

    def body(lam_next_t: Array, inputs: tuple) -> tuple[Array, Array]:
        sp, x, v, g_t = inputs
        lam = g_t + lam_next_t
        _, vjp = jax.vjp(lambda z: step(params, z, x, v), sp)
        return vjp(lam)[0], lam

    _, lam = lax.scan(body, jnp.zeros_like(s0), (s_prev, xs, valid, g), reverse=True)
    return lam


def _solve_bwd(prob, res, cts):
    params, xs, s0, valid, s = res
    g, _ = cts
    lam, ok = _adjoint(prob, params, xs, s0, valid, s, g)
    if prob.opts.on_failure == "fallback":
        lam = lax.cond(
            ok, lambda: lam, lambda: _sequential_adjoint(prob, params, xs, s0, valid, s, g)
        )
    else:
        if prob.opts.on_failure == "raise":
            jax.debug.callback(_raise_unless, ok, "the gradient's adjoint recurrence")
        lam = jnp.where(ok, lam, jnp.full_like(lam, jnp.nan))
    s_prev = _shift(s, s0)
    _, vjp = jax.vjp(lambda p, sp, x: prob.f(p, sp, x, valid), params, s_prev, xs)
    dparams, ds_prev, dxs = vjp(lam)
    return dparams, dxs, ds_prev[0], None


_solve.defvjp(_solve_fwd, _solve_bwd)


def _raise_unless(ok: Any, what: str, iterations: Any = None, residual: Any = None) -> None:
    if bool(ok):
        return
    detail = "" if iterations is None else f" after {int(iterations)} iterations (residual {float(residual):.3g})"
    raise NotConvergedError(
        f'impl="parallel": {what} did not converge{detail}; raise max_iter or tol, '
        'try method="elk" (damped), or pass on_failure="fallback" to run the '
        "sequential scan instead"
    )


# --------------------------------------------------------------------------
# the engine entry point


def run_newton(
    cell: Cell,
    params: Any,
    xs: Array,
    state: Any,
    seq_lengths: Array | None,
    *,
    time_major: bool,
    opts: NewtonOptions,
    precision: Any = None,
) -> tuple[Any, Array, NewtonInfo]:
    """Runs ``cell`` over ``xs`` by Newton's method over the whole sequence.

    The contract of ``jaxrnn.kernels`` ``run_impl``: ``xs`` flattened to
    ``(B, T, I)`` (or ``(T, B, I)`` time-major), zero past each length and
    already reversed by the driver; ``state`` the flat ``(B, ...)`` state;
    ``seq_lengths (B,)`` int32 or ``None``. Returns ``(final_state, ys,
    info)``, ``ys`` in the layout of ``xs``, zero past each length.
    """
    xs_t = xs if time_major else jnp.moveaxis(xs, 1, 0)  # (T, B, I)
    T, B = xs_t.shape[:2]
    leaves, treedef = jax.tree_util.tree_flatten(state)
    sizes = tuple(int(leaf.shape[-1]) for leaf in leaves)
    dtype = leaves[0].dtype
    tol = opts.tol if opts.tol is not None else default_tol(dtype)
    max_iter = opts.max_iter or DEFAULT_MAX_ITER
    if opts.method in ("deer", "quasi"):
        # Undamped, every step is exact after T iterations: more never helps.
        max_iter = min(max_iter, max(T, 1))
    prob = _Problem(cell, opts, tol, max_iter, treedef, sizes, precision)
    if T == 0:
        y0 = cell.output(state)
        ys = jnp.zeros((0, B) + y0.shape[1:], y0.dtype)
        zero = jnp.zeros((), jnp.int32)
        info = NewtonInfo(zero, jnp.zeros((), dtype), jnp.ones((), bool), jnp.zeros((), bool),
                          jnp.zeros((1,), dtype))
        return state, (ys if time_major else jnp.moveaxis(ys, 0, 1)), info
    steps = jnp.arange(T, dtype=jnp.int32)[:, None]
    valid = (
        jnp.ones((T, B), bool) if seq_lengths is None else steps < seq_lengths[None, :]
    )
    s, info = _solve(prob, params, xs_t, prob.flat(state), valid)
    if opts.on_failure == "raise":
        if _checks.is_concrete(info.converged):
            _raise_unless(info.converged, "the Newton iterations", info.iterations, info.residual)
        else:
            jax.debug.callback(
                _raise_unless, info.converged, "the Newton iterations", info.iterations,
                info.residual,
            )
    states = prob.unflat(s)  # leaves (T, B, ·)
    ys = cell.output(states)
    ys = jnp.where(valid[..., None], ys, jnp.zeros((), ys.dtype))
    final = jax.tree_util.tree_map(lambda leaf: leaf[-1], states)
    return final, (ys if time_major else jnp.moveaxis(ys, 0, 1)), info
