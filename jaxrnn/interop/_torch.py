"""The PyTorch half of :mod:`jaxrnn.interop`: ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` state dicts.

PyTorch's ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` keep ``weight_ih_l{k}``
``(G*H, I)`` and ``weight_hh_l{k}`` ``(G*H, H)`` (the transposes of
``w_ih``/``w_hh``, same gate order) and two biases, ``bias_ih_l{k}`` and
``bias_hh_l{k}``; a bidirectional layer's backward direction has the suffix
``_reverse``. jaxrnn keeps one input-side bias ``b``, so :func:`from_torch`
folds them: ``b = bias_ih + bias_hh``, except GRU's candidate block, whose
recurrent bias sits inside the reset gate's product and stays apart as
``b_hn``. :func:`to_torch` puts the whole of ``b`` into ``bias_ih`` and zeros
into ``bias_hh`` (GRU: ``b_hn`` in its ``n`` block). jaxrnn -> PyTorch ->
jaxrnn is exact; PyTorch -> jaxrnn -> PyTorch computes the same function
with the biases moved (their sums equal up to one rounding).

``nn.*(bias=False)`` has no bias keys: it is a cell made with ``bias=False``
(whose ``b``, and GRU's ``b_hn``, are ``None``), both ways. (A ``bias=True``
cell also takes a bias-free state dict, with zero biases.)
``nn.LSTM(proj_size=P)`` is ``jr.LSTM(H, proj_size=P)``: its
``weight_hr_l{k}`` ``(P, H)`` is the transpose of ``w_hr`` ``(H, P)``, and
``weight_hh_l{k}`` is ``(4H, P)``.

torch is imported only inside :func:`torch_module`; the conversions take
NumPy or JAX arrays or torch tensors without it.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..cells import (
    GRU,
    IRNN,
    LSTM,
    Cell,
    LSTMState,
    SimpleRNN,
)
from ._common import check_named_cell, check_state_arrays, state_sizes

__all__ = [
    "from_torch",
    "from_torch_state",
    "to_torch",
    "to_torch_state",
    "torch_module",
]


_TORCH_KEY = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


def _check_torch_cell(cell: Any) -> None:
    check_named_cell(cell, "PyTorch's nn.GRU", "PyTorch")
    if isinstance(cell, SimpleRNN) and cell.activation not in ("tanh", "relu"):
        raise ValueError(
            "PyTorch's nn.RNN has nonlinearity 'tanh' or 'relu'; "
            f"SimpleRNN(activation={cell.activation!r}) has no PyTorch counterpart"
        )
    if getattr(cell, "residual", False):
        raise ValueError(
            "PyTorch's nn.RNN has no residual connection; SimpleRNN(residual=True) "
            "has no PyTorch counterpart"
        )
    if isinstance(cell, (LSTM, GRU)):
        for name, default in (("gate_fn", jax.nn.sigmoid), ("activation_fn", jnp.tanh)):
            if getattr(cell, name) is not default:
                raise ValueError(
                    f"PyTorch's {_torch_name(cell)} has fixed activations (sigmoid gates, "
                    f"tanh); {type(cell).__name__}({name}={getattr(cell, name)!r}) has no "
                    "PyTorch counterpart"
                )


def _proj_size(cell: Cell) -> int | None:
    return getattr(cell, "proj_size", None)


def _torch_name(cell: Cell) -> str:
    if isinstance(cell, LSTM):
        return "nn.LSTM"
    return "nn.GRU" if isinstance(cell, GRU) else "nn.RNN"


def _nonlinearity(cell: Cell) -> str:
    return "relu" if isinstance(cell, IRNN) else str(cell.activation)


def _check_layout(num_layers: Any, bidirectional: Any) -> tuple[int, tuple[str, ...]]:
    """The number of layers and the direction suffixes."""
    layers = 1 if num_layers is None else _checks.positive_int("num_layers", num_layers)
    if not isinstance(bidirectional, (bool, np.bool_)):
        raise TypeError(
            f"bidirectional must be a bool, got {_checks.describe(bidirectional)}"
        )
    return layers, ("", "_reverse") if bidirectional else ("",)


def _to_numpy(name: str, value: Any) -> np.ndarray:
    """A NumPy copy of a NumPy/JAX array or a torch tensor (torch not imported)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16 of its own
            return value.float().numpy().astype(jnp.bfloat16)
        return value.numpy().copy()
    _checks.array(name, value)
    return np.array(value, copy=True)


