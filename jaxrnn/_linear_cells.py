r"""Linear-recurrence cells: MinGRU, MinLSTM, LRU and RG-LRU.

Every cell here is a diagonal linear recurrence whose coefficients read the
input only::

    (a_t, b_t) = coefficients(x_t)          no dependence on h_{t-1}: no recurrent GEMM
    h_t        = a_t * h_{t-1} + b_t        elementwise
    y_t        = outputs(h_t, x_t)          h_t, or a read-out (LRU)

so a whole sequence is one associative scan over ``(a_t, b_t)`` pairs, of
depth ``O(log T)`` (:func:`jaxrnn.parallel._linear.run_linear`), and the
single step ``cell(params, state, x)`` is its sequential twin
(``jr.rnn(..., impl="scan")``).

=========  ====================================================  ======  ======================
cell       params                                                blocks  state
=========  ====================================================  ======  ======================
MinGRU     w_ih (I,2H), b (2H,)                                  z, h~   h (*batch, H)
MinLSTM    w_ih (I,3H), b (3H,)                                  f, i,   h (*batch, H)
                                                                 h~
LRU        w_ih (I,2H), nu_log (H,), theta_log (H,),             B_re,   LRUState(re, im)
           gamma_log (H,), c_re (H,H), c_im (H,H), d (I,H)       B_im
RGLRU      w_ih (I,3H), b (3H,), lam (H,)                        u, r,   h (*batch, H)
                                                                 i
=========  ====================================================  ======  ======================

MinGRU and MinLSTM (Feng et al. 2024) are computed in log space
(:attr:`LinearCell.log_space`): their coefficients are ``(log a, log b)``
with ``b > 0``, and the parallel scan combines them with ``logaddexp``. The
LRU's recurrence is complex (its state is kept as two real arrays,
:class:`LRUState`); the RG-LRU's is real.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import _checks, initializers
from .cells import (
    Cell,
    Params,
    State,
    accumulation_dtype,
    block_init,
    matmul_accumulated,
)

__all__ = [
    "LinearCell",
    "MinGRU",
    "MinLSTM",
    "LRU",
    "RGLRU",
    "MinGRUParams",
    "MinLSTMParams",
    "LRUParams",
    "LRUState",
    "RGLRUParams",
]

Array = jax.Array
Initializer = jax.nn.initializers.Initializer



class MinGRUParams(NamedTuple):
    """Parameters of :class:`MinGRU`; blocks along the last axis: z, h~."""

    w_ih: Array  # (input_size, 2 * hidden_size)
    b: Array | None = None  # (2 * hidden_size,); None: bias=False


class MinLSTMParams(NamedTuple):
    """Parameters of :class:`MinLSTM`; blocks along the last axis: f, i, h~."""

    w_ih: Array  # (input_size, 3 * hidden_size)
    b: Array | None = None  # (3 * hidden_size,); None: bias=False


class LRUParams(NamedTuple):
    """Parameters of :class:`LRU`.

    ``w_ih`` holds the input matrix ``B`` as ``[B_re, B_im]``; ``lambda =
    exp(-exp(nu_log) + i exp(theta_log))``; the read-out is ``C = c_re + i c_im``
    and the real skip ``d``.
    """

    w_ih: Array  # (input_size, 2 * hidden_size): [B_re, B_im]
    nu_log: Array  # (hidden_size,)
    theta_log: Array  # (hidden_size,)
    gamma_log: Array  # (hidden_size,)
    c_re: Array  # (hidden_size, hidden_size)
    c_im: Array  # (hidden_size, hidden_size)
    d: Array  # (input_size, hidden_size)


class LRUState(NamedTuple):
    """State of :class:`LRU`: the complex state ``h = re + i im``."""

    re: Array  # (*batch, hidden_size)
    im: Array  # (*batch, hidden_size)


class RGLRUParams(NamedTuple):
    """Parameters of :class:`RGLRU`; blocks along the last axis: u, r, i."""

    w_ih: Array  # (input_size, 3 * hidden_size): input u, recurrence gate r, input gate i
    b: Array | None  # (3 * hidden_size,); None: bias=False
    lam: Array  # (hidden_size,): a = sigmoid(lam)


# ----------------------------------------------------------------------------
# helpers


def _row(v: Array, like: Array) -> Array:
    """``v (F,)`` shaped ``(1, ..., 1, F)`` to broadcast against ``like (..., F)``,
    in ``like``'s dtype (the library runs with rank promotion raising)."""
    return v.astype(like.dtype).reshape((1,) * (like.ndim - 1) + v.shape)


