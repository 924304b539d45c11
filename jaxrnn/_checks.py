"""Input validation shared by the public functions.

Every check raises a ``TypeError`` or ``ValueError`` whose message names the
argument, what was expected and what arrived, so a user can fix the call
without reading the library's source.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return f"a {type(value).__name__}"
    return f"{type(value).__name__} {value!r}"


def positive_int(name: str, value: Any) -> int:
    """Checks that ``value`` is a positive Python/NumPy integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {describe(value)}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def float_dtype(name: str, dtype: Any) -> np.dtype:
    """Canonicalises ``dtype``; ``None`` is float32 (float64 under x64)."""
    if dtype is None:
        return jax.dtypes.canonicalize_dtype(jnp.float64)
    try:
        dt = jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{name} must be a floating dtype, got {dtype!r}") from e
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(f"{name} must be a floating dtype, got {dt}")
    return dt


def array(name: str, value: Any) -> None:
    """Checks that ``value`` is an array (JAX, NumPy or a tracer)."""
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        raise TypeError(
            f"{name} must be an array (jax.Array or numpy.ndarray), got "
            f"{describe(value)}"
        )


def batch_shape(name: str, value: Any) -> tuple[int, ...]:
    """Normalises a batch shape: an int or a sequence of non-negative ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0
        for d in value
    ):
        raise TypeError(
            f"{name} must be a tuple of non-negative ints such as (16,), got "
            f"{describe(value)}"
        )
    return tuple(int(d) for d in value)


def is_concrete(x: Any) -> bool:
    """Whether the values of ``x`` are known now (not a tracer under jit)."""
    return not isinstance(x, jax.core.Tracer)


def values_in_range(name: str, value: Any, lo: int, hi: int, why: str) -> None:
    """Checks that every value of ``value`` lies in ``[lo, hi]`` when they are
    concrete (under ``jit`` they cannot be read, and pass). ``why`` says what
    the range is, in the message."""
    if not is_concrete(value) or not np.size(value):
        return
    values = np.asarray(value)  # concrete: safe even inside a trace
    vmin, vmax = int(values.min()), int(values.max())
    if vmin < lo or vmax > hi:
        raise ValueError(
            f"{name} must lie in [{lo}, {hi}] ({why}), got values from {vmin} to {vmax}"
        )


def finite_float(name: str, value: Any) -> float:
    """Checks that ``value`` is a finite real number (an int or float, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {describe(value)}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite float, got {value!r}")
    return float(value)


def prng_key(name: str, value: Any) -> None:
    """Checks that ``value`` is one PRNG key: a typed key of shape ``()``
    (``jax.random.key``) or a raw ``uint32`` key (``jax.random.PRNGKey``).
    Tracers are checked by their shape and dtype, like arrays."""
    expected = "a PRNG key such as jax.random.key(0) or jax.random.PRNGKey(0)"
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        raise TypeError(f"{name} must be {expected}, got {describe(value)}")
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        if value.shape != ():
            raise TypeError(f"{name} must be one key, not a batch of keys, got {describe(value)}")
    elif value.dtype != np.uint32:
        raise TypeError(f"{name} must be {expected}, got {describe(value)}")
    elif value.ndim != 1:
        raise TypeError(
            f"{name} must be one raw key of shape (2,) as jax.random.PRNGKey(0) makes "
            f"it, not a batch of keys, got {describe(value)}"
        )


def path_like(name: str, value: Any) -> None:
    """Checks that ``value`` is a file path: a ``str`` or an ``os.PathLike``."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (a str or os.PathLike), got {describe(value)}")


def positive_scalar(name: str, value: Any) -> None:
    """Checks that ``value`` is a positive scalar: a real number or a shape-``()``
    array (not a bool). A traced value passes unchecked, since its sign is not
    known at trace time; callers state what a non-positive one does."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Real) or (hasattr(value, "shape") and hasattr(value, "dtype"))
    ):
        raise TypeError(f"{name} must be a positive float, got {describe(value)}")
    if hasattr(value, "shape") and tuple(value.shape) != ():
        raise ValueError(f"{name} must be a scalar, got shape {tuple(value.shape)}")
    if is_concrete(value) and not float(value) > 0:
        raise ValueError(f"{name} must be a positive float, got {float(value)}")


def sequence(
    name: str,
    xs: Any,
    *,
    time_major: bool = False,
    input_size: int | None = None,
    dtype: Any = None,
    promotable: bool = False,
) -> None:
    """Checks a sequence of inputs: a floating array ``(*batch, time, features)``
    (``(time, *batch, features)`` when ``time_major``), with ``input_size``
    features and the params' ``dtype`` when those are given. ``promotable``
    also admits integer and boolean arrays (the Flax layers promote them to
    the computation dtype, as Flax does)."""
    array(name, xs)
    layout = "(time, *batch, features)" if time_major else "(*batch, time, features)"
    if xs.ndim < 2:
        raise ValueError(
            f"{name} must have shape {layout} with at least 2 dims, got shape "
            f"{tuple(xs.shape)}"
        )
    integral = jnp.issubdtype(xs.dtype, jnp.integer) or xs.dtype == jnp.bool_
    if not (jnp.issubdtype(xs.dtype, jnp.floating) or (promotable and integral)):
        kinds = "a floating, integer or boolean" if promotable else "a floating"
        raise TypeError(f"{name} must have {kinds} dtype, got {xs.dtype}")
    if input_size is not None and xs.shape[-1] != input_size:
        raise ValueError(
            f"{name} must have {input_size} features (the input_size of params.w_ih) "
            f"on its last axis, got shape {tuple(xs.shape)}"
        )
    if dtype is not None and xs.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {xs.dtype} but params have dtype {dtype}; cast one of "
            "them explicitly (jaxrnn does not cast silently)"
        )
