"""Long-dependency tasks: pure, jit-able generators of ``(inputs, targets)``.

Each task is a frozen dataclass registered as a pytree: its configuration
(lengths, sizes) is static, and the data it samples from (a text corpus, the
MNIST images) is a pytree leaf, so a task can be an argument of a jitted
training step without baking its data into the compiled program.

========================  =============  =========  ========================  ===========================
task                      inputs         outputs    loss                      baseline (no memory)
========================  =============  =========  ========================  ===========================
:class:`Adding`           (B, T, 2)      (B,)       MSE at the last step      ``1/6 ≈ 0.167``
:class:`CopyMemory`       (B, T+20, 10)  (B, T+20)  cross-entropy, all steps  ``10 ln 8 / (T + 20)``
:class:`TemporalOrder`    (B, T, 6)      (B,)       cross-entropy, last       ``ln 4 ≈ 1.386``
:class:`CueAnswer`        (B, D+2, V)    (B,)       cross-entropy, last       ``ln K`` (``V = K + F + 1``)
:class:`CharLM`           (B, L, V)      (B, L)     cross-entropy, all steps  unigram entropy of the text
:class:`SequentialMNIST`  (B, 784, 1)    (B,)       cross-entropy, last       ``ln 10 ≈ 2.303``
========================  =============  =========  ========================  ===========================

Every task gives ``sample(key, batch_size)``, ``loss(outputs, targets)``,
``metric(outputs, targets)`` and, for a model that is a cell plus a linear
readout, ``init_params(cell, key)`` and ``make_loss(cell, **rnn_options)``:

.. code-block:: python

    task = jr.tasks.Adding(length=100)
    cell = jr.GRU(64)
    params = task.init_params(cell, jax.random.PRNGKey(0))
    loss_fn = task.make_loss(cell)                 # loss_fn(params, batch) -> loss
    batch = task.sample(jax.random.PRNGKey(1), 32)
    loss_fn(params, batch)

References:
  Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 1997
  (adding, temporal order). Arjovsky, Shah & Bengio, "Unitary evolution
  recurrent neural networks", ICML 2016 (copy memory). Pascanu, Mikolov &
  Bengio, "On the difficulty of training recurrent neural networks", ICML 2013.
  Le, Jaitly & Hinton, "A simple way to initialize recurrent networks of
  rectified linear units", 2015 (pixel-by-pixel and permuted MNIST).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sysconfig
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .cells import Cell, accumulation_dtype
from ._rnn import rnn

__all__ = [
    "TASKS",
    "Adding",
    "CharLM",
    "CharVocab",
    "CopyMemory",
    "CueAnswer",
    "SequentialMNIST",
    "Task",
    "TemporalOrder",
    "adding",
    "copy_memory",
    "cue_answer",
    "load_mnist",
    "load_text",
    "sample_text",
    "stdlib_text",
    "temporal_order",
]

Array = jax.Array


# --------------------------------------------------------------------------
# pure generators


def _check_length(name: str, value: Any, minimum: int) -> int:
    value = _checks.positive_int(name, value)
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def adding(
    key: Array, batch_size: int, length: int, *, seq_lengths: Any = None
) -> tuple[Array, Array]:
    """A batch of the adding problem.

    Each step carries a value ``~ U[0, 1]`` and a marker in ``{0, 1}``; one
    step in the first half of the sequence and one in the second are marked.
    The target is the sum of the two marked values. Predicting its mean (1)
    scores a mean squared error of ``Var = 2/12 = 1/6``.

    Args:
      key: a PRNG key.
      batch_size: ``B >= 1``.
      length: ``T >= 2``.
      seq_lengths: optional integer lengths ``(B,)``, each in ``[2, T]``: the
        markers then fall in the halves of each example's first
        ``seq_lengths[b]`` steps, for ``jaxrnn.rnn(..., seq_lengths=...)``;
        steps past a length are padding. Concrete lengths outside
        ``[2, T]`` raise. Traced lengths (under ``jit``) cannot be checked:
        they are clamped to ``[2, T]``, so every example still has exactly
        two markers and a target that is their sum (pass the same clamped
        lengths to :func:`jaxrnn.rnn`).

    Returns:
      ``inputs (B, T, 2)`` float32 (value, marker) and ``targets (B,)``.

    Raises:
      ValueError: a size is not positive, ``length < 2``, ``seq_lengths``
        is not shaped ``(B,)`` or (concrete) has a value outside ``[2, T]``.
      TypeError: ``key`` is not a PRNG key, a size is not an int, or
        ``seq_lengths`` is not an integer array.
    """
    _checks.prng_key("key", key)
    batch_size = _checks.positive_int("batch_size", batch_size)
    length = _check_length("length", length, 2)
    if seq_lengths is None:
        end = length
    else:
        raw = seq_lengths
        seq_lengths = jnp.asarray(seq_lengths)
        if seq_lengths.shape != (batch_size,):
            raise ValueError(
                f"seq_lengths must have shape ({batch_size},) (one length per example), "
                f"got shape {seq_lengths.shape}"
            )
        if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
            raise TypeError(f"seq_lengths must be integers, got dtype {seq_lengths.dtype}")
        _checks.values_in_range(
            "seq_lengths", raw, 2, length,
            f"two markers, one in each half, within length={length}",
        )
        end = jnp.clip(seq_lengths, 2, length)[:, None]
    k_val, k_first, k_second = jax.random.split(key, 3)
    values = jax.random.uniform(k_val, (batch_size, length), jnp.float32)
    half = end // 2
    first = jax.random.randint(k_first, (batch_size, 1), 0, half)
    second = jax.random.randint(k_second, (batch_size, 1), half, end)
    t = jnp.arange(length)[None, :]
    markers = ((t == first) | (t == second)).astype(jnp.float32)
    targets = jnp.sum(values * markers, axis=1)
    return jnp.stack([values, markers], axis=-1), targets


#: copy memory: the blank symbol, the delimiter, the number of data symbols
#: and how many of them are to be recalled.
COPY_BLANK, COPY_DELIMITER, COPY_SYMBOLS, COPY_LENGTH = 0, 9, 8, 10


def copy_memory(key: Array, batch_size: int, delay: int) -> tuple[Array, Array]:
    """A batch of the copy-memory task (Arjovsky, Shah & Bengio 2016).

    The sequence is 10 symbols drawn from ``{1..8}``, then ``delay - 1``
    blanks (0), a delimiter (9) and 10 more blanks: ``T + 20`` steps for
    ``delay = T``. The target is blank everywhere except the last 10 steps,
    which must repeat the first 10 symbols. A model that outputs blanks and
    then guesses uniformly scores ``10 ln 8 / (T + 20)``.

    Args:
      key: a PRNG key.
      batch_size: ``B >= 1``.
      delay: ``T >= 1``, the number of steps between the symbols and the
        delimiter (inclusive of the delimiter).

    Returns:
      ``inputs (B, T+20, 10)`` one-hot float32 and ``targets (B, T+20)``
      int32 class indices in ``[0, 9)``.

    Raises:
      ValueError: ``batch_size`` or ``delay`` is below 1.
      TypeError: ``key`` is not a PRNG key, or a size is not an int.
    """
    _checks.prng_key("key", key)
    batch_size = _checks.positive_int("batch_size", batch_size)
    delay = _check_length("delay", delay, 1)
    n = COPY_LENGTH
    symbols = jax.random.randint(key, (batch_size, n), 1, COPY_SYMBOLS + 1)
    blanks = jnp.zeros((batch_size, delay - 1), jnp.int32)
    delim = jnp.full((batch_size, 1), COPY_DELIMITER, jnp.int32)
    tail = jnp.zeros((batch_size, n), jnp.int32)
    tokens = jnp.concatenate([symbols, blanks, delim, tail], axis=1)
    targets = jnp.concatenate(
        [jnp.zeros((batch_size, delay + n), jnp.int32), symbols], axis=1
    )
    return jax.nn.one_hot(tokens, COPY_DELIMITER + 1, dtype=jnp.float32), targets


#: temporal order: 4 distractors a, b, c, d and the two relevant symbols X, Y.
ORDER_SYMBOLS = 6


def temporal_order(key: Array, batch_size: int, length: int) -> tuple[Array, Array]:
    """A batch of the temporal-order task (Hochreiter & Schmidhuber 1997, 6a).

    Every step shows one of six symbols: four distractors ``a, b, c, d``
    (indices 0-3) and two relevant ones ``X, Y`` (4, 5). Exactly two steps
    show a relevant symbol: one in ``[T/10, 2T/10)`` and one in
    ``[5T/10, 6T/10)`` (Pascanu et al. 2013). The class is the ordered pair
    seen: ``XX, XY, YX, YY`` = 0, 1, 2, 3; chance is cross-entropy ``ln 4``.

    Args:
      key: a PRNG key.
      batch_size: ``B >= 1``.
      length: ``T >= 10`` (shorter sequences have no room for the two
        windows).

    Returns:
      ``inputs (B, T, 6)`` one-hot float32 and ``targets (B,)`` int32 in ``[0, 4)``.

    Raises:
      ValueError: ``batch_size < 1`` or ``length < 10``.
      TypeError: ``key`` is not a PRNG key, or a size is not an int.
    """
    _checks.prng_key("key", key)
    batch_size = _checks.positive_int("batch_size", batch_size)
    length = _check_length("length", length, 10)
    k_dis, k_p1, k_p2, k_cls = jax.random.split(key, 4)
    tokens = jax.random.randint(k_dis, (batch_size, length), 0, 4)
    lo1, hi1 = length // 10, max(2 * length // 10, length // 10 + 1)
    lo2, hi2 = 5 * length // 10, max(6 * length // 10, 5 * length // 10 + 1)
    p1 = jax.random.randint(k_p1, (batch_size, 1), lo1, hi1)
    p2 = jax.random.randint(k_p2, (batch_size, 1), lo2, hi2)
    cls = jax.random.randint(k_cls, (batch_size,), 0, 4)
    first, second = 4 + cls // 2, 4 + cls % 2
    t = jnp.arange(length)[None, :]
    tokens = jnp.where(t == p1, first[:, None], tokens)
    tokens = jnp.where(t == p2, second[:, None], tokens)
    return jax.nn.one_hot(tokens, ORDER_SYMBOLS, dtype=jnp.float32), cls.astype(jnp.int32)


def cue_answer(
    key: Array, batch_size: int, distance: int, *, num_pairs: int = 8, num_fillers: int = 8
) -> tuple[Array, Array]:
    """A batch of the cue-answer task: "I grew up in *France* ... I speak fluent *French*".

    The first step names a cue (a "country"), one of ``K = num_pairs``; then
    come ``D = distance`` filler tokens, each drawn uniformly from
    ``num_fillers`` filler symbols; the last step is a query token. The target,
    read at the last step, is the cue's paired answer (its "language"): class
    ``k`` for cue ``k``. Nothing but the first step tells the answer, so a
    model must carry the cue across ``D + 1`` steps; without memory, accuracy
    is chance, ``1/K``, and cross-entropy ``ln K``.

    Token indices (one-hot over ``K + F + 1`` symbols): cues ``0 .. K-1``,
    fillers ``K .. K+F-1``, the query ``K + F``.

    Args:
      key: a PRNG key.
      batch_size: ``B >= 1``.
      distance: ``D >= 1``, the number of filler steps between the cue and
        the query.
      num_pairs: ``K >= 2``, the number of cue-answer pairs (classes).
      num_fillers: ``F >= 1``, the size of the filler vocabulary.

    Returns:
      ``inputs (B, D+2, K+F+1)`` one-hot float32 and ``targets (B,)`` int32
      in ``[0, K)``.

    Raises:
      ValueError: a size is below its minimum (``num_pairs < 2``, any other
        below 1).
      TypeError: ``key`` is not a PRNG key, or a size is not an int.
    """
    _checks.prng_key("key", key)
    batch_size = _checks.positive_int("batch_size", batch_size)
    distance = _check_length("distance", distance, 1)
    num_pairs = _check_length("num_pairs", num_pairs, 2)
    num_fillers = _check_length("num_fillers", num_fillers, 1)
    k_cue, k_fill = jax.random.split(key)
    cues = jax.random.randint(k_cue, (batch_size,), 0, num_pairs)
    fillers = jax.random.randint(k_fill, (batch_size, distance), num_pairs, num_pairs + num_fillers)
    query = jnp.full((batch_size, 1), num_pairs + num_fillers, jnp.int32)
    tokens = jnp.concatenate([cues[:, None], fillers, query], axis=1)
    vocab = num_pairs + num_fillers + 1
    return jax.nn.one_hot(tokens, vocab, dtype=jnp.float32), cues.astype(jnp.int32)


# --------------------------------------------------------------------------
# text and images from local files


class CharVocab(NamedTuple):
    """A character vocabulary: ``chars[i]`` is the character of index ``i``."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        _check_str("text", text)
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``text`` as int32 indices; characters outside the vocabulary raise."""
        _check_str("text", text)
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((index[c] for c in text), np.int32, len(text))
        except KeyError as e:
            raise ValueError(f"text has a character outside the vocabulary: {e.args[0]!r}") from None

    def decode(self, ids: Any) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {_checks.describe(value)}")


def _clean(text: str) -> str:
    """Keeps newlines and printable ASCII; anything else becomes ``?``."""
    return "".join(c if (" " <= c <= "~" or c == "\n") else "?" for c in text)


def stdlib_text(max_chars: int = 2_000_000) -> str:
    """Python source text found on this machine: the standard library's ``.py``
    files (top level of ``sysconfig.get_paths()["stdlib"]``), in name order,
    up to ``max_chars`` characters, reduced to printable ASCII and newlines.
    No download.

    Raises:
      FileNotFoundError: if no standard-library sources are installed.
    """
    max_chars = _checks.positive_int("max_chars", max_chars)
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not parts:
        raise FileNotFoundError(
            f"no Python standard-library sources (*.py) under {root}; pass a text "
            "file instead"
        )
    return _clean("".join(parts)[:max_chars])


def load_text(path: str | os.PathLike, max_chars: int | None = None) -> str:
    """Reads a UTF-8 text file (up to ``max_chars`` characters), reduced to
    printable ASCII and newlines.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ValueError: if it holds fewer than 2 characters.
      TypeError: if ``path`` is not a str or ``os.PathLike``.
    """
    _checks.path_like("path", path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    if max_chars is not None:
        text = text[: _checks.positive_int("max_chars", max_chars)]
    if len(text) < 2:
        raise ValueError(f"text file {str(path)!r} must hold at least 2 characters, got {len(text)}")
    return _clean(text)


_MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
_MNIST_CLASSES = 10


def _check_labels(name: str, labels: Any) -> None:
    """Checks concrete class labels: integers in ``[0, 10)`` (out-of-range
    labels would make the cross-entropy silently NaN)."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    if labels.size:
        values = np.asarray(labels)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= _MNIST_CLASSES:
            raise ValueError(
                f"{name} must hold class labels in [0, {_MNIST_CLASSES}), got values "
                f"from {lo} to {hi}"
            )


