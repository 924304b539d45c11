"""The fused recurrence engine: one ``jax.custom_vjp`` kernel for every cell.

Every cell is the same computation (see :mod:`jaxrnn.cells`)::

    xz_t = x_t W_ih + b                    input projection
    hz_t = h_{t-1} W_hh (+ rb)             recurrent projection
    s_t  = pointwise(xz_t, hz_t, s_{t-1})

The time axis is cut into ``N`` chunks of ``C`` steps and, when ``C`` does not
divide ``T``, a shorter tail chunk. Chunks are sliced straight out of the
caller's arrays (batch- or time-major), so no transposed or padded copy of the
inputs, outputs or their gradients is ever made.

Forward: per chunk, one GEMM computes ``xz`` for all ``C`` steps; a scan over the
chunk does only ``hz_t`` and ``pointwise``. What is kept for the backward pass
depends on ``residuals``:

=============  ================================================  ===================
policy         kept                                              memory
=============  ================================================  ===================
``"gates"``    ``xz``, ``hz`` and the state at every step         ``T·B·(2·G·H + S)``
``"states"``   the state at every step (for GRU and plain RNNs    ``T·B·S``
               the outputs themselves)
``K`` (int)    the state entering every K-th step (chunks of K)   ``T/K·B·S``
=============  ================================================  ===================

Backward, chunk by chunk from the last: rebuild what the chunk needs (``"states"``:
its ``xz`` and ``hz`` with one GEMM each; ``K``: its forward scan first), run a
reverse scan that carries only the state gradient ``ds`` and does, per step,
``pointwise``'s VJP and one GEMM ``dh = dhz W_hhᵀ``; then, for the whole chunk at
once, ``dW_hh += Hᵀ dHZ``, ``dW_ih += Xᵀ dXZ``, the bias sums and ``dX = dXZ
W_ihᵀ`` (cuDNN's split into backward-data and backward-weights). No buffer of
``T·B·G·H`` exists except under ``"gates"``.

Masking, per-step gradient clipping and mixed precision are handled here once
for all cells. A cell whose step is not one GEMM plus elementwise work
(``GRU(reset_after=False)``) runs through the same scaffolding with the VJP of
its whole step; its recurrent weight gradient is then accumulated step by step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._sharding import vary, varying_axes, varying_axes_of
from ..cells import Cell, accumulation_dtype
from ..clipping import _clip_per_example

Array = jax.Array

_tmap = jax.tree_util.tree_map


@dataclasses.dataclass(frozen=True)
class Options:
    """Static configuration of one kernel call (hashable)."""

    num_steps: int  # T
    chunk: int  # C: steps per chunk
    time_axis: int  # 0 (time-major) or 1 (batch-major) in the caller's arrays
    residuals: str  # "gates", "states" or "checkpoints"
    masked: bool  # whether seq_lengths apply
    clipped: bool  # whether bptt_clip is set
    precision: Any
    unroll: Any

    @property
    def num_chunks(self) -> int:
        """Full chunks; a tail of ``T mod C`` steps follows them."""
        return self.num_steps // self.chunk

    @property
    def tail(self) -> int:
        return self.num_steps % self.chunk


def default_chunk(num_steps: int) -> int:
    """Chunk length of the "gates" and "states" policies: about ``sqrt(T) / 2``.

    The backward pass holds a few ``C·B·G·H`` chunk buffers (memory grows
    with ``C``) and pays a fixed cost per chunk (time grows with ``T / C``);
    ``C ~ sqrt(T)`` balances the two, clamped to [8, 64].
    """
    return int(min(64, max(8, round(num_steps**0.5 / 2))))


def make_options(
    num_steps: int,
    time_axis: int,
    residuals: Any,
    masked: bool,
    clipped: bool,
    precision: Any,
    unroll: Any,
) -> Options:
    if isinstance(residuals, str):
        chunk, policy = default_chunk(num_steps), residuals
    else:
        chunk, policy = int(residuals), "checkpoints"
    return Options(
        num_steps=num_steps,
        chunk=max(1, min(chunk, num_steps)),
        time_axis=time_axis,
        residuals=policy,
        masked=masked,
        clipped=clipped,
        precision=precision,
        unroll=unroll,
    )


# --------------------------------------------------------------------------
# sharding
#
# The recurrence is independent across examples, so the kernel is written for
# one device's examples and made to run under every way of distributing them:
# - Auto mesh axes (``jax.sharding.Mesh``): types carry no sharding and XLA
#   partitions the kernel by itself; nothing to do.
# - Explicit mesh axes (what ``jax.make_mesh`` makes by default): an array's
#   sharding is part of its type, and the ops the kernel is built from
#   (writes into per-step buffers, ``C·B``-row GEMMs, their transposes) would
#   each need it spelled out. The kernel instead runs under ``shard_map``
#   over the explicit axes, each device on its own examples; the transpose of
#   ``shard_map`` sums the weight gradients over the devices.
# - Inside ``shard_map`` (the user's or the one above), values that differ
#   between devices have a "varying" type; a scan's carry and a custom_vjp's
#   cotangents must keep their type, so every input, and every zero the
#   kernel makes, is cast to vary over the same axes as the data (the
#   transpose of that cast sums the gradients of replicated weights).


def _explicit_mesh(tree: Any) -> Any:
    """The mesh with Explicit axes that some leaf of ``tree`` is typed on, or ``None``."""
    for leaf in jax.tree_util.tree_leaves(tree):
        mesh = getattr(jax.typeof(leaf).sharding, "mesh", None)
        if mesh is not None and jax.sharding.AxisType.Explicit in getattr(mesh, "axis_types", ()):
            return mesh
    return None


def _per_shard(fn: Any, mesh: Any, batch_axis: int, args: tuple) -> Any:
    """Runs ``fn(params, xs, state, lengths, clip, probe)`` under ``shard_map``
    over ``mesh``'s Explicit axes, with the batch split the way ``xs`` splits
    it and everything else replicated (resharded so first if it is not)."""
    P = jax.sharding.PartitionSpec
    explicit = {
        name
        for name, kind in zip(mesh.axis_names, mesh.axis_types)
        if kind == jax.sharding.AxisType.Explicit
    }
    params, xs, state, lengths, clip, probe = args
    spec = jax.typeof(xs).sharding.spec
    batch = spec[batch_axis] if len(spec) > batch_axis else None
    names = (batch,) if isinstance(batch, str) else tuple(batch or ())
    batch = batch if set(names) <= explicit else None

    def seq_spec(ndim):  # xs, ys and probe leaves: (B, T, F) or (T, B, F)
        return P(*[batch if i == batch_axis else None for i in range(ndim)])

    specs = (
        _tmap(lambda _: P(), params),
        seq_spec(xs.ndim),
        _tmap(lambda _: P(batch), state),
        None if lengths is None else P(batch),
        None if clip is None else P(),
        None if probe is None else _tmap(lambda q: seq_spec(q.ndim), probe),
    )
    args = jax.tree_util.tree_map(
        lambda spec, a: _tmap(
            lambda leaf: jax.sharding.reshard(leaf, jax.sharding.NamedSharding(mesh, spec)), a
        ),
        specs,
        args,
        is_leaf=lambda x: isinstance(x, P) or x is None,
    )
    out_specs = (_tmap(lambda _: P(batch), state), seq_spec(xs.ndim))
    return jax.shard_map(
        fn, mesh=mesh, in_specs=specs, out_specs=out_specs, axis_names=explicit
    )(*args)


# --------------------------------------------------------------------------
# helpers


def _inject(fn: Any, like: Any, ct: Array) -> Any:
    """The cotangent of a state for a cotangent ``ct`` of ``fn(state)``.

    ``fn`` is ``cell.output`` or ``cell.gemm_input``: a linear selection of
    the state, whose VJP does not depend on the primal ``like``.
    """
    return jax.vjp(fn, like)[1](ct)[0]


def _tree_add(a: Any, b: Any) -> Any:
    return _tmap(jnp.add, a, b)


def _select(valid: Array, a: Any, b: Any) -> Any:
    """``where(valid, a, b)`` leaf by leaf; ``valid`` is ``(B,)``."""
    return _tmap(lambda x, y: jnp.where(valid[:, None], x, y), a, b)


def _zeros_acc(params: Any) -> Any:
    """Zero parameter gradients in the accumulation dtype (float32 for half params)."""
    return _tmap(lambda p: vary(jnp.zeros(p.shape, accumulation_dtype(p.dtype)), varying_axes(p)), params)


def _acc_add(acc: Any, g: Any) -> Any:
    return _tmap(lambda a, b: a + b.astype(a.dtype), acc, g)


def _take(seq: Array, start: Any, size: int, opts: Options) -> Array:
    """Steps ``[start, start + size)`` of a sequence, time-major: ``(size, B, ...)``."""
    part = lax.dynamic_slice_in_dim(seq, start, size, axis=opts.time_axis)
    return jnp.swapaxes(part, 0, 1) if opts.time_axis == 1 else part


def _put(seq: Array, part: Array, start: Any, opts: Options) -> Array:
    """Writes a time-major ``part (size, B, ...)`` at step ``start`` of ``seq``."""
    if opts.time_axis == 1:
        part = jnp.swapaxes(part, 0, 1)
    return lax.dynamic_update_slice_in_dim(seq, part.astype(seq.dtype), start, axis=opts.time_axis)


def _state_at(seqs: Any, s0: Any, t: Any, opts: Options) -> Any:
    """The state after step ``t - 1`` read from per-step sequences (``s0`` at ``t = 0``)."""
    prev = _tmap(lambda q: _take(q, jnp.maximum(t - 1, 0), 1, opts)[0], seqs)
    return _tmap(lambda p, a: jnp.where(t > 0, p, a), prev, s0)


def _validity(lengths: Array | None, start: Any, size: int, batch: int) -> Array:
    """``(size, B)`` booleans: whether step ``start + i`` is within each length."""
    t = start + jnp.arange(size, dtype=jnp.int32)[:, None]
    if lengths is None:
        return jnp.ones((size, batch), bool)
    return t < lengths[None, :]


def _transposed(w: Array) -> Array:
    """``wᵀ`` as its own row-major array.

    A dot that contracts ``w``'s second axis (``dhz @ w.T``) or the rows of
    both operands (``xᵀ @ dz``) makes XLA's CPU GEMM repack an operand at
    every call: at B=8, H=128 the backward step's ``dhz @ W_hhᵀ`` costs
    ~2.7x a plain ``a @ b``. Transposing once and hiding the transpose
    behind a barrier (so that XLA does not fold it back into the dot)
    leaves only plain row-major GEMMs.
    """
    return lax.optimization_barrier(w.T)


def _scan(step: Any, init: Any, xs: Any, *, reverse: bool = False, unroll: Any = 1) -> Any:
    """``lax.scan(step, init, xs)`` with each step's inputs read one step ahead.

    ``lax.scan`` hands ``step`` slices of ``xs`` that XLA fuses, as
    dynamic slices, into the step's elementwise kernels; XLA's CPU backend
    then emits those kernels without vectorising their ``exp`` and ``tanh``
    (an LSTM step at B=32, H=64 took ~30 us instead of ~5). Here the slice
    for step ``t + 1`` is taken at the end of step ``t`` and carried, so the
    kernels read plain buffers, and the carry and outputs leave each step
    through a barrier, so the output writes do not pull the elementwise work
    into themselves either.
    """
    length = jax.tree_util.tree_leaves(xs)[0].shape[0]
    first = length - 1 if reverse else 0

    def at(t):
        return _tmap(lambda a: lax.dynamic_index_in_dim(a, t, keepdims=False), xs)

    def body(carry, t):
        c, x_t = carry
        c, y = step(c, x_t)
        c, y = lax.optimization_barrier((c, y))
        nxt = jnp.clip(t - 1 if reverse else t + 1, 0, length - 1)
        return (c, at(nxt)), y

    x0 = _tmap(lambda a: a[first], xs)
    (c, _), ys = lax.scan(
        body, (init, x0), jnp.arange(length, dtype=jnp.int32), reverse=reverse, unroll=unroll
    )
    return c, ys


def _flat_projection(fn: Any, x: Array) -> Array:
    """Applies a projection to ``(C, B, F)`` as ONE GEMM over ``C·B`` rows."""
    C, B = x.shape[:2]
    z = fn(x.reshape(C * B, x.shape[-1]))
    return z.reshape(C, B, z.shape[-1])


# --------------------------------------------------------------------------
# forward


def _forward_chunk(
    cell: Cell, params: Any, opts: Options, s0: Any, x_c: Array, valid_c: Array
) -> tuple[Any, tuple[Any, Array, Array | None]]:
    """Runs one chunk: ``x_c (C, B, I)``; returns the last state and
    ``(states (C, B, ...), xz (C, B, G·H), hz (C, B, G·H) or None)``; with
    ``"gates"`` and an additive cell, ``(states, None, xz + hz)``."""
    xz_c = _flat_projection(lambda x: cell.input_projection(params, x, opts.precision), x_c)
    keep_hz = opts.residuals == "gates" and cell.elementwise
    # An additive cell reads its projections only through xz + hz: keep the sum.
    additive = cell.additive

    def step(s, inputs):
        xz_t, valid_t = inputs
        if cell.elementwise:
            hz_t = cell.recurrent_projection(params, cell.gemm_input(s), opts.precision)
            new = cell.pointwise(xz_t, hz_t, s)
        else:
            hz_t = None
            new = cell.step_from_projection(params, xz_t, s, opts.precision)
        if opts.masked:
            new = _select(valid_t, new, s)
        kept = None
        if keep_hz:
            kept = xz_t + hz_t if additive else hz_t
        return new, (new, kept)

    last, (states, hz_c) = _scan(step, s0, (xz_c, valid_c), unroll=opts.unroll)
    if keep_hz and additive:
        return last, (states, None, hz_c)  # hz_c holds xz + hz
    return last, (states, xz_c, hz_c)


def _seq_buffers(cell: Cell, s0: Any, xs: Array, opts: Options, full: bool) -> Any:
    """Zero per-step buffers in the caller's layout: every state leaf when
    ``full``, else only the output ``h``."""
    T = opts.num_steps

    def buf(leaf):
        shape = list(xs.shape[:-1]) + [leaf.shape[-1]]
        shape[opts.time_axis] = T
        return vary(jnp.zeros(shape, leaf.dtype), varying_axes(xs))

    return _tmap(buf, s0) if full else buf(cell.output(s0))


def _forward(
    cell: Cell, params: Any, opts: Options, xs: Array, s0: Any, lengths: Array | None
) -> tuple[Any, Any, Any]:
    """Runs every chunk, writing the states into per-step buffers.

    Returns:
      ``(final, seqs, res)``: ``seqs`` holds every state leaf per step
      (under "checkpoints" only the output ``h``), masked to zero past each
      length; ``res`` is ``(chunks, tail)`` of the policy's extras: the
      ``(xz, hz)`` of each chunk under "gates", the state entering each chunk
      under "checkpoints", ``None`` under "states".
    """
    B = xs.shape[1 - opts.time_axis]
    full = opts.residuals != "checkpoints"

    def run(s, seqs, start, size):
        valid = _validity(lengths, start, size, B)
        last, (states, xz, hz) = _forward_chunk(
            cell, params, opts, s, _take(xs, start, size, opts), valid
        )
        if opts.masked:
            states = _select_seq(valid, states)
        written = states if full else cell.output(states)
        seqs = _tmap(lambda q, part: _put(q, part, start, opts), seqs, written)
        extra = (xz, hz) if opts.residuals == "gates" else (s if not full else None)
        return last, seqs, extra

    def chunk(carry, c):
        s, seqs = carry
        last, seqs, extra = run(s, seqs, c * opts.chunk, opts.chunk)
        return (last, seqs), extra

    seqs = _seq_buffers(cell, s0, xs, opts, full)
    (s, seqs), extras = lax.scan(
        chunk, (s0, seqs), jnp.arange(opts.num_chunks, dtype=jnp.int32)
    )
    tail = None
    if opts.tail:
        s, seqs, tail = run(s, seqs, opts.num_chunks * opts.chunk, opts.tail)
    return s, seqs, (extras, tail)


def _select_seq(valid: Array, states: Any) -> Any:
    """Zeroes each example's states past its length: ``valid (C, B)``."""
    return _tmap(lambda q: jnp.where(valid[..., None], q, jnp.zeros_like(q)), states)


