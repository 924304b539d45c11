"""The engine under sharding.

The recurrence is independent across examples, so the kernel is written for
one device's examples and made to run under every way of distributing them:
- Auto mesh axes (``jax.sharding.Mesh``): types carry no sharding and XLA
  partitions the kernel by itself; nothing to do.
- Explicit mesh axes (what ``jax.make_mesh`` makes by default): an array's
  sharding is part of its type, and the ops the kernel is built from
  (writes into per-step buffers, ``C·B``-row GEMMs, their transposes) would
  each need it spelled out. The kernel instead runs under ``shard_map``
  over the explicit axes, each device on its own examples; the transpose of
  ``shard_map`` sums the weight gradients over the devices.
- Inside ``shard_map`` (the user's or the one above), values that differ
  between devices have a "varying" type; a scan's carry and a custom_vjp's
  cotangents must keep their type, so every input, and every zero the
  kernel makes, is cast to vary over the same axes as the data (the
  transpose of that cast sums the gradients of replicated weights).
"""

from __future__ import annotations

from typing import Any

import jax

tmap = jax.tree_util.tree_map


def explicit_mesh(tree: Any) -> Any:
    """The mesh with Explicit axes that some leaf of ``tree`` is typed on, or ``None``."""
    for leaf in jax.tree_util.tree_leaves(tree):
        mesh = getattr(jax.typeof(leaf).sharding, "mesh", None)
        if mesh is not None and jax.sharding.AxisType.Explicit in getattr(mesh, "axis_types", ()):
            return mesh
    return None


def per_shard(fn: Any, mesh: Any, batch_axis: int, args: tuple) -> Any:
    """Runs ``fn(params, xs, state, lengths, clip, probe, rmask, zone)`` under ``shard_map``
    over ``mesh``'s Explicit axes, with the batch split the way ``xs`` splits
    it and everything else replicated (resharded so first if it is not)."""
    P = jax.sharding.PartitionSpec
    explicit = {
        name
        for name, kind in zip(mesh.axis_names, mesh.axis_types)
        if kind == jax.sharding.AxisType.Explicit
    }
    params, xs, state, lengths, clip, probe, rmask, zone = args
    spec = jax.typeof(xs).sharding.spec
    batch = spec[batch_axis] if len(spec) > batch_axis else None
    names = (batch,) if isinstance(batch, str) else tuple(batch or ())
    batch = batch if set(names) <= explicit else None

    def seq_spec(ndim):  # xs, ys and probe leaves: (B, T, F) or (T, B, F)
        return P(*[batch if i == batch_axis else None for i in range(ndim)])

    specs = (
        tmap(lambda _: P(), params),
        seq_spec(xs.ndim),
        tmap(lambda _: P(batch), state),
        None if lengths is None else P(batch),
        None if clip is None else P(),
        None if probe is None else tmap(lambda q: seq_spec(q.ndim), probe),
        None if rmask is None else P(batch),
        None if zone is None else tmap(lambda q: seq_spec(q.ndim), zone),
    )
    args = jax.tree_util.tree_map(
        lambda spec, a: tmap(
            lambda leaf: jax.sharding.reshard(leaf, jax.sharding.NamedSharding(mesh, spec)), a
        ),
        specs,
        args,
        is_leaf=lambda x: isinstance(x, P) or x is None,
    )
    out_specs = (tmap(lambda _: P(batch), state), seq_spec(xs.ndim))
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=out_specs, axis_names=explicit)(
        *args
    )
