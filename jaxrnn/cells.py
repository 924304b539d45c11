"""Recurrent cells: frozen configs, parameter layouts and pure single steps.

Every cell here is one computation in three parts::

    xz_t = x_t @ w_ih + b                     input projection (not sequential)
    hz_t = h_{t-1} @ w_hh (+ recurrent bias)  recurrent projection (sequential GEMM)
    s_t  = pointwise(xz_t, hz_t, s_{t-1})     elementwise, cell-specific

A cell is its parameter layout plus its ``pointwise`` function; the sequence
driver (:func:`jaxrnn.rnn`) and the fused engine are written once for all of
them. Gate orders are PyTorch's and cuDNN's:

=============  ==================================  ==========  =========================
cell           params                              gate order  state
=============  ==================================  ==========  =========================
SimpleRNN      w_ih (I,H), w_hh (H,H), b (H,)      --          h (*batch, H)
IRNN           as SimpleRNN                        --          h (*batch, H)
LSTM           w_ih (I,4H), w_hh (H,4H), b (4H,)   i, f, g, o  LSTMState(h, c)
LSTM(proj_     w_ih (I,4H), w_hh (P,4H), b (4H,),  i, f, g, o  LSTMState(h (*batch, P),
size=P)        w_hr (H,P)                                      c (*batch, H))
GRU            w_ih (I,3H), w_hh (H,3H), b (3H,),  r, z, n     h (*batch, H)
               b_hn (H,)
=============  ==================================  ==========  =========================

(``LSTM(proj_size=P)`` has its own params type, :class:`LSTMPParams`.) The
biases of a cell made with ``bias=False`` (``b``, GRU's ``b_hn``) are
``None``: ``None`` is an empty pytree, so optimizers and gradients never see
an absent parameter, and each params type keeps its fields.

Initializers are applied block by block: each gate's ``(I, H)`` slice of
``w_ih``, each ``(H, H)`` slice of ``w_hh`` and each ``(H,)`` slice of ``b``
gets its own draw (as Flax and Keras' per-gate layers do), so the default
orthogonal recurrent initializer makes every gate's recurrent map orthogonal.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, Callable, ClassVar, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from . import initializers

__all__ = [
    "Cell",
    "SimpleRNN",
    "IRNN",
    "LSTM",
    "GRU",
    "SimpleRNNParams",
    "LSTMParams",
    "LSTMPParams",
    "GRUParams",
    "LSTMState",
    "accumulation_dtype",
    "block_init",
    "Params",
    "State",
    "PyTree",
]

Array = jax.Array
Initializer = jax.nn.initializers.Initializer
#: A pytree: nested tuples, lists, dicts and NamedTuples of arrays.
PyTree = Any
#: A cell's parameters: the params NamedTuple its ``init`` returns (:class:`LSTMParams`, ...).
Params = Any
#: A cell's state: an array ``(*batch, hidden_size)``, or a NamedTuple of such arrays (:class:`LSTMState`).
State = Any
Activation = Union[str, Callable[[Array], Array]]

# The cells' initializer defaults are jaxrnn.initializers' named ones
# (`initializers.default_w_ih`, ...): one shared object each, so that two
# configs built with the defaults compare (and hash) equal, and a name that the
# docs' signatures show and a user can type.

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


class SimpleRNNParams(NamedTuple):
    """Parameters of :class:`SimpleRNN` and :class:`IRNN` (``b`` is ``None`` with ``bias=False``)."""

    w_ih: Array  # (input_size, hidden_size)
    w_hh: Array  # (hidden_size, hidden_size)
    b: Array | None = None  # (hidden_size,); None: bias=False


class LSTMParams(NamedTuple):
    """Parameters of :class:`LSTM`; gate blocks along the last axis: i, f, g, o.

    ``b`` is ``None`` with ``bias=False``.
    """

    w_ih: Array  # (input_size, 4 * hidden_size)
    w_hh: Array  # (hidden_size, 4 * hidden_size)
    b: Array | None = None  # (4 * hidden_size,); None: bias=False


class LSTMPParams(NamedTuple):
    """Parameters of ``LSTM(hidden_size, proj_size=P)`` (LSTMP): those of
    :class:`LSTMParams` with ``w_hh`` reading the projected ``h`` ``(P, 4H)``,
    and the output projection ``w_hr``. ``b`` is ``None`` with ``bias=False``.
    """

    w_ih: Array  # (input_size, 4 * hidden_size)
    w_hh: Array  # (proj_size, 4 * hidden_size)
    b: Array | None  # (4 * hidden_size,); None: bias=False
    w_hr: Array  # (hidden_size, proj_size): h = (o * tanh(c)) @ w_hr


class GRUParams(NamedTuple):
    """Parameters of :class:`GRU`; gate blocks along the last axis: r, z, n.

    ``b`` and ``b_hn`` are ``None`` with ``bias=False``.
    """

    w_ih: Array  # (input_size, 3 * hidden_size)
    w_hh: Array  # (hidden_size, 3 * hidden_size)
    b: Array | None = None  # (3 * hidden_size,): input-side biases b_r, b_z, b_n
    b_hn: Array | None = None  # (hidden_size,): recurrent bias of the candidate n


class LSTMState(NamedTuple):
    """State of :class:`LSTM`: the output ``h`` and the memory cell ``c``."""

    h: Array  # (*batch, hidden_size); (*batch, proj_size) with proj_size
    c: Array  # (*batch, hidden_size)


def accumulation_dtype(dtype: Any) -> np.dtype:
    """The dtype of states and accumulations for parameters of ``dtype``.

    Half-precision parameters (bfloat16, float16) run their GEMMs on
    half-precision inputs with float32 accumulation, and keep the state in
    float32; float32 and float64 parameters keep their own dtype throughout.
    """
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype


def matmul_accumulated(a: Array, w: Array, precision: Any = None) -> Array:
    """``a @ w`` on ``w``'s dtype, accumulated in :func:`accumulation_dtype`."""
    return jnp.matmul(
        a.astype(w.dtype),
        w,
        precision=precision,
        preferred_element_type=accumulation_dtype(w.dtype),
    )


