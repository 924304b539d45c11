"""Flax linen layers over jaxrnn's fused engine: one :class:`RNN` for any cell.

:class:`RNN` runs any jaxrnn cell (:class:`jaxrnn.LSTM`, :class:`jaxrnn.GRU`,
a subclass of :class:`jaxrnn.Cell` of your own, ...) over a whole sequence:
it takes what ``flax.linen.RNN(cell)`` takes, returns what it returns, and
runs :func:`jaxrnn.rnn` (the fused engine by default) inside. ``LSTM``,
``GRU``, ``SimpleRNN`` and ``IRNN`` are :class:`RNN` with the cell built from
their attributes (``LSTM(128)`` is ``RNN(jr.LSTM(128))``).

Parameters are the cell's (``w_ih``, ``w_hh``, ``b``; GRU adds ``b_hn``; see
:mod:`jaxrnn.cells`), drawn once by ``cell.init``, so ``variables["params"]``
and a params NamedTuple are the same numbers under two names::

    params = jr.LSTMParams(**variables["params"])      # module -> functional API
    variables = {"params": params._asdict()}            # and back

Carries are Flax's: the LSTM carry is ``(c, h)``, as ``nn.LSTMCell`` keeps
it (an ``initial_carry`` may also be a jaxrnn ``LSTMState(h, c)``, which is
told apart by its type); other cells carry their jaxrnn state (``h``).

:class:`Stack` chains layers; ``flax.linen.Bidirectional`` works with these
modules as it is, and :class:`Stack` converts stacks of both to and from
the params of :func:`jaxrnn.stacked_rnn`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from .. import _checks
from .. import initializers as _inits
from .._dropout import check_rate, layer_dropout
from ..cells import GRU as _GRU
from ..cells import IRNN as _IRNN
from ..cells import LSTM as _LSTM
from ..cells import Cell
from ..cells import SimpleRNN as _SimpleRNN
from ._core import (
    batch_shape_of,
    broadcast_state,
    cell_of,
    check_cell,
    check_stack_layers,
    dropout_active,
    layer_cells,
    params_of,
    pick_deterministic,
    run,
    state_param_shapes,
    variables_of,
)

__all__ = ["GRU", "IRNN", "LSTM", "RNN", "SimpleRNN", "Stack"]

Array = jax.Array
Initializer = jax.nn.initializers.Initializer


class _Layer(nn.Module):
    """The options every layer shares (keyword-only) and ``__call__``; see :class:`RNN`.

    A subclass provides ``cell``: a field (:class:`RNN`) or a property built
    from its own attributes (the named layers).
    """

    _: dataclasses.KW_ONLY
    time_major: bool = False
    return_carry: bool = False
    reverse: bool = False
    keep_order: bool = False
    impl: str = "auto"
    residuals: str | int = "auto"
    residual_budget: int | None = None
    bptt_clip: float | None = None
    precision: Any = None
    unroll: int | bool = 1
    dtype: Any = None
    param_dtype: Any = jnp.float32
    method: str | None = None
    tol: float | None = None
    max_iter: int | None = None
    on_failure: str | None = None
    damping: float | None = None
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    deterministic: bool | None = None
    learn_initial_state: bool = False
    carry_init: Initializer = jax.nn.initializers.zeros

    def _params(self, cell: Cell, input_size: int) -> Any:
        """The cell's params, declared field by field, drawn by ONE ``cell.init``.
        A field the cell leaves out (``None``: ``bias=False``) is not declared."""
        param_dtype = _checks.float_dtype("param_dtype", self.param_dtype)
        fields = cell.params_type._fields
        present = [f for f in fields if self.has_variable("params", f)]
        if present:
            # Flax still calls each init (abstractly) to check the shape: give it
            # the value it has. jr.rnn checks the params against the cell.
            drawn = cell.params_type(
                **{f: self.get_variable("params", f) if f in present else None for f in fields}
            )
        else:
            drawn = cell.init(self.make_rng("params"), input_size, param_dtype)
        return cell.params_type(
            **{
                f: None
                if getattr(drawn, f) is None
                else self.param(f, lambda _key, f=f: getattr(drawn, f))
                for f in fields
            }
        )

    def _initial_state(self, cell: Cell, inputs: Array, time_major: bool) -> Any:
        """The learned initial state (``learn_initial_state``), broadcast over the batch."""
        param_dtype = _checks.float_dtype("param_dtype", self.param_dtype)
        leaves = {
            name: self.param(name, self.carry_init, shape, param_dtype)
            for name, shape in state_param_shapes(cell, param_dtype).items()
        }
        return broadcast_state(cell, leaves, batch_shape_of(inputs, time_major))

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Any = None,
        init_key: Any = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
        deterministic: bool | None = None,
    ) -> Any:
        """Runs the layer over a sequence, as ``flax.linen.RNN`` does.

        Args:
          inputs: ``(*batch, time, features)`` (``(time, *batch, features)``
            when time-major).
          initial_carry: Flax's carry (LSTM: ``(c, h)`` or an
            ``LSTMState``; other cells: their state); ``None`` means zeros,
            or the learned initial state with ``learn_initial_state``.
          init_key: accepted for ``nn.RNN`` compatibility; unused (the
            default carry is zeros).
          seq_lengths: ``(*batch,)`` integer lengths. Unlike ``nn.RNN``,
            outputs at padding steps are zeros (``nn.RNN`` runs the cell
            over the padding); valid outputs and the final carry are the same.
          return_carry: overrides the attribute of the same name.
          time_major: overrides the attribute of the same name.
          reverse: overrides the attribute of the same name.
          keep_order: overrides the attribute of the same name.
          deterministic: overrides the attribute of the same name (Flax's
            convention, as for ``nn.Dropout``).

        Returns:
          ``outputs`` ``(*batch, time, hidden_size)`` in the computation
          dtype, or ``(carry, outputs)`` with ``return_carry``.
        """
        cell = check_cell(self.cell)
        _checks.array("inputs", inputs)
        if inputs.ndim < 2:
            raise ValueError(
                "inputs must have shape (*batch, time, features) with at least 2 "
                f"dims, got shape {tuple(inputs.shape)}"
            )
        del init_key
        pick = lambda value, default: default if value is None else value
        time_major = pick(time_major, self.time_major)
        if not isinstance(self.learn_initial_state, bool):
            raise TypeError(
                "learn_initial_state must be a bool, got "
                f"{_checks.describe(self.learn_initial_state)}"
            )
        params = self._params(cell, inputs.shape[-1])
        if self.learn_initial_state:
            learned = self._initial_state(cell, inputs, time_major)
            initial_carry = learned if initial_carry is None else initial_carry
        active = dropout_active(self)
        deterministic = pick_deterministic(deterministic, self.deterministic, active)
        key = self.make_rng("dropout") if active and not deterministic else None
        return run(
            cell,
            params,
            inputs,
            initial_carry=initial_carry,
            seq_lengths=seq_lengths,
            return_carry=pick(return_carry, self.return_carry),
            time_major=time_major,
            reverse=pick(reverse, self.reverse),
            keep_order=pick(keep_order, self.keep_order),
            dtype=self.dtype,
            impl=self.impl,
            residuals=self.residuals,
            residual_budget=self.residual_budget,
            bptt_clip=self.bptt_clip,
            precision=self.precision,
            unroll=self.unroll,
            method=self.method,
            tol=self.tol,
            max_iter=self.max_iter,
            on_failure=self.on_failure,
            damping=self.damping,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            zoneout=self.zoneout,
            key=key,
            deterministic=deterministic,
        )


class RNN(_Layer):
    """A whole-sequence layer over any jaxrnn cell, on the fused engine.

    ``RNN(cell)`` computes ``jr.rnn(cell, params, inputs)`` with the
    semantics of ``flax.linen.RNN`` (carry layout, ``reverse`` and
    ``keep_order``, ``return_carry``). Its params are ``cell.init``'s,
    field by field (``variables["params"]["w_ih"]``, ...). Every option
    after ``cell`` is keyword-only, and the named layers (:class:`LSTM`,
    :class:`GRU`, :class:`SimpleRNN`, :class:`IRNN`) take the same ones.

    Attributes:
      cell: the jaxrnn cell (its config; the module holds the parameters).
      time_major: inputs ``(time, *batch, features)`` instead of ``(*batch,
        time, features)``.
      return_carry: return ``(carry, outputs)`` instead of ``outputs``.
      reverse: process each sequence from its last valid step to its first.
      keep_order: with ``reverse``, return the outputs in their original
        positions (``False``, Flax's default, returns them in processing
        order).
      impl: ``"auto"`` (the default: the fused engine, with the Pallas
        kernels where they are the default), ``"fused"`` (its loops in XLA),
        ``"pallas"`` (its loops as one Pallas kernel per chunk),
        ``"parallel"`` (Newton's method over the sequence) or ``"scan"``
        (the ``lax.scan`` reference); see :func:`jaxrnn.rnn`. A
        linear-recurrence cell (``jr.MinGRU``, ...) runs by an associative
        scan under ``"auto"``.
      residuals: what the fused backward keeps, as for :func:`jaxrnn.rnn`.
      residual_budget: bytes ``residuals="auto"`` may keep, as for :func:`jaxrnn.rnn`.
      bptt_clip: per-step clipping of the state gradient, as for
        :func:`jaxrnn.rnn`.
      precision: the matrix products' ``jax.lax.Precision``, as for
        :func:`jaxrnn.rnn`.
      unroll: passed to :func:`jaxrnn.rnn`.
      dtype: the computation dtype; ``None`` promotes the inputs' and the
        params' dtypes (Flax's rule). Inputs and params are cast to it; with
        bfloat16/float16 the carry is float32.
      param_dtype: the dtype of the parameters (float32).
      method: with ``impl="parallel"``, the Newton method (``"deer"``,
        ``"quasi"``, ``"elk"``, ``"quasi-elk"``), as for :func:`jaxrnn.rnn`;
        ``tol``, ``max_iter``, ``on_failure`` and ``damping`` likewise.
      dropout: variational dropout on the inputs, as for :func:`jaxrnn.rnn`
        (``0.0``: none); the masks are drawn from the ``"dropout"`` rng
        stream (``apply(..., rngs={"dropout": key})``), only when a rate is
        above zero and the layer is not ``deterministic``.
      recurrent_dropout: variational dropout on the state the recurrent GEMM
        reads, as for :func:`jaxrnn.rnn`.
      zoneout: zoneout on the state, as for :func:`jaxrnn.rnn`.
      deterministic: ``True`` for inference (no dropout; zoneout by its
        expectation), ``False`` for training; ``None`` leaves it to the
        call's ``deterministic`` argument, which takes precedence (as for
        ``nn.Dropout``). A layer with a rate above zero needs one of them.
      learn_initial_state: make the initial carry a parameter (one
        ``initial_h`` ``(F,)``, LSTM adds ``initial_c``), broadcast over the
        batch, used when the call passes no ``initial_carry``; its gradient
        flows through the engine like any other's.
      carry_init: initializer of the learned initial state (Flax's
        ``carry_init``); zeros.

    Example:
      >>> import jax, jax.numpy as jnp, jaxrnn as jr
      >>> layer = jr.flax.RNN(jr.GRU(8), return_carry=True)
      >>> xs = jnp.ones((2, 5, 3))
      >>> variables = layer.init(jax.random.PRNGKey(0), xs)
      >>> h, ys = layer.apply(variables, xs)
      >>> final, ys2 = jr.rnn(layer.cell, jr.GRUParams(**variables["params"]), xs)
      >>> bool(jnp.all(ys == ys2)), bool(jnp.all(h == final))
      (True, True)
    """

    cell: Cell

    def __post_init__(self) -> None:
        check_cell(self.cell)
        super().__post_init__()


class _Named(_Layer):
    """A layer whose cell is ``cell_type`` built from the layer's own attributes."""

    cell_type: ClassVar[type]

    @property
    def cell(self) -> Cell:
        """The jaxrnn cell this module runs (its config, no parameters)."""
        return cell_of(self.cell_type, self)