# --------------------------------------------------------------------------
# backward


def _backward_chunk(
    cell: Cell,
    params: Any,
    opts: Options,
    clip: Array | None,
    ds: Any,
    entry: Any,
    states_c: Any,
    x_c: Array,
    dy_c: Array,
    valid_c: Array,
    gates: tuple[Array, Array | None] | None,
    w_hh_t: Array,
    probed: bool = False,
) -> tuple[Any, Any, Array, Any]:
    """The reverse scan of one chunk, then its batched weight gradients.

    Args:
      ds: cotangent of the state leaving the chunk.
      entry: the state entering the chunk.
      states_c: the states after each step of the chunk ``(C, B, ...)``.
      gates: ``(xz, hz)`` kept by the forward, or ``None`` to recompute.
      w_hh_t: ``W_hhᵀ``, materialised once per backward pass (see
        :func:`_transposed`).

    Returns:
      ``(ds_entry, dparams, dx_c, dstates_c)``: ``dstates_c`` holds the
      cotangent of the state after each step, ``dL/ds_t`` (only when
      ``probed``, else ``None``).
    """
    prev = _tmap(lambda e, s: jnp.concatenate([e[None], s[:-1]]), entry, states_c)
    h_prev = cell.gemm_input(prev)  # (C, B, H)
    proj_in = lambda p, x: cell.input_projection(p, x, opts.precision)  # noqa: E731
    proj_rec = lambda p, h: cell.recurrent_projection(p, h, opts.precision)  # noqa: E731
    if gates is not None:
        xz_c, hz_c = gates
    else:
        xz_c = _flat_projection(functools.partial(proj_in, params), x_c)
        hz_c = (
            _flat_projection(functools.partial(proj_rec, params), h_prev)
            if cell.elementwise
            else None
        )
    additive = cell.elementwise and cell.additive
    if additive:
        # One buffer for the pre-activations xz + hz (the gates policy kept
        # exactly that), and dxz = dhz: one buffer for both gradients.
        if xz_c is not None:
            hz_c = xz_c + hz_c
        xz_c = None
    def step(carry, inputs):
        ds, dp = carry
        xz_t, hz_t, s_prev, dy_t, valid_t = inputs
        total = _tree_add(ds, _inject(cell.output, s_prev, dy_t))
        if opts.masked:
            # An example past its length contributes nothing at this step
            # (a zero cotangent through the step's VJP) ...
            total = _select(valid_t, total, _tmap(jnp.zeros_like, total))
        if additive:
            pointwise = lambda a, s: cell.pointwise(a, jnp.zeros_like(a), s)  # noqa: E731
            _, vjp = jax.vjp(pointwise, hz_t, s_prev)
            dhz, ds_prev = vjp(total)
            dxz = None
        elif cell.elementwise:
            _, vjp = jax.vjp(cell.pointwise, xz_t, hz_t, s_prev)
            dxz, dhz, ds_prev = vjp(total)
        if cell.elementwise:
            dh = jnp.matmul(
                dhz.astype(w_hh_t.dtype),
                w_hh_t,
                precision=opts.precision,
                preferred_element_type=dhz.dtype,
            )
            ds_prev = _tree_add(ds_prev, _inject(cell.gemm_input, s_prev, dh))
        else:
            # Not one GEMM plus elementwise work: the VJP of the whole step,
            # its recurrent weight gradient accumulated here, step by step.
            step_fn = lambda p, xz, s: cell.step_from_projection(p, xz, s, opts.precision)  # noqa: E731
            _, vjp = jax.vjp(step_fn, params, xz_t, s_prev)
            dp_t, dxz, ds_prev = vjp(total)
            dp = _acc_add(dp, dp_t)
            dhz = None
        if opts.clipped:
            ds_prev = _clip_per_example(ds_prev, clip)
        if opts.masked:
            # ... and passes its state gradient through unchanged.
            ds_prev = _select(valid_t, ds_prev, ds)
        return (ds_prev, dp), (dxz, dhz, total if probed else None)

    # Only a non-elementwise cell accumulates parameter gradients per step.
    (ds_entry, dp), (dxz_c, dhz_c, dstates_c) = _scan(
        step,
        (ds, None if cell.elementwise else _zeros_acc(params)),
        (xz_c, hz_c, prev, dy_c, valid_c),
        reverse=True,
        unroll=opts.unroll,
    )
    # The whole chunk's weight, bias and input gradients, one GEMM each.
    C, B = x_c.shape[:2]
    flat = lambda a: a.reshape(C * B, a.shape[-1])  # noqa: E731
    if additive:
        dxz_c = dhz_c
    dp = _zeros_acc(params) if dp is None else dp
    if _plain_gemms(cell, params, "input_projection"):
        dxz = flat(dxz_c)
        # (dxz @ W_ihᵀ, once per chunk, is left to XLA: a transposed copy
        # of W_ih would cost its size in memory for no measurable gain.)
        dx = jnp.matmul(
            dxz, params.w_ih.T, precision=opts.precision, preferred_element_type=dxz.dtype
        )
        dp = _acc_fields(dp, w_ih=_nn_dot(_transposed(flat(x_c)), dxz, opts), b=dxz.sum(0))
    else:
        _, vjp_in = jax.vjp(proj_in, params, flat(x_c))
        dp_in, dx = vjp_in(flat(dxz_c))
        dp = _acc_add(dp, dp_in)
    if dhz_c is not None:
        dhz = flat(dhz_c)
        if _plain_gemms(cell, params, "recurrent_projection"):
            dp = _acc_fields(dp, w_hh=_nn_dot(_transposed(flat(h_prev)), dhz, opts))
            rb, vjp_rb = jax.vjp(cell.recurrent_bias, params)
            if rb is not None:
                dp = _acc_add(dp, vjp_rb(dhz.sum(0))[0])
        else:
            _, vjp_rec = jax.vjp(lambda p: proj_rec(p, flat(h_prev)), params)
            dp = _acc_add(dp, vjp_rec(dhz)[0])
    return ds_entry, dp, dx.reshape(C, B, x_c.shape[-1]), dstates_c


