"""Linear recurrences and Kalman smoothers as associative scans.

Both Newton methods of :mod:`jaxrnn.parallel._newton` reduce one iteration to
one of these, over the time axis of ``(T, B, ...)`` arrays:

- :func:`affine_recurrence`: ``s_t = A_t s_{t-1} + b_t`` (DEER's step and the
  adjoint of every method's gradient);
- :func:`kalman_smoother_mean`: the posterior mean of a linear-Gaussian
  state-space model, the Levenberg-Marquardt step of ELK.

``A_t`` is a dense ``(S, S)`` matrix per example (:data:`DENSE`) or its
diagonal ``(S,)`` (:data:`DIAG`); the two differ only in the algebra, which
is passed in as an :class:`Algebra`, so each scan is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


class Algebra(NamedTuple):
    """The operations a scan needs on ``(..., S, S)`` matrices or ``(..., S)`` diagonals."""

    matmul: Callable[[Array, Array], Array]  # A @ B
    matvec: Callable[[Array, Array], Array]  # A @ v
    transpose: Callable[[Array], Array]
    solve: Callable[[Array, Array], Array]  # A^{-1} B (B a matrix of the same kind)
    eye_like: Callable[[Array], Array]  # identity with A's shape
    from_dense: Callable[[Array], Array]  # a dense Jacobian to this kind


def _dense_solve(a: Array, b: Array) -> Array:
    """``a⁻¹ b`` by Gauss-Jordan elimination in plain XLA ops.

    Not ``jnp.linalg.solve``: on CPU its batched LAPACK calls, two of them
    inside the Newton ``while_loop``, deadlock jaxlib 0.10.2's thread pool
    (seen as a hang of ``method="elk"``). The matrices solved here,
    ``I + C J`` and ``A P Aᵀ + I`` with ``C, J, P`` positive semi-definite,
    are similar to symmetric matrices with every eigenvalue at least 1, so
    elimination without pivoting is stable for them.
    """
    size = a.shape[-1]
    aug = jnp.concatenate([a, b], axis=-1)

    def eliminate(k: Array, aug: Array) -> Array:
        row = lax.dynamic_index_in_dim(aug, k, axis=-2, keepdims=False)
        pivot = lax.dynamic_index_in_dim(row, k, axis=-1, keepdims=True)
        row = row / pivot
        col = lax.dynamic_index_in_dim(aug, k, axis=-1, keepdims=False)
        aug = aug - col[..., :, None] * row[..., None, :]
        return lax.dynamic_update_index_in_dim(aug, row, k, axis=-2)

    return lax.fori_loop(0, size, eliminate, aug)[..., size:]


DENSE = Algebra(
    matmul=lambda a, b: a @ b,
    matvec=lambda a, v: (a @ v[..., None])[..., 0],
    transpose=lambda a: jnp.swapaxes(a, -1, -2),
    solve=_dense_solve,
    eye_like=lambda a: jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape),
    from_dense=lambda j: j,
)

DIAG = Algebra(
    matmul=lambda a, b: a * b,
    matvec=lambda a, v: a * v,
    transpose=lambda a: a,
    solve=lambda a, b: b / a,
    eye_like=jnp.ones_like,
    from_dense=lambda j: jnp.diagonal(j, axis1=-2, axis2=-1),
)


def affine_recurrence(alg: Algebra, a: Array, b: Array, *, reverse: bool = False) -> Array:
    """Solves ``s_t = A_t s_{t-1} + b_t`` for all ``t`` with ``s_0 = 0``.

    Fold a nonzero initial state into ``b_1`` (``b_1 + A_1 s_0``). With
    ``reverse=True`` it solves ``s_t = A_t s_{t+1} + b_t`` with
    ``s_{T+1} = 0`` (an adjoint recurrence). ``O(log T)`` depth.
    """

    def combine(first: tuple[Array, Array], then: tuple[Array, Array]) -> tuple[Array, Array]:
        # ``first`` is applied before ``then`` (earlier in processing order).
        a1, b1 = first
        a2, b2 = then
        return alg.matmul(a2, a1), alg.matvec(a2, b1) + b2

    return lax.associative_scan(combine, (a, b), reverse=reverse, axis=0)[1]


def kalman_smoother_mean(
    alg: Algebra, a: Array, c: Array, y: Array, s0: Array, damping: Any
) -> Array:
    """The minimiser over ``x_1..x_T`` of ``Σ ||x_t − A_t x_{t−1} − c_t||² + λ Σ ||x_t − y_t||²``.

    With ``x_0 = s0`` fixed and ``λ = damping > 0``. This is ELK's
    Levenberg-Marquardt step (Gonzalez et al., 2024): the posterior mean of
    the model ``x_t = A_t x_{t−1} + c_t + w_t``, ``w_t ~ N(0, I)``, observed
    as ``y_t = x_t + v_t``, ``v_t ~ N(0, I/λ)``, computed by the parallel
    Kalman filter and Rauch-Tung-Striebel smoother of Särkkä and
    García-Fernández (2021), two associative scans. ``λ → 0`` gives back
    the undamped Newton step (DEER); a large ``λ`` keeps ``x`` near ``y``.

    Shapes: ``a (T, B, S, S)`` (dense) or ``(T, B, S)`` (diagonal); ``c``,
    ``y`` ``(T, B, S)``; ``s0 (B, S)``.
    """
    dtype = y.dtype
    lam = jnp.asarray(damping, dtype)
    kappa = lam / (1 + lam)  # Kalman gain of an identity observation: Q = I, R = I/λ
    eye = alg.eye_like(a)

    # The filter's elements (A, b, C, η, J), Lemma 8 of Särkkä & García-Fernández.
    # Step 1 starts from the known x_0 (prior covariance Q = I).
    m1 = alg.matvec(a[0], s0) + c[0]
    A = (1 - kappa) * a
    b = (1 - kappa) * c + kappa * y
    b = b.at[0].set(m1 + kappa * (y[0] - m1))
    A = A.at[0].set(jnp.zeros_like(A[0]))
    C = (1 - kappa) * eye
    eta = kappa * alg.matvec(alg.transpose(a), y - c)
    eta = eta.at[0].set(jnp.zeros_like(eta[0]))
    J = kappa * alg.matmul(alg.transpose(a), a)
    J = J.at[0].set(jnp.zeros_like(J[0]))

    def filter_combine(ei: tuple, ej: tuple) -> tuple:
        Ai, bi, Ci, etai, Ji = ei
        Aj, bj, Cj, etaj, Jj = ej
        eye_ = alg.eye_like(Ai)
        # (I + Ci Jj)^{-1} and (I + Jj Ci)^{-1}, applied by solves.
        M = eye_ + alg.matmul(Ci, Jj)
        N = eye_ + alg.matmul(Jj, Ci)
        AjM = alg.transpose(alg.solve(alg.transpose(M), alg.transpose(Aj)))  # Aj M^{-1}
        AiN = alg.transpose(alg.solve(alg.transpose(N), Ai))  # Ai^T N^{-1}
        A_ = alg.matmul(AjM, Ai)
        b_ = alg.matvec(AjM, bi + alg.matvec(Ci, etaj)) + bj
        C_ = alg.matmul(alg.matmul(AjM, Ci), alg.transpose(Aj)) + Cj
        eta_ = alg.matvec(AiN, etaj - alg.matvec(Jj, bi)) + etai
        J_ = alg.matmul(alg.matmul(AiN, Jj), Ai) + Ji
        return A_, b_, C_, eta_, J_

    _, m, P, _, _ = lax.associative_scan(filter_combine, (A, b, C, eta, J), axis=0)

    # The smoother's elements (E, g): x_t = E_t x_{t+1} + g_t, run backwards.
    # E_t = P_t A_{t+1}^T (A_{t+1} P_t A_{t+1}^T + I)^{-1}, g_t = m_t − E_t (A_{t+1} m_t + c_{t+1}).
    a_next, c_next = a[1:], c[1:]
    Pn, mn = P[:-1], m[:-1]
    G = alg.matmul(alg.matmul(a_next, Pn), alg.transpose(a_next)) + alg.eye_like(a_next)
    PAt = alg.matmul(Pn, alg.transpose(a_next))
    E = alg.transpose(alg.solve(alg.transpose(G), alg.transpose(PAt)))  # PAt G^{-1}
    g = mn - alg.matvec(E, alg.matvec(a_next, mn) + c_next)
    E = jnp.concatenate([E, jnp.zeros_like(E[:1])], axis=0)
    g = jnp.concatenate([g, m[-1:]], axis=0)
    return affine_recurrence(alg, E, g, reverse=True)
