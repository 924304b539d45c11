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
from ..cells import GRU as _GRU
from ..cells import IRNN as _IRNN
from ..cells import LSTM as _LSTM
from ..cells import Cell
from ..cells import SimpleRNN as _SimpleRNN
from ._core import check_cell, check_stack_layers, layer_cells, run

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
        self.param_dtype = _checks.float_dtype("param_dtype", param_dtype)
        params = cell.init(rngs.params(), in_features, self.param_dtype)
        for field, value in zip(params._fields, params):
            if hasattr(self, field):
                raise ValueError(
                    f"{type(cell).__name__}'s params field {field!r} clashes with an "
                    "attribute of the layer; rename the field"
                )
            setattr(self, field, _nnx.Param(value))

    def get_params(self) -> Any:
        """The parameters as the cell's params NamedTuple (for :func:`jaxrnn.rnn`)."""
        fields = self.cell.params_type._fields
        return self.cell.params_type(**{f: getattr(self, f)[...] for f in fields})

    def set_params(self, params: Any) -> None:
        """Loads a params NamedTuple of this cell (shapes and dtype checked)."""
        self.cell.check_params(params)
        for field in self.cell.params_type._fields:
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
    ) -> Any:
        """Runs the layer over a sequence, as ``flax.nnx.RNN`` does.

        Args:
          inputs: ``(*batch, time, features)`` (``(time, *batch, features)``
            when time-major).
          initial_carry: Flax's carry (LSTM: ``(c, h)`` or an
            ``LSTMState``; other cells: their state); ``None`` means zeros.
          rngs: accepted for ``nnx.RNN`` compatibility; unused.
          seq_lengths: ``(*batch,)`` integer lengths; outputs at padding
            steps are zeros (``nnx.RNN`` runs the cell over the padding).
          return_carry: overrides the constructor's setting.
          time_major: overrides the constructor's setting.
          reverse: overrides the constructor's setting.
          keep_order: overrides the constructor's setting.

        Returns:
          ``outputs``, or ``(carry, outputs)`` with ``return_carry``.
        """
        del rngs
        pick = lambda value, default: default if value is None else value
        return run(
            self.cell,
            self.get_params(),
            inputs,
            initial_carry=initial_carry,
            seq_lengths=seq_lengths,
            return_carry=pick(return_carry, self.return_carry),
            time_major=pick(time_major, self.time_major),
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
        )


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
      rngs: an ``nnx.Rngs``; its ``params`` stream initialises the weights.
      **options: :class:`RNN`'s keyword arguments (``return_carry``,
        ``impl``, ``dtype``, ...).
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
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _LSTM(hidden_size, forget_bias, w_ih_init=w_ih_init, w_hh_init=w_hh_init, b_init=b_init)
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
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _GRU(hidden_size, reset_after, w_ih_init=w_ih_init, w_hh_init=w_hh_init, b_init=b_init)
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
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _SimpleRNN(hidden_size, activation, w_ih_init=w_ih_init, w_hh_init=w_hh_init, b_init=b_init)
        super().__init__(cell, in_features, rngs=rngs, **options)


class IRNN(RNN):
    """:class:`RNN` over :class:`jaxrnn.IRNN` (ReLU, ``W_hh = scale·I`` at init); carry ``h``.

    Args:
      in_features: the number of input features ``I``.
      hidden_size: the number of hidden units ``H``.
      scale: the diagonal of the initial ``w_hh = scale * I``.
      w_ih_init: initializer of ``w_ih`` ``(I, H)``; normal, stddev 0.001.
      b_init: initializer of ``b`` ``(H,)``; zeros.
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
        rngs: _nnx.Rngs,
        **options: Any,
    ) -> None:
        cell = _IRNN(hidden_size, scale, w_ih_init=w_ih_init, b_init=b_init)
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
    """

    def __init__(
        self, layers: Sequence[_nnx.Module], *, time_major: bool = False, return_carry: bool = False
    ) -> None:
        check_stack_layers(layers, _nnx.Module, "flax.nnx")
        self.layers = _nnx.List(list(layers))
        self.time_major = time_major
        self.return_carry = return_carry

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Sequence[Any] | None = None,
        rngs: Any = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
    ) -> Any:
        """Runs the stack.

        Args:
          inputs: inputs of the bottom layer.
          initial_carry: one carry per layer (``None`` for zeros everywhere).
          rngs: passed to the layers when given (``nnx.Bidirectional`` takes it).
          seq_lengths: passed to every layer.
          return_carry: overrides the constructor's setting.
          time_major: overrides the constructor's setting.

        Returns:
          The top layer's outputs, or ``(carries, outputs)``.
        """
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
        for layer, carry in zip(self.layers, initial_carry):
            kw = {} if rngs is None else {"rngs": rngs}
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