def _plain_gemms(cell: Cell, params: Any, method: str) -> bool:
    """Whether ``cell.<method>`` is the base class's ``x @ w (+ b)`` on full
    precision weights, so its gradients can be written as row-major GEMMs."""
    if getattr(type(cell), method) is not getattr(Cell, method):
        return False
    if not hasattr(params, "_replace"):
        return False
    w = params.w_ih if method == "input_projection" else params.w_hh
    return accumulation_dtype(w.dtype) == w.dtype


def _acc_fields(acc: Any, **grads: Array) -> Any:
    """Adds ``grads`` to the named fields of an accumulator NamedTuple."""
    return acc._replace(
        **{k: getattr(acc, k) + g.astype(getattr(acc, k).dtype) for k, g in grads.items()}
    )


def _nn_dot(a: Array, b: Array, opts: Options) -> Array:
    """``a @ b`` with both operands row-major and contracted the plain way."""
    return jnp.matmul(a, b, precision=opts.precision, preferred_element_type=a.dtype)


def _backward(
    cell: Cell,
    params: Any,
    opts: Options,
    clip: Array | None,
    xs: Array,
    s0: Any,
    lengths: Array | None,
    seqs: Any,
    res: Any,
    d_final: Any,
    d_ys: Array,
    probe: Any = None,
) -> tuple[Any, Array, Any, Any]:
    """The tail, then every chunk in reverse.

    Returns:
      ``(dparams, dxs, ds0, dprobe)``; ``dprobe`` (``None`` without a
      ``probe``) holds ``dL/ds_t`` for every step in the layout of ``probe``.
    """
    B = xs.shape[1 - opts.time_axis]
    extras, tail_extra = res
    checkpoints = opts.residuals == "checkpoints"

    probed = probe is not None
    w_hh_t = _transposed(params.w_hh)

    def run(ds, dp, dxs, dpr, start, size, extra):
        valid = _validity(lengths, start, size, B)
        x_c = _take(xs, start, size, opts)
        if checkpoints:
            entry = extra
            _, (states, _, _) = _forward_chunk(cell, params, opts, entry, x_c, valid)
        else:
            entry = _state_at(seqs, s0, start, opts)
            states = _tmap(lambda q: _take(q, start, size, opts), seqs)
        gates = extra if opts.residuals == "gates" else None
        ds, dp_c, dx_c, dst_c = _backward_chunk(
            cell, params, opts, clip, ds, entry, states, x_c,
            _take(d_ys, start, size, opts), valid, gates, w_hh_t, probed,
        )
        if probed:
            dpr = _tmap(lambda q, part: _put(q, part, start, opts), dpr, dst_c)
        return ds, _tree_add(dp, dp_c), _put(dxs, dx_c, start, opts), dpr

    dpr = _tmap(jnp.zeros_like, probe) if probed else None
    ds, dp, dxs = d_final, _zeros_acc(params), jnp.zeros_like(xs)
    if opts.tail:
        ds, dp, dxs, dpr = run(
            ds, dp, dxs, dpr, opts.num_chunks * opts.chunk, opts.tail, tail_extra
        )

    def chunk(carry, inputs):
        c, extra = inputs
        return run(*carry, c * opts.chunk, opts.chunk, extra), None

    (ds0, dparams, dxs, dpr), _ = lax.scan(
        chunk,
        (ds, dp, dxs, dpr),
        (jnp.arange(opts.num_chunks, dtype=jnp.int32), extras),
        reverse=True,
    )
    dparams = _tmap(lambda g, p: g.astype(p.dtype), dparams, params)
    return dparams, dxs, ds0, dpr