class LSTM(_Named):
    """:class:`RNN` over :class:`jaxrnn.LSTM`; carry ``(c, h)``, Flax's.

    Params: ``w_ih (I, 4H)``, ``w_hh (H, 4H)``, ``b (4H,)``, gates i, f, g, o.
    Computes what ``nn.RNN(nn.LSTMCell(hidden_size))`` computes once its
    parameters are converted (:func:`jaxrnn.interop.from_flax_params`).
    The attributes below configure the cell; the rest are :class:`RNN`'s.

    Attributes:
      hidden_size: the number of hidden units ``H``.
      forget_bias: the forget-gate bias at initialisation.
      w_ih_init: initializer of each gate's ``(I, H)`` block of ``w_ih``;
        Glorot-uniform.
      w_hh_init: initializer of each gate's ``(H, H)`` block of ``w_hh``;
        orthogonal.
      b_init: initializer of each gate's ``(H,)`` block of ``b``; zeros.
      proj_size: ``None``, or the output features ``P`` of an LSTMP (params
        :class:`jaxrnn.LSTMPParams`, carry ``(c (H,), h (P,))``), as for
        :class:`jaxrnn.LSTM`.
      w_hr_init: initializer of ``w_hr`` ``(H, P)``; Glorot-uniform.
      bias: ``False`` for a layer without ``b``.
      gate_fn: the gates' activation (Flax's ``gate_fn``); sigmoid.
      activation_fn: the candidate's and output's activation (Flax's
        ``activation_fn``); tanh.

    Example:
      >>> import jax, jax.numpy as jnp, jaxrnn as jr
      >>> layer = jr.flax.LSTM(8, return_carry=True)
      >>> xs = jnp.ones((2, 5, 3))
      >>> variables = layer.init(jax.random.PRNGKey(0), xs)
      >>> (c, h), ys = layer.apply(variables, xs)
      >>> params = jr.LSTMParams(**variables["params"])
      >>> final, ys2 = jr.rnn(layer.cell, params, xs)
      >>> bool(jnp.all(ys == ys2)), bool(jnp.all(h == final.h))
      (True, True)
    """

    cell_type: ClassVar[type] = _LSTM
    hidden_size: int
    forget_bias: float = 1.0
    w_ih_init: Initializer = _inits.default_w_ih
    w_hh_init: Initializer = _inits.default_w_hh
    b_init: Initializer = _inits.default_b
    proj_size: int | None = None
    w_hr_init: Initializer = _inits.default_w_ih
    bias: bool = True
    gate_fn: Any = jax.nn.sigmoid
    activation_fn: Any = jnp.tanh


