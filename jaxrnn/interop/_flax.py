"""The Flax half of :mod:`jaxrnn.interop`: weights and carries to and from Flax linen cells.

jaxrnn keeps each cell's gates fused along the last axis (see
:mod:`jaxrnn.cells`); Flax's ``SimpleCell``, ``LSTMCell`` and ``GRUCell``
keep one ``Dense`` per gate and side. The mapping (Flax names on the left):

==========================  ===========================================
Flax                        jaxrnn
==========================  ===========================================
SimpleCell  i.kernel        w_ih
            h.kernel        w_hh
            i.bias          b
LSTMCell    i{i,f,g,o}      w_ih blocks i, f, g, o
            h{i,f,g,o}      w_hh blocks; their biases are b's blocks
GRUCell     i{r,z,n}        w_ih blocks and b's blocks r, z, n
            h{r,z,n}        w_hh blocks; hn.bias is b_hn
==========================  ===========================================

Flax's LSTM carry is ``(c, h)``; jaxrnn's state is ``LSTMState(h, c)``.
Flax conversions are exact (slices and concatenations, no arithmetic).

Flax itself is imported only inside :func:`flax_cell`, so that ``import
jaxrnn`` does not import it; the conversions need none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from .. import _checks
from ..cells import (
    IRNN,
    LSTM,
    Cell,
    GRUParams,
    LSTMParams,
    LSTMState,
    SimpleRNN,
    SimpleRNNParams,
)
from ._common import check_named_cell, check_state_arrays

if TYPE_CHECKING:
    import flax.linen as nn

__all__ = [
    "flax_cell",
    "from_flax_carry",
    "from_flax_params",
    "to_flax_carry",
    "to_flax_params",
]

_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")


def _check_cell(cell: Any) -> None:
    check_named_cell(cell, "Flax's GRUCell", "Flax")
    if not getattr(cell, "bias", True):
        raise ValueError(
            f"Flax's {_flax_name(cell)} always has biases; {type(cell).__name__}(bias=False) "
            "has no Flax counterpart"
        )
    if getattr(cell, "proj_size", None) is not None:
        raise ValueError(
            f"Flax's LSTMCell has no projection; LSTM(proj_size={cell.proj_size}) has no "
            "Flax counterpart"
        )


def _flax_name(cell: Any) -> str:
    if isinstance(cell, LSTM):
        return "LSTMCell"
    return "SimpleCell" if isinstance(cell, (SimpleRNN, IRNN)) else "GRUCell"


def flax_cell(cell: Cell, dtype: Any = None, param_dtype: Any = None) -> nn.RNNCellBase:
    """The Flax linen cell that computes what ``cell`` computes.

    Args:
      cell: a jaxrnn cell (``GRU`` only with ``reset_after=True``).
      dtype: Flax's computation dtype (``None``: inferred from the inputs).
      param_dtype: Flax's parameter dtype (``None``: float32).

    Returns:
      ``nn.SimpleCell``, ``nn.LSTMCell`` or ``nn.GRUCell`` with
      ``features=cell.hidden_size`` and matching activations (``gate_fn``,
      ``activation_fn``) and ``residual``.

    Raises:
      ValueError: the cell has no Flax counterpart: ``GRU(reset_after=False)``,
        ``bias=False`` (Flax's cells always have biases), ``LSTM(proj_size=P)``.
    """
    import flax.linen as nn  # imported here: `import jaxrnn` does not import Flax

    _check_cell(cell)
    if dtype is not None:
        dtype = _checks.float_dtype("dtype", dtype)
    kw: dict[str, Any] = {"features": cell.hidden_size, "dtype": dtype}
    if param_dtype is not None:
        kw["param_dtype"] = _checks.float_dtype("param_dtype", param_dtype)
    if isinstance(cell, (SimpleRNN, IRNN)):
        return nn.SimpleCell(activation_fn=cell.activation_fn, residual=cell.residual, **kw)
    gates = {"gate_fn": cell.gate_fn, "activation_fn": cell.activation_fn}
    if isinstance(cell, LSTM):
        return nn.LSTMCell(**gates, **kw)
    return nn.GRUCell(**gates, **kw)


def to_flax_params(cell: Cell, params: Any) -> dict[str, Any]:
    """Converts jaxrnn params to the variables of :func:`flax_cell`'s module.

    Args:
      cell: the jaxrnn cell the params belong to.
      params: its params NamedTuple.

    Returns:
      ``{"params": {...}}``, ready for ``flax_cell(cell).apply``.
    """
    _check_cell(cell)
    cell.check_params(params)
    H = cell.hidden_size
    if isinstance(params, SimpleRNNParams):
        tree = {"i": {"kernel": params.w_ih, "bias": params.b}, "h": {"kernel": params.w_hh}}
    elif isinstance(params, LSTMParams):
        tree = {}
        for k, g in enumerate(_LSTM_GATES):
            blk = slice(k * H, (k + 1) * H)
            tree["i" + g] = {"kernel": params.w_ih[:, blk]}
            tree["h" + g] = {"kernel": params.w_hh[:, blk], "bias": params.b[blk]}
    else:
        tree = {}
        for k, g in enumerate(_GRU_GATES):
            blk = slice(k * H, (k + 1) * H)
            tree["i" + g] = {"kernel": params.w_ih[:, blk], "bias": params.b[blk]}
            tree["h" + g] = {"kernel": params.w_hh[:, blk]}
        tree["hn"]["bias"] = params.b_hn
    return {"params": tree}


def _unwrap(variables: Any) -> Any:
    if not hasattr(variables, "keys"):
        raise TypeError(
            "variables must be a Flax variables dict ({'params': {...}}) or its "
            f"'params' collection, got {_checks.describe(variables)}"
        )
    if set(variables.keys()) == {"params"}:
        return variables["params"]
    return variables


def _get(tree: Any, *path: str) -> jax.Array:
    node = tree
    for name in path:
        if not hasattr(node, "keys") or name not in node:
            raise ValueError(
                f"variables lack {'/'.join(path)!r}: expected the parameters of a "
                f"Flax cell, got top-level keys {sorted(tree.keys())}"
            )
        node = node[name]
    label = f"variables[{']['.join(repr(p) for p in path)}]"
    _checks.array(label, node)
    ndim = 2 if path[-1] == "kernel" else 1
    if node.ndim != ndim:
        raise ValueError(
            f"{label} must have {ndim} dims (a Dense {path[-1]}), got shape "
            f"{tuple(node.shape)}"
        )
    return node


def from_flax_params(cell: Cell, variables: Any) -> Any:
    """Converts the variables of a Flax cell to jaxrnn params for ``cell``.

    Args:
      cell: the jaxrnn cell to convert to.
      variables: ``{"params": {...}}`` from ``flax_cell(cell).init``, or the
        inner ``params`` dict.

    Returns:
      The cell's params NamedTuple; it is checked against ``cell``.
    """
    _check_cell(cell)
    tree = _unwrap(variables)
    if isinstance(cell, (SimpleRNN, IRNN)):
        params: Any = SimpleRNNParams(
            w_ih=_get(tree, "i", "kernel"),
            w_hh=_get(tree, "h", "kernel"),
            b=_get(tree, "i", "bias"),
        )
    elif isinstance(cell, LSTM):
        params = LSTMParams(
            w_ih=jnp.concatenate([_get(tree, "i" + g, "kernel") for g in _LSTM_GATES], -1),
            w_hh=jnp.concatenate([_get(tree, "h" + g, "kernel") for g in _LSTM_GATES], -1),
            b=jnp.concatenate([_get(tree, "h" + g, "bias") for g in _LSTM_GATES], -1),
        )
    else:
        params = GRUParams(
            w_ih=jnp.concatenate([_get(tree, "i" + g, "kernel") for g in _GRU_GATES], -1),
            w_hh=jnp.concatenate([_get(tree, "h" + g, "kernel") for g in _GRU_GATES], -1),
            b=jnp.concatenate([_get(tree, "i" + g, "bias") for g in _GRU_GATES], -1),
            b_hn=_get(tree, "hn", "bias"),
        )
    cell.check_params(params, name="converted params")
    return params


def to_flax_carry(cell: Cell, state: Any) -> Any:
    """jaxrnn state to Flax carry: ``LSTMState(h, c)`` becomes ``(c, h)``.

    Raises:
      TypeError: ``state`` is not the cell's state (LSTM: an ``LSTMState``;
        other cells: an array).
      ValueError: its arrays are not ``(*batch, hidden_size)``, or differ.
    """
    _check_cell(cell)
    if isinstance(cell, LSTM):
        if not isinstance(state, LSTMState):
            raise TypeError(f"state must be an LSTMState(h, c) for LSTM, got {_checks.describe(state)}")
        check_state_arrays(cell, {"state.h": state.h, "state.c": state.c})
        return (state.c, state.h)
    check_state_arrays(cell, {"state": state})
    return state


def from_flax_carry(cell: Cell, carry: Any) -> Any:
    """Flax carry to jaxrnn state: the LSTM carry ``(c, h)`` becomes ``LSTMState(h, c)``.

    Raises:
      TypeError: ``carry`` is not the cell's Flax carry (LSTM: the tuple
        ``(c, h)``; other cells: an array).
      ValueError: its arrays are not ``(*batch, hidden_size)``, or differ.
    """
    _check_cell(cell)
    if isinstance(cell, LSTM):
        if not isinstance(carry, (tuple, list)) or hasattr(carry, "_fields") or len(carry) != 2:
            raise TypeError(
                f"carry must be Flax's LSTM carry, the tuple (c, h), got {_checks.describe(carry)}"
            )
        c, h = carry
        check_state_arrays(cell, {"carry[0] (c)": c, "carry[1] (h)": h})
        return LSTMState(h=h, c=c)
    check_state_arrays(cell, {"carry": carry})
    return carry
