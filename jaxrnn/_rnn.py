"""The sequence driver :func:`rnn`, and stacks and bidirectional layers over it.

Shapes: inputs are batch-major ``(*batch, time, features)`` with any number of
leading batch dims (zero included); ``time_major=True`` takes
``(time, *batch, features)``. Outputs follow the input layout. Internally every
call is brought to one time-major layout ``(T, B, F)`` with the batch dims
flattened, run, and brought back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _checks, _dropout
from ._gradclip import clip_gradient
from ._layout import BatchLayout
from ._linear_cells import LinearCell
from ._sharding import vary, varying_axes_of
from .cells import Cell, Params, State, accumulation_dtype
from .kernels._engine import run_impl
from .parallel._linear import run_linear
from .parallel._newton import NewtonInfo, newton_options, run_newton

__all__ = ["rnn", "bidirectional_rnn", "stacked_rnn", "init_stacked"]

Array = jax.Array
Layer = Union[Cell, Sequence[Cell]]

IMPLS = ("auto", "fused", "pallas", "parallel", "scan")
RESIDUAL_POLICIES = ("auto", "gates", "states")
_MERGES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": jnp.add,
}


# --------------------------------------------------------------------------
# validation


def _check_options(
    impl: Any, residuals: Any, residual_budget: Any, bptt_clip: Any, unroll: Any
) -> None:
    if residual_budget is not None:
        _checks.positive_int("residual_budget", residual_budget)
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if isinstance(residuals, str):
        if residuals not in RESIDUAL_POLICIES:
            raise ValueError(
                f"residuals must be one of {RESIDUAL_POLICIES} or a positive int "
                f"(keep every K-th state), got {residuals!r}"
            )
    else:
        try:
            _checks.positive_int("residuals", residuals)
        except TypeError:
            raise TypeError(
                f"residuals must be one of {RESIDUAL_POLICIES} or a positive int "
                f"(keep every K-th state), got {_checks.describe(residuals)}"
            ) from None
    if bptt_clip is not None:
        _checks.positive_scalar("bptt_clip", bptt_clip)
    if not isinstance(unroll, bool):
        _checks.positive_int("unroll", unroll)


def _check_parallel(
    cell: Cell, impl: str, bptt_clip: Any, method: Any, tol: Any, max_iter: Any,
    on_failure: Any, damping: Any,
) -> Any:
    """The options of the parallel-in-time paths; returns the Newton options.

    A linear-recurrence cell runs by an associative scan under ``"auto"`` and
    ``"parallel"`` (the Newton options do not apply to it and are ignored:
    its scan is exact); the fused engine and the Pallas kernels do not take
    it. The Newton options given to any other ``impl`` are an error rather
    than silently ignored.
    """
    given = {
        name: value
        for name, value in (
            ("method", method), ("tol", tol), ("max_iter", max_iter),
            ("on_failure", on_failure), ("damping", damping),
        )
        if value is not None
    }
    linear = isinstance(cell, LinearCell)
    if linear and impl in ("fused", "pallas"):
        raise ValueError(
            f"impl={impl!r} is the sequential engine for cells with a recurrent GEMM; "
            f"{type(cell).__name__} is a linear-recurrence cell: use impl=\"auto\" or "
            '"parallel" (an associative scan) or "scan" (the sequential reference)'
        )
    if given and impl != "parallel":
        raise ValueError(
            f"{', '.join(given)} apply to impl=\"parallel\" only (Newton's method over "
            f"the sequence), got impl={impl!r}"
        )
    if bptt_clip is not None and (impl == "parallel" or (linear and impl == "auto")):
        raise ValueError(
            "bptt_clip clips the state gradient at every step of a sequential backward "
            f"pass, which the parallel path (impl={impl!r} for {type(cell).__name__}) does "
            'not run; use impl="scan", or "fused" for a nonlinear cell'
        )
    return newton_options(**given)


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_checks.describe(value)}")


def _check_seq_lengths(
    seq_lengths: Any, batch_shape: tuple[int, ...], num_steps: int
) -> None:
    _checks.array("seq_lengths", seq_lengths)
    if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise TypeError(
            f"seq_lengths must have an integer dtype, got {seq_lengths.dtype}"
        )
    if tuple(seq_lengths.shape) != batch_shape:
        raise ValueError(
            f"seq_lengths must have the batch shape of xs, {batch_shape}, got "
            f"shape {tuple(seq_lengths.shape)}"
        )
    _checks.values_in_range("seq_lengths", seq_lengths, 0, num_steps, "the time length of xs")


# --------------------------------------------------------------------------
# values that cannot be checked under jit


def _flat_lengths(seq_lengths: Any, batch: int, num_steps: int) -> Array:
    """``seq_lengths`` flattened to ``(B,)`` int32 and clamped to ``[0, T]``.

    Concrete values were checked; traced ones are clamped, so that both
    directions and both impls agree (a negative length is 0, a length past
    the end is ``T``). The clamp comes before the cast so that an int64
    length past the int32 range does not wrap.
    """
    lengths = jnp.asarray(seq_lengths).reshape(batch)
    hi = min(num_steps, int(jnp.iinfo(lengths.dtype).max))
    return jnp.clip(lengths, 0, hi).astype(jnp.int32)


def _zero_padding(xs: Array, lengths: Array, time_axis: int) -> Array:
    """Replaces the inputs at or past each length by zeros.

    The padding never reaches a value, but the backward pass evaluates
    derivatives at every step and multiplies those of padded steps by zero:
    a NaN or inf there (0 * NaN) would poison every parameter gradient. With
    zeros there, values and gradients do not depend on what the padding
    held, and its gradient is exactly zero (the VJP of the select). One
    elementwise pass over ``xs``.
    """
    steps = jnp.arange(xs.shape[time_axis], dtype=jnp.int32)
    valid = steps[:, None] < lengths[None, :]  # (T, B)
    if time_axis == 1:
        valid = valid.T
    return jnp.where(valid[..., None], xs, jnp.zeros((), xs.dtype))


@jax.custom_vjp
def _nan_gradient_unless(ok: Array, tree: Any) -> Any:
    """Identity forward; backward, NaN cotangents unless ``ok`` (a bool scalar)."""
    del ok
    return tree


def _nan_gradient_unless_fwd(ok: Array, tree: Any) -> tuple[Any, Array]:
    # Residuals: only the flag.
    return tree, ok


def _nan_gradient_unless_bwd(ok: Array, ct: Any) -> tuple[None, Any]:
    def poison(g: Array) -> Array:
        return g * jnp.where(ok, jnp.ones((), g.dtype), jnp.full((), jnp.nan, g.dtype))

    return None, jax.tree_util.tree_map(poison, ct)


_nan_gradient_unless.defvjp(_nan_gradient_unless_fwd, _nan_gradient_unless_bwd)


# --------------------------------------------------------------------------
# the reference implementation


def reverse_padded(xs: Array, seq_lengths: Array | None, time_axis: int = 0) -> Array:
    """Reverses each sequence of ``xs`` within its valid length.

    ``xs`` is ``(T, B, ...)`` (``time_axis=0``) or ``(B, T, ...)``
    (``time_axis=1``). Steps past a sequence's length stay where they are, so
    the permutation is its own inverse: applied to the outputs of a run over
    the reversed inputs, it puts them back in their original positions.
    """
    if seq_lengths is None:
        return jnp.flip(xs, axis=time_axis)
    T = xs.shape[time_axis]
    t = jnp.arange(T, dtype=seq_lengths.dtype)[:, None]  # (T, 1)
    # Clamped to [0, T], as jr.rnn clamps traced lengths: an index past the
    # end would gather NaN fill values.
    lengths = jnp.clip(seq_lengths, 0, T)[None, :]  # (1, B)
    idx = jnp.where(t < lengths, lengths - 1 - t, t)  # (T, B)
    if time_axis == 1:
        idx = idx.T
    idx = idx.reshape(idx.shape + (1,) * (xs.ndim - 2))
    return jnp.take_along_axis(xs, idx, axis=time_axis)


def _scan_impl(
    cell: Cell,
    params: Any,
    xs: Array,
    state: Any,
    seq_lengths: Array | None,
    bptt_clip: Any,
    unroll: Any,
    precision: Any,
    masks: _dropout.Masks | None = None,
) -> tuple[Any, Array]:
    """``lax.scan`` over ``cell(...)``: xs ``(T, B, I)``, state ``(B, H)``;
    ``masks``: recurrent dropout's and zoneout's (time-major), if any."""
    steps = jnp.arange(xs.shape[0], dtype=jnp.int32)
    masks = masks or _dropout.Masks(None, None, None, None)
    tmap = jax.tree_util.tree_map

    def step(s_in: Any, x_t: Array) -> tuple[Any, Array | None]:
        """The new state, and the output when the cell gave it (a read-out
        such as the LRU's y = Re(h C) + x D reads x_t, not only the state)."""
        if masks.recurrent is None:
            return cell(params, s_in, x_t, precision=precision)
        # The step written out, with the recurrent GEMM reading h ⊙ m (the
        # cell is elementwise: jr.rnn checked).
        xz = cell.input_projection(params, x_t, precision)
        h = cell.gemm_input(s_in) * masks.recurrent
        rz = cell.recurrent_projection(params, h, precision)
        return cell.pointwise(xz, rz, s_in), None

    def body(carry: Any, inputs: tuple[Array, Array, Any]) -> tuple[Any, Array]:
        x_t, t, zone_t = inputs
        s_in = carry if bptt_clip is None else clip_gradient(carry, bptt_clip)
        new, y = step(s_in, x_t)
        # Zoneout (refused for read-out cells) changes the state the output
        # is read from.
        if zone_t is not None:
            new = tmap(lambda k, o, n: jnp.where(k, o, n), zone_t, s_in, new)
            y = None
        elif masks.zoneout is not None:
            p = masks.zoneout
            new = tmap(lambda o, n: p * o + (1.0 - p) * n, s_in, new)
            y = None
        if y is None:
            y = cell.output(new)
        if seq_lengths is not None:
            valid = (t < seq_lengths)[:, None]
            # Past its length a sequence keeps its state and emits zeros; the
            # pass-through uses the unclipped carry, so padding never clips.
            new = jax.tree_util.tree_map(
                lambda n, o: jnp.where(valid, n, o), new, carry
            )
            y = jnp.where(valid, y, jnp.zeros_like(y))
        return new, y

    # Inside a user's shard_map the carry must vary over the mesh axes that
    # the data and params vary over from the start (a zero initial state
    # does not), or the first step changes its type and lax.scan refuses it.
    state = vary(state, varying_axes_of(params, xs, state, seq_lengths))
    return lax.scan(body, state, (xs, steps, masks.zone), unroll=unroll)


# --------------------------------------------------------------------------
# the public driver


def rnn(
    cell: Cell,
    params: Params,
    xs: Array,
    state: State | None = None,
    *,
    seq_lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    impl: str = "auto",
    residuals: str | int = "auto",
    residual_budget: int | None = None,
    bptt_clip: float | None = None,
    unroll: int | bool = 1,
    precision: Any = None,
    method: str | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    on_failure: str | None = None,
    damping: float | None = None,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
    key: Array | None = None,
    deterministic: bool = False,
) -> tuple[State, Array]:
    """Runs ``cell`` over a whole sequence.

    Args:
      cell: a :class:`~jaxrnn.Cell` (``SimpleRNN``, ``IRNN``, ``LSTM``, ``GRU``).
      params: the cell's params NamedTuple, as made by ``cell.init``.
      xs: inputs ``(*batch, time, features)``, or ``(time, *batch, features)``
        with ``time_major=True``; any number of batch dims, zero included.
        Its dtype must equal that of ``params``.
      state: the initial state, shaped like ``cell.initial_state(batch_shape)``;
        ``None`` means zeros.
      seq_lengths: integer array of shape ``batch_shape``, values in
        ``[0, time]``. Steps at or past a sequence's length leave its state
        unchanged and give zero outputs; the final state is the state at its
        last valid step. The padding never matters: the inputs there are
        replaced by zeros before the run, so values and gradients are the
        same whatever it holds (NaN and inf included), and its gradient is
        zero. The range is checked when the values are concrete; traced
        values (under ``jit``) are clamped to ``[0, time]``: a negative length
        runs no step, one past the end runs every step, in either direction
        and either ``impl``.
      reverse: run each sequence from its last valid step to its first
        (padding stays at the end); outputs stay in their original positions,
        as in the backward layer of a bidirectional RNN.
      time_major: whether time is the leading axis of ``xs`` and the outputs.
      impl: ``"auto"`` (the default: the fused engine, with the Pallas
        kernels on the platforms where they were measured faster, today
        none; see :data:`jaxrnn.kernels.PALLAS_BY_DEFAULT`), ``"fused"``
        (the fused recurrence engine, its loops in XLA), ``"pallas"`` (the
        fused engine with each chunk's recurrence in one Pallas kernel:
        Triton on GPU, Mosaic on TPU, the Pallas interpreter on CPU, chosen
        when the function is lowered; a cell or shape the kernel cannot
        take raises a ``ValueError``), ``"parallel"`` (parallel in time:
        Newton's method over the whole sequence, see ``method``) or
        ``"scan"`` (the reference: ``lax.scan`` over ``cell(...)``,
        differentiated by JAX). A linear-recurrence cell
        (:class:`~jaxrnn.MinGRU`, :class:`~jaxrnn.MinLSTM`,
        :class:`~jaxrnn.LRU`, :class:`~jaxrnn.RGLRU`) runs by an associative
        scan under ``"auto"`` and ``"parallel"``, and by ``"scan"``; the
        fused engine and the kernels do not take it.
      residuals: what the fused forward keeps for its backward pass:
        ``"auto"`` (the default: the fastest policy whose residuals fit
        ``residual_budget``, see :func:`jaxrnn.kernels.residual_policy`),
        ``"gates"``, ``"states"`` or an int ``K`` (keep every K-th state).
        The scan reference ignores it.
      residual_budget: bytes that ``residuals="auto"`` lets this call's
        residuals take; ``None`` takes the platform's default
        (:data:`jaxrnn.kernels.DEFAULT_RESIDUAL_BUDGET`: 2 GiB on CPU,
        1 GiB on GPU and TPU).
      bptt_clip: if given, the per-example norm of the state gradient is
        clipped to this value at every step of the backward pass (Graves,
        2013), through :func:`jaxrnn.clipping.clip_gradient`; ``None`` keeps
        gradients exact. Values are unchanged either way. A concrete value
        must be positive; a traced one (under ``jit``) that is not (zero,
        negative or NaN) makes the gradients NaN, so that a training step's
        finite-check skips the step instead of training on a meaningless
        threshold.
      unroll: passed to :func:`jax.lax.scan`.
      precision: passed to every matrix product (a ``jax.lax.Precision``),
        forward and backward.
      method: with ``impl="parallel"``, how each Newton iteration is solved:
        ``"deer"`` (full Jacobians, the default), ``"quasi"`` (their
        diagonals), ``"elk"`` or ``"quasi-elk"`` (damped
        Levenberg-Marquardt steps by a parallel Kalman smoother). See
        :mod:`jaxrnn.parallel`.
      tol: with ``impl="parallel"``, the largest residual
        ``|s_t − f(s_{t−1}, x_t)|`` accepted; ``None`` is
        :func:`jaxrnn.parallel.default_tol` of the state dtype.
      max_iter: with ``impl="parallel"``, the most Newton iterations
        (``None``: 100; for the undamped ``"deer"`` and ``"quasi"`` never more
        than the sequence length, after which they are exact).
      on_failure: with ``impl="parallel"``, what a run that does not reach
        ``tol`` does: ``"fallback"`` (the default: the sequential scan
        computes the result), ``"raise"`` (a
        :class:`jaxrnn.parallel.NotConvergedError`; under ``jit`` it arrives
        wrapped in a ``JaxRuntimeError``) or ``"nan"`` (NaN states and outputs).
        Never a silently wrong answer.
      damping: ELK's damping ``λ`` (``None``:
        :data:`jaxrnn.parallel.DEFAULT_DAMPING`).
      dropout: the rate of variational dropout on the inputs: one mask per
        sequence, the same at every step (Gal & Ghahramani 2016; Keras's
        ``dropout``), scaled by ``1/(1-p)``. Every ``impl``.
      recurrent_dropout: the same on the state the recurrent GEMM reads,
        ``hz_t = (h_{t-1} ⊙ m) W_hh`` (Keras's ``recurrent_dropout``); the
        state and outputs themselves are not dropped. Needs a cell whose
        step is one recurrent GEMM (:attr:`~jaxrnn.Cell.elementwise`) and a
        sequential ``impl``.
      zoneout: the probability that a unit of the state keeps its previous
        value at a step, drawn afresh per step and per state leaf (an LSTM's
        ``h`` and ``c`` apart; Krueger et al. 2017). With
        ``deterministic=True`` it applies its expectation
        ``s_t = p·s_{t-1} + (1-p)·s̃_t``. Needs a sequential ``impl``.
      key: the PRNG key the masks are drawn from; required when a rate is
        above zero and ``deterministic`` is false. The fused engine and the
        scan draw the same masks from the same key, so they agree exactly.
      deterministic: inference mode: no dropout, zoneout by its expectation;
        ``key`` is not needed.

    Returns:
      ``(final_state, ys)``: the final state (shaped like ``state``) and the
      outputs ``h_t`` for every step, shaped like ``xs`` with
      ``cell.output_size`` features (``hidden_size``; ``proj_size`` for an
      LSTM with projections), in the dtype of ``xs``.

    Mixed precision: with bfloat16 or float16 ``params`` and ``xs``, the
    matrix products take half-precision inputs and accumulate in float32, and
    the state (``state`` and the final state) is float32; ``ys`` are rounded
    to the dtype of ``xs`` so that layers chain.

    ``impl="fused"`` (and ``"pallas"``, ``"auto"``, ``"parallel"``, and the
    linear-recurrence cells' associative scan) has a hand-written reverse-mode
    derivative (``jax.custom_vjp``): ``jax.grad``, ``jax.vjp`` and
    ``jax.jacrev`` work, forward mode (``jax.jvp``, ``jax.jacfwd``) does not;
    use ``impl="scan"`` there.

    Example:
      >>> import jax, jaxrnn as jr
      >>> cell = jr.GRU(hidden_size=16)
      >>> params = cell.init(jax.random.PRNGKey(0), input_size=4)
      >>> xs = jax.numpy.ones((2, 10, 4))
      >>> final, ys = jr.rnn(cell, params, xs, impl="scan")
      >>> final.shape, ys.shape
      ((2, 16), (2, 10, 16))
    """
    final, ys, _ = rnn_with_info(
        cell, params, xs, state, seq_lengths=seq_lengths, reverse=reverse,
        time_major=time_major, impl=impl, residuals=residuals,
        residual_budget=residual_budget, bptt_clip=bptt_clip, unroll=unroll,
        precision=precision, method=method, tol=tol, max_iter=max_iter,
        on_failure=on_failure, damping=damping, dropout=dropout,
        recurrent_dropout=recurrent_dropout, zoneout=zoneout, key=key,
        deterministic=deterministic,
    )
    return final, ys


def rnn_with_info(
    cell: Cell,
    params: Params,
    xs: Array,
    state: State | None = None,
    *,
    seq_lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    impl: str = "auto",
    residuals: str | int = "auto",
    residual_budget: int | None = None,
    bptt_clip: float | None = None,
    unroll: int | bool = 1,
    precision: Any = None,
    method: str | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    on_failure: str | None = None,
    damping: float | None = None,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
    key: Array | None = None,
    deterministic: bool = False,
) -> tuple[State, Array, NewtonInfo | None]:
    """:func:`rnn`, and how a Newton run went: ``(final_state, ys, info)``.

    ``info`` is a :class:`jaxrnn.parallel.NewtonInfo` for a nonlinear cell
    run with ``impl="parallel"``, else ``None``. (What
    :func:`jaxrnn.diagnostics.newton_convergence` reads.)
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a jaxrnn Cell, got {_checks.describe(cell)}")
    _check_options(impl, residuals, residual_budget, bptt_clip, unroll)
    newton = _check_parallel(cell, impl, bptt_clip, method, tol, max_iter, on_failure, damping)
    rates = _dropout.check(dropout, recurrent_dropout, zoneout, key, deterministic)
    _dropout.check_cell(cell, rates, impl, isinstance(cell, LinearCell))
    _check_flag("reverse", reverse)
    _check_flag("time_major", time_major)
    input_size = cell.check_params(params)
    dtype = params.w_ih.dtype
    _checks.sequence("xs", xs, time_major=time_major, input_size=input_size, dtype=dtype)

    layout = BatchLayout.of(xs, time_major)
    num_steps, batch_shape = layout.num_steps, layout.batch_shape
    if state is None:
        state = cell.initial_state(batch_shape, accumulation_dtype(dtype))
    else:
        cell.check_state(state, batch_shape, dtype, source="xs")
    if seq_lengths is not None:
        _check_seq_lengths(seq_lengths, batch_shape, num_steps)

    # Flatten the batch dims into one (a free reshape in either layout):
    # xs is (B, T, I), or (T, B, I) when time-major.
    time_axis = layout.time_axis
    xs = layout.flatten(xs)
    flat_state = layout.flatten_state(state)
    flat_lengths = (
        None if seq_lengths is None else _flat_lengths(seq_lengths, layout.size, num_steps)
    )
    if flat_lengths is not None:
        xs = _zero_padding(xs, flat_lengths, time_axis)
    if reverse:
        xs = reverse_padded(xs, flat_lengths, time_axis)
    # The masks, for the flat batch and in the order the steps run (with
    # reverse, zoneout's step t is the t-th step taken).
    masks = _dropout.draw(key, rates, deterministic, xs, time_axis, flat_state, cell.gemm_input)
    xs_in = _dropout.drop_inputs(xs, masks.inputs, time_axis)
    clip_is_traced = bptt_clip is not None and not _checks.is_concrete(bptt_clip)

    info = None
    if impl == "scan":
        final, ys = _scan_impl(
            cell, params, jnp.moveaxis(xs_in, time_axis, 0), flat_state, flat_lengths,
            bptt_clip, unroll, precision, masks,
        )
        ys = jnp.moveaxis(ys, 0, time_axis)
    elif isinstance(cell, LinearCell):
        final, ys = run_linear(
            cell, params, xs_in, flat_state, flat_lengths, time_major=time_major,
            precision=precision,
        )
    elif impl == "parallel":
        final, ys, info = run_newton(
            cell, params, xs_in, flat_state, flat_lengths, time_major=time_major,
            opts=newton, precision=precision,
        )
    else:
        final, ys = run_impl(
            impl, cell, params, xs_in, flat_state, flat_lengths, time_major=time_major,
            residuals=residuals, residual_budget=residual_budget, bptt_clip=bptt_clip,
            precision=precision, unroll=unroll, recurrent_mask=masks.recurrent,
            zoneout_masks=_dropout.zone_in_layout(masks.zone, time_axis),
            zoneout=masks.zoneout,
        )
    if clip_is_traced:
        final, ys = _nan_gradient_unless(jnp.asarray(bptt_clip) > 0, (final, ys))
    if reverse:
        ys = reverse_padded(ys, flat_lengths, time_axis)
    ys = ys.astype(xs.dtype)

    return layout.restore_state(final), layout.restore(ys), info


# --------------------------------------------------------------------------
# bidirectional layers and stacks


def _check_pair(name: str, value: Any) -> tuple[Any, Any]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(
            f"{name} must be a (forward, backward) pair, got {_checks.describe(value)}"
        )
    return value[0], value[1]


def bidirectional_rnn(
    cells: Sequence[Cell],
    params: Sequence[Any],
    xs: Array,
    states: Sequence[Any] | None = None,
    *,
    seq_lengths: Array | None = None,
    time_major: bool = False,
    merge: str | Callable[[Array, Array], Array] = "concat",
    impl: str = "auto",
    residuals: str | int = "auto",
    residual_budget: int | None = None,
    bptt_clip: float | None = None,
    unroll: int | bool = 1,
    precision: Any = None,
    method: str | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    on_failure: str | None = None,
    damping: float | None = None,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
    key: Array | None = None,
    deterministic: bool = False,
) -> tuple[tuple[Any, Any], Array]:
    """A bidirectional layer: a forward and a reverse :func:`rnn`, merged.

    The backward direction runs each sequence from its last valid step to
    its first (``reverse=True``), so with ``seq_lengths`` the padding never
    feeds it; its outputs are in their original time positions.

    Args:
      cells: ``(forward_cell, backward_cell)``; they may differ.
      params: ``(forward_params, backward_params)``.
      xs: inputs, as for :func:`rnn`.
      states: ``(forward_state, backward_state)`` or ``None`` (zeros).
      seq_lengths: as for :func:`rnn`, shared by both directions.
      time_major: as for :func:`rnn`.
      merge: ``"concat"`` (features ``H_fw + H_bw``), ``"sum"`` (needs equal
        hidden sizes) or a callable ``merge(ys_fw, ys_bw)``.
      impl: as for :func:`rnn`.
      residuals: as for :func:`rnn`.
      residual_budget: as for :func:`rnn`.
      bptt_clip: as for :func:`rnn`.
      unroll: as for :func:`rnn`.
      precision: as for :func:`rnn`.
      method: as for :func:`rnn` (``impl="parallel"``).
      tol: as for :func:`rnn`.
      max_iter: as for :func:`rnn`.
      on_failure: as for :func:`rnn`.
      damping: as for :func:`rnn`.
      dropout: as for :func:`rnn`; each direction draws its own masks.
      recurrent_dropout: as for :func:`rnn`.
      zoneout: as for :func:`rnn`.
      key: as for :func:`rnn`; split between the two directions.
      deterministic: as for :func:`rnn`.

    Returns:
      ``((final_fw, final_bw), ys)``.
    """
    cell_fw, cell_bw = _check_pair("cells", cells)
    params_fw, params_bw = _check_pair("params", params)
    state_fw, state_bw = (None, None) if states is None else _check_pair("states", states)
    if isinstance(merge, str):
        if merge not in _MERGES:
            raise ValueError(
                f"merge must be one of {sorted(_MERGES)} or a callable, got {merge!r}"
            )
        if merge == "sum" and cell_fw.output_size != cell_bw.output_size:
            raise ValueError(
                'merge="sum" needs equal output sizes, got '
                f"{cell_fw.output_size} (forward) and {cell_bw.output_size} (backward)"
            )
        merge_fn = _MERGES[merge]
    elif callable(merge):
        merge_fn = merge
    else:
        raise TypeError(
            f"merge must be a string or a callable, got {_checks.describe(merge)}"
        )
    kwargs = dict(
        seq_lengths=seq_lengths,
        time_major=time_major,
        impl=impl,
        residuals=residuals,
        residual_budget=residual_budget,
        bptt_clip=bptt_clip,
        unroll=unroll,
        precision=precision,
        method=method,
        tol=tol,
        max_iter=max_iter,
        on_failure=on_failure,
        damping=damping,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        zoneout=zoneout,
        deterministic=deterministic,
    )
    key_fw, key_bw = _split_key(key, 2)
    final_fw, ys_fw = rnn(cell_fw, params_fw, xs, state_fw, key=key_fw, **kwargs)
    final_bw, ys_bw = rnn(cell_bw, params_bw, xs, state_bw, reverse=True, key=key_bw, **kwargs)
    return (final_fw, final_bw), merge_fn(ys_fw, ys_bw)


def _split_key(key: Any, num: int) -> tuple[Any, ...]:
    """``num`` keys from ``key`` (``None`` stays ``None``: :func:`rnn` says
    whether it was needed)."""
    if key is None:
        return (None,) * num
    _checks.prng_key("key", key)
    return tuple(jax.random.split(key, num))


def _is_bidirectional(layer: Any) -> bool:
    return isinstance(layer, (tuple, list))


def _check_layers(layers: Any) -> None:
    if not isinstance(layers, (tuple, list)) or not layers:
        raise TypeError(
            "layers must be a non-empty sequence of cells or (forward, backward) "
            f"cell pairs, got {_checks.describe(layers)}"
        )
    for i, layer in enumerate(layers):
        cells = _check_pair(f"layers[{i}]", layer) if _is_bidirectional(layer) else (layer,)
        for c in cells:
            if not isinstance(c, Cell):
                raise TypeError(
                    f"layers[{i}] must be a jaxrnn Cell or a (forward, backward) pair "
                    f"of cells, got {_checks.describe(c)}"
                )


def _layer_output_size(layer: Layer) -> int:
    """The features a layer passes to the next: its cells' ``output_size``
    (an ``LSTM(proj_size=P)`` gives ``P``), a bidirectional pair's two summed."""
    if _is_bidirectional(layer):
        return layer[0].output_size + layer[1].output_size
    return layer.output_size


def init_stacked(
    key: Array, layers: Sequence[Layer], input_size: int, dtype: Any = None
) -> tuple[Any, ...]:
    """Initialises the parameters of a stack for :func:`stacked_rnn`.

    Args:
      key: a PRNG key.
      layers: a sequence whose items are cells (unidirectional layers) or
        ``(forward_cell, backward_cell)`` pairs (bidirectional layers, whose
        outputs are concatenated).
      input_size: the number of input features of the first layer.
      dtype: as for ``Cell.init``.

    Returns:
      A tuple with one item per layer: a params NamedTuple, or a
      ``(forward_params, backward_params)`` pair.
    """
    _check_layers(layers)
    params = []
    size = input_size
    for layer, k in zip(layers, jax.random.split(key, len(layers))):
        if _is_bidirectional(layer):
            k_fw, k_bw = jax.random.split(k)
            params.append((layer[0].init(k_fw, size, dtype), layer[1].init(k_bw, size, dtype)))
        else:
            params.append(layer.init(k, size, dtype))
        size = _layer_output_size(layer)
    return tuple(params)


def stacked_rnn(
    layers: Sequence[Layer],
    params: Sequence[Any],
    xs: Array,
    states: Sequence[Any] | None = None,
    *,
    seq_lengths: Array | None = None,
    time_major: bool = False,
    impl: str = "auto",
    residuals: str | int = "auto",
    residual_budget: int | None = None,
    bptt_clip: float | None = None,
    unroll: int | bool = 1,
    precision: Any = None,
    method: str | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    on_failure: str | None = None,
    damping: float | None = None,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
    layer_dropout: float = 0.0,
    key: Array | None = None,
    deterministic: bool = False,
) -> tuple[tuple[Any, ...], Array]:
    """Runs a stack of layers, each feeding its outputs to the next.

    Args:
      layers: cells and ``(forward_cell, backward_cell)`` pairs, as for
        :func:`init_stacked`; a pair is a :func:`bidirectional_rnn` layer
        with concatenated outputs.
      params: one item per layer, as made by :func:`init_stacked`.
      xs: inputs of the first layer, as for :func:`rnn`.
      states: one initial state per layer (a pair for a bidirectional layer),
        or ``None`` for zeros everywhere.
      seq_lengths: as for :func:`rnn`, shared by every layer.
      time_major: as for :func:`rnn`, shared by every layer.
      impl: as for :func:`rnn`, shared by every layer.
      residuals: as for :func:`rnn`, shared by every layer.
      residual_budget: as for :func:`rnn`, per layer.
      bptt_clip: as for :func:`rnn`, shared by every layer.
      unroll: as for :func:`rnn`, shared by every layer.
      precision: as for :func:`rnn`, shared by every layer.
      method: as for :func:`rnn` (``impl="parallel"``), shared by every layer.
      tol: as for :func:`rnn`, shared by every layer.
      max_iter: as for :func:`rnn`, shared by every layer.
      on_failure: as for :func:`rnn`, shared by every layer.
      damping: as for :func:`rnn`, shared by every layer.
      dropout: as for :func:`rnn`: variational dropout on every layer's
        inputs (Keras's ``dropout`` on each layer of a stack).
      recurrent_dropout: as for :func:`rnn`, in every layer.
      zoneout: as for :func:`rnn`, in every layer.
      layer_dropout: plain dropout (a fresh mask per element and step) on
        each layer's outputs before the next layer, not after the last:
        PyTorch's ``nn.LSTM(num_layers=L, dropout=p)``.
      key: as for :func:`rnn`; each layer draws from its own split.
      deterministic: as for :func:`rnn`: no dropout of any kind.

    Returns:
      ``(finals, ys)``: a tuple of each layer's final state (a pair for a
      bidirectional layer) and the last layer's outputs.
    """
    _check_layers(layers)
    if not isinstance(params, (tuple, list)) or len(params) != len(layers):
        raise ValueError(
            f"params must hold one item per layer ({len(layers)}), got "
            f"{len(params) if isinstance(params, (tuple, list)) else _checks.describe(params)}"
        )
    if states is None:
        states = (None,) * len(layers)
    elif not isinstance(states, (tuple, list)) or len(states) != len(layers):
        raise ValueError(
            f"states must be None or hold one item per layer ({len(layers)}), got "
            f"{len(states) if isinstance(states, (tuple, list)) else _checks.describe(states)}"
        )
    kwargs = dict(
        seq_lengths=seq_lengths,
        time_major=time_major,
        impl=impl,
        residuals=residuals,
        residual_budget=residual_budget,
        bptt_clip=bptt_clip,
        unroll=unroll,
        precision=precision,
        method=method,
        tol=tol,
        max_iter=max_iter,
        on_failure=on_failure,
        damping=damping,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        zoneout=zoneout,
        deterministic=deterministic,
    )
    layer_dropout = _dropout.check_rate("layer_dropout", layer_dropout)
    between = layer_dropout > 0 and not deterministic and len(layers) > 1
    if between and key is None:
        raise ValueError(
            f"layer_dropout={layer_dropout} needs key, a PRNG key to draw its masks from "
            "(jax.random.key(0)); for inference pass deterministic=True instead"
        )
    keys = _split_key(key, 2 * len(layers))
    finals = []
    ys = xs
    for i, (layer, p, s) in enumerate(zip(layers, params, states)):
        if between and i > 0:
            ys = _dropout.layer_dropout(keys[len(layers) + i], layer_dropout, ys)
        if _is_bidirectional(layer):
            final, ys = bidirectional_rnn(layer, p, ys, s, key=keys[i], **kwargs)
        else:
            final, ys = rnn(layer, p, ys, s, key=keys[i], **kwargs)
        finals.append(final)
    return tuple(finals), ys