def _add_bias(z: Array, b: Array | None) -> Array:
    """``z + b`` with ``b (F,)`` broadcast over the leading dims of ``z (..., F)``;
    ``z`` itself when ``b`` is ``None`` (a ``bias=False`` cell).

    Written out so the library stays clean under
    ``jax_numpy_rank_promotion="raise"``.
    """
    if b is None:
        return z
    return z + b.astype(z.dtype).reshape((1,) * (z.ndim - 1) + b.shape)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_checks.describe(value)}")


def _check_callable(name: str, value: Any) -> None:
    if not callable(value):
        raise TypeError(
            f"{name} must be an elementwise function (e.g. jax.nn.sigmoid, jnp.tanh), "
            f"got {_checks.describe(value)}"
        )


def block_init(
    init: Initializer, key: Array, num_blocks: int, shape: tuple[int, ...], dtype: Any
) -> Array:
    """Draws ``num_blocks`` blocks of ``shape`` and concatenates them on the last axis.

    The helper behind every cell's gate layout, for writing new cells: e.g.
    ``block_init(orthogonal(), key, 4, (H, H), dtype)`` is an LSTM's ``w_hh``.
    """
    keys = jax.random.split(key, num_blocks)
    # bf16/fp16 params are drawn in float32 and rounded: some initializers
    # (orthogonal's QR) have no half-precision kernel on CPU.
    draw_dtype = jnp.float32 if jnp.dtype(dtype).itemsize < 4 else dtype
    blocks = [init(k, shape, draw_dtype) for k in keys]
    for blk in blocks:
        if blk.shape != shape:
            raise ValueError(
                f"initializer {init!r} returned shape {blk.shape}, expected {shape}"
            )
    return jnp.concatenate(blocks, axis=-1).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Cell(abc.ABC):
    """Base class of the recurrent cells.

    A cell is a frozen, hashable configuration. Its methods are pure functions
    of arrays: ``init`` makes a params NamedTuple, ``initial_state`` a zero
    state and ``cell(params, state, x)`` takes one step. Subclasses define the
    parameter layout (``params_type``, ``num_gates``, ``init_params``) and
    the elementwise ``pointwise`` function.

    The fused engine (``jr.rnn(..., impl="fused")``) reads three class
    attributes, the cell's contract with it: :attr:`elementwise` (the step is
    ``pointwise`` after one recurrent GEMM; else the engine differentiates
    ``step_from_projection`` whole), :attr:`additive` (``pointwise`` reads
    ``xz + hz`` only: one buffer instead of two) and
    :attr:`plain_projections` (the projections are the base class's GEMMs,
    so their weight gradients are batched GEMMs: the fast path). The
    defaults fit a cell that writes only its layout and ``pointwise``.

    Attributes:
      hidden_size: the number of hidden units ``H``.
    """

    hidden_size: int

    #: the params NamedTuple type of this cell
    params_type: ClassVar[type]
    #: number of gate blocks in ``w_ih``/``w_hh``/``b`` (1 for plain RNNs)
    num_gates: ClassVar[int]
    #: whether ``step_from_projection`` is ``pointwise`` after one recurrent GEMM
    elementwise: ClassVar[bool] = True
    #: whether ``pointwise`` reads ``xz`` and ``hz`` only through ``xz + hz``
    #: (the engine then keeps one pre-activation buffer instead of two)
    additive: ClassVar[bool] = False
    #: whether the projections are this base class's ``x @ w_ih + b`` and
    #: ``h @ w_hh (+ recurrent_bias)``: the fused engine then writes their
    #: weight gradients as GEMMs over a chunk's ``C·B`` rows (its fast path);
    #: ``False`` differentiates the cell's own projections with ``jax.vjp``.
    #: A subclass that overrides ``input_projection`` or
    #: ``recurrent_projection`` without setting it gets ``False``.
    plain_projections: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The fast path assumes the base class's projections; a subclass that
        # replaces one and does not say otherwise falls back to their VJP,
        # which is right for any projection.
        own = vars(cls)
        if "plain_projections" not in own and (
            "input_projection" in own or "recurrent_projection" in own
        ):
            cls.plain_projections = False

    def __post_init__(self) -> None:
        _checks.positive_int("hidden_size", self.hidden_size)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_init") and not callable(value):
                raise TypeError(
                    f"{field.name} must be an initializer, a callable "
                    f"(key, shape, dtype) -> array, got {_checks.describe(value)}"
                )
            if field.name in ("bias", "residual"):
                _check_bool(field.name, value)
            if field.name.endswith("_fn"):
                _check_callable(field.name, value)

    # ---------------------------------------------------------------- layout

    @abc.abstractmethod
    def init_params(self, key: Array, input_size: int, dtype: Any) -> Params:
        """Builds the params NamedTuple; ``init`` calls it with checked
        arguments. A new cell overrides this, ``pointwise`` and the class
        attributes ``params_type`` and ``num_gates``."""

    def init(self, key: Array, input_size: int, dtype: Any = None) -> Params:
        """Initialises the parameters.

        Args:
          key: a PRNG key.
          input_size: the number of input features ``I``.
          dtype: a floating dtype; ``None`` means float32 (float64 under x64).

        Returns:
          The cell's params NamedTuple (see the layout table of this module).
        """
        _checks.prng_key("key", key)
        input_size = _checks.positive_int("input_size", input_size)
        dtype = _checks.float_dtype("dtype", dtype)
        return self.init_params(key, input_size, dtype)

    def initial_state(self, batch_shape: Any = (), dtype: Any = None) -> State:
        """Returns the zero state for ``batch_shape``.

        Args:
          batch_shape: a tuple of batch dimensions (``()`` for one sequence).
          dtype: a floating dtype; ``None`` means float32 (float64 under x64).

        Returns:
          An array ``h`` of shape ``(*batch_shape, H)``; for LSTM an
          :class:`LSTMState` of two such arrays (``h`` with ``proj_size``
          features for an ``LSTM(proj_size=P)``).

        A learned initial state needs nothing more: make it a trained array
        of the unbatched shape (``initial_state(())``'s) and broadcast it
        over the batch; ``jr.rnn`` differentiates its ``state`` argument
        through every ``impl``, so the gradient sums over the batch::

            h0 = jnp.zeros((cell.hidden_size,))          # a parameter
            state = jnp.broadcast_to(h0, xs.shape[:-2] + h0.shape)
            final, ys = jr.rnn(cell, params, xs, state)  # d loss / d h0 flows
        """
        batch_shape = _checks.batch_shape("batch_shape", batch_shape)
        dtype = _checks.float_dtype("dtype", dtype)
        return jnp.zeros((*batch_shape, self.hidden_size), dtype)

    def state_leaves(self, state: State) -> dict[str, Array]:
        """The state's arrays by name (used for validation and messages)."""
        return {"h": state}

    def check_params(self, params: Params, name: str = "params") -> int:
        """Checks that ``params`` belong to this cell; returns the input size."""
        ptype = self.params_type
        if not isinstance(params, ptype):
            raise TypeError(
                f"{name} must be a {ptype.__name__} for {type(self).__name__}, got "
                f"{_checks.describe(params)}"
            )
        _checks.array(f"{name}.w_ih", params.w_ih)
        input_size = params.w_ih.shape[0] if params.w_ih.ndim == 2 else -1
        H, G = self.hidden_size, self.num_gates
        # Fields this configuration leaves out (bias=False, no proj_size)
        # are absent from the shapes and must be None.
        expected = self._param_shapes(input_size)
        for field, leaf in zip(params._fields, params):
            if field not in expected:
                if leaf is not None:
                    raise ValueError(
                        f"{name}.{field} must be None for {self._describe()}, which "
                        f"has no {field!r} parameter, got {_checks.describe(leaf)}"
                    )
                continue
            if leaf is None:
                raise ValueError(
                    f"{name}.{field} must be an array of shape {expected[field]} for "
                    f"{self._describe()}, got None (params of a cell made with "
                    "bias=False, or without proj_size?)"
                )
            _checks.array(f"{name}.{field}", leaf)
        dtype = params.w_ih.dtype
        for field, leaf in zip(params._fields, params):
            if field not in expected:
                continue
            if tuple(leaf.shape) != expected[field]:
                raise ValueError(
                    f"{name}.{field} must have shape {expected[field]} for "
                    f"{type(self).__name__}(hidden_size={H}) ({G} gate block(s) "
                    f"of {H}), got shape {tuple(leaf.shape)}"
                )
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(
                    f"{name}.{field} must have a floating dtype, got {leaf.dtype}"
                )
            if leaf.dtype != dtype:
                raise TypeError(
                    f"all of {name} must share one dtype: {name}.w_ih is {dtype}, "
                    f"{name}.{field} is {leaf.dtype}"
                )
        return input_size

    def _param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        """The shape of each params field this configuration has (a field
        left out must be ``None``: the biases of a ``bias=False`` cell)."""
        H, G = self.hidden_size, self.num_gates
        shapes = {"w_ih": (input_size, G * H), "w_hh": (H, G * H), "b": (G * H,)}
        if not getattr(self, "bias", True):
            del shapes["b"]
        return shapes

    def _describe(self) -> str:
        """The config as the messages name it, e.g. ``LSTM(hidden_size=8, bias=False)``."""
        extra = "".join(
            f", {k}={getattr(self, k)!r}"
            for k, default in (("bias", True), ("proj_size", None))
            if getattr(self, k, default) != default
        )
        return f"{type(self).__name__}(hidden_size={self.hidden_size}{extra})"

    def check_state(
        self,
        state: Any,
        batch_shape: tuple[int, ...],
        params_dtype: Any,
        name: str = "state",
        *,
        source: str = "the input",
    ) -> None:
        """Checks that ``state`` is this cell's state for ``batch_shape`` and
        params of ``params_dtype``: the structure of :meth:`initial_state`,
        leaves ``(*batch_shape, H)`` in :func:`accumulation_dtype`. Shapes,
        dtypes and structure only, so it costs nothing under ``jit``.
        ``name`` and ``source`` (what ``batch_shape`` was read from) are for
        the error messages."""
        dtype = accumulation_dtype(params_dtype)
        template = _state_template(self, tuple(batch_shape), dtype)
        if jax.tree_util.tree_structure(state) != jax.tree_util.tree_structure(template):
            expected = type(template).__name__ if isinstance(template, tuple) else "an array"
            raise TypeError(
                f"{name} must be {expected} for {type(self).__name__}, got "
                f"{_checks.describe(state)}"
            )
        wanted = self.state_leaves(template)
        for field, leaf in self.state_leaves(state).items():
            label = name if field == "h" and not isinstance(state, tuple) else f"{name}.{field}"
            _checks.array(label, leaf)
            want = tuple(wanted[field].shape)
            if tuple(leaf.shape) != want:
                size = want[-1]
                what = (
                    f"hidden_size {size}"
                    if size == self.hidden_size
                    else f"proj_size {size}" if field == "h" else f"{size} features"
                )
                raise ValueError(
                    f"{label} must have shape {want} (the batch shape {tuple(batch_shape)} "
                    f"of {source}, then {what}), got shape "
                    f"{tuple(leaf.shape)}"
                )
            if leaf.dtype != dtype:
                raise TypeError(
                    f"{label} must have dtype {dtype} (the state dtype for "
                    f"{jnp.dtype(params_dtype)} params), got {leaf.dtype}"
                )

    def check_step(self, params: Any, state: Any, x: Any) -> None:
        """The checks of a single step ``cell(params, state, x)``: params of
        this cell, ``x (*batch, I)`` in their dtype, a state for ``*batch``.

        Raises:
          TypeError, ValueError: naming the argument, the expected and the
            received shape, dtype or structure.
        """
        input_size = self.check_params(params)
        _checks.array("x", x)
        if x.ndim < 1:
            raise ValueError(f"x must have shape (*batch, features), got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"x must have a floating dtype, got {x.dtype}")
        if x.shape[-1] != input_size:
            raise ValueError(
                f"x must have {input_size} features (the input_size of params.w_ih) "
                f"on its last axis, got shape {tuple(x.shape)}"
            )
        dtype = params.w_ih.dtype
        if x.dtype != dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but params have dtype {dtype}; cast one of "
                "them explicitly (jaxrnn does not cast silently)"
            )
        self.check_state(state, tuple(x.shape[:-1]), dtype, source="x")

    # ----------------------------------------------------------- computation

    def input_projection(self, params: Params, x: Array, precision: Any = None) -> Array:
        """``x @ w_ih + b``: shape ``(..., G*H)``; no dependence on the state."""
        return _add_bias(matmul_accumulated(x, params.w_ih, precision), params.b)

    def recurrent_bias(self, params: Params) -> Array | None:
        """A bias added to the recurrent projection, or ``None``."""
        del params
        return None

    def recurrent_projection(self, params: Params, h: Array, precision: Any = None) -> Array:
        """``h @ w_hh`` plus the recurrent bias: shape ``(..., G*H)``."""
        hz = matmul_accumulated(h, params.w_hh, precision)
        rb = self.recurrent_bias(params)
        return hz if rb is None else _add_bias(hz, rb)

    def gemm_input(self, state: State) -> Array:
        """The part of the state the recurrent GEMM reads: ``h`` for every cell."""
        return state

    @property
    def output_size(self) -> int:
        """The features of each step's output ``y``: ``hidden_size`` (an
        ``LSTM(proj_size=P)``: ``P``). What the next layer of a stack reads."""
        return self.hidden_size

    def output(self, state: State) -> Array:
        """The step's output ``y``: the hidden state ``h``."""
        return state

    @abc.abstractmethod
    def pointwise(self, xz: Array, hz: Array, state: State) -> State:
        """The elementwise part of a step: new state from both projections.

        Args:
          xz: the input projection, shape ``(*batch, G*H)``.
          hz: the recurrent projection, shape ``(*batch, G*H)``.
          state: the previous state.

        Returns:
          The new state, with the structure and shapes of ``state``.
        """

    def pointwise_blocks(
        self, xz: tuple[Array, ...], hz: tuple[Array, ...], state: State
    ) -> State:
        """:meth:`pointwise` on the projections as ``G`` gate blocks.

        ``xz`` and ``hz`` are tuples of ``num_gates`` arrays ``(*batch, H)``
        (gate ``k`` is columns ``k·H .. (k+1)·H`` of the projection). The
        Pallas kernels (``jr.rnn(..., impl="pallas")``) call this instead of
        ``pointwise``: a Triton kernel can neither slice nor concatenate a
        value. The default joins the blocks and calls :meth:`pointwise`,
        which is exact everywhere and lowers for TPU; a cell with more than
        one gate overrides it, as the built-in cells do, to run on GPUs.
        """
        if len(xz) == 1:
            return self.pointwise(xz[0], hz[0], state)
        return self.pointwise(jnp.concatenate(xz, axis=-1), jnp.concatenate(hz, axis=-1), state)

    def step_from_projection(
        self, params: Any, xz: Array, state: Any, precision: Any = None
    ) -> Any:
        """One step given the input projection ``xz``: returns the new state."""
        hz = self.recurrent_projection(params, self.gemm_input(state), precision)
        return self.pointwise(xz, hz, state)

    def __call__(
        self, params: Params, state: State, x: Array, *, precision: Any = None
    ) -> tuple[State, Array]:
        """One step: ``(state, x) -> (new_state, y)``, like a ``lax.scan`` body.

        Args:
          params: this cell's params NamedTuple.
          state: the state, ``(*batch, H)`` (LSTM: an :class:`LSTMState`).
          x: the input, ``(*batch, I)``, in the dtype of ``params``.
          precision: passed to the matrix products (``jax.lax.Precision``).

        Returns:
          ``(new_state, y)`` with ``y = new_state.h`` of shape ``(*batch, H)``.
          With bfloat16/float16 params the state and ``y`` are float32 (see
          :func:`accumulation_dtype`).

        Raises:
          TypeError, ValueError: see :meth:`check_step`. The checks read only
            shapes, dtypes and structure: under ``jit`` (or in a ``lax.scan``
            body) they run once, at trace time, and cost the step nothing.
        """
        self.check_step(params, state, x)
        new_state = self.step_from_projection(
            params, self.input_projection(params, x, precision), state, precision
        )
        return new_state, self.output(new_state)