def _log_g(x: Array) -> Array:
    """``log g(x)`` for Feng et al.'s positive activation
    ``g(x) = x + 1/2 (x >= 0), sigmoid(x) (x < 0)``. ``relu`` keeps the unused
    branch finite, so that its (discarded) gradient is not NaN."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _without_b(shapes: dict[str, tuple[int, ...]], bias: bool) -> dict[str, tuple[int, ...]]:
    """``shapes`` without ``b`` for a ``bias=False`` cell (its ``b`` is ``None``)."""
    return shapes if bias else {k: v for k, v in shapes.items() if k != "b"}


def _check_unit_interval(name: str, value: float, *, open_low: bool, open_high: bool) -> None:
    lo_ok = value > 0 if open_low else value >= 0
    hi_ok = value < 1 if open_high else value <= 1
    if not (lo_ok and hi_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


# ----------------------------------------------------------------------------
# the base class


@dataclasses.dataclass(frozen=True)
class LinearCell(Cell):
    r"""Base class of the linear-recurrence cells.

    A linear cell's step is

    .. math::  h_t = a_t \odot h_{t-1} + b_t, \qquad (a_t, b_t) = f(x_t)

    with coefficients that read the input only (no recurrent GEMM), so a
    sequence runs as one associative scan over time. A subclass writes its
    parameter layout and:

    - :meth:`coefficients`: ``(a, b)`` for inputs with any leading dims;
      ``(log a, log b)`` (with ``b > 0``) when :attr:`log_space` is true;
    - :meth:`outputs`: ``y`` from the states (default: ``h``);
    - for a state that is not one real array ``h`` (the LRU's complex state),
      :meth:`state_to_carry`, :meth:`carry_to_state`, ``initial_state`` and
      ``state_leaves``.

    ``cell(params, state, x)`` is the sequential step, the reference twin of
    the parallel scan: it computes ``h' = a h + b`` in linear space (for a
    log-space cell ``exp(log a) h + exp(log b)``). State leaves are real
    arrays ``(*batch, H)`` in :func:`~jaxrnn.cells.accumulation_dtype`, as for
    every cell. A linear cell has no ``pointwise``: the fused engine does not
    run it.
    """

    #: whether :meth:`coefficients` returns ``(log a, log b)`` (with ``b > 0``)
    #: rather than ``(a, b)``
    log_space: ClassVar[bool] = False
    #: a linear cell has no recurrent GEMM, hence no ``pointwise`` after one
    elementwise: ClassVar[bool] = False

    @abc.abstractmethod
    def coefficients(
        self, params: Params, xs: Array, precision: Any = None
    ) -> tuple[Array, Array]:
        """The recurrence's coefficients for inputs ``xs``.

        Args:
          params: this cell's params NamedTuple.
          xs: inputs ``(..., I)``, any leading dims (e.g. ``(T, B, I)``).
          precision: passed to the matrix products.

        Returns:
          ``(a, b)``, each ``(..., N)`` in the state's accumulation dtype (for
          the LRU complex, ``N = H``); ``(log a, log b)`` when
          :attr:`log_space`.
        """

    def state_to_carry(self, state: State) -> Array:
        """The state as the array ``h (..., N)`` that the recurrence carries."""
        return state

    def carry_to_state(self, h: Array) -> State:
        """The inverse of :meth:`state_to_carry`, for any leading dims."""
        return h

    def outputs(
        self, params: Params, states: State, xs: Array, precision: Any = None
    ) -> Array:
        """The outputs ``y (..., H)`` from the states after each step and the
        inputs (any leading dims, the same for both): ``h`` by default."""
        del params, xs, precision
        return states

    def pointwise(self, xz: Array, hz: Array, state: State) -> State:
        """Raises ``NotImplementedError``: a linear cell has no recurrent GEMM."""
        del xz, hz, state
        raise NotImplementedError(
            f"{type(self).__name__} is a linear-recurrence cell: it has no recurrent "
            "GEMM and no pointwise step for the fused engine; run it with jr.rnn "
            'impl="auto" or "parallel" (an associative scan) or impl="scan"'
        )

    def step_from_projection(
        self, params: Params, xz: Array, state: State, precision: Any = None
    ) -> State:
        """Raises ``NotImplementedError``, as :meth:`pointwise` does."""
        return self.pointwise(xz, xz, state)

    def __call__(
        self, params: Params, state: State, x: Array, *, precision: Any = None
    ) -> tuple[State, Array]:
        """One step: ``(state, x) -> (new_state, y)``, like a ``lax.scan`` body.

        Args:
          params: this cell's params NamedTuple.
          state: the state, ``(*batch, H)`` (LRU: an :class:`LRUState`).
          x: the input, ``(*batch, I)``, in the dtype of ``params``.
          precision: passed to the matrix products (``jax.lax.Precision``).

        Returns:
          ``(new_state, y)`` with ``y (*batch, H)``. With bfloat16/float16
          params the state and ``y`` are float32.

        Raises:
          TypeError, ValueError: see :meth:`~jaxrnn.Cell.check_step`.
        """
        self.check_step(params, state, x)
        a, b = self.coefficients(params, x, precision)
        if self.log_space:
            # Linear space on purpose: the parallel form scans (log a, log b)
            # pairs, so this step is an independent twin of it.
            a, b = jnp.exp(a), jnp.exp(b)
        new_state = self.carry_to_state(a * self.state_to_carry(state) + b)
        return new_state, self.outputs(params, new_state, x, precision)


# ----------------------------------------------------------------------------
# MinGRU and MinLSTM (Feng et al. 2024)


@dataclasses.dataclass(frozen=True)
class MinGRU(LinearCell):
    r"""The minimal GRU of Feng et al. (2024), in its log-space form.

    With ``[k, h~] = x_t @ w_ih + b`` (blocks ``z``, ``h~``):

    .. math::
        z_t = \sigma(k), \qquad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot g(\tilde h)

    where ``g(x) = x + 1/2`` for ``x >= 0`` and ``sigmoid(x)`` otherwise keeps
    the candidate positive (the paper's log-space version). The coefficients
    are taken in log space,

    .. math::
        \log a_t = \log(1 - z_t) = -\mathrm{softplus}(k), \qquad
        \log b_t = -\mathrm{softplus}(-k) + \log g(\tilde h),

    so the parallel scan combines ``(log a, log b)`` pairs with ``logaddexp``
    and never divides by a vanishing product.

    Args:
      hidden_size: the number of hidden units ``H``.
      w_ih_init: initializer of each ``(I, H)`` block of ``w_ih``;
        Glorot-uniform (the paper's layers are plain linear layers, with no
        initialisation of their own).
      b_init: initializer of each ``(H,)`` block of ``b``; zeros.
      bias: ``False`` makes a cell without ``b`` (``params.b`` is ``None``).

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We
      Needed?", arXiv:2410.01201, 2024: §3.1 (minGRU) and the log-space
      implementation of its appendix.

    Example:
      >>> import jax, jaxrnn as jr
      >>> cell = jr.MinGRU(8)
      >>> params = cell.init(jax.random.PRNGKey(0), input_size=3)
      >>> final, ys = jr.rnn(cell, params, jax.numpy.ones((2, 10, 3)))
      >>> final.shape, ys.shape
      ((2, 8), (2, 10, 8))
    """

    _: dataclasses.KW_ONLY
    w_ih_init: Initializer = initializers.default_w_ih
    b_init: Initializer = initializers.default_b
    bias: bool = True

    params_type: ClassVar[type] = MinGRUParams
    num_gates: ClassVar[int] = 2
    log_space: ClassVar[bool] = True

    def _param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return _without_b({"w_ih": (input_size, 2 * H), "b": (2 * H,)}, self.bias)

    def init_params(self, key: Array, input_size: int, dtype: Any) -> MinGRUParams:
        k1, k2 = jax.random.split(key)
        H = self.hidden_size
        return MinGRUParams(
            w_ih=block_init(self.w_ih_init, k1, 2, (input_size, H), dtype),
            b=block_init(self.b_init, k2, 2, (H,), dtype) if self.bias else None,
        )

    def coefficients(
        self, params: MinGRUParams, xs: Array, precision: Any = None
    ) -> tuple[Array, Array]:
        k, h_tilde = jnp.split(self.input_projection(params, xs, precision), 2, axis=-1)
        log_a = -jax.nn.softplus(k)  # log(1 - z)
        log_b = -jax.nn.softplus(-k) + _log_g(h_tilde)  # log z + log g(h~)
        return log_a, log_b


@dataclasses.dataclass(frozen=True)
class MinLSTM(LinearCell):
    r"""The minimal LSTM of Feng et al. (2024), in its log-space form.

    With ``[k_f, k_i, h~] = x_t @ w_ih + b`` (blocks ``f, i, h~``) and the
    gates normalised to sum to one:

    .. math::
        f'_t = \frac{\sigma(k_f)}{\sigma(k_f) + \sigma(k_i)}, \quad
        i'_t = \frac{\sigma(k_i)}{\sigma(k_f) + \sigma(k_i)}, \quad
        h_t = f'_t \odot h_{t-1} + i'_t \odot g(\tilde h)

    with ``g`` as in :class:`MinGRU`. In log space:

    .. math::
        \delta_t = \mathrm{softplus}(-k_f) - \mathrm{softplus}(-k_i)
        = \log \frac{\sigma(k_i)}{\sigma(k_f)}, \quad
        \log f'_t = -\mathrm{softplus}(\delta_t), \quad
        \log i'_t = -\mathrm{softplus}(-\delta_t).

    Args:
      hidden_size: the number of hidden units ``H``.
      w_ih_init: initializer of each ``(I, H)`` block of ``w_ih``; Glorot-uniform.
      b_init: initializer of each ``(H,)`` block of ``b``; zeros.
      bias: ``False`` makes a cell without ``b`` (``params.b`` is ``None``).

    References:
      Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We
      Needed?", arXiv:2410.01201, 2024: §3.2 (minLSTM, the normalised
      gates) and the log-space implementation of its appendix.

    Example:
      >>> import jax, jaxrnn as jr
      >>> cell = jr.MinLSTM(8)
      >>> params = cell.init(jax.random.PRNGKey(0), input_size=3)
      >>> state, y = cell(params, cell.initial_state((2,)), jax.numpy.ones((2, 3)))
      >>> y.shape
      (2, 8)
    """

    _: dataclasses.KW_ONLY
    w_ih_init: Initializer = initializers.default_w_ih
    b_init: Initializer = initializers.default_b
    bias: bool = True

    params_type: ClassVar[type] = MinLSTMParams
    num_gates: ClassVar[int] = 3
    log_space: ClassVar[bool] = True

    def _param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return _without_b({"w_ih": (input_size, 3 * H), "b": (3 * H,)}, self.bias)

    def init_params(self, key: Array, input_size: int, dtype: Any) -> MinLSTMParams:
        k1, k2 = jax.random.split(key)
        H = self.hidden_size
        return MinLSTMParams(
            w_ih=block_init(self.w_ih_init, k1, 3, (input_size, H), dtype),
            b=block_init(self.b_init, k2, 3, (H,), dtype) if self.bias else None,
        )

    def coefficients(
        self, params: MinLSTMParams, xs: Array, precision: Any = None
    ) -> tuple[Array, Array]:
        k_f, k_i, h_tilde = jnp.split(self.input_projection(params, xs, precision), 3, axis=-1)
        delta = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)  # log(i / f)
        log_f = -jax.nn.softplus(delta)  # log f / (f + i)
        log_i = -jax.nn.softplus(-delta)  # log i / (f + i)
        return log_f, log_i + _log_g(h_tilde)


# ----------------------------------------------------------------------------
# LRU (Orvieto et al. 2023)


@dataclasses.dataclass(frozen=True)
class LRU(LinearCell):
    r"""The linear recurrent unit of Orvieto et al. (2023).

    A complex diagonal recurrence with an exponential parametrisation and an
    input normalisation, read out to real features:

    .. math::
        \lambda = \exp(-e^{\nu^{\log}} + i\, e^{\theta^{\log}}), \qquad
        h_t = \lambda \odot h_{t-1} + e^{\gamma^{\log}} \odot (x_t B), \qquad
        y_t = \mathrm{Re}(h_t C) + x_t D

    with ``B = B_re + i B_im`` ``(I, H)``, ``C = c_re + i c_im`` ``(H, H)``
    and ``D`` real. The state is complex, ``N = H`` units, kept as two real
    arrays (:class:`LRUState`); the outputs have ``H`` features. The paper's
    ``D`` is diagonal (its input and output sizes are equal); since ``I`` may
    differ from ``H`` here, ``D`` is a real ``(I, H)`` matrix, initialised as
    the paper's diagonal (N(0, 1) on the main diagonal, zeros elsewhere).

    Initialisation (the paper's): ``|lambda|`` uniform on the ring
    ``r_min <= |lambda| <= r_max`` (uniform in area: ``|lambda|^2`` is
    uniform), phase uniform in ``[0, max_phase]``, and
    ``gamma_log = log sqrt(1 - |lambda|^2)``, so a white-noise input keeps
    the state's variance at that of ``x B``. ``B``'s parts are
    N(0, 1/(2I)), ``C``'s N(0, 1/H).

    Args:
      hidden_size: the number of (complex) state units and of output features ``H``.
      r_min: smallest ``|lambda|`` at initialisation, in ``[0, 1]``.
      r_max: largest ``|lambda|`` at initialisation, in ``[r_min, 1]``.
        The defaults (0, 1) are the paper's API defaults; for long-range
        tasks it uses e.g. ``r_min=0.9, r_max=0.999`` (and a smaller
        ``max_phase``, e.g. ``pi / 10``).
      max_phase: the phase of ``lambda`` is drawn from ``[0, max_phase]``; positive.
      w_ih_init: initializer of ``B_re`` and ``B_im``, each ``(I, H)``;
        normal with variance ``1 / (2 I)``.
      c_init: initializer of ``c_re`` and ``c_im``, each ``(H, H)``; normal
        with variance ``1 / H``.
      d_init: initializer of ``d`` ``(I, H)``; N(0, 1) on the main diagonal.

    References:
      Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, "Resurrecting
      Recurrent Neural Networks for Long Sequences", ICML 2023,
      arXiv:2303.06349: §3.3 (exponential parametrisation), Lemma 3.2
      (ring initialisation), §3.4 (the ``gamma`` normalisation), Appendix A.

    Example:
      >>> import jax, jaxrnn as jr
      >>> cell = jr.LRU(8, r_min=0.9, r_max=0.999)
      >>> params = cell.init(jax.random.PRNGKey(0), input_size=3)
      >>> final, ys = jr.rnn(cell, params, jax.numpy.ones((2, 10, 3)))
      >>> final.re.shape, final.im.shape, ys.shape
      ((2, 8), (2, 8), (2, 10, 8))
    """

    r_min: float = 0.0
    r_max: float = 1.0
    max_phase: float = 2 * math.pi
    _: dataclasses.KW_ONLY
    w_ih_init: Initializer = initializers.default_lru_w_ih
    c_init: Initializer = initializers.default_lru_c
    d_init: Initializer = initializers.default_lru_d

    params_type: ClassVar[type] = LRUParams
    num_gates: ClassVar[int] = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.finite_float("r_min", self.r_min)
        _checks.finite_float("r_max", self.r_max)
        _checks.finite_float("max_phase", self.max_phase)
        _check_unit_interval("r_min", self.r_min, open_low=False, open_high=False)
        _check_unit_interval("r_max", self.r_max, open_low=False, open_high=False)
        if self.r_min > self.r_max:
            raise ValueError(
                f"r_min must not exceed r_max, got r_min={self.r_min!r}, r_max={self.r_max!r}"
            )
        if not self.max_phase > 0:
            raise ValueError(f"max_phase must be positive, got {self.max_phase!r}")

    def _param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return {
            "w_ih": (input_size, 2 * H),
            "nu_log": (H,),
            "theta_log": (H,),
            "gamma_log": (H,),
            "c_re": (H, H),
            "c_im": (H, H),
            "d": (input_size, H),
        }

    def init_params(self, key: Array, input_size: int, dtype: Any) -> LRUParams:
        k_b, k_c, k_d, k_r, k_p = jax.random.split(key, 5)
        H = self.hidden_size
        nu_log, theta_log, gamma_log = self._ring_init(k_r, k_p, dtype)
        return LRUParams(
            w_ih=block_init(self.w_ih_init, k_b, 2, (input_size, H), dtype),
            nu_log=nu_log,
            theta_log=theta_log,
            gamma_log=gamma_log,
            c_re=block_init(self.c_init, jax.random.fold_in(k_c, 0), 1, (H, H), dtype),
            c_im=block_init(self.c_init, jax.random.fold_in(k_c, 1), 1, (H, H), dtype),
            d=block_init(self.d_init, k_d, 1, (input_size, H), dtype),
        )

    def _ring_init(self, k_r: Array, k_p: Array, dtype: Any) -> tuple[Array, Array, Array]:
        """``nu_log, theta_log, gamma_log``: ``|lambda|^2`` uniform in
        ``[r_min^2, r_max^2]``, phase uniform in ``[0, max_phase]``."""
        H = self.hidden_size
        draw = jnp.float32 if jnp.dtype(dtype).itemsize < 4 else dtype
        info = jnp.finfo(draw)
        u1 = jax.random.uniform(k_r, (H,), draw)
        u2 = jax.random.uniform(k_p, (H,), draw)
        r2 = u1 * (self.r_max**2 - self.r_min**2) + self.r_min**2
        # |lambda| = 0 or 1 exactly would make nu_log or gamma_log infinite.
        r2 = jnp.clip(r2, info.tiny, 1 - info.eps)
        nu_log = jnp.log(-0.5 * jnp.log(r2))
        theta_log = jnp.log(jnp.maximum(self.max_phase * u2, info.tiny))
        # log sqrt(1 - |lambda|^2) from the rounded nu_log, so that the
        # normalisation matches the lambda the params hold.
        gamma_log = 0.5 * jnp.log(-jnp.expm1(-2 * jnp.exp(nu_log)))
        return nu_log.astype(dtype), theta_log.astype(dtype), gamma_log.astype(dtype)

    def initial_state(self, batch_shape: Any = (), dtype: Any = None) -> LRUState:
        h = super().initial_state(batch_shape, dtype)
        return LRUState(re=h, im=h)

    def state_leaves(self, state: Any) -> dict[str, Array]:
        return {"re": state.re, "im": state.im}

    def state_to_carry(self, state: LRUState) -> Array:
        return lax.complex(state.re, state.im)

    def carry_to_state(self, h: Array) -> LRUState:
        return LRUState(re=jnp.real(h), im=jnp.imag(h))

    def eigenvalues(self, params: LRUParams) -> Array:
        """``lambda (H,)``, complex, in the state's accumulation dtype."""
        acc = accumulation_dtype(params.w_ih.dtype)
        modulus = jnp.exp(-jnp.exp(params.nu_log.astype(acc)))
        phase = jnp.exp(params.theta_log.astype(acc))
        return lax.complex(modulus * jnp.cos(phase), modulus * jnp.sin(phase))

    def coefficients(
        self, params: LRUParams, xs: Array, precision: Any = None
    ) -> tuple[Array, Array]:
        bu_re, bu_im = jnp.split(matmul_accumulated(xs, params.w_ih, precision), 2, axis=-1)
        gamma = _row(jnp.exp(params.gamma_log.astype(bu_re.dtype)), bu_re)
        b = lax.complex(gamma * bu_re, gamma * bu_im)
        a = jnp.broadcast_to(_row(self.eigenvalues(params), b), b.shape)
        return a, b

    def outputs(
        self, params: LRUParams, states: LRUState, xs: Array, precision: Any = None
    ) -> Array:
        # Re(h C) = h_re c_re - h_im c_im
        return (
            matmul_accumulated(states.re, params.c_re, precision)
            - matmul_accumulated(states.im, params.c_im, precision)
            + matmul_accumulated(xs, params.d, precision)
        )

    def output(self, state: LRUState) -> Array:
        raise NotImplementedError(
            "the LRU's output y = Re(h C) + x D reads the input as well as the "
            "state: use LRU.outputs(params, states, xs)"
        )


# ----------------------------------------------------------------------------
# RG-LRU (De et al. 2024, Griffin)


@dataclasses.dataclass(frozen=True)
class RGLRU(LinearCell):
    r"""The real-gated linear recurrent unit of Griffin (De et al., 2024).

    With ``[u, k_r, k_i] = x_t @ w_ih + b`` (blocks ``u, r, i``) and
    ``a = sigmoid(lam)``:

    .. math::
        r_t = \sigma(k_r), \quad i_t = \sigma(k_i), \quad
        a_t = a^{c\, r_t}, \quad
        h_t = a_t \odot h_{t-1} + \sqrt{1 - a_t^2} \odot (i_t \odot u_t)

    computed as ``log a_t = -c softplus(-lam) r_t`` and
    ``sqrt(1 - a_t^2) = sqrt(-expm1(2 log a_t))``, which stay accurate as
    ``a_t -> 1`` (floored at the smallest normal number, so that its
    gradient stays finite where ``r_t`` underflows to zero). Griffin applies
    a linear layer (and a short convolution) before its RG-LRU, which reads
    ``x_t`` of width ``H``; this cell takes any input size ``I`` through its
    own input projection ``u_t = x_t W_u + b_u``.

    Initialisation (the paper's): ``lam`` such that ``a^c = sigma(lam)^c``
    is uniform in ``[a_min, a_max] = [0.9, 0.999]``.

    Args:
      hidden_size: the number of hidden units ``H``.
      c: the constant ``c`` of ``a_t = a^{c r_t}``; the paper's 8.
      a_min: smallest ``a^c`` at initialisation, in ``(0, 1)``.
      a_max: largest ``a^c`` at initialisation, in ``[a_min, 1)``.
      w_ih_init: initializer of each ``(I, H)`` block of ``w_ih``; Glorot-uniform.
      b_init: initializer of each ``(H,)`` block of ``b``; zeros.
      bias: ``False`` makes a cell without ``b`` (``params.b`` is ``None``).

    References:
      De, Smith, Fernando, Botev, Cristian-Muraru, Gu, Haroun, Berrada, Chen,
      Srinivasan, Desjardins, Doucet, Budden, Teh, Pascanu, De Freitas &
      Gulcehre, "Griffin: Mixing Gated Linear Recurrences with Local
      Attention for Efficient Language Models", arXiv:2402.19427, 2024:
      §2.4, equations (1)-(4).

    Example:
      >>> import jax, jaxrnn as jr
      >>> cell = jr.RGLRU(8)
      >>> params = cell.init(jax.random.PRNGKey(0), input_size=3)
      >>> state, y = cell(params, cell.initial_state(), jax.numpy.ones(3))
      >>> state.shape, y.shape
      ((8,), (8,))
    """

    c: float = 8.0
    _: dataclasses.KW_ONLY
    a_min: float = 0.9
    a_max: float = 0.999
    w_ih_init: Initializer = initializers.default_w_ih
    b_init: Initializer = initializers.default_b
    bias: bool = True

    params_type: ClassVar[type] = RGLRUParams
    num_gates: ClassVar[int] = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.finite_float("c", self.c)
        if not self.c > 0:
            raise ValueError(f"c must be positive, got {self.c!r}")
        _checks.finite_float("a_min", self.a_min)
        _checks.finite_float("a_max", self.a_max)
        _check_unit_interval("a_min", self.a_min, open_low=True, open_high=True)
        _check_unit_interval("a_max", self.a_max, open_low=True, open_high=True)
        if self.a_min > self.a_max:
            raise ValueError(
                f"a_min must not exceed a_max, got a_min={self.a_min!r}, a_max={self.a_max!r}"
            )

    def _param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return _without_b({"w_ih": (input_size, 3 * H), "b": (3 * H,), "lam": (H,)}, self.bias)

    def init_params(self, key: Array, input_size: int, dtype: Any) -> RGLRUParams:
        k1, k2, k3 = jax.random.split(key, 3)
        H = self.hidden_size
        draw = jnp.float32 if jnp.dtype(dtype).itemsize < 4 else dtype
        a_c = jax.random.uniform(k3, (H,), draw, minval=self.a_min, maxval=self.a_max)
        log_a = jnp.log(a_c) / self.c  # log sigma(lam)
        lam = log_a - jnp.log(-jnp.expm1(log_a))  # logit(a), stable as a -> 1
        return RGLRUParams(
            w_ih=block_init(self.w_ih_init, k1, 3, (input_size, H), dtype),
            b=block_init(self.b_init, k2, 3, (H,), dtype) if self.bias else None,
            lam=lam.astype(dtype),
        )

    def coefficients(
        self, params: RGLRUParams, xs: Array, precision: Any = None
    ) -> tuple[Array, Array]:
        u, k_r, k_i = jnp.split(self.input_projection(params, xs, precision), 3, axis=-1)
        softplus_lam = _row(jax.nn.softplus(-params.lam.astype(u.dtype)), u)  # -log a
        log_a = -self.c * softplus_lam * jax.nn.sigmoid(k_r)  # log a^(c r_t)
        one_minus_a2 = jnp.maximum(-jnp.expm1(2 * log_a), jnp.finfo(u.dtype).tiny)
        return jnp.exp(log_a), jnp.sqrt(one_minus_a2) * (jax.nn.sigmoid(k_i) * u)


#: The linear-recurrence cells by name, as :data:`jaxrnn.cells.NAMED_CELLS`
#: holds the others (``jaxrnn train --cell``, the benchmarks, the tests): a
#: constructor of a cell of hidden size H with its defaults (the published
#: initialisations).
LINEAR_CELLS: dict[str, Callable[[int], LinearCell]] = {
    "mingru": lambda h: MinGRU(h),
    "minlstm": lambda h: MinLSTM(h),
    "lru": lambda h: LRU(h),
    "rglru": lambda h: RGLRU(h),
}