# --------------------------------------------------------------------------
# the custom_vjp kernel


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(cell, opts, params, xs, s0, lengths, clip, probe):
    # Not differentiated: keep nothing but the outputs.
    final, ys, _ = _forward(
        cell, params, dataclasses.replace(opts, residuals="checkpoints"), xs, s0, lengths
    )
    return final, ys


def _fused_fwd(cell, opts, params, xs, s0, lengths, clip, probe):
    final, seqs, res = _forward(cell, params, opts, xs, s0, lengths)
    ys = seqs if opts.residuals == "checkpoints" else cell.output(seqs)
    # Residuals: the caller's own inputs (params, xs, s0, lengths, clip), the
    # per-step states unless checkpointing (for GRU and plain RNNs these are
    # the outputs ys themselves), and the policy's extras.
    kept = None if opts.residuals == "checkpoints" else seqs
    return (final, ys), (params, xs, s0, lengths, clip, probe, kept, res)


def _fused_bwd(cell, opts, residuals, cts):
    params, xs, s0, lengths, clip, probe, seqs, res = residuals
    d_final, d_ys = cts
    dparams, dxs, ds0, dprobe = _backward(
        cell, params, opts, clip, xs, s0, lengths, seqs, res, d_final, d_ys, probe
    )
    dclip = None if clip is None else jnp.zeros_like(clip)
    return dparams, dxs, ds0, None, dclip, dprobe


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_rnn(
    cell: Cell,
    params: Any,
    xs: Array,
    state: Any,
    seq_lengths: Array | None,
    *,
    time_major: bool,
    residuals: Any = "states",
    bptt_clip: Any = None,
    precision: Any = None,
    unroll: Any = 1,
    probe: Any = None,
) -> tuple[Any, Array]:
    """The fused kernel on ``xs (T, B, I)`` (time-major) or ``(B, T, I)``.

    Validation, extra batch dims and ``reverse`` are :func:`jaxrnn.rnn`'s
    job; this runs forward in time, each example over its valid steps.
    Forward-mode differentiation raises a ``TypeError`` pointing to
    ``impl="scan"``.

    ``probe`` (private, for :mod:`jaxrnn.diagnostics`): ``None``, or zeros
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
    opts = make_options(
        num_steps,
        0 if time_major else 1,
        residuals,
        seq_lengths is not None,
        bptt_clip is not None,
        precision,
        unroll,
    )
    clip = (
        None
        if bptt_clip is None
        else jnp.asarray(bptt_clip, accumulation_dtype(params.w_hh.dtype))
    )

    def run(*args):
        # One type for every input (see "sharding" above), then the kernel.
        args = vary(args, varying_axes_of(args))
        return _fused(cell, opts, *args)

    args = (params, xs, state, seq_lengths, clip, probe)
    try:
        mesh = _explicit_mesh(args)
        if mesh is None:
            return run(*args)
        return _per_shard(run, mesh, 1 - opts.time_axis, args)
    except TypeError as e:
        if "forward-mode" not in str(e) or "custom_vjp" not in str(e):
            raise
        raise TypeError(
            'impl="fused" has a hand-written reverse-mode derivative '
            "(jax.custom_vjp), so forward-mode differentiation (jax.jvp, "
            'jax.jacfwd, jax.hessian) is not available for it; use impl="scan" '
            "for forward mode"
        ) from e