class GRU(_Named):
    """:class:`RNN` over :class:`jaxrnn.GRU`; carry ``h``.

    Params: ``w_ih (I, 3H)``, ``w_hh (H, 3H)``, ``b (3H,)``, ``b_hn (H,)``,
    gates r, z, n. With ``reset_after=True`` (the default) it computes what
    ``nn.RNN(nn.GRUCell(hidden_size))`` computes. The attributes below
    configure the cell; the rest are :class:`RNN`'s.

    Attributes:
      hidden_size: the number of hidden units ``H``.
      reset_after: where the reset gate applies, as for :class:`jaxrnn.GRU`.
      w_ih_init: initializer of each gate's ``(I, H)`` block of ``w_ih``;
        Glorot-uniform.
      w_hh_init: initializer of each gate's ``(H, H)`` block of ``w_hh``;
        orthogonal.
      b_init: initializer of each ``(H,)`` block of ``b`` and of ``b_hn``;
        zeros.
      bias: ``False`` for a layer without ``b`` and ``b_hn``.
      gate_fn: the gates' activation (Flax's ``gate_fn``); sigmoid.
      activation_fn: the candidate's activation (Flax's ``activation_fn``); tanh.
    """

    cell_type: ClassVar[type] = _GRU
    hidden_size: int
    reset_after: bool = True
    w_ih_init: Initializer = _inits.default_w_ih
    w_hh_init: Initializer = _inits.default_w_hh
    b_init: Initializer = _inits.default_b
    bias: bool = True
    gate_fn: Any = jax.nn.sigmoid
    activation_fn: Any = jnp.tanh