def _state_template(cell: Cell, batch_shape: tuple[int, ...], dtype: Any) -> Any:
    """The shapes and dtypes of ``cell.initial_state`` (no arrays made)."""
    try:
        return _cached_state_template(cell, batch_shape, jnp.dtype(dtype))
    except TypeError:  # a config with an unhashable field
        return jax.eval_shape(lambda: cell.initial_state(batch_shape, dtype))


@functools.lru_cache(maxsize=256)
def _cached_state_template(cell: Cell, batch_shape: tuple[int, ...], dtype: Any) -> Any:
    return jax.eval_shape(lambda: cell.initial_state(batch_shape, dtype))


class _ElmanPointwise:
    """``pointwise`` of the plain RNNs: ``h' = act(xz + hz)`` (``act(xz + hz + h)``
    with ``residual``)."""

    num_gates: ClassVar[int] = 1
    params_type: ClassVar[type] = SimpleRNNParams
    additive: ClassVar[bool] = True

    @property
    def activation_fn(self) -> Callable[[Array], Array]:
        """The elementwise activation as a function (``jnp.tanh``, ``jax.nn.relu``, ...)."""
        raise NotImplementedError

    def pointwise(self, xz: Array, hz: Array, state: Any) -> Array:
        a = xz + hz
        if getattr(self, "residual", False):
            a = a + state
        return self.activation_fn(a)

    def pointwise_blocks(self, xz: tuple, hz: tuple, state: Any) -> Array:
        return self.pointwise(xz[0], hz[0], state)


