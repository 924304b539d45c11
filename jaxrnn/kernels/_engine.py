"""Stage 4 of the engine: the ``jax.custom_vjp`` binding, and :func:`fused_rnn`.

Every cell is the same computation (see :mod:`jaxrnn.cells`)::

    xz_t = x_t W_ih + b                    input projection
    hz_t = h_{t-1} W_hh (+ rb)             recurrent projection
    s_t  = pointwise(xz_t, hz_t, s_{t-1})

The engine, read in order:

1. ``._chunks``: the static options, the chunk length, slicing chunks out of
   the caller's arrays;
2. ``._forward``: the forward pass, chunk by chunk, and the residual policies;
3. ``._backward``: the backward pass, chunk by chunk, with one reverse step
   per kind of cell and the batched weight-gradient GEMMs;
4. this module: the ``custom_vjp`` that ties them together;

with the two sequential loops behind one seam (``._loops``) and the
``shard_map`` wrapper for Explicit meshes in ``._sharded``. Masking, per-step
gradient clipping and mixed precision are handled once for all cells.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._sharding import vary, varying_axes_of
from ..cells import Cell, accumulation_dtype
from . import _pallas
from ._backward import Residuals, backward
from ._chunks import make_options, residual_policy
from ._forward import forward
from ._loops import XLA, InnerLoops
from ._pallas import check_cell, loops_for, pallas_applies
from ._sharded import explicit_mesh, per_shard

Array = jax.Array


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(cell, opts, params, xs, s0, lengths, clip, probe, rmask, zone):
    # Not differentiated: keep nothing but the outputs.
    final, ys, _ = forward(
        cell, params, dataclasses.replace(opts, residuals="checkpoints"), xs, s0, lengths,
        rmask, zone,
    )
    return final, ys


def _fused_fwd(cell, opts, params, xs, s0, lengths, clip, probe, rmask, zone):
    final, seqs, extras = forward(cell, params, opts, xs, s0, lengths, rmask, zone)
    ys = seqs if opts.residuals == "checkpoints" else cell.output(seqs)
    # Residuals: the caller's own inputs (params, xs, s0, lengths, clip), the
    # per-step states unless checkpointing (for GRU and plain RNNs these are
    # the outputs ys themselves), the policy's extras, and the dropout masks.
    kept = None if opts.residuals == "checkpoints" else seqs
    return (final, ys), Residuals(
        params, xs, s0, lengths, clip, probe, kept, extras, rmask, zone
    )


def _fused_bwd(cell, opts, res, cts):
    d_final, d_ys = cts
    dparams, dxs, ds0, dprobe = backward(cell, opts, res, d_final, d_ys)
    dclip = None if res.clip is None else jnp.zeros_like(res.clip)
    # The masks are drawn from a key: nothing to differentiate.
    drmask = None if res.rmask is None else jnp.zeros_like(res.rmask)
    return dparams, dxs, ds0, None, dclip, dprobe, drmask, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_rnn(
    cell: Cell,
    params: Any,
    xs: Array,
    state: Any,
    seq_lengths: Array | None,
    *,
    time_major: bool,
    residuals: Any = "auto",
    bptt_clip: Any = None,
    precision: Any = None,
    unroll: Any = 1,
    probe: Any = None,
    loops: InnerLoops = XLA,
    residual_budget: int | None = None,
    recurrent_mask: Array | None = None,
    zoneout_masks: Any = None,
    zoneout: float | None = None,
) -> tuple[Any, Array]:
    """The fused kernel on ``xs (T, B, I)`` (time-major) or ``(B, T, I)``.

    Validation, extra batch dims and ``reverse`` are :func:`jaxrnn.rnn`'s
    job; this runs forward in time, each example over its valid steps.
    Forward-mode differentiation raises a ``TypeError`` pointing to
    ``impl="scan"``.

    ``loops``: the seam's inner loops (``._loops.XLA``, or
    ``._pallas.PALLAS`` for ``impl="pallas"``).

    Dropout (the masks are drawn by :func:`jaxrnn.rnn`):
    ``recurrent_mask (B, H)`` multiplies the recurrent GEMM's input at every
    step (Gal & Ghahramani's variational dropout, already scaled);
    ``zoneout_masks``, booleans shaped like the state with a time axis in
    the layout of ``xs``, keep a unit's previous value where true;
    ``zoneout = p`` without masks applies zoneout's expectation
    ``p·s_{t-1} + (1-p)·s_t`` (inference).

    ``probe`` (an internal-use keyword: :mod:`jaxrnn.diagnostics` passes it
    for its state gradients; leave it ``None``): ``None``, or zeros
    shaped like the state with a time axis in the layout of ``xs`` (LSTM:
    ``LSTMState(h, c)`` of ``(B, T, H)`` batch-major). Its value is ignored
    (taken as zero); its cotangent is ``dL/ds_t``, the gradient of the loss
    with respect to the state after step ``t``, for every ``t`` in one
    backward pass (what a zero added to the state after each step receives).

    Returns:
      ``(final_state, ys)``, ``ys`` in the layout of ``xs``, zero past each
      length, in the state's dtype.
    """
    num_steps = xs.shape[0 if time_major else 1]
    if num_steps == 0:
        # Nothing to run: the final state is the initial one, no outputs.
        h = cell.output(state)
        return state, jnp.zeros(xs.shape[:-1] + h.shape[-1:], h.dtype)
    time_axis = 0 if time_major else 1
    clip = (
        None if bptt_clip is None else jnp.asarray(bptt_clip, accumulation_dtype(params.w_hh.dtype))
    )

    def run(params, xs, *rest):
        # The options see this device's batch (under shard_map, its shard).
        batch = xs.shape[1 - time_axis]
        policy = residuals
        if residuals == "auto":
            policy = residual_policy(cell, num_steps, batch, params.w_hh.dtype, residual_budget)
        opts = make_options(
            num_steps,
            batch,
            time_axis,
            policy,
            seq_lengths is not None,
            bptt_clip is not None,
            precision,
            unroll,
            loops,
            zoneout if zoneout_masks is None else None,
        )
        # One type for every input (see ._sharded), then the kernel.
        args = (params, xs, *rest)
        args = vary(args, varying_axes_of(args))
        return _fused(cell, opts, *args)

    args = (params, xs, state, seq_lengths, clip, probe, recurrent_mask, zoneout_masks)
    try:
        mesh = explicit_mesh(args)
        if mesh is None:
            return run(*args)
        return per_shard(run, mesh, 1 - time_axis, args)
    except TypeError as e:
        if "forward-mode" not in str(e) or "custom_vjp" not in str(e):
            raise
        raise TypeError(
            'impl="fused" has a hand-written reverse-mode derivative '
            "(jax.custom_vjp), so forward-mode differentiation (jax.jvp, "
            'jax.jacfwd, jax.hessian) is not available for it; use impl="scan" '
            "for forward mode"
        ) from e


def run_impl(
    impl: str, cell: Cell, params: Any, xs: Array, state: Any, seq_lengths: Array | None,
    **options: Any,
) -> tuple[Any, Array]:
    """:func:`fused_rnn` with the inner loops of ``impl``.

    - ``"fused"``: the XLA loops;
    - ``"pallas"``: the Pallas kernels, on the platform the call is lowered
      for; a cell or shape they cannot take is an error;
    - ``"auto"``: the kernels on the platforms of ``PALLAS_BY_DEFAULT``
      where they can take the shape, the XLA loops everywhere else.
    """
    if impl == "fused":
        return fused_rnn(cell, params, xs, state, seq_lengths, **options)
    if impl == "pallas":
        check_cell(cell)
        loops = loops_for(cell, fallback=False)
        return fused_rnn(cell, params, xs, state, seq_lengths, loops=loops, **options)
    if not pallas_applies(cell):
        return fused_rnn(cell, params, xs, state, seq_lengths, **options)

    def with_loops(loops: Any) -> Any:
        return lambda *args: fused_rnn(cell, *args, loops=loops, **options)

    kernels = with_loops(loops_for(cell, fallback=True))
    return lax.platform_dependent(
        params, xs, state, seq_lengths,
        default=with_loops(XLA),
        **{platform: kernels for platform in sorted(_pallas.PALLAS_BY_DEFAULT)},
    )
