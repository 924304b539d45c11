"""What the Flax and PyTorch halves of :mod:`jaxrnn.interop` share."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from .. import _checks
from ..cells import GRU, IRNN, LSTM, Cell, SimpleRNN


def check_state_arrays(cell: Cell, arrays: dict[str, Any]) -> None:
    """Checks a state's arrays: each ``(*batch, H)``, floating, one shape for all."""
    H = cell.hidden_size
    shapes = {}
    for label, a in arrays.items():
        if isinstance(a, (tuple, list)):
            raise TypeError(
                f"{label} must be an array (jax.Array or numpy.ndarray), got a "
                f"{type(a).__name__} of {len(a)} items"
            )
        _checks.array(label, a)
        if a.ndim < 1 or a.shape[-1] != H:
            raise ValueError(
                f"{label} must have shape (*batch, {H}) (hidden_size {H} on its last "
                f"axis), got shape {tuple(a.shape)}"
            )
        if not jnp.issubdtype(a.dtype, jnp.floating):
            raise TypeError(f"{label} must have a floating dtype, got {a.dtype}")
        shapes[label] = tuple(a.shape)
    (first, want), *rest = shapes.items()
    for label, shape in rest:
        if shape != want:
            raise ValueError(f"{first} and {label} must have one shape, got {want} and {shape}")


def check_named_cell(cell: Any, gru: str, framework: str) -> None:
    """Checks that ``cell`` is one of the four cells the frameworks have, and
    not the ``reset_after=False`` GRU, which ``framework``'s ``gru`` is not."""
    if not isinstance(cell, (SimpleRNN, IRNN, LSTM, GRU)):
        raise TypeError(
            "cell must be a jaxrnn SimpleRNN, IRNN, LSTM or GRU, got "
            f"{_checks.describe(cell)}"
        )
    if isinstance(cell, GRU) and not cell.reset_after:
        raise ValueError(
            f"{gru} is the reset_after=True GRU; GRU(reset_after=False) "
            f"has no {framework} counterpart"
        )