def _torch_module_description(cell: Cell, layers: int, suffixes: tuple[str, ...]) -> str:
    extra = "" if _proj_size(cell) is None else f", proj_size={_proj_size(cell)}"
    extra += "" if getattr(cell, "bias", True) else ", bias=False"
    return (
        f"a torch {_torch_name(cell)}(hidden_size={cell.hidden_size}{extra}, "
        f"num_layers={layers}, bidirectional={len(suffixes) == 2})"
    )


def _torch_kinds(cell: Cell) -> list[tuple[str, str]]:
    """The ``(kind, side)`` of each key of one layer and direction of ``cell``'s module."""
    kinds = [("weight", "ih"), ("weight", "hh")]
    if getattr(cell, "bias", True):
        kinds += [("bias", "ih"), ("bias", "hh")]
    if _proj_size(cell) is not None:
        kinds.append(("weight", "hr"))
    return kinds


def _check_torch_keys(
    cell: Cell, entries: dict[str, Any], layers: int, suffixes: tuple[str, ...], num_layers: Any
) -> None:
    kinds = _torch_kinds(cell)
    expected = {
        f"{kind}_{side}_l{k}{sfx}"
        for k in range(layers)
        for sfx in suffixes
        for kind, side in kinds
    }
    unexpected = sorted(set(entries) - expected)
    if not unexpected:
        return
    matches = [_TORCH_KEY.match(k) for k in unexpected]
    if any(m and m.group(2) == "hr" for m in matches):
        raise ValueError(
            "state_dict holds weight_hr_l* keys: it is an nn.LSTM with proj_size > 0; "
            "make the cell with jr.LSTM(hidden_size, proj_size=P)"
        )
    if any(m and m.group(1) == "bias" for m in matches) and not getattr(cell, "bias", True):
        raise ValueError(
            f"state_dict holds bias keys ({next(k for k in unexpected if k.startswith('bias'))!r}, "
            f"...) but the cell was made with bias=False: make it with bias=True"
        )
    if any(m and m.group(4) for m in matches) and len(suffixes) == 1:
        raise ValueError(
            "state_dict holds a bidirectional module's weights (keys ending in "
            "'_reverse'); pass bidirectional=True"
        )
    found = [int(m.group(3)) + 1 for m in matches if m]
    if found:
        n = max(found)
        hint = "pass num_layers" if num_layers is None else "set num_layers"
        raise ValueError(
            f"state_dict holds {n} layers (keys up to '{unexpected[-1]}'), expected "
            f"{layers}; {hint}={n}"
        )
    prefixes = sorted({k.rpartition(".")[0] + "." for k in unexpected if _TORCH_KEY.match(k.rpartition(".")[2])})
    hint = f" (the recurrent module's keys start with one of {prefixes}: pass it as prefix=)" if prefixes else ""
    raise ValueError(
        f"state_dict has unexpected keys {unexpected}: expected the state dict of "
        f"{_torch_module_description(cell, layers, suffixes)}{hint}"
    )


def _torch_array(
    entries: dict[str, Any], key: str, shape: tuple[int | None, ...], description: str
) -> np.ndarray:
    if key not in entries:
        raise ValueError(
            f"state_dict lacks {key!r}: expected the state dict of {description}, "
            f"got keys {sorted(entries)}"
        )
    arr = _to_numpy(f"state_dict[{key!r}]", entries[key])
    if arr.ndim != len(shape) or any(w is not None and d != w for d, w in zip(arr.shape, shape)):
        want = "(" + ", ".join("input_size" if w is None else str(w) for w in shape) + ")"
        raise ValueError(
            f"state_dict[{key!r}] must have shape {want} for {description}, got "
            f"shape {tuple(arr.shape)}"
        )
    return arr