class SimpleRNN(_Named):
    """:class:`RNN` over :class:`jaxrnn.SimpleRNN` (Elman); carry ``h``.

    Params: ``w_ih (I, H)``, ``w_hh (H, H)``, ``b (H,)``. It computes what
    ``nn.RNN(nn.SimpleCell(hidden_size, activation_fn=...))`` computes. The
    attributes below configure the cell; the rest are :class:`RNN`'s.

    Attributes:
      hidden_size: the number of hidden units ``H``.
      activation: ``"tanh"``, ``"relu"`` or an elementwise callable.
      w_ih_init: initializer of ``w_ih`` ``(I, H)``; Glorot-uniform.
      w_hh_init: initializer of ``w_hh`` ``(H, H)``; orthogonal.
      b_init: initializer of ``b`` ``(H,)``; zeros.
      residual: Flax's pre-activation residual connection, ``h' = act(x W_ih
        + h W_hh + b + h)``.
      bias: ``False`` for a layer without ``b``.
    """

    cell_type: ClassVar[type] = _SimpleRNN
    hidden_size: int
    activation: Any = "tanh"
    w_ih_init: Initializer = _inits.default_w_ih
    w_hh_init: Initializer = _inits.default_w_hh
    b_init: Initializer = _inits.default_b
    residual: bool = False
    bias: bool = True


