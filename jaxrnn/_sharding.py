"""Manual-axis typing under ``shard_map`` (private; shared by the engine and ``jr.rnn``).

Inside ``jax.shard_map`` every value carries the set of manual mesh axes it
varies over. A ``lax.scan`` carry must keep that set from one step to the
next, so a zero initial state or buffer that the library makes itself must be
cast to vary over the axes the data varies over, or the first step changes the
carry's type and the scan is refused.
"""

from __future__ import annotations

from typing import Any

import jax
from jax import lax


def varying_axes(x: Any) -> frozenset:
    """The manual mesh axes over which ``x`` varies (empty outside ``shard_map``)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)  # JAX >= 0.9; before: aval.vma
    return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def varying_axes_of(*trees: Any) -> frozenset:
    """The union of :func:`varying_axes` over every leaf of ``trees``."""
    return frozenset().union(*map(varying_axes, jax.tree_util.tree_leaves(trees)))


def vary(tree: Any, axes: frozenset) -> Any:
    """``tree`` with every leaf cast to vary over ``axes`` too."""

    def cast(leaf: Any) -> Any:
        missing = tuple(sorted(axes - varying_axes(leaf)))
        if not missing:
            return leaf
        if hasattr(lax, "pcast"):
            return lax.pcast(leaf, missing, to="varying")
        return lax.pvary(leaf, missing)  # JAX < 0.8's name for the same cast

    return jax.tree_util.tree_map(cast, tree)