def from_torch(
    cell: Cell,
    state_dict: Any,
    *,
    num_layers: int | None = None,
    bidirectional: bool = False,
    prefix: str = "",
) -> Any:
    """Converts the state dict of a PyTorch ``nn.RNN``/``nn.LSTM``/``nn.GRU``.

    Weights are transposed; the two PyTorch biases are folded into jaxrnn's
    one, ``b = bias_ih + bias_hh``, except GRU's candidate block: ``b``'s
    ``n`` block is ``bias_ih``'s alone and ``b_hn`` is ``bias_hh``'s ``n``
    block. A module built with ``bias=False`` (no bias keys) gives zero biases.

    Args:
      cell: the jaxrnn cell of every layer and direction: ``LSTM`` for
        ``nn.LSTM``, ``GRU`` (``reset_after=True``) for ``nn.GRU``,
        ``SimpleRNN(activation="tanh"|"relu")`` or ``IRNN`` for ``nn.RNN``;
        its ``hidden_size`` must be the module's.
      state_dict: ``module.state_dict()``, or any mapping from PyTorch's key
        names to torch tensors, NumPy or JAX arrays.
      num_layers: ``None`` for a single layer, whose params are returned as
        they are; an int ``L`` returns a tuple of ``L`` layers, as
        :func:`jaxrnn.init_stacked` makes them (``num_layers=1`` too).
      bidirectional: whether the module is bidirectional; each layer is then
        a ``(forward, backward)`` pair, as :func:`jaxrnn.bidirectional_rnn`
        takes it.
      prefix: the prefix of the module's keys in a larger model's state dict
        (e.g. ``"encoder.rnn."``); keys without it are ignored, keys with it
        must all belong to the module.

    Returns:
      The cell's params NamedTuple (of JAX arrays, in the state dict's
      dtype), a ``(forward, backward)`` pair of them, or a tuple of layers.

    Raises:
      ValueError: the cell has no PyTorch counterpart, keys are missing or
        unexpected (the message says when ``num_layers`` or
        ``bidirectional`` disagree with the keys) or shapes do not match.
      TypeError: ``cell`` is not a jaxrnn cell or ``state_dict`` not a mapping.

    Example:
      >>> import numpy as np, jaxrnn as jr
      >>> H, I = 3, 2
      >>> sd = {"weight_ih_l0": np.ones((4 * H, I), np.float32),
      ...       "weight_hh_l0": np.ones((4 * H, H), np.float32),
      ...       "bias_ih_l0": np.ones(4 * H, np.float32),
      ...       "bias_hh_l0": np.ones(4 * H, np.float32)}
      >>> params = jr.interop.from_torch(jr.LSTM(H), sd)
      >>> params.w_ih.shape, float(params.b[0])
      ((2, 12), 2.0)
    """
    _check_torch_cell(cell)
    layers, suffixes = _check_layout(num_layers, bidirectional)
    if not hasattr(state_dict, "keys"):
        raise TypeError(
            "state_dict must be a mapping such as module.state_dict(), got "
            f"{_checks.describe(state_dict)}"
        )
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {_checks.describe(prefix)}")
    bad_keys = [k for k in state_dict if not isinstance(k, str)]
    if bad_keys:
        raise TypeError(
            f"state_dict keys must be str (PyTorch's names such as 'weight_ih_l0'), "
            f"got {_checks.describe(bad_keys[0])}"
        )
    entries = {
        k[len(prefix) :]: state_dict[k] for k in state_dict if k.startswith(prefix)
    }
    _check_torch_keys(cell, entries, layers, suffixes, num_layers)
    description = _torch_module_description(cell, layers, suffixes)
    H, G = cell.hidden_size, cell.num_gates

    P = cell.output_size

    def direction(k: int, sfx: str) -> Any:
        names = {
            f"{kind}_{side}": f"{kind}_{side}_l{k}{sfx}"
            for kind in ("weight", "bias")
            for side in ("ih", "hh", "hr")
        }
        in_size = None if k == 0 else P * len(suffixes)
        w_ih = _torch_array(entries, names["weight_ih"], (G * H, in_size), description)
        w_hh = _torch_array(entries, names["weight_hh"], (G * H, P), description)
        fields: dict[str, Any] = {}
        if _proj_size(cell) is not None:
            fields["w_hr"] = _torch_array(entries, names["weight_hr"], (P, H), description).T
        has_bias = [names[b] in entries for b in ("bias_ih", "bias_hh")]
        # A bias=False cell leaves b (and b_hn) None.
        if getattr(cell, "bias", True):
            if has_bias == [False, False]:  # nn.*(bias=False) to a bias=True cell: zeros
                b_ih = b_hh = np.zeros((G * H,), w_ih.dtype)
            else:
                b_ih = _torch_array(entries, names["bias_ih"], (G * H,), description)
                b_hh = _torch_array(entries, names["bias_hh"], (G * H,), description)
            if isinstance(cell, GRU):
                b_r_z = b_hh[: 2 * H]
                fields["b"] = np.concatenate([b_ih[: 2 * H] + b_r_z, b_ih[2 * H :]])
                fields["b_hn"] = b_hh[2 * H :]
            else:
                fields["b"] = b_ih + b_hh
        fields.update(w_ih=w_ih.T, w_hh=w_hh.T)
        params = cell.params_type(
            **{f: None if f not in fields else jnp.asarray(fields[f]) for f in cell.params_type._fields}
        )
        cell.check_params(params, name=f"params of layer {k}{sfx}")
        return params

    out = []
    for k in range(layers):
        dirs = [direction(k, sfx) for sfx in suffixes]
        out.append(tuple(dirs) if len(dirs) == 2 else dirs[0])
    return out[0] if num_layers is None else tuple(out)


