"""What the linen and nnx modules share: carries, dtypes, and one call to ``jr.rnn``.

The modules are thin: they own parameters in jaxrnn's layout and hand them,
with the inputs, to :func:`run`, a pure function that gives ``jr.rnn``
the semantics of ``flax.linen.RNN`` (``reverse``/``keep_order``,
``return_carry``, Flax's carry layout).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from .. import _checks
from .._layout import BatchLayout
from .._rnn import reverse_padded
from .._rnn import rnn as _rnn
from ..cells import LSTM, Cell, LSTMState, accumulation_dtype

Array = jax.Array


def carry_to_state(cell: Cell, carry: Any, name: str = "initial_carry") -> Any:
    """A module's carry to jaxrnn's state.

    For LSTM the carry is Flax's ``(c, h)`` tuple; a jaxrnn ``LSTMState(h, c)``
    is recognised by its type and taken as it is. Other cells' carries are
    the array ``h`` in both libraries.
    """
    if isinstance(cell, LSTM):
        if isinstance(carry, LSTMState):
            return carry
        if isinstance(carry, (tuple, list)) and not hasattr(carry, "_fields") and len(carry) == 2:
            c, h = carry
            return LSTMState(h=h, c=c)
        raise TypeError(
            f"{name} must be Flax's LSTM carry, the tuple (c, h), or a jaxrnn "
            f"LSTMState(h, c), got {_checks.describe(carry)}"
        )
    return carry


def state_to_carry(cell: Cell, state: Any) -> Any:
    """jaxrnn's state to the modules' (Flax's) carry: LSTM gives ``(c, h)``."""
    if isinstance(cell, LSTM):
        return (state.c, state.h)
    return state


def check_stack_layers(layers: Any, module_type: type, kind: str) -> None:
    """A stack's layers: a non-empty sequence of modules (linen and nnx)."""
    if not isinstance(layers, (tuple, list)) or not layers:
        raise TypeError(
            f"layers must be a non-empty sequence of modules, got {_checks.describe(layers)}"
        )
    for i, m in enumerate(layers):
        if not isinstance(m, module_type):
            raise TypeError(
                f"layers[{i}] must be a {kind} module, got {_checks.describe(m)}"
            )


def compute_dtype(dtype: Any, inputs_dtype: Any, params: Any) -> Any:
    """``dtype``, or when it is ``None`` the promotion of inputs and params (Flax's rule)."""
    if dtype is not None:
        return _checks.float_dtype("dtype", dtype)
    leaves = jax.tree_util.tree_leaves(params)
    with jax.numpy_dtype_promotion("standard"):
        return jnp.result_type(inputs_dtype, *(jnp.asarray(p).dtype for p in leaves))


def cell_of(cell_type: type, layer: Any) -> Cell:
    """A cell of ``cell_type`` configured from ``layer``'s attributes of the same names.

    The named layers (``LSTM``, ``GRU``, ...) keep their cell's fields as
    their own attributes (``hidden_size``, ``forget_bias``, ``w_ih_init``,
    ...); a field the layer does not have keeps the cell's default.
    """
    names = [f.name for f in dataclasses.fields(cell_type) if f.init]
    return cell_type(**{n: getattr(layer, n) for n in names if hasattr(layer, n)})


def check_cell(cell: Any) -> Cell:
    """``cell``, checked to be a jaxrnn :class:`~jaxrnn.cells.Cell`."""
    if not isinstance(cell, Cell):
        raise TypeError(
            "cell must be a jaxrnn Cell (jr.LSTM(...), jr.GRU(...), a subclass "
            f"of jr.Cell, ...), got {_checks.describe(cell)}"
        )
    return cell


def dropout_active(layer: Any) -> bool:
    """Whether any of ``layer``'s dropout rates is above zero."""
    rates = (getattr(layer, n) for n in ("dropout", "recurrent_dropout", "zoneout"))
    # A rate that is not a number is jr.rnn's to refuse, by name.
    return any(isinstance(r, numbers.Real) and r > 0 for r in rates)


def pick_deterministic(call_value: Any, attribute: Any, active: bool) -> bool:
    """``deterministic``: the call's value, else the attribute's (Flax's
    convention: the call takes precedence). With a dropout rate above zero
    one of them must be given, as ``nn.Dropout`` requires; without, it does
    not matter and is ``False``."""
    value = attribute if call_value is None else call_value
    if value is None:
        if active:
            raise ValueError(
                "deterministic must be given, as an attribute or a call argument "
                "(False: draw dropout masks, training; True: inference), for a layer "
                "with dropout, recurrent_dropout or zoneout above zero"
            )
        return False
    if not isinstance(value, bool):
        raise TypeError(f"deterministic must be a bool or None, got {_checks.describe(value)}")
    return value


def state_param_shapes(cell: Cell, dtype: Any) -> dict[str, tuple[int, ...]]:
    """The learned initial state's parameters: one ``initial_<leaf>`` per
    state leaf (``initial_h``; LSTM adds ``initial_c``), each of the leaf's
    unbatched shape ``(F,)``."""
    template = jax.eval_shape(lambda: cell.initial_state((), dtype))
    return {f"initial_{k}": tuple(v.shape) for k, v in cell.state_leaves(template).items()}


def broadcast_state(cell: Cell, leaves: dict[str, Array], batch_shape: tuple[int, ...]) -> Any:
    """The state of :func:`state_param_shapes`'s parameters ``leaves``,
    broadcast over ``batch_shape`` (their gradient sums over the batch)."""
    template = jax.eval_shape(lambda: cell.initial_state((), jnp.float32))
    names = list(cell.state_leaves(template))
    _, treedef = jax.tree_util.tree_flatten(template)
    arrays = [
        jnp.broadcast_to(leaves[f"initial_{n}"], batch_shape + leaves[f"initial_{n}"].shape)
        for n in names
    ]
    return jax.tree_util.tree_unflatten(treedef, arrays)


def params_of(cell: Cell, tree: Any) -> Any:
    """A layer's ``params`` collection as the cell's params NamedTuple: its
    fields (a field absent from ``tree`` is ``None``: ``bias=False``), without
    the learned initial state."""
    return cell.params_type(**{f: tree.get(f) for f in cell.params_type._fields})


def variables_of(params: Any) -> dict[str, Any]:
    """A params NamedTuple as a layer's ``params`` collection (``None`` fields left out)."""
    return {k: v for k, v in params._asdict().items() if v is not None}


def batch_shape_of(inputs: Any, time_major: bool) -> tuple[int, ...]:
    return tuple(inputs.shape[1:-1] if time_major else inputs.shape[:-2])


def _bidirectional_parts(layer: Any) -> tuple[Any, Any] | None:
    fw, bw = getattr(layer, "forward_rnn", None), getattr(layer, "backward_rnn", None)
    return None if fw is None else (fw, bw)


def layer_cells(layer: Any, name: str) -> Any:
    """A layer module's jaxrnn cell, or the pair of a bidirectional layer's (linen and nnx)."""
    parts = _bidirectional_parts(layer)
    mods = parts if parts is not None else (layer,)
    cells = []
    for m in mods:
        if not isinstance(getattr(m, "cell", None), Cell):
            raise TypeError(
                f"{name} must be a jaxrnn.flax layer (RNN, LSTM, GRU, SimpleRNN, IRNN) "
                f"or a Bidirectional of two, got {type(m).__name__}"
            )
        cells.append(m.cell)
    return tuple(cells) if parts is not None else cells[0]


def _flip(ys: Array, seq_lengths: Array | None, time_major: bool) -> Array:
    """Reverses each sequence of ``ys`` within its length (padding stays put)."""
    layout = BatchLayout.of(ys, time_major)
    lengths = None if seq_lengths is None else jnp.asarray(seq_lengths).reshape(-1).astype(jnp.int32)
    return layout.restore(reverse_padded(layout.flatten(ys), lengths, layout.time_axis))


def run(
    cell: Cell,
    params: Any,
    inputs: Array,
    *,
    initial_carry: Any,
    seq_lengths: Array | None,
    return_carry: bool,
    time_major: bool,
    reverse: bool,
    keep_order: bool,
    dtype: Any,
    impl: str,
    residuals: str | int,
    residual_budget: int | None,
    bptt_clip: float | None,
    precision: Any,
    unroll: int | bool,
    method: str | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    on_failure: str | None = None,
    damping: float | None = None,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
    key: Any = None,
    deterministic: bool = False,
) -> Any:
    """``flax.linen.RNN``'s semantics over :func:`jaxrnn.rnn`.

    Inputs and params are cast to the computation dtype (``dtype``, or the
    promotion of both); an initial carry to the state dtype
    (:func:`jaxrnn.cells.accumulation_dtype` of it). ``reverse`` without
    ``keep_order`` returns the outputs in processing order, as Flax does.
    The dropout options are :func:`jaxrnn.rnn`'s.
    """
    # Integer and boolean inputs are promoted with the params, as nn.RNN does.
    _checks.sequence("inputs", inputs, time_major=time_major, promotable=True)
    for name, flag in (("return_carry", return_carry), ("keep_order", keep_order)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {_checks.describe(flag)}")
    dt = compute_dtype(dtype, inputs.dtype, params)
    params = jax.tree_util.tree_map(lambda p: jnp.asarray(p).astype(dt), params)
    xs = jnp.asarray(inputs).astype(dt)
    state = None
    if initial_carry is not None:
        state_dtype = accumulation_dtype(dt)
        state = jax.tree_util.tree_map(
            lambda s: jnp.asarray(s).astype(state_dtype), carry_to_state(cell, initial_carry)
        )
    final, ys = _rnn(
        cell,
        params,
        xs,
        state,
        seq_lengths=seq_lengths,
        reverse=reverse,
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
        key=key,
        deterministic=deterministic,
    )
    if reverse and not keep_order:
        ys = _flip(ys, seq_lengths, time_major)
    return (state_to_carry(cell, final), ys) if return_carry else ys