@dataclasses.dataclass(frozen=True)
class SimpleRNN(_ElmanPointwise, Cell):
    """The plain (Elman) recurrent cell.

    .. math::  h_t = \\mathrm{act}(x_t W_{ih} + h_{t-1} W_{hh} + b)

    and with ``residual=True`` Flax's pre-activation residual connection
    (``nn.SimpleCell(residual=True)``; Yue et al. 2018):

    .. math::  h_t = \\mathrm{act}(x_t W_{ih} + h_{t-1} W_{hh} + b + h_{t-1})

    Args:
      hidden_size: the number of hidden units ``H``.
      activation: ``"tanh"``, ``"relu"`` or any elementwise callable.
      residual: add ``h_{t-1}`` to the pre-activation (Flax's ``residual``).
      bias: ``False`` makes a cell without ``b`` (``params.b`` is ``None``),
        PyTorch's ``nn.RNN(bias=False)``.
      w_ih_init: initializer of ``w_ih`` ``(I, H)``; Glorot-uniform.
      w_hh_init: initializer of ``w_hh`` ``(H, H)``; orthogonal.
      b_init: initializer of ``b`` ``(H,)``; zeros.

    Example:
      >>> import jax, jaxrnn as jr
      >>> cell = jr.SimpleRNN(8)
      >>> params = cell.init(jax.random.PRNGKey(0), input_size=3)
      >>> state, y = cell(params, cell.initial_state((2,)), jax.numpy.ones((2, 3)))
      >>> y.shape
      (2, 8)
    """

    activation: Activation = "tanh"
    _: dataclasses.KW_ONLY
    w_ih_init: Initializer = initializers.default_w_ih
    w_hh_init: Initializer = initializers.default_w_hh
    b_init: Initializer = initializers.default_b
    residual: bool = False
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.activation, str):
            if self.activation not in _ACTIVATIONS:
                raise ValueError(
                    f"activation must be one of {sorted(_ACTIVATIONS)} or a "
                    f"callable, got {self.activation!r}"
                )
        elif not callable(self.activation):
            raise TypeError(
                "activation must be a string or a callable, got "
                f"{_checks.describe(self.activation)}"
            )

    @property
    def activation_fn(self) -> Callable[[Array], Array]:
        """The elementwise activation as a function (``jnp.tanh``, ``jax.nn.relu``, ...)."""
        if isinstance(self.activation, str):
            return _ACTIVATIONS[self.activation]
        return self.activation

    def init_params(self, key: Array, input_size: int, dtype: Any) -> SimpleRNNParams:
        k1, k2, k3 = jax.random.split(key, 3)
        H = self.hidden_size
        return SimpleRNNParams(
            w_ih=block_init(self.w_ih_init, k1, 1, (input_size, H), dtype),
            w_hh=block_init(self.w_hh_init, k2, 1, (H, H), dtype),
            b=block_init(self.b_init, k3, 1, (H,), dtype) if self.bias else None,
        )


