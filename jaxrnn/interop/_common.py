"""What the Flax and PyTorch halves of :mod:`jaxrnn.interop` share."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from .. import _checks
from ..cells import GRU, IRNN, LSTM, Cell, SimpleRNN


def check_state_arrays(
    cell: Cell, arrays: dict[str, Any], sizes: dict[str, int] | None = None
) -> None:
    """Checks a state's arrays: each ``(*batch, F)``, floating, one batch shape
    for all; ``F`` is ``sizes[label]``, by default ``hidden_size`` (an
    ``LSTM(proj_size=P)``'s ``h`` has ``P``)."""
    H = cell.hidden_size
    sizes = sizes or {}
    shapes = {}
    for label, a in arrays.items():
        if isinstance(a, (tuple, list)):
            raise TypeError(
                f"{label} must be an array (jax.Array or numpy.ndarray), got a "
                f"{type(a).__name__} of {len(a)} items"
            )
        _checks.array(label, a)
        F = sizes.get(label, H)
        what = "hidden_size" if F == H else "proj_size"
        if a.ndim < 1 or a.shape[-1] != F:
            raise ValueError(
                f"{label} must have shape (*batch, {F}) ({what} {F} on its last "
                f"axis), got shape {tuple(a.shape)}"
            )
        if not jnp.issubdtype(a.dtype, jnp.floating):
            raise TypeError(f"{label} must have a floating dtype, got {a.dtype}")
        shapes[label] = tuple(a.shape)
    (first, want), *rest = shapes.items()
    for label, shape in rest:
        if shape[:-1] != want[:-1] or (shape != want and not sizes):
            raise ValueError(f"{first} and {label} must have one shape, got {want} and {shape}")


def state_sizes(cell: Cell, labels: dict[str, str]) -> dict[str, int]:
    """The feature sizes of an LSTM state's arrays by label (``labels``: ``{"h": label, "c": label}``):
    ``h`` has ``proj_size`` features when the cell has one."""
    return {labels["h"]: cell.output_size, labels["c"]: cell.hidden_size}


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