class IRNN(_Named):
    """:class:`RNN` over :class:`jaxrnn.IRNN` (ReLU, ``W_hh = scale·I`` at init); carry ``h``.

    Params as for :class:`SimpleRNN`. The attributes below configure the
    cell; the rest are :class:`RNN`'s.

    Attributes:
      hidden_size: the number of hidden units ``H``.
      scale: the diagonal of the initial ``w_hh = scale * I``.
      w_ih_init: initializer of ``w_ih`` ``(I, H)``; normal, stddev 0.001.
      b_init: initializer of ``b`` ``(H,)``; zeros.
      bias: ``False`` for a layer without ``b``.
    """

    cell_type: ClassVar[type] = _IRNN
    hidden_size: int
    scale: float = 1.0
    w_ih_init: Initializer = _inits.default_irnn_w_ih
    b_init: Initializer = _inits.default_b
    bias: bool = True


class Stack(nn.Module):
    """Layers run one after another, each feeding its outputs to the next.

    Any module with ``flax.linen.RNN``'s call signature is a layer: the
    modules of this package (:class:`RNN` over any cell included),
    ``nn.RNN``, ``nn.Bidirectional``. With this
    package's layers and ``nn.Bidirectional`` pairs of them (concatenating,
    the default merge) it computes what :func:`jaxrnn.stacked_rnn` computes;
    :meth:`cells`, :meth:`to_jaxrnn` and :meth:`from_jaxrnn` move between
    the two.

    Attributes:
      layers: the layer modules, bottom first (their params are
        ``layers_0``, ``layers_1``, ...).
      time_major: as for the layers; passed to each.
      return_carry: return ``(carries, outputs)``, a tuple of each layer's
        final carry and the top layer's outputs.
      layer_dropout: dropout on each layer's outputs before the next layer
        (a fresh mask per element and step, not after the top layer):
        PyTorch's ``nn.LSTM(num_layers=L, dropout=p)``, as
        :func:`jaxrnn.stacked_rnn`'s ``layer_dropout``; keys from the
        ``"dropout"`` rng stream.
      deterministic: as for the layers: ``True`` for inference; the call's
        ``deterministic`` takes precedence and is passed to every layer.
    """

    layers: Sequence[nn.Module]
    time_major: bool = False
    return_carry: bool = False
    layer_dropout: float = 0.0
    deterministic: bool | None = None

    def __post_init__(self) -> None:
        check_stack_layers(self.layers, nn.Module, "flax.linen")
        super().__post_init__()

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Sequence[Any] | None = None,
        init_key: Any = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
        deterministic: bool | None = None,
    ) -> Any:
        """Runs the stack.

        Args:
          inputs: inputs of the bottom layer.
          initial_carry: one carry per layer (``None`` for zeros everywhere).
          init_key: accepted for ``nn.RNN`` compatibility; unused.
          reverse: accepted for ``nn.RNN`` compatibility; must be left unset
            (make the layers reversed instead).
          keep_order: as ``reverse``.
          seq_lengths: passed to every layer.
          return_carry: overrides the attribute.
          time_major: overrides the attribute.
          deterministic: overrides the attribute; passed to every layer when
            either is given (the layers of this package take it; see
            :class:`RNN`).

        Returns:
          The top layer's outputs, or ``(carries, outputs)``.
        """
        del init_key
        rate = check_rate("layer_dropout", self.layer_dropout)
        given = self.deterministic if deterministic is None else deterministic
        extra = {} if given is None else {"deterministic": given}
        drop = rate > 0 and not pick_deterministic(given, None, rate > 0)
        if reverse or keep_order:
            raise ValueError(
                "Stack takes no reverse/keep_order: reverse its layers instead "
                f"(got reverse={reverse!r}, keep_order={keep_order!r})"
            )
        n = len(self.layers)
        if initial_carry is None:
            initial_carry = (None,) * n
        elif not isinstance(initial_carry, (tuple, list)) or len(initial_carry) != n:
            raise ValueError(
                f"initial_carry must hold one carry per layer ({n}), got "
                f"{_checks.describe(initial_carry)}"
            )
        time_major = self.time_major if time_major is None else time_major
        carries = []
        ys = inputs
        for i, (layer, carry) in enumerate(zip(self.layers, initial_carry)):
            if i > 0 and drop:
                ys = layer_dropout(self.make_rng("dropout"), rate, ys)
            carry, ys = layer(
                ys,
                initial_carry=carry,
                seq_lengths=seq_lengths,
                return_carry=True,
                time_major=time_major,
                **extra,
            )
            carries.append(carry)
        return_carry = self.return_carry if return_carry is None else return_carry
        return (tuple(carries), ys) if return_carry else ys

    def cells(self) -> tuple[Any, ...]:
        """The layers as :func:`jaxrnn.stacked_rnn` takes them: cells and pairs."""
        return tuple(layer_cells(m, f"layers[{i}]") for i, m in enumerate(self.layers))

    def to_jaxrnn(self, variables: Any) -> tuple[Any, ...]:
        """This stack's variables as :func:`jaxrnn.stacked_rnn`'s params.

        Args:
          variables: ``{"params": {...}}`` from ``init``, or its ``params``.

        Returns:
          A tuple with one params NamedTuple (or ``(forward, backward)``
          pair) per layer.
        """
        tree = variables.get("params", variables)
        out = []
        for i, cells in enumerate(self.cells()):
            sub = tree[f"layers_{i}"]
            if isinstance(cells, tuple):
                out.append(
                    (
                        params_of(cells[0], sub["forward_rnn"]),
                        params_of(cells[1], sub["backward_rnn"]),
                    )
                )
            else:
                out.append(params_of(cells, sub))
        return tuple(out)

    def from_jaxrnn(self, params: Sequence[Any]) -> dict[str, Any]:
        """:func:`jaxrnn.stacked_rnn`'s params as this stack's variables.

        Args:
          params: one params NamedTuple or ``(forward, backward)`` pair per layer.

        Returns:
          ``{"params": {"layers_0": ..., ...}}``, ready for ``apply``.
        """
        cells = self.cells()
        if not isinstance(params, (tuple, list)) or len(params) != len(cells):
            raise ValueError(
                f"params must hold one item per layer ({len(cells)}), got "
                f"{_checks.describe(params)}"
            )
        tree = {}
        for i, (c, p) in enumerate(zip(cells, params)):
            if isinstance(c, tuple):
                tree[f"layers_{i}"] = {
                    "forward_rnn": variables_of(p[0]),
                    "backward_rnn": variables_of(p[1]),
                }
            else:
                tree[f"layers_{i}"] = variables_of(p)
        return {"params": tree}