@dataclasses.dataclass(frozen=True)
class IRNN(_ElmanPointwise, Cell):
    """The identity-initialised ReLU RNN of Le, Jaitly & Hinton (2015).

    .. math::  h_t = \\max(0,\\; x_t W_{ih} + h_{t-1} W_{hh} + b)

    with ``W_hh = scale * I``, ``W_ih ~ N(0, 0.001^2)`` and ``b = 0`` at
    initialisation: the untrained recurrence copies its (non-negative) state,
    so gradients neither vanish nor explode through it at first.

    Args:
      hidden_size: the number of hidden units ``H``.
      scale: the diagonal of the initial recurrent matrix (the paper's
        "np-RNN"-style variants use values below 1).
      bias: ``False`` makes a cell without ``b`` (``params.b`` is ``None``).
      w_ih_init: initializer of ``w_ih`` ``(I, H)``; normal, stddev 0.001.
      b_init: initializer of ``b`` ``(H,)``; zeros.

    References:
      Le, Jaitly & Hinton, "A Simple Way to Initialize Recurrent Networks of
      Rectified Linear Units", arXiv:1504.00941, 2015.
    """

    scale: float = 1.0
    _: dataclasses.KW_ONLY
    w_ih_init: Initializer = initializers.default_irnn_w_ih
    b_init: Initializer = initializers.default_b
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.finite_float("scale", self.scale)

    @property
    def activation(self) -> str:
        """Always ``"relu"``."""
        return "relu"

    @property
    def activation_fn(self) -> Callable[[Array], Array]:
        """``jax.nn.relu``."""
        return jax.nn.relu

    @property
    def residual(self) -> bool:
        """Always ``False``."""
        return False

    def init_params(self, key: Array, input_size: int, dtype: Any) -> SimpleRNNParams:
        k1, k3 = jax.random.split(key, 2)
        H = self.hidden_size
        return SimpleRNNParams(
            w_ih=block_init(self.w_ih_init, k1, 1, (input_size, H), dtype),
            w_hh=initializers.scaled_identity(self.scale)(None, (H, H), dtype),
            b=block_init(self.b_init, k3, 1, (H,), dtype) if self.bias else None,
        )


