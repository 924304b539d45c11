"""The inner loops as Pallas kernels: a whole chunk's recurrence in one kernel.

:class:`PallasLoops` implements the seam of ``._loops``. Each loop of a
chunk (``C`` steps forward, or ``C`` steps in reverse) is ONE ``pallas_call``:
its grid runs over tiles of ``bt`` examples, and each program runs all
``C`` steps for its tile in a ``fori_loop``, calling the engine's step
function on values read from memory. Per step that is the recurrent GEMM
``h W_hh`` (tensor cores / MXU), the cell's ``pointwise_blocks``, masking,
and in reverse the VJP of ``pointwise``, per-example ``bptt_clip`` and
``dh = dhz W_hhᵀ``; the hoisted ``xz`` streams in and the per-step outputs
stream out. What stays in XLA is everything the seam leaves above it: the
input GEMMs, the batched weight-gradient GEMMs, chunking, the residual
policies.

The kernel is generic over the step: it sees pytrees of arrays, the
weights ``(…)`` whole, the carry ``(B, F)`` and the per-step inputs and
outputs ``(C, B, F)`` tiled over ``B``. The engine hands it gate blocks
(see ``._gates``), so no value is ever sliced in the kernel, and every
tensor is ``(bt, H)``, ``(bt, 1)`` or ``(H, H)``.

**The backend is chosen when the function is lowered**, not when it is
traced (``jax.lax.platform_dependent``): Triton on CUDA, Mosaic on TPU and
the Pallas interpreter on CPU, which runs the same kernel body exactly, for
tests. One jitted function carries all three, so a training step exported
from a CPU for ``platforms=["cuda"]`` holds the GPU kernels. A shape a
backend cannot take lowers to an error naming the limit (see
:func:`unsupported_reason`); the same function still lowers for the others.

Tiling and limits (see docs/engine.md):

- **Triton (GPU)**: ``bt = 16`` examples per program (``tl.dot``'s minimum
  M), the batch padded to a multiple of it; ``H`` a power of two (Triton
  tensors must be), 16 to 128 for 4-byte params, 256 for 2-byte, 64 for
  float64; each gate's ``(H, H)`` block of ``W_hh`` is read per step
  through L2 (the operand of one ``tl.dot``), not kept resident.
- **Mosaic (TPU)**: ``bt`` up to 128 rows (a multiple of 8), the whole
  chunk's tile and ``W_hh`` resident in VMEM, within a 32 MiB budget
  (``bt`` shrinks to fit, else the shape is refused); no float64.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ..cells import Cell
from ._loops import XLA, Step

Array = jax.Array
tmap = jax.tree_util.tree_map

#: The Pallas backends, by the platform they lower for.
BACKENDS = {"cpu": "interpret", "cuda": "triton", "tpu": "mosaic"}

# Triton: tl.dot needs M, N, K >= 16; the largest H per parameter itemsize
# keeps one gate's (H, H) operand within 128 KiB of shared memory (half an
# H100 SM's 228 KiB), a design bound that no GPU run has tested yet.
TRITON_BLOCK_BATCH = 16
TRITON_MAX_HIDDEN = {8: 64, 4: 128, 2: 256}
# Mosaic: rows per program, and the VMEM the kernel may use.
MOSAIC_MAX_BLOCK_BATCH = 128
MOSAIC_VMEM_BYTES = 32 * 2**20


@dataclasses.dataclass(frozen=True)
class PallasLoops:
    """The seam's two loops as Pallas kernels.

    Args:
      block_batch: examples per kernel program; ``None`` takes each
        backend's rule (see the module docstring). Tests set it to run
        several programs at small sizes.
      fallback: where a backend cannot take the shape, run the same steps
        as a ``lax.scan`` (what ``impl="auto"`` does) instead of failing
        to lower (what ``impl="pallas"`` does).
      joins_gates: the cell's ``pointwise_blocks`` is the default, which
        concatenates its ``G > 1`` gate blocks: Triton cannot.
    """

    block_batch: int | None = None
    fallback: bool = False
    joins_gates: bool = False

    #: the steps take the projections in gate blocks (see ``._gates``)
    gate_blocks = True

    def forward_chunk(
        self, step: Step, weights: Any, init: Any, xs: Any, *, unroll: Any
    ) -> tuple[Any, Any]:
        del unroll  # the kernel's loop is not unrolled
        return run_loop(step, weights, init, xs, reverse=False, loops=self)

    def backward_chunk(
        self, step: Step, weights: Any, init: Any, xs: Any, *, unroll: Any
    ) -> tuple[Any, Any]:
        del unroll
        return run_loop(step, weights, init, xs, reverse=True, loops=self)


PALLAS = PallasLoops()


#: The platforms on which ``impl="auto"`` (the default) runs the Pallas
#: kernels: those where a benchmark run has measured them faster than the
#: XLA engine. None has yet (no GPU or TPU run so far), so ``"auto"`` is
#: the XLA engine everywhere; see docs/engine.md.
PALLAS_BY_DEFAULT: frozenset[str] = frozenset()


def _kernel_cell(cell: Any) -> bool:
    """Whether the kernels can run ``cell``: a step that is ``pointwise``
    after the plain recurrent GEMM."""
    return cell.elementwise and cell.plain_projections


def check_cell(cell: Any) -> None:
    """Raises a ``ValueError`` unless the kernels can run ``cell``."""
    if not _kernel_cell(cell):
        what = (
            "its step is not pointwise after one GEMM (elementwise = False)"
            if not cell.elementwise
            else "it replaces the plain projections (plain_projections = False)"
        )
        raise ValueError(
            f'impl="pallas" runs cells whose step is one recurrent GEMM h @ W_hh '
            f"then pointwise; {_name(cell)} is not: {what}. Use impl=\"fused\" for it"
        )


def _name(cell: Any) -> str:
    if type(cell).__name__ == "GRU" and not getattr(cell, "reset_after", True):
        return "GRU(reset_after=False)"
    if getattr(cell, "proj_size", None) is not None:
        return f"{type(cell).__name__}(proj_size={cell.proj_size})"
    return type(cell).__name__


def loops_for(cell: Any, *, fallback: bool) -> PallasLoops:
    """The Pallas loops for ``cell``."""
    joins = cell.num_gates > 1 and type(cell).pointwise_blocks is Cell.pointwise_blocks
    if not joins and not fallback:
        return PALLAS
    return PallasLoops(fallback=fallback, joins_gates=joins)


def pallas_applies(cell: Any) -> bool:
    """Whether ``impl="auto"`` may run ``cell`` with the kernels anywhere."""
    return bool(PALLAS_BY_DEFAULT) and _kernel_cell(cell)


# --------------------------------------------------------------------------
# what each backend can take


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What the tiling rules read off one loop's arrays."""

    batch: int  # B
    steps: int  # C
    weights: tuple[tuple[tuple[int, ...], Any], ...]  # (shape, dtype) of each weight
    rows: tuple[tuple[int, Any], ...]  # (features, dtype) of each per-example array
    # (carry leaves once, per-step inputs and outputs C times: see row_bytes)
    per_step: tuple[bool, ...]  # whether each of `rows` has a time axis

    def row_bytes(self) -> int:
        """Bytes of one example's tile: carries, and every step's inputs and outputs."""
        return sum(
            f * jnp.dtype(d).itemsize * (self.steps if timed else 1)
            for (f, d), timed in zip(self.rows, self.per_step)
        )

    def weight_bytes(self) -> int:
        return sum(math.prod(s) * jnp.dtype(d).itemsize for s, d in self.weights)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def block_batch_for(backend: str, shapes: Shapes, requested: int | None) -> int:
    """Examples per program (the batch is padded to a multiple of it)."""
    if requested is not None:
        return requested
    if backend == "triton":
        return TRITON_BLOCK_BATCH
    if backend == "mosaic":
        bt = min(_round_up(shapes.batch, 8), MOSAIC_MAX_BLOCK_BATCH)
        while bt > 8 and _mosaic_bytes(shapes, bt) > MOSAIC_VMEM_BYTES:
            bt = max(8, _round_up(bt // 2, 8))
        return bt
    return shapes.batch  # the interpreter: one program


def _mosaic_bytes(shapes: Shapes, bt: int) -> int:
    # Every block is double-buffered by the pipeline.
    return 2 * (shapes.weight_bytes() + bt * shapes.row_bytes())


def unsupported_reason(
    backend: str, shapes: Shapes, bt: int, joins_gates: bool = False
) -> str | None:
    """Why ``backend`` cannot run this loop, or ``None`` if it can
    (``joins_gates``: see :class:`PallasLoops`)."""
    dtypes = {jnp.dtype(d) for _, d in shapes.weights} | {jnp.dtype(d) for _, d in shapes.rows}
    if backend == "interpret":
        return None
    if backend == "triton":
        if joins_gates:
            return (
                "Triton cannot concatenate values, and this cell has several gates "
                "but no pointwise_blocks of its own: define Cell.pointwise_blocks "
                "(see jaxrnn.LSTM's) to run it on GPUs"
            )
        if bt < 16 or not _power_of_two(bt):
            return f"the Triton kernel needs a batch tile that is a power of two >= 16, got {bt}"
        for shape, dtype in shapes.weights:
            for n in shape:
                if n != 1 and not _power_of_two(n):
                    return (
                        f"the Triton kernel needs hidden_size a power of two "
                        f"(Triton tensors are), got a weight block of shape {shape}"
                    )
            if len(shape) == 2 and shape[0] > 1:
                limit = TRITON_MAX_HIDDEN.get(jnp.dtype(dtype).itemsize)
                if shape[0] < 16:
                    return f"the Triton kernel needs hidden_size >= 16, got {shape[0]}"
                if limit is None or shape[0] > limit:
                    return (
                        f"the Triton kernel takes hidden_size up to {limit} for "
                        f"{jnp.dtype(dtype)} params (one gate's W_hh block per step "
                        f"in shared memory), got {shape[0]}"
                    )
        for f, _ in shapes.rows:
            if not _power_of_two(f):
                return f"the Triton kernel needs a power-of-two feature size, got {f}"
        return None
    if backend == "mosaic":
        if jnp.dtype(jnp.float64) in dtypes:
            return "TPUs have no float64: use float32 or bfloat16 params"
        if bt % 8:
            return f"the Mosaic kernel needs a batch tile that is a multiple of 8, got {bt}"
        need = _mosaic_bytes(shapes, bt)
        if need > MOSAIC_VMEM_BYTES:
            return (
                f"the Mosaic kernel needs {need / 2**20:.1f} MiB of VMEM at "
                f"{bt} examples per program (W_hh and a chunk of {shapes.steps} steps), "
                f"over its {MOSAIC_VMEM_BYTES // 2**20} MiB budget: use a smaller "
                "hidden_size or shorter chunks (residuals=K)"
            )
        return None
    return f"no Pallas backend for this platform (Pallas runs on {sorted(BACKENDS)})"


# An error raised when the function is lowered for one platform only: the
# other platforms' branches of platform_dependent are not lowered at all.
_unsupported_p = Primitive("jaxrnn_pallas_unsupported")
_unsupported_p.multiple_results = True
_unsupported_p.def_abstract_eval(lambda *args, outs, reason: outs)


def _raise_unsupported(ctx: Any, *args: Any, outs: Any, reason: str) -> Any:
    del ctx, args, outs
    raise ValueError(f'impl="pallas" cannot run here: {reason}')


mlir.register_lowering(_unsupported_p, _raise_unsupported)


def _unsupported_batched(args: Any, dims: Any, *, outs: Any, reason: str) -> Any:
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    outs = tuple(jax.core.ShapedArray((size, *o.shape), o.dtype) for o in outs)
    return _unsupported_p.bind(*args, outs=outs, reason=reason), (0,) * len(outs)


def _unsupported_jvp(primals: Any, tangents: Any, *, outs: Any, reason: str) -> Any:
    del tangents
    out = _unsupported_p.bind(*primals, outs=outs, reason=reason)
    return out, [ad.Zero(o) for o in outs]


batching.primitive_batchers[_unsupported_p] = _unsupported_batched
ad.primitive_jvps[_unsupported_p] = _unsupported_jvp


# --------------------------------------------------------------------------
# the kernel


def run_loop(
    step: Step, weights: Any, init: Any, xs: Any, *, reverse: bool, loops: PallasLoops
) -> tuple[Any, Any]:
    """One loop of the seam as a ``pallas_call`` on the platform it lowers for."""
    w_leaves, w_tree = jax.tree_util.tree_flatten(weights)
    c_leaves, c_tree = jax.tree_util.tree_flatten(init)
    x_leaves, x_tree = jax.tree_util.tree_flatten(xs)
    steps, batch = x_leaves[0].shape[:2]
    _, y_like = jax.eval_shape(step, weights, init, tmap(lambda a: a[0], xs))
    y_like, y_tree = jax.tree_util.tree_flatten(y_like)
    for name, leaves, rank in (
        ("weights", w_leaves, 2), ("carry", c_leaves, 2), ("inputs", x_leaves, 3),
    ):
        if any(a.ndim != rank for a in leaves):
            raise ValueError(f"Pallas loops take rank-{rank} {name}, got {[a.shape for a in leaves]}")
    if any(a.ndim != 2 for a in y_like):
        raise ValueError(f"Pallas loops take (B, F) step outputs, got {[a.shape for a in y_like]}")
    shapes = Shapes(
        batch=batch,
        steps=steps,
        weights=tuple((a.shape, a.dtype) for a in w_leaves),
        rows=tuple((a.shape[-1], a.dtype) for a in (*c_leaves, *x_leaves, *c_leaves, *y_like)),
        per_step=(False,) * len(c_leaves) + (True,) * len(x_leaves)
        + (False,) * len(c_leaves) + (True,) * len(y_like),
    )
    kernel = _Kernel(
        step=step,
        trees=(w_tree, c_tree, x_tree),
        counts=(len(w_leaves), len(c_leaves), len(x_leaves)),
        bools=tuple(a.dtype == jnp.bool_ for a in x_leaves),
        steps=steps,
        reverse=reverse,
    )
    # Booleans travel as int32 (neither Triton nor Mosaic loads i1 tiles).
    x_in = [a.astype(jnp.int32) if a.dtype == jnp.bool_ else a for a in x_leaves]
    y_specs = tuple((a.shape[-1], a.dtype) for a in y_like)
    outs_like = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in c_leaves] + [
        jax.ShapeDtypeStruct((steps, *a.shape), a.dtype) for a in y_like
    ]

    def xla(*flat: Array) -> list[Array]:
        # The same steps as a lax.scan (impl="auto" where a kernel cannot run).
        w, c, x = kernel.inputs(*kernel.split(flat))
        run = XLA.backward_chunk if reverse else XLA.forward_chunk
        carry, ys = run(step, w, c, x, unroll=1)
        return [*jax.tree_util.tree_leaves(carry), *jax.tree_util.tree_leaves(ys)]

    def refuse(reason: str) -> Any:
        return xla if loops.fallback else functools.partial(_unsupported, outs_like, reason)

    def branch(platform: str) -> Any:
        backend = BACKENDS[platform]
        bt = block_batch_for(backend, shapes, loops.block_batch)
        reason = unsupported_reason(backend, shapes, bt, loops.joins_gates)
        if reason is not None:
            return refuse(reason)
        return functools.partial(_call, kernel, backend, bt, y_specs)

    outs = lax.platform_dependent(
        *w_leaves,
        *c_leaves,
        *x_in,
        default=refuse(unsupported_reason("none", shapes, batch)),
        **{platform: branch(platform) for platform in BACKENDS},
    )
    carry = jax.tree_util.tree_unflatten(c_tree, outs[: len(c_leaves)])
    ys = jax.tree_util.tree_unflatten(y_tree, outs[len(c_leaves) :])
    return carry, ys


def _unsupported(outs_like: list, reason: str, *args: Array) -> list[Array]:
    outs = tuple(jax.core.ShapedArray(o.shape, o.dtype) for o in outs_like)
    return _unsupported_p.bind(*args, outs=outs, reason=reason)


@dataclasses.dataclass(frozen=True)
class _Kernel:
    """The kernel body: ``steps`` calls of ``step`` on one tile of examples."""

    step: Step
    trees: tuple  # treedefs of (weights, carry, per-step inputs)
    counts: tuple[int, int, int]  # leaves of weights, carry, inputs
    bools: tuple[bool, ...]  # which inputs were booleans
    steps: int
    reverse: bool

    def split(self, flat: Any) -> tuple[Any, Any, Any]:
        """The leading weights, carry and per-step inputs of ``flat``."""
        nw, nc, nx = self.counts
        return flat[:nw], flat[nw : nw + nc], flat[nw + nc : nw + nc + nx]

    def inputs(self, w: Any, c: Any, x: Any) -> tuple[Any, Any, Any]:
        """The step's ``(weights, carry, x_t)`` from their leaves, the
        booleans restored from the int32 they travel as."""
        w_tree, c_tree, x_tree = self.trees
        x = [a != 0 if b else a for a, b in zip(x, self.bools)]
        return (
            jax.tree_util.tree_unflatten(w_tree, list(w)),
            jax.tree_util.tree_unflatten(c_tree, list(c)),
            jax.tree_util.tree_unflatten(x_tree, x),
        )

    def __call__(self, *refs: Any) -> None:
        w_refs, c_refs, x_refs = self.split(refs)
        outs = refs[sum(self.counts) :]
        out_c_refs, y_refs = outs[: len(c_refs)], outs[len(c_refs) :]

        def body(i: Any, carry: Any) -> Any:
            t = self.steps - 1 - i if self.reverse else i
            # Weights are read per step: on TPU from VMEM, where the
            # pipeline put them once; on GPU through L2.
            w, c, x = self.inputs([r[...] for r in w_refs], carry, [r[t] for r in x_refs])
            c, y = self.step(w, c, x)
            for r, v in zip(y_refs, jax.tree_util.tree_leaves(y)):
                r[t] = v.astype(r.dtype)
            return tuple(
                v.astype(r.dtype) for v, r in zip(jax.tree_util.tree_leaves(c), c_refs)
            )

        final = lax.fori_loop(0, self.steps, body, tuple(r[...] for r in c_refs))
        for r, v in zip(out_c_refs, final):
            r[...] = v


def _call(kernel: _Kernel, backend: str, bt: int, y_specs: tuple, *args: Array) -> list:
    """The ``pallas_call`` for one backend, the batch padded to a multiple of ``bt``."""
    w_args, c_args, x_args = kernel.split(args)
    nc = len(c_args)
    batch = c_args[0].shape[0]
    padded = _round_up(batch, bt)
    pad = padded - batch
    if pad:
        c_args = [jnp.pad(a, ((0, pad), (0, 0))) for a in c_args]
        x_args = [jnp.pad(a, ((0, 0), (0, pad), (0, 0))) for a in x_args]
    steps = x_args[0].shape[0]
    y_like = [jax.ShapeDtypeStruct((padded, f), d) for f, d in y_specs]

    def whole(a: Any) -> Any:
        ndim = len(a.shape)
        return pl.BlockSpec(a.shape, lambda i: (0,) * ndim)

    def rows(a: Any) -> Any:
        return pl.BlockSpec((bt, a.shape[-1]), lambda i: (i, 0))

    def timed(a: Any) -> Any:
        return pl.BlockSpec((steps, bt, a.shape[-1]), lambda i: (0, i, 0))

    out_shape = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in c_args] + [
        jax.ShapeDtypeStruct((steps, *a.shape), a.dtype) for a in y_like
    ]
    outs = pl.pallas_call(
        kernel,
        grid=(padded // bt,),
        in_specs=[whole(a) for a in w_args] + [rows(a) for a in c_args]
        + [timed(a) for a in x_args],
        out_specs=[rows(a) for a in c_args] + [timed(a) for a in y_like],
        out_shape=out_shape,
        interpret=backend == "interpret",
        compiler_params=_compiler_params(backend),
        name="jaxrnn_recurrence",
    )(*w_args, *c_args, *x_args)
    if pad:
        outs = [o[:batch] for o in outs[:nc]] + [o[:, :batch] for o in outs[nc:]]
    return list(outs)


def _compiler_params(backend: str) -> Any:
    if backend == "triton":
        from jax.experimental.pallas import triton as plt

        # One loop per program, nothing to software-pipeline.
        return plt.CompilerParams(num_warps=4, num_stages=1)
    if backend == "mosaic":
        from jax.experimental.pallas import tpu as pltpu

        return pltpu.CompilerParams(
            dimension_semantics=("parallel",), vmem_limit_bytes=MOSAIC_VMEM_BYTES
        )
    return None


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k