def _layers_of(
    name: str, tree: Any, num_layers: int | None, layers: int, suffixes: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """Splits params or states into ``[(direction, ...) per layer]``."""
    if num_layers is None:
        items = [tree]
    elif isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields") and len(tree) == layers:
        items = list(tree)
    else:
        got = (
            f"{len(tree)} items"
            if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields")
            else _checks.describe(tree)
        )
        raise TypeError(
            f"{name} must be a tuple of num_layers={layers} layers, got {got}"
        )
    out = []
    for k, item in enumerate(items):
        label = name if num_layers is None else f"{name}[{k}]"
        if len(suffixes) == 2:
            if not isinstance(item, (tuple, list)) or hasattr(item, "_fields") or len(item) != 2:
                raise TypeError(
                    f"{label} must be a (forward, backward) pair for "
                    f"bidirectional=True, got {_checks.describe(item)}"
                )
            out.append(tuple(item))
        else:
            out.append((item,))
    return out


def to_torch(
    cell: Cell,
    params: Any,
    *,
    num_layers: int | None = None,
    bidirectional: bool = False,
    prefix: str = "",
) -> dict[str, np.ndarray]:
    """Converts jaxrnn params to a PyTorch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` state dict.

    The whole bias ``b`` goes into ``bias_ih_l{k}``; ``bias_hh_l{k}`` is zero
    except, for GRU, its ``n`` block, which is ``b_hn``. Load the result with
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``
    (a module made by :func:`torch_module`). NumPy has no bfloat16 that torch
    reads: cast bfloat16 params to float32 first.

    Args:
      cell: the jaxrnn cell of every layer and direction (see
        :func:`from_torch` for the counterparts).
      params: the params of one layer (``num_layers=None``), or a tuple of
        ``num_layers`` layers as :func:`jaxrnn.init_stacked` makes them; with
        ``bidirectional=True`` each layer is a ``(forward, backward)`` pair.
      num_layers: ``None`` for a single layer, else the number of layers.
      bidirectional: whether each layer is a ``(forward, backward)`` pair.
      prefix: prepended to every key.

    Returns:
      A dict from PyTorch's key names to (writable, C-contiguous) NumPy arrays.

    Raises:
      ValueError: the cell has no PyTorch counterpart, or the layers'
        sizes do not chain as PyTorch's layers do (every layer after the
        first takes ``hidden_size`` inputs per direction).
      TypeError: ``params`` do not have the structure described above.
    """
    _check_torch_cell(cell)
    layers, suffixes = _check_layout(num_layers, bidirectional)
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {_checks.describe(prefix)}")
    H, P = cell.hidden_size, cell.output_size
    out: dict[str, np.ndarray] = {}
    for k, dirs in enumerate(_layers_of("params", params, num_layers, layers, suffixes)):
        for sfx, p in zip(suffixes, dirs):
            label = "params" if num_layers is None else f"params[{k}]"
            label = label if len(suffixes) == 1 else f"{label}[{suffixes.index(sfx)}]"
            input_size = cell.check_params(p, name=label)
            if k > 0 and input_size != P * len(suffixes):
                raise ValueError(
                    f"{label}.w_ih must take {P * len(suffixes)} inputs (the outputs "
                    f"of the layer below, as in PyTorch's stacks), got {input_size}"
                )
            arrays = {
                "weight_ih": np.asarray(p.w_ih).T,
                "weight_hh": np.asarray(p.w_hh).T,
            }
            if p.b is not None:  # a bias=False cell has none: nn.*(bias=False)
                b_hh = np.zeros(np.shape(p.b), np.asarray(p.b).dtype)
                if isinstance(cell, GRU):
                    b_hh[2 * H :] = np.asarray(p.b_hn)
                arrays["bias_ih"] = np.asarray(p.b)
                arrays["bias_hh"] = b_hh
            if _proj_size(cell) is not None:
                arrays["weight_hr"] = np.asarray(p.w_hr).T
            for name, arr in arrays.items():
                out[f"{prefix}{name}_l{k}{sfx}"] = np.array(arr, copy=True, order="C")
    return out


def torch_module(
    cell: Cell,
    input_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = True,
) -> Any:
    """The PyTorch module that computes what ``cell`` computes (imports torch).

    Args:
      cell: a jaxrnn cell with a PyTorch counterpart (see :func:`from_torch`).
      input_size: the number of input features.
      num_layers: the number of stacked layers.
      bidirectional: whether every layer is bidirectional.
      batch_first: ``True`` (the default) takes ``(batch, time, features)``
        inputs, jaxrnn's layout; ``False`` is PyTorch's time-major default.

    Returns:
      A freshly initialised ``torch.nn.RNN``, ``LSTM`` or ``GRU``; give it
      jaxrnn's weights with :func:`to_torch` and ``load_state_dict``.

    Raises:
      ImportError: PyTorch is not installed.
    """
    _check_torch_cell(cell)
    input_size = _checks.positive_int("input_size", input_size)
    _check_layout(num_layers, bidirectional)
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be a bool, got {_checks.describe(batch_first)}")
    import torch  # optional: imported only here

    kw = {
        "input_size": input_size,
        "hidden_size": cell.hidden_size,
        "num_layers": num_layers,
        "bias": bool(getattr(cell, "bias", True)),
        "bidirectional": bool(bidirectional),
        "batch_first": batch_first,
    }
    if isinstance(cell, LSTM):
        return torch.nn.LSTM(proj_size=_proj_size(cell) or 0, **kw)
    if isinstance(cell, GRU):
        return torch.nn.GRU(**kw)
    return torch.nn.RNN(nonlinearity=_nonlinearity(cell), **kw)


def to_torch_state(
    cell: Cell,
    state: Any,
    *,
    num_layers: int | None = None,
    bidirectional: bool = False,
) -> Any:
    """jaxrnn states to PyTorch's ``h_0`` (``(h_0, c_0)`` for LSTM).

    Args:
      cell: the cell of every layer and direction.
      state: one layer's state (``num_layers=None``) or a tuple of layers'
        states, as :func:`jaxrnn.stacked_rnn` takes and returns them; with
        ``bidirectional=True`` each layer's is a ``(forward, backward)`` pair.
      num_layers: as for :func:`to_torch`.
      bidirectional: as for :func:`to_torch`.

    Returns:
      A NumPy array ``(num_layers * num_directions, *batch, H)``, PyTorch's
      layout (its row ``layer * num_directions + direction``) whatever
      ``batch_first`` is; for LSTM the pair ``(h, c)``.

    Raises:
      TypeError: ``state`` does not have the structure described above, or
        holds non-floating arrays.
      ValueError: its arrays are not all ``(*batch, hidden_size)`` with one
        batch shape (LSTM: ``h`` and ``c`` alike).
    """
    _check_torch_cell(cell)
    layers, suffixes = _check_layout(num_layers, bidirectional)
    by_layer = _layers_of("state", state, num_layers, layers, suffixes)
    rows = [s for dirs in by_layer for s in dirs]
    labels = [
        ("state" if num_layers is None else f"state[{k}]") + ("" if len(dirs) == 1 else f"[{d}]")
        for k, dirs in enumerate(by_layer)
        for d in range(len(dirs))
    ]
    arrays: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for label, s in zip(labels, rows):
        if isinstance(cell, LSTM):
            if not isinstance(s, LSTMState):
                raise TypeError(f"state must hold LSTMState(h, c) items, got {_checks.describe(s)}")
            arrays[f"{label}.h"], arrays[f"{label}.c"] = s.h, s.c
            sizes.update(state_sizes(cell, {"h": f"{label}.h", "c": f"{label}.c"}))
        else:
            arrays[label] = s
    check_state_arrays(cell, arrays, sizes)
    if isinstance(cell, LSTM):
        return (
            np.stack([np.asarray(s.h) for s in rows]),
            np.stack([np.asarray(s.c) for s in rows]),
        )
    return np.stack([np.asarray(s) for s in rows])


def from_torch_state(
    cell: Cell,
    hidden: Any,
    *,
    num_layers: int | None = None,
    bidirectional: bool = False,
) -> Any:
    """PyTorch's ``h_n`` (``(h_n, c_n)`` for LSTM) to jaxrnn states.

    Args:
      cell: the cell of every layer and direction.
      hidden: an array ``(num_layers * num_directions, *batch, H)`` (a torch
        tensor or an array), or for LSTM the pair ``(h, c)`` of them.
      num_layers: as for :func:`from_torch`.
      bidirectional: as for :func:`from_torch`.

    Returns:
      States structured as :func:`from_torch` structures params: one
      layer's state, a ``(forward, backward)`` pair, or a tuple of layers.

    Raises:
      TypeError: ``hidden`` is not an array (LSTM: a pair of them) or not
        floating.
      ValueError: its shape is not ``(num_layers * num_directions, *batch,
        hidden_size)``, or (LSTM) ``h`` and ``c`` differ in shape.
    """
    _check_torch_cell(cell)
    layers, suffixes = _check_layout(num_layers, bidirectional)
    rows_needed = layers * len(suffixes)
    if isinstance(cell, LSTM):
        if not isinstance(hidden, (tuple, list)) or len(hidden) != 2:
            raise TypeError(
                f"hidden must be the pair (h, c) for LSTM, got {_checks.describe(hidden)}"
            )
        parts = [_to_numpy("hidden[0]", hidden[0]), _to_numpy("hidden[1]", hidden[1])]
    else:
        parts = [_to_numpy("hidden", hidden)]
    labels = ["hidden[0] (h)", "hidden[1] (c)"] if len(parts) == 2 else ["hidden"]
    sizes = [cell.output_size, cell.hidden_size]
    for label, part, size in zip(labels, parts, sizes):
        what = "hidden_size" if size == cell.hidden_size else "proj_size"
        if part.ndim < 2 or part.shape[0] != rows_needed or part.shape[-1] != size:
            raise ValueError(
                f"{label} must have shape ({rows_needed}, *batch, {size}) "
                f"(num_layers * num_directions, *batch, {what}), got shape "
                f"{tuple(part.shape)}"
            )
        if not jnp.issubdtype(part.dtype, jnp.floating):
            raise TypeError(f"{label} must have a floating dtype, got {part.dtype}")
    if len(parts) == 2 and parts[0].shape[:-1] != parts[1].shape[:-1]:
        raise ValueError(
            f"hidden[0] (h) and hidden[1] (c) must have one batch shape, got "
            f"{tuple(parts[0].shape)} and {tuple(parts[1].shape)}"
        )

    def row(i: int) -> Any:
        if isinstance(cell, LSTM):
            return LSTMState(h=jnp.asarray(parts[0][i]), c=jnp.asarray(parts[1][i]))
        return jnp.asarray(parts[0][i])

    out = []
    for k in range(layers):
        dirs = [row(k * len(suffixes) + d) for d in range(len(suffixes))]
        out.append(tuple(dirs) if len(dirs) == 2 else dirs[0])
    return out[0] if num_layers is None else tuple(out)