def load_mnist(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Loads an ``mnist.npz`` in the Keras layout.

    Args:
      path: a ``.npz`` with ``x_train (N, 28, 28)`` uint8, ``y_train (N,)``,
        ``x_test (M, 28, 28)``, ``y_test (M,)`` (any square image size works).

    Returns:
      The four arrays by name; images as float32 in ``[0, 1]`` flattened to
      ``(N, pixels)``, labels int32.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ValueError: if the file is not a readable ``.npz`` (zip) archive (not
        a zip, truncated, corrupt), or an array is missing, shaped wrongly,
        or a label lies outside ``[0, 10)``.
      TypeError: if ``path`` is not a str or ``os.PathLike``.
    """
    _checks.path_like("path", path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"mnist file {str(path)!r} does not exist (expected an .npz with "
            "x_train, y_train, x_test, y_test, as keras.datasets.mnist saves it)"
        )
    expected = "an .npz (zip) archive of x_train, y_train, x_test, y_test"
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"mnist file {str(path)!r} is not a zip archive (empty, truncated or not "
            f"an .npz): expected {expected}"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _MNIST_KEYS if k not in f]
            if missing:
                raise ValueError(f"mnist file {str(path)!r} lacks {missing}; it has {sorted(f.files)}")
            raw = {k: np.asarray(f[k]) for k in _MNIST_KEYS}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        if isinstance(e, ValueError) and str(e).startswith("mnist file"):
            raise
        raise ValueError(
            f"mnist file {str(path)!r} is corrupt or truncated: expected {expected}; "
            f"reading it failed with {type(e).__name__}: {e}"
        ) from None
    out = {}
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], raw[f"y_{split}"]
        if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(
                f"mnist file {str(path)!r}: x_{split} must be (N, height, width) with "
                f"y_{split} (N,), N >= 1, got {x.shape} and {y.shape}"
            )
        _check_labels(f"mnist file {str(path)!r}: y_{split}", y)
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise ValueError(
                f"mnist file {str(path)!r}: x_{split} must hold numbers (uint8 pixels "
                f"or floats in [0, 1]), got dtype {x.dtype}"
            )
        scale = 255.0 if x.dtype == np.uint8 else 1.0
        out[f"x_{split}"] = (x.reshape(x.shape[0], -1) / scale).astype(np.float32)
        out[f"y_{split}"] = y.astype(np.int32)
    return out


# --------------------------------------------------------------------------
# tasks with a readout model


def _cross_entropy(logits: Array, labels: Array) -> Array:
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))


def _accuracy(logits: Array, labels: Array) -> Array:
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))


class Task:
    """Base of the tasks: a data generator plus the loss of a readout model.

    The model a task trains is a cell followed by a linear readout
    ``y = h W_out + b_out``: at the last step for ``per_step=False``
    tasks, at every step otherwise. Subclasses are frozen dataclasses.

    Attributes:
      name: the task's name on the command line.
      per_step: whether there is a target at every step.
      metric_name: what :meth:`metric` measures (``"mse"``, ``"accuracy"``).
    """

    name: ClassVar[str]
    per_step: ClassVar[bool] = False
    metric_name: ClassVar[str] = "accuracy"

    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    @property
    def baseline(self) -> float:
        """The loss of the best prediction that uses no memory."""
        raise NotImplementedError

    def sample(self, key: Array, batch_size: int) -> tuple[Array, Array]:
        """A batch ``(inputs (B, T, input_size), targets)``."""
        raise NotImplementedError

    def loss(self, outputs: Array, targets: Array) -> Array:
        """The scalar training loss (cross-entropy on logits by default)."""
        self.check_outputs(outputs, targets)
        return _cross_entropy(outputs, targets)

    def metric(self, outputs: Array, targets: Array) -> Array:
        """The task's headline number (accuracy by default)."""
        self.check_outputs(outputs, targets)
        return _accuracy(outputs, targets)

    def check_outputs(self, outputs: Any, targets: Any) -> None:
        """Checks that ``outputs (*targets.shape, output_size)`` and
        ``targets`` fit this task (shapes and dtypes only: free under ``jit``)."""
        _checks.array("outputs", outputs)
        _checks.array("targets", targets)
        want = (*targets.shape, self.output_size)
        if tuple(outputs.shape) != want:
            raise ValueError(
                f"outputs must have shape {want} (the shape of targets, then "
                f"output_size {self.output_size}), got shape {tuple(outputs.shape)}"
            )
        if self.metric_name == "accuracy" and not jnp.issubdtype(targets.dtype, jnp.integer):
            raise TypeError(f"targets must be integer class indices, got dtype {targets.dtype}")

    # -- the readout model ------------------------------------------------

    def init_params(self, cell: Cell, key: Array) -> dict[str, Any]:
        """Params of ``cell`` plus a linear readout: ``{"cell", "w_out", "b_out"}``."""
        _check_cell(cell)
        _checks.prng_key("key", key)
        k_cell, k_out = jax.random.split(key)
        H, O = cell.hidden_size, self.output_size
        return {
            "cell": cell.init(k_cell, self.input_size),
            "w_out": jax.nn.initializers.glorot_uniform()(k_out, (H, O), jnp.float32),
            "b_out": jnp.zeros((O,), jnp.float32),
        }

    def apply(self, cell: Cell, params: dict[str, Any], inputs: Array, **rnn_options: Any) -> Array:
        """The readout model's outputs: ``(B, output_size)`` or, for per-step
        tasks, ``(B, T, output_size)``. ``rnn_options`` go to :func:`jaxrnn.rnn`."""
        _check_cell(cell)
        _check_model_params(params, cell.hidden_size, self.output_size)
        _, ys = rnn(cell, params["cell"], inputs, **rnn_options)
        return self.readout(params, ys)

    def readout(self, params: dict[str, Any], ys: Array) -> Array:
        """The linear readout of the outputs ``ys (B, T, H)`` of the cell: at the
        last step, or at every step for per-step tasks."""
        _checks.array("ys", ys)
        _check_model_params(params, ys.shape[-1] if ys.ndim else -1, self.output_size)
        hs = ys if self.per_step else ys[..., -1, :]
        out = hs @ params["w_out"]
        return out + params["b_out"].reshape((1,) * (out.ndim - 1) + (-1,))

    def make_loss(self, cell: Cell, **rnn_options: Any) -> Callable[[Any, Any], Array]:
        """``loss_fn(params, (inputs, targets)) -> loss``, as
        :func:`jaxrnn.training.make_train_step` wants it."""
        _check_cell(cell)

        def loss_fn(params: Any, batch: tuple[Array, Array]) -> Array:
            inputs, targets = batch
            return self.loss(self.apply(cell, params, inputs, **rnn_options), targets)

        return loss_fn


def _check_cell(cell: Any) -> None:
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be a jaxrnn Cell, got {_checks.describe(cell)}")


def _check_model_params(params: Any, hidden_size: int, output_size: int) -> None:
    """Checks a readout model's params: ``{"cell", "w_out" (H, O), "b_out" (O,)}``."""
    keys = ("cell", "w_out", "b_out")
    if not hasattr(params, "keys") or not all(k in params for k in keys):
        raise TypeError(
            "params must be the readout model's dict {'cell', 'w_out', 'b_out'} "
            f"(as init_params makes it), got {_checks.describe(params)}"
        )
    want = {"w_out": (hidden_size, output_size), "b_out": (output_size,)}
    for name, shape in want.items():
        _checks.array(f"params[{name!r}]", params[name])
        if tuple(params[name].shape) != shape:
            raise ValueError(
                f"params[{name!r}] must have shape {shape} (hidden_size {hidden_size}, "
                f"output_size {output_size}), got shape {tuple(params[name].shape)}"
            )


def _register(cls: type, data_fields: tuple[str, ...] = ()) -> type:
    cls = dataclasses.dataclass(frozen=True, eq=not data_fields)(cls)
    meta = [f.name for f in dataclasses.fields(cls) if f.name not in data_fields]
    return jax.tree_util.register_dataclass(cls, data_fields=list(data_fields), meta_fields=meta)


class Adding(Task):
    """The adding problem as a task (see :func:`adding`); metric: MSE."""

    name: ClassVar[str] = "adding"
    metric_name: ClassVar[str] = "mse"
    length: int = 100

    def __post_init__(self) -> None:
        _check_length("length", self.length, 2)

    input_size = property(lambda self: 2)
    output_size = property(lambda self: 1)
    baseline = property(lambda self: 1.0 / 6.0)

    def sample(self, key: Array, batch_size: int) -> tuple[Array, Array]:
        return adding(key, batch_size, self.length)

    def loss(self, outputs: Array, targets: Array) -> Array:
        self.check_outputs(outputs, targets)
        return jnp.mean((outputs[..., 0] - targets) ** 2)

    def metric(self, outputs: Array, targets: Array) -> Array:
        return self.loss(outputs, targets)


class CopyMemory(Task):
    """The copy-memory task (see :func:`copy_memory`); ``length`` is the delay
    ``T`` (sequences are ``T + 20`` long). Metric: accuracy on the 10 recalled
    symbols."""

    name: ClassVar[str] = "copy"
    per_step: ClassVar[bool] = True
    length: int = 100

    def __post_init__(self) -> None:
        _check_length("length", self.length, 1)

    input_size = property(lambda self: COPY_DELIMITER + 1)
    output_size = property(lambda self: COPY_SYMBOLS + 1)
    baseline = property(lambda self: COPY_LENGTH * math.log(COPY_SYMBOLS) / (self.length + 2 * COPY_LENGTH))

    def sample(self, key: Array, batch_size: int) -> tuple[Array, Array]:
        return copy_memory(key, batch_size, self.length)

    def metric(self, outputs: Array, targets: Array) -> Array:
        self.check_outputs(outputs, targets)
        return _accuracy(outputs[:, -COPY_LENGTH:], targets[:, -COPY_LENGTH:])


class TemporalOrder(Task):
    """The temporal-order task (see :func:`temporal_order`); metric: accuracy."""

    name: ClassVar[str] = "order"
    length: int = 100

    def __post_init__(self) -> None:
        _check_length("length", self.length, 10)

    input_size = property(lambda self: ORDER_SYMBOLS)
    output_size = property(lambda self: 4)
    baseline = property(lambda self: math.log(4.0))

    def sample(self, key: Array, batch_size: int) -> tuple[Array, Array]:
        return temporal_order(key, batch_size, self.length)


class CueAnswer(Task):
    """The cue-answer ("France ... French") task (see :func:`cue_answer`);
    ``distance`` is ``D`` (sequences are ``D + 2`` long). Metric: accuracy
    (chance ``1/num_pairs``)."""

    name: ClassVar[str] = "cue"
    distance: int = 100
    num_pairs: int = 8
    num_fillers: int = 8

    def __post_init__(self) -> None:
        _check_length("distance", self.distance, 1)
        _check_length("num_pairs", self.num_pairs, 2)
        _check_length("num_fillers", self.num_fillers, 1)

    input_size = property(lambda self: self.num_pairs + self.num_fillers + 1)
    output_size = property(lambda self: self.num_pairs)
    baseline = property(lambda self: math.log(self.num_pairs))

    def sample(self, key: Array, batch_size: int) -> tuple[Array, Array]:
        return cue_answer(key, batch_size, self.distance, num_pairs=self.num_pairs,
                          num_fillers=self.num_fillers)


class CharLM(Task):
    """Character-level language modelling: predict every next character.

    Build it with :meth:`from_text` (any text; by default the standard
    library's own sources, see :func:`stdlib_text`). A batch is ``B`` random
    windows of ``length + 1`` characters: inputs are the first ``length``
    (one-hot), targets the next character at every step. The baseline is the
    unigram entropy of the text (nats per character): what a model that knows
    the character frequencies but no context scores. Metric: accuracy.

    Attributes:
      tokens: the text as int32 indices (a pytree leaf).
      vocab: the :class:`CharVocab`.
      length: characters per training window.
      unigram_entropy: the baseline, in nats.
    """

    name: ClassVar[str] = "charlm"
    per_step: ClassVar[bool] = True
    tokens: Any = None
    vocab: CharVocab = CharVocab("")
    length: int = 100
    unigram_entropy: float = 0.0

    @classmethod
    def from_text(cls, text: str | None = None, length: int = 100) -> CharLM:
        """A task over ``text`` (``None``: :func:`stdlib_text`)."""
        if text is not None:
            _check_str("text", text)
        text = stdlib_text() if text is None else _clean(text)
        length = _check_length("length", length, 1)
        if len(text) < length + 1:
            raise ValueError(f"text must be longer than length + 1 = {length + 1} characters, got {len(text)}")
        vocab = CharVocab.from_text(text)
        ids = vocab.encode(text)
        p = np.bincount(ids, minlength=len(vocab)) / len(ids)
        entropy = float(-np.sum(p[p > 0] * np.log(p[p > 0])))
        return cls(jnp.asarray(ids), vocab, length, entropy)

    input_size = property(lambda self: len(self.vocab))
    output_size = property(lambda self: len(self.vocab))
    baseline = property(lambda self: self.unigram_entropy)

    def sample(self, key: Array, batch_size: int) -> tuple[Array, Array]:
        _checks.prng_key("key", key)
        batch_size = _checks.positive_int("batch_size", batch_size)
        n = self.tokens.shape[0]
        starts = jax.random.randint(key, (batch_size, 1), 0, n - self.length)
        idx = starts + jnp.arange(self.length + 1)[None, :]
        window = jnp.take(self.tokens, idx, axis=0)
        inputs = jax.nn.one_hot(window[:, :-1], len(self.vocab), dtype=jnp.float32)
        return inputs, window[:, 1:]


class SequentialMNIST(Task):
    """Pixel-by-pixel MNIST (Le et al. 2015): 784 steps of one pixel each,
    the class read at the last step; ``permuted=True`` applies one fixed random
    permutation (seed ``permutation_seed``) to the pixel order.

    Build it with :meth:`from_npz`. Metric: accuracy (chance 0.1).

    Attributes:
      images: ``(N, pixels)`` float32 in ``[0, 1]`` (a pytree leaf).
      labels: ``(N,)`` int32 (a pytree leaf).
    """

    name: ClassVar[str] = "mnist"
    images: Any = None
    labels: Any = None
    permuted: bool = False
    permutation_seed: int = 0

    def __post_init__(self) -> None:
        # Runs on every construction, jax.tree_util unflattening included:
        # tracers and placeholders (None, ShapeDtypeStruct) pass, concrete
        # arrays are checked (a label outside [0, 10) would make the
        # cross-entropy NaN without an error).
        images, labels = self.images, self.labels
        arrays = (np.ndarray, jax.Array)
        if isinstance(images, arrays) and _checks.is_concrete(images):
            if images.ndim != 2 or images.shape[0] == 0:
                raise ValueError(
                    f"images must have shape (N, pixels) with N >= 1, got shape "
                    f"{tuple(images.shape)}"
                )
            if not jnp.issubdtype(images.dtype, jnp.floating):
                raise TypeError(f"images must have a floating dtype, got {images.dtype}")
        if isinstance(labels, arrays) and _checks.is_concrete(labels):
            if labels.ndim != 1:
                raise ValueError(f"labels must have shape (N,), got shape {tuple(labels.shape)}")
            if not jnp.issubdtype(labels.dtype, jnp.integer):
                raise TypeError(f"labels must be integer class labels, got dtype {labels.dtype}")
            if getattr(labels, "is_fully_addressable", True):
                _check_labels("labels", labels)
            if isinstance(images, arrays) and images.shape[:1] != labels.shape:
                raise ValueError(
                    f"labels must have shape ({images.shape[0]},) (one per image), got "
                    f"shape {tuple(labels.shape)}"
                )

    @classmethod
    def from_npz(
        cls, path: str | os.PathLike, *, split: str = "train", permuted: bool = False,
        permutation_seed: int = 0,
    ) -> SequentialMNIST:
        """A task over the ``split`` (``"train"`` or ``"test"``) of a local ``mnist.npz``."""
        if split not in ("train", "test"):
            raise ValueError(f'split must be "train" or "test", got {split!r}')
        data = load_mnist(path)
        x = data[f"x_{split}"]
        if permuted:
            perm = np.random.default_rng(permutation_seed).permutation(x.shape[1])
            x = x[:, perm]
        return cls(jnp.asarray(x), jnp.asarray(data[f"y_{split}"]), permuted, permutation_seed)

    input_size = property(lambda self: 1)
    output_size = property(lambda self: 10)
    baseline = property(lambda self: math.log(10.0))

    @property
    def length(self) -> int:
        return int(self.images.shape[1])

    def sample(self, key: Array, batch_size: int) -> tuple[Array, Array]:
        _checks.prng_key("key", key)
        batch_size = _checks.positive_int("batch_size", batch_size)
        idx = jax.random.randint(key, (batch_size,), 0, self.images.shape[0])
        return jnp.take(self.images, idx, axis=0)[..., None], jnp.take(self.labels, idx, axis=0)

    def batches(self, batch_size: int):
        """The whole split in order, in batches (the last one may be short)."""
        batch_size = _checks.positive_int("batch_size", batch_size)
        return (
            (self.images[i : i + batch_size, :, None], self.labels[i : i + batch_size])
            for i in range(0, self.images.shape[0], batch_size)
        )


Adding = _register(Adding)
CopyMemory = _register(CopyMemory)
TemporalOrder = _register(TemporalOrder)
CueAnswer = _register(CueAnswer)
CharLM = _register(CharLM, ("tokens",))
SequentialMNIST = _register(SequentialMNIST, ("images", "labels"))

#: the synthetic tasks by command-line name (data tasks need a file or corpus)
TASKS: dict[str, type] = {
    "adding": Adding,
    "copy": CopyMemory,
    "order": TemporalOrder,
    "cue": CueAnswer,
    "charlm": CharLM,
    "mnist": SequentialMNIST,
}


def sample_text(
    cell: Cell,
    params: dict[str, Any],
    vocab: CharVocab,
    key: Array,
    prompt: str,
    num_chars: int,
    temperature: float = 1.0,
) -> str:
    """Generates text from a :class:`CharLM` readout model.

    Reads ``prompt`` to warm up the state, then draws ``num_chars``
    characters one at a time from ``softmax(logits / temperature)``, feeding
    each back in. One ``lax.scan``, jitted.

    Args:
      cell: the model's cell.
      params: the model's params (``{"cell", "w_out", "b_out"}``).
      vocab: the task's vocabulary.
      key: a PRNG key.
      prompt: at least one character, all in ``vocab``.
      num_chars: how many characters to generate.
      temperature: > 0; lower is greedier.

    Returns:
      The generated characters (without the prompt).

    Raises:
      TypeError: an argument has the wrong type (``params`` not the readout
        model's dict of ``cell``'s params, ``vocab`` not a :class:`CharVocab`).
      ValueError: ``prompt`` is empty or has characters outside ``vocab``,
        ``num_chars`` or ``temperature`` is not positive, or a shape of
        ``params`` does not fit ``cell`` and ``vocab``.
    """
    _check_cell(cell)
    if not isinstance(vocab, CharVocab):
        raise TypeError(f"vocab must be a CharVocab, got {_checks.describe(vocab)}")
    _check_model_params(params, cell.hidden_size, len(vocab))
    cell.check_params(params["cell"], name="params['cell']")
    _checks.prng_key("key", key)
    _check_str("prompt", prompt)
    if not prompt:
        raise ValueError("prompt must hold at least one character, got ''")
    num_chars = _checks.positive_int("num_chars", num_chars)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a positive number, got {_checks.describe(temperature)}")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    ids = jnp.asarray(vocab.encode(_clean(prompt)))
    out = _sample_ids(cell, params, ids, key, num_chars, float(temperature), len(vocab))
    return vocab.decode(out)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _sample_ids(cell, params, ids, key, num_chars, temperature, vocab_size):
    dtype = params["cell"].w_ih.dtype  # the step takes inputs in the params' dtype
    onehot = jax.nn.one_hot(ids, vocab_size, dtype=dtype)
    state = cell.initial_state((), accumulation_dtype(dtype))
    state, _ = rnn(cell, params["cell"], onehot[:-1], state, time_major=True) if ids.shape[0] > 1 else (state, None)

    def step(carry, k):
        state, last = carry
        x = jax.nn.one_hot(last, vocab_size, dtype=dtype)
        state, h = cell(params["cell"], state, x)
        logits = (h @ params["w_out"] + params["b_out"]) / temperature
        nxt = jax.random.categorical(k, logits).astype(jnp.int32)
        return (state, nxt), nxt

    _, out = jax.lax.scan(step, (state, ids[-1]), jax.random.split(key, num_chars))
    return out
