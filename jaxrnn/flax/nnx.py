"""Flax nnx layers over jaxrnn's fused engine: one :class:`RNN` for any cell.

The ``flax.nnx`` twins of :mod:`jaxrnn.flax.linen`. :class:`RNN` runs any
jaxrnn cell (a subclass of :class:`jaxrnn.Cell` of your own included) over
a whole sequence: it takes what ``flax.nnx.RNN(cell)`` takes, returns what it
returns, and runs :func:`jaxrnn.rnn` inside. ``LSTM``, ``GRU``,
``SimpleRNN`` and ``IRNN`` are :class:`RNN` with the cell built from their
arguments. Each layer keeps ``nnx.Param`` attributes named after the cell's
params fields (``w_ih``, ``w_hh``, ``b``; GRU adds ``b_hn``), drawn by one
``cell.init``; :meth:`RNN.get_params` returns them as the cell's params
NamedTuple and :meth:`RNN.set_params` loads one. Carries are Flax's (LSTM:
``(c, h)``). ``flax.nnx.Bidirectional`` works with these modules as it is,
and :class:`Stack` chains layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx as _nnx

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
    check_cell,
    check_stack_layers,
    dropout_active,
    layer_cells,
    pick_deterministic,
    run,
    state_param_shapes,
)

__all__ = ["GRU", "IRNN", "LSTM", "RNN", "SimpleRNN", "Stack"]

Array = jax.Array
Initializer = jax.nn.initializers.Initializer


class RNN(_nnx.Module):
    """A whole-sequence layer over any jaxrnn cell, on the fused engine.

    ``RNN(cell, in_features, rngs=...)`` computes ``jr.rnn(cell, params,
    inputs)`` with the semantics of ``flax.nnx.RNN``. The named layers
    (:class:`LSTM`, :class:`GRU`, :class:`SimpleRNN`, :class:`IRNN`) take
    ``in_features``, their cell's configuration and then the same keyword
    arguments as this one.

    Args:
      cell: the jaxrnn cell (its config; the module holds the parameters).
      in_features: the number of input features ``I``.
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
        (``0.0``: none). With a rate above zero the layer keeps a fork of
        ``rngs``' ``dropout`` stream and draws each call's key from it, as
        ``nnx.Dropout`` does (a call's ``rngs`` takes precedence).
      recurrent_dropout: variational dropout on the state the recurrent GEMM
        reads, as for :func:`jaxrnn.rnn`.
      zoneout: zoneout on the state, as for :func:`jaxrnn.rnn`.
      deterministic: ``False`` (training, ``nnx.Dropout``'s default) or
        ``True`` (inference: no dropout, zoneout by its expectation); a
        call's ``deterministic`` takes precedence, and ``model.eval()`` /
        ``model.train()`` set it.
      learn_initial_state: make the initial carry a parameter
        (``initial_h`` ``(F,)``, LSTM adds ``initial_c``), broadcast over the
        batch, used when the call passes no ``initial_carry``.
      carry_init: initializer of the learned initial state (Flax's
        ``carry_init``); zeros.
      rngs: an ``nnx.Rngs``; its ``params`` stream initialises the weights.

    Example:
      >>> import jax.numpy as jnp, jaxrnn as jr
      >>> from flax import nnx
      >>> layer = jr.flax.nnx.RNN(jr.GRU(8), 3, rngs=nnx.Rngs(0))
      >>> xs = jnp.ones((2, 5, 3))
      >>> _, ys = jr.rnn(layer.cell, layer.get_params(), xs)
      >>> bool(jnp.all(layer(xs) == ys))
      True
    """

    def __init__(
        self,
        cell: Cell,
        in_features: int,
        *,
        time_major: bool = False,
        return_carry: bool = False,
        reverse: bool = False,
        keep_order: bool = False,
        impl: str = "auto",
        residuals: str | int = "auto",
        residual_budget: int | None = None,
        bptt_clip: float | None = None,
        precision: Any = None,
        unroll: int | bool = 1,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        method: str | None = None,
        tol: float | None = None,
        max_iter: int | None = None,
        on_failure: str | None = None,
        damping: float | None = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        deterministic: bool | None = False,
        learn_initial_state: bool = False,
        carry_init: Initializer = jax.nn.initializers.zeros,
        rngs: _nnx.Rngs,
    ) -> None:
        check_cell(cell)
        if not isinstance(rngs, _nnx.Rngs):
            raise TypeError(f"rngs must be an nnx.Rngs, got {_checks.describe(rngs)}")
        self.cell = cell
        self.time_major = time_major
        self.return_carry = return_carry
        self.reverse = reverse
        self.keep_order = keep_order
        self.impl = impl
        self.residuals = residuals
        self.residual_budget = residual_budget
        self.bptt_clip = bptt_clip
        self.precision = precision
        self.unroll = unroll
        self.dtype = dtype
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.on_failure = on_failure
        self.damping = damping
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.zoneout = zoneout
        self.deterministic = deterministic
        if not isinstance(learn_initial_state, bool):
            raise TypeError(
                f"learn_initial_state must be a bool, got {_checks.describe(learn_initial_state)}"
            )
        self.learn_initial_state = learn_initial_state
        self.param_dtype = _checks.float_dtype("param_dtype", param_dtype)
        params = cell.init(rngs.params(), in_features, self.param_dtype)
        for field, value in zip(params._fields, params):
            if value is None:  # a parameter this cell leaves out (bias=False)
                continue
            if hasattr(self, field):
                raise ValueError(
                    f"{type(cell).__name__}'s params field {field!r} clashes with an "
                    "attribute of the layer; rename the field"
                )
            setattr(self, field, _nnx.Param(value))
        if learn_initial_state:
            for name, shape in state_param_shapes(cell, self.param_dtype).items():
                setattr(self, name, _nnx.Param(carry_init(rngs.params(), shape, self.param_dtype)))
        self.rngs = _dropout_stream(rngs if dropout_active(self) else None)

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by ``nnx.view``: sets ``deterministic`` when given."""
        if deterministic is not None:
            self.deterministic = deterministic

    def get_params(self) -> Any:
        """The parameters as the cell's params NamedTuple (for :func:`jaxrnn.rnn`)."""
        fields = self.cell.params_type._fields
        values = {f: getattr(self, f, None) for f in fields}
        return self.cell.params_type(**{f: None if v is None else v[...] for f, v in values.items()})

    def get_initial_state(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """The learned initial state (``learn_initial_state=True``), broadcast
        over ``batch_shape``, as a jaxrnn state (LSTM: ``LSTMState(h, c)``)."""
        if not self.learn_initial_state:
            raise ValueError("get_initial_state needs a layer made with learn_initial_state=True")
        names = state_param_shapes(self.cell, self.param_dtype)
        return broadcast_state(self.cell, {n: getattr(self, n)[...] for n in names}, batch_shape)

    def set_params(self, params: Any) -> None:
        """Loads a params NamedTuple of this cell (shapes and dtype checked)."""
        self.cell.check_params(params)
        for field in self.cell.params_type._fields:
            if getattr(params, field) is None:  # absent for this cell (checked above)
                continue
            current = getattr(self, field)[...]
            new = getattr(params, field)
            if new.shape != current.shape or new.dtype != current.dtype:
                raise ValueError(
                    f"params.{field} must have shape {current.shape} and dtype "
                    f"{current.dtype} (this module's), got shape {new.shape} and "
                    f"dtype {new.dtype}"
                )
            getattr(self, field)[...] = new

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Any = None,
        rngs: Any = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
        deterministic: bool | None = None,
    ) -> Any:
        """Runs the layer over a sequence, as ``flax.nnx.RNN`` does.

        Args:
          inputs: ``(*batch, time, features)`` (``(time, *batch, features)``
            when time-major).
          initial_carry: Flax's carry (LSTM: ``(c, h)`` or an
            ``LSTMState``; other cells: their state); ``None`` means zeros,
            or the learned initial state with ``learn_initial_state``.
          rngs: where the dropout masks' key comes from, taking precedence
            over the layer's own stream (as for ``nnx.Dropout``): an
            ``nnx.Rngs`` (its ``dropout`` stream), an ``nnx.RngStream`` or a
            PRNG key. Unused without dropout.
          seq_lengths: ``(*batch,)`` integer lengths; outputs at padding
            steps are zeros (``nnx.RNN`` runs the cell over the padding).
          return_carry: overrides the constructor's setting.
          time_major: overrides the constructor's setting.
          reverse: overrides the constructor's setting.
          keep_order: overrides the constructor's setting.
          deterministic: overrides the constructor's setting.

        Returns:
          ``outputs``, or ``(carry, outputs)`` with ``return_carry``.
        """
        pick = lambda value, default: default if value is None else value
        time_major = pick(time_major, self.time_major)
        if self.learn_initial_state and initial_carry is None:
            _checks.array("inputs", inputs)
            initial_carry = self.get_initial_state(batch_shape_of(inputs, time_major))
        active = dropout_active(self)
        deterministic = pick_deterministic(deterministic, self.deterministic, active)
        key = self._dropout_key(rngs) if active and not deterministic else None
        return run(
            self.cell,
            self.get_params(),
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

    def _dropout_key(self, rngs: Any) -> Any:
        """This call's dropout key: from the call's ``rngs``, else the layer's stream."""
        return _stream_key(self.rngs, rngs)


def _dropout_stream(rngs: _nnx.Rngs | None) -> Any:
    """A module's own dropout stream, as ``nnx.Dropout`` keeps it: a fork of
    ``rngs``' ``dropout`` stream, or ``None`` (as nnx data) when there is no
    ``rngs`` or it has no ``dropout`` (nor ``default``) stream; then each
    call must pass ``rngs``."""
    if rngs is not None:
        try:
            return rngs["dropout"].fork()
        except KeyError:
            pass
    return _nnx.data(None)


def _stream_key(own: Any, rngs: Any) -> Any:
    """A dropout key from the call's ``rngs`` (an ``nnx.Rngs``, a stream or a
    key), else from the module's own stream ``own``."""
    source = own if rngs is None else rngs
    if isinstance(source, _nnx.Rngs):
        return source["dropout"]()
    if isinstance(source, _nnx.RngStream):
        return source()
    if source is None:
        raise ValueError(
            "deterministic is False but the layer has no dropout stream (its rngs "
            "had no 'dropout' or 'default' stream): pass rngs (an nnx.Rngs, "
            "RngStream or key) to the call, or build the layer with "
            "nnx.Rngs(params=..., dropout=...)"
        )
    _checks.prng_key("rngs", source)
    return source


class LSTM(RNN):
    """:class:`RNN` over :class:`jaxrnn.LSTM`; carry ``(c, h)``.

    Args:
      in_features: the number of input features ``I``.
      hidden_size: the number of hidden units ``H``.
      forget_bias: the forget-gate bias at initialisation.
      w_ih_init: initializer of each gate's ``(I, H)`` block of ``w_ih``;
        Glorot-uniform.
      w_hh_init: initializer of each gate's ``(H, H)`` block of ``w_hh``;
        orthogonal.
      b_init: initializer of each gate's ``(H,)`` block of ``b``; zeros.
      proj_size: ``None``, or the output features ``P`` of an LSTMP, as for
        :class:`jaxrnn.LSTM`.
      w_hr_init: initializer of ``w_hr`` ``(H, P)``; Glorot-uniform.
      bias: ``False`` for a layer without ``b``.
      gate_fn: the gates' activation (Flax's ``gate_fn``); sigmoid.
      activation_fn: the candidate's and output's activation; tanh.
      rngs: an ``nnx.Rngs``; its ``params`` stream initialises the weights.
      **options: :class:`RNN`'s keyword arguments (``return_carry``,
        ``impl``, ``dtype``, ``dropout``, ...).
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        forget_bias: float = 1.0,
        w_ih_init: Initializer = _inits.default_w_ih,
        w_hh_init: Initializer = _inits.default_w_hh,
        b_init: Initializer = _inits.default_b,
        proj_size: int | None = None,
        w_hr_init: Initializer = _inits.default_w_ih,
        bias: bool = True,
        gate_fn: Any = jax.nn.sigmoid,
        activation_fn: Any = jnp.tanh,
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _LSTM(
            hidden_size, forget_bias, w_ih_init=w_ih_init, w_hh_init=w_hh_init, b_init=b_init,
            proj_size=proj_size, w_hr_init=w_hr_init, bias=bias, gate_fn=gate_fn,
            activation_fn=activation_fn,
        )
        super().__init__(cell, in_features, rngs=rngs, **options)


class GRU(RNN):
    """:class:`RNN` over :class:`jaxrnn.GRU`; carry ``h``.

    Args:
      in_features: the number of input features ``I``.
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
      activation_fn: the candidate's activation; tanh.
      rngs: an ``nnx.Rngs``; its ``params`` stream initialises the weights.
      **options: :class:`RNN`'s keyword arguments.
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        reset_after: bool = True,
        w_ih_init: Initializer = _inits.default_w_ih,
        w_hh_init: Initializer = _inits.default_w_hh,
        b_init: Initializer = _inits.default_b,
        bias: bool = True,
        gate_fn: Any = jax.nn.sigmoid,
        activation_fn: Any = jnp.tanh,
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _GRU(
            hidden_size, reset_after, w_ih_init=w_ih_init, w_hh_init=w_hh_init, b_init=b_init,
            bias=bias, gate_fn=gate_fn, activation_fn=activation_fn,
        )
        super().__init__(cell, in_features, rngs=rngs, **options)


class SimpleRNN(RNN):
    """:class:`RNN` over :class:`jaxrnn.SimpleRNN` (Elman); carry ``h``.

    Args:
      in_features: the number of input features ``I``.
      hidden_size: the number of hidden units ``H``.
      activation: ``"tanh"``, ``"relu"`` or an elementwise callable.
      w_ih_init: initializer of ``w_ih`` ``(I, H)``; Glorot-uniform.
      w_hh_init: initializer of ``w_hh`` ``(H, H)``; orthogonal.
      b_init: initializer of ``b`` ``(H,)``; zeros.
      residual: Flax's pre-activation residual connection.
      bias: ``False`` for a layer without ``b``.
      rngs: an ``nnx.Rngs``; its ``params`` stream initialises the weights.
      **options: :class:`RNN`'s keyword arguments.
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        activation: Any = "tanh",
        w_ih_init: Initializer = _inits.default_w_ih,
        w_hh_init: Initializer = _inits.default_w_hh,
        b_init: Initializer = _inits.default_b,
        residual: bool = False,
        bias: bool = True,
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _SimpleRNN(
            hidden_size, activation, w_ih_init=w_ih_init, w_hh_init=w_hh_init, b_init=b_init,
            residual=residual, bias=bias,
        )
        super().__init__(cell, in_features, rngs=rngs, **options)


class IRNN(RNN):
    """:class:`RNN` over :class:`jaxrnn.IRNN` (ReLU, ``W_hh = scale·I`` at init); carry ``h``.

    Args:
      in_features: the number of input features ``I``.
      hidden_size: the number of hidden units ``H``.
      scale: the diagonal of the initial ``w_hh = scale * I``.
      w_ih_init: initializer of ``w_ih`` ``(I, H)``; normal, stddev 0.001.
      b_init: initializer of ``b`` ``(H,)``; zeros.
      bias: ``False`` for a layer without ``b``.
      rngs: an ``nnx.Rngs``; its ``params`` stream initialises the weights.
      **options: :class:`RNN`'s keyword arguments.
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int,
        *,
        scale: float = 1.0,
        w_ih_init: Initializer = _inits.default_irnn_w_ih,
        b_init: Initializer = _inits.default_b,
        bias: bool = True,
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _IRNN(hidden_size, scale, w_ih_init=w_ih_init, b_init=b_init, bias=bias)
        super().__init__(cell, in_features, rngs=rngs, **options)


class Stack(_nnx.Module):
    """Layers run one after another, each feeding its outputs to the next.

    The nnx twin of :class:`jaxrnn.flax.linen.Stack`: layers are this
    module's layers (:class:`RNN` over any cell included), ``nnx.RNN``s or ``nnx.Bidirectional``s. With this
    package's layers and ``nnx.Bidirectional`` pairs of them (concatenating)
    it computes what :func:`jaxrnn.stacked_rnn` computes.

    Args:
      layers: the layer modules, bottom first.
      time_major: passed to each layer.
      return_carry: return ``(carries, outputs)``.
      layer_dropout: dropout on each layer's outputs before the next layer
        (PyTorch's ``nn.LSTM(num_layers=L, dropout=p)``, as
        :func:`jaxrnn.stacked_rnn`'s ``layer_dropout``); its keys come from
        a fork of ``rngs``' ``dropout`` stream, or the call's ``rngs``.
      deterministic: ``False`` (training) or ``True`` (inference) for the
        layer dropout; a call's ``deterministic`` takes precedence and is
        passed to every layer.
      rngs: an ``nnx.Rngs``, needed for ``layer_dropout`` above zero
        (unless every call passes ``rngs``).
    """

    def __init__(
        self,
        layers: Sequence[_nnx.Module],
        *,
        time_major: bool = False,
        return_carry: bool = False,
        layer_dropout: float = 0.0,
        deterministic: bool | None = False,
        rngs: _nnx.Rngs | None = None,
    ) -> None:
        check_stack_layers(layers, _nnx.Module, "flax.nnx")
        self.layers = _nnx.List(list(layers))
        self.time_major = time_major
        self.return_carry = return_carry
        self.layer_dropout = check_rate("layer_dropout", layer_dropout)
        self.deterministic = deterministic
        self.rngs = _dropout_stream(rngs if self.layer_dropout > 0 else None)

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by ``nnx.view``: sets ``deterministic`` when given."""
        if deterministic is not None:
            self.deterministic = deterministic

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Sequence[Any] | None = None,
        rngs: Any = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        deterministic: bool | None = None,
    ) -> Any:
        """Runs the stack.

        Args:
          inputs: inputs of the bottom layer.
          initial_carry: one carry per layer (``None`` for zeros everywhere).
          rngs: passed to the layers when given (``nnx.Bidirectional`` takes it).
          seq_lengths: passed to every layer.
          return_carry: overrides the constructor's setting.
          time_major: overrides the constructor's setting.
          deterministic: overrides the constructor's setting for the layer
            dropout; passed to every layer when given.

        Returns:
          The top layer's outputs, or ``(carries, outputs)``.
        """
        n = len(self.layers)
        rate = self.layer_dropout
        drop = rate > 0 and not pick_deterministic(deterministic, self.deterministic, True)
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
                ys = layer_dropout(_stream_key(self.rngs, rngs), rate, ys)
            kw = {} if rngs is None else {"rngs": rngs}
            if deterministic is not None:
                kw["deterministic"] = deterministic
            carry, ys = layer(
                ys, initial_carry=carry, seq_lengths=seq_lengths, return_carry=True,
                time_major=time_major, **kw,
            )
            carries.append(carry)
        return_carry = self.return_carry if return_carry is None else return_carry
        return (tuple(carries), ys) if return_carry else ys

    def cells(self) -> tuple[Any, ...]:
        """The layers as :func:`jaxrnn.stacked_rnn` takes them: cells and pairs."""
        return tuple(layer_cells(m, f"layers[{i}]") for i, m in enumerate(self.layers))

    def get_params(self) -> tuple[Any, ...]:
        """The parameters as :func:`jaxrnn.stacked_rnn`'s params."""
        self.cells()  # checks the layers
        out = []
        for m in self.layers:
            if hasattr(m, "forward_rnn"):
                out.append((m.forward_rnn.get_params(), m.backward_rnn.get_params()))
            else:
                out.append(m.get_params())
        return tuple(out)

    def set_params(self, params: Sequence[Any]) -> None:
        """Loads :func:`jaxrnn.stacked_rnn`'s params (one item per layer)."""
        self.cells()
        if not isinstance(params, (tuple, list)) or len(params) != len(self.layers):
            raise ValueError(
                f"params must hold one item per layer ({len(self.layers)}), got "
                f"{_checks.describe(params)}"
            )
        for m, p in zip(self.layers, params):
            if hasattr(m, "forward_rnn"):
                m.forward_rnn.set_params(p[0])
                m.backward_rnn.set_params(p[1])
            else:
                m.set_params(p)