@dataclasses.dataclass(frozen=True)
class LSTM(Cell):
    """The long short-term memory cell (Hochreiter & Schmidhuber, 1997).

    With ``a = x_t W_ih + h_{t-1} W_hh + b`` split into gates ``i, f, g, o``,
    ``σ = gate_fn`` and ``φ = activation_fn``:

    .. math::
        c_t = \\sigma(f) \\odot c_{t-1} + \\sigma(i) \\odot \\phi(g), \\qquad
        h_t = \\sigma(o) \\odot \\phi(c_t)

    With ``proj_size=P`` (LSTMP, Sak et al. 2014; PyTorch's
    ``nn.LSTM(proj_size=P)``) the output is projected,
    ``h_t = (σ(o) ⊙ φ(c_t)) W_hr`` with ``w_hr (H, P)``: the state is
    ``LSTMState(h (*batch, P), c (*batch, H))``, ``w_hh`` is ``(P, 4H)`` and
    the outputs have ``P`` features. The projection is a GEMM inside the
    step, so the cell is not :attr:`elementwise`: ``impl="fused"`` runs it
    (differentiating the whole step), ``impl="pallas"`` does not.

    Args:
      hidden_size: the number of hidden units ``H``.
      forget_bias: added to the forget-gate block of ``b`` at initialisation
        (Gers et al. 2000; Jozefowicz et al. 2015); with the default zero
        ``b_init`` the forget bias starts at exactly this value. It is a
        starting value, trained like any other bias, not a constant added at
        every step. Ignored with ``bias=False``.
      w_ih_init: initializer of each gate's ``(I, H)`` block; Glorot-uniform.
      w_hh_init: initializer of each gate's ``(H, H)`` block (``(P, H)``
        with ``proj_size``); orthogonal.
      b_init: initializer of each gate's ``(H,)`` block; zeros.
      proj_size: ``None`` (no projection) or the number ``P`` of output
        features.
      w_hr_init: initializer of ``w_hr`` ``(H, P)``; Glorot-uniform.
      bias: ``False`` makes a cell without ``b`` (``params.b`` is ``None``),
        PyTorch's ``nn.LSTM(bias=False)``.
      gate_fn: the gates' activation ``σ`` (Flax's ``gate_fn``);
        ``jax.nn.sigmoid``.
      activation_fn: the candidate's and the output's activation ``φ``
        (Flax's ``activation_fn``); ``jnp.tanh``.

    References:
      Sak, Senior & Beaufays, "Long Short-Term Memory Based Recurrent Neural
      Network Architectures for Large Vocabulary Speech Recognition",
      arXiv:1402.1128, 2014 (the projection layer).
    """

    forget_bias: float = 1.0
    _: dataclasses.KW_ONLY
    w_ih_init: Initializer = initializers.default_w_ih
    w_hh_init: Initializer = initializers.default_w_hh
    b_init: Initializer = initializers.default_b
    proj_size: int | None = None
    w_hr_init: Initializer = initializers.default_w_ih
    bias: bool = True
    gate_fn: Callable[[Array], Array] = jax.nn.sigmoid
    activation_fn: Callable[[Array], Array] = jnp.tanh

    num_gates: ClassVar[int] = 4
    additive: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _checks.finite_float("forget_bias", self.forget_bias)
        p = self.proj_size
        if p is not None and (
            isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)) or p < 1
        ):
            raise ValueError(
                f"proj_size must be None (no projection) or a positive int, got {p!r}"
            )

    @property
    def elementwise(self) -> bool:  # type: ignore[override]
        """Without ``proj_size``: one GEMM then elementwise work; the
        projection adds a second GEMM to the step."""
        return self.proj_size is None

    @property
    def params_type(self) -> type:  # type: ignore[override]
        """:class:`LSTMParams`, or :class:`LSTMPParams` with ``proj_size``."""
        return LSTMParams if self.proj_size is None else LSTMPParams

    @property
    def output_size(self) -> int:  # type: ignore[override]
        """The features of ``h`` and of the outputs: ``proj_size`` or ``hidden_size``."""
        return self.hidden_size if self.proj_size is None else self.proj_size

    def _param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        shapes = super()._param_shapes(input_size)
        if self.proj_size is not None:
            H, P = self.hidden_size, self.proj_size
            shapes["w_hh"] = (P, 4 * H)
            shapes["w_hr"] = (H, P)
        return shapes

    def init_params(self, key: Array, input_size: int, dtype: Any) -> Any:
        k1, k2, k3 = jax.random.split(key, 3)
        H, P = self.hidden_size, self.output_size
        b = None
        if self.bias:
            b = block_init(self.b_init, k3, 4, (H,), dtype)
            b = b.at[H : 2 * H].add(jnp.asarray(self.forget_bias, dtype))
        w_ih = block_init(self.w_ih_init, k1, 4, (input_size, H), dtype)
        w_hh = block_init(self.w_hh_init, k2, 4, (P, H), dtype)
        if self.proj_size is None:
            return LSTMParams(w_ih=w_ih, w_hh=w_hh, b=b)
        # w_hr's key apart, so the others' are those of an LSTM without it
        w_hr = block_init(self.w_hr_init, jax.random.fold_in(key, 4), 1, (H, P), dtype)
        return LSTMPParams(w_ih=w_ih, w_hh=w_hh, b=b, w_hr=w_hr)

    def initial_state(self, batch_shape: Any = (), dtype: Any = None) -> LSTMState:
        c = super().initial_state(batch_shape, dtype)
        if self.proj_size is None:
            return LSTMState(h=c, c=c)
        return LSTMState(h=jnp.zeros(c.shape[:-1] + (self.proj_size,), c.dtype), c=c)

    def state_leaves(self, state: Any) -> dict[str, Array]:
        return {"h": state.h, "c": state.c}

    def gemm_input(self, state: LSTMState) -> Array:
        return state.h

    def output(self, state: LSTMState) -> Array:
        return state.h

    def pointwise(self, xz: Array, hz: Array, state: LSTMState) -> LSTMState:
        self._no_projection()
        return self._update(*jnp.split(xz + hz, 4, axis=-1), state.c)

    def pointwise_blocks(self, xz: tuple, hz: tuple, state: LSTMState) -> LSTMState:
        self._no_projection()
        return self._update(*(a + b for a, b in zip(xz, hz)), state.c)

    def step_from_projection(
        self, params: Any, xz: Array, state: LSTMState, precision: Any = None
    ) -> LSTMState:
        if self.proj_size is None:
            return super().step_from_projection(params, xz, state, precision)
        hz = self.recurrent_projection(params, state.h, precision)
        new = self._update(*jnp.split(xz + hz, 4, axis=-1), state.c)
        h = matmul_accumulated(new.h, params.w_hr, precision)
        return LSTMState(h=h.astype(new.c.dtype), c=new.c)

    def _no_projection(self) -> None:
        if self.proj_size is not None:
            raise NotImplementedError(
                f"LSTM(proj_size={self.proj_size}) has no elementwise step: its output "
                "h = (o * tanh(c)) @ w_hr is a second GEMM; use step_from_projection"
            )

    def _update(self, i: Array, f: Array, g: Array, o: Array, c: Array) -> LSTMState:
        """The elementwise update from the four gate pre-activations."""
        gate, act = self.gate_fn, self.activation_fn
        c = gate(f) * c + gate(i) * act(g)
        return LSTMState(h=gate(o) * act(c), c=c)


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
    """The gated recurrent unit (Cho et al., 2014) in PyTorch's/cuDNN's form.

    With gates ``r, z, n``, ``W_h* `` the blocks of ``w_hh``, ``σ = gate_fn``
    and ``φ = activation_fn``:

    .. math::
        r = \\sigma(x W_{ir} + b_r + h W_{hr}), \\quad
        z = \\sigma(x W_{iz} + b_z + h W_{hz})

        n = \\phi(x W_{in} + b_n + r \\odot (h W_{hn} + b_{hn}))
        \\quad \\text{(reset_after=True)}

        n = \\phi(x W_{in} + b_n + (r \\odot h) W_{hn} + b_{hn})
        \\quad \\text{(reset_after=False)}

        h' = (1 - z) \\odot n + z \\odot h

    ``reset_after=True`` (the default) is PyTorch's ``nn.GRU``, cuDNN's and
    Flax's ``GRUCell``: its recurrent GEMM does not depend on ``r``, so the
    step is one GEMM plus elementwise work. ``reset_after=False`` is the
    original formulation (Keras' ``reset_after=False``); it needs a second,
    dependent GEMM per step, so it is not :attr:`elementwise`.

    Args:
      hidden_size: the number of hidden units ``H``.
      reset_after: where the reset gate applies (see above).
      w_ih_init: initializer of each gate's ``(I, H)`` block; Glorot-uniform.
      w_hh_init: initializer of each gate's ``(H, H)`` block; orthogonal.
      b_init: initializer of each ``(H,)`` block of ``b`` and of ``b_hn``; zeros.
      bias: ``False`` makes a cell without ``b`` and ``b_hn`` (both ``None``),
        PyTorch's ``nn.GRU(bias=False)``.
      gate_fn: the gates' activation ``σ`` (Flax's ``gate_fn``); ``jax.nn.sigmoid``.
      activation_fn: the candidate's activation ``φ`` (Flax's
        ``activation_fn``); ``jnp.tanh``.
    """

    reset_after: bool = True
    _: dataclasses.KW_ONLY
    w_ih_init: Initializer = initializers.default_w_ih
    w_hh_init: Initializer = initializers.default_w_hh
    b_init: Initializer = initializers.default_b
    bias: bool = True
    gate_fn: Callable[[Array], Array] = jax.nn.sigmoid
    activation_fn: Callable[[Array], Array] = jnp.tanh

    params_type: ClassVar[type] = GRUParams
    num_gates: ClassVar[int] = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.reset_after, bool):
            raise TypeError(
                f"reset_after must be a bool, got {_checks.describe(self.reset_after)}"
            )

    @property
    def elementwise(self) -> bool:  # type: ignore[override]
        """Only ``reset_after=True`` is one GEMM plus elementwise work."""
        return self.reset_after

    def _param_shapes(self, input_size: int) -> dict[str, tuple[int, ...]]:
        shapes = super()._param_shapes(input_size)
        if self.bias:
            shapes["b_hn"] = (self.hidden_size,)
        return shapes

    def init_params(self, key: Array, input_size: int, dtype: Any) -> GRUParams:
        k1, k2, k3, k4 = jax.random.split(key, 4)
        H = self.hidden_size
        return GRUParams(
            w_ih=block_init(self.w_ih_init, k1, 3, (input_size, H), dtype),
            w_hh=block_init(self.w_hh_init, k2, 3, (H, H), dtype),
            b=block_init(self.b_init, k3, 3, (H,), dtype) if self.bias else None,
            b_hn=block_init(self.b_init, k4, 1, (H,), dtype) if self.bias else None,
        )

    def recurrent_bias(self, params: GRUParams) -> Array | None:
        if params.b_hn is None:
            return None
        zeros = jnp.zeros((2 * self.hidden_size,), params.b_hn.dtype)
        return jnp.concatenate([zeros, params.b_hn])

    def pointwise(self, xz: Array, hz: Array, state: Array) -> Array:
        if not self.reset_after:
            raise NotImplementedError(
                "GRU(reset_after=False) has no elementwise step: its candidate "
                "needs (r * h) @ W_hn, a second GEMM; use step_from_projection"
            )
        return self._update(jnp.split(xz, 3, axis=-1), jnp.split(hz, 3, axis=-1), state)

    def pointwise_blocks(self, xz: tuple, hz: tuple, state: Array) -> Array:
        if not self.reset_after:
            return super().pointwise_blocks(xz, hz, state)  # raises, as pointwise does
        return self._update(xz, hz, state)

    def step_from_projection(
        self, params: GRUParams, xz: Array, state: Array, precision: Any = None
    ) -> Array:
        if self.reset_after:
            return super().step_from_projection(params, xz, state, precision)
        H = self.hidden_size
        gate, act = self.gate_fn, self.activation_fn
        xr, xzg, xn = jnp.split(xz, 3, axis=-1)
        hrz = matmul_accumulated(state, params.w_hh[:, : 2 * H], precision)
        r = gate(xr + hrz[..., :H])
        z = gate(xzg + hrz[..., H:])
        hn = matmul_accumulated(r * state, params.w_hh[:, 2 * H :], precision)
        n = act(xn + _add_bias(hn, params.b_hn))
        return (1.0 - z) * n + z * state

    def _update(self, xz: Any, hz: Any, h: Array) -> Array:
        """The (reset_after) elementwise update from the ``(r, z, n)`` blocks."""
        (xr, xzg, xn), (hr, hzg, hn) = xz, hz
        gate = self.gate_fn
        r = gate(xr + hr)
        z = gate(xzg + hzg)
        n = self.activation_fn(xn + r * hn)
        return (1.0 - z) * n + z * h


#: The named cells of the command line (``jaxrnn train --cell``), the
#: benchmarks and the tests, one registry: a constructor of a cell of hidden
#: size H by name. ``relu`` is a ReLU RNN with the default (not identity)
#: initialisation; ``irnn`` is the identity-initialised one.
NAMED_CELLS: dict[str, Callable[[int], Cell]] = {
    "tanh": lambda h: SimpleRNN(h),
    "relu": lambda h: SimpleRNN(h, activation="relu"),
    "irnn": lambda h: IRNN(h),
    "lstm": lambda h: LSTM(h),
    "gru": lambda h: GRU(h),
}
