"""Training steps: a train state, a jitted (and optionally sharded) step, checkpoints.

.. code-block:: python

    state = jr.training.TrainState.create(params, optimizer)
    step = jr.training.make_train_step(loss_fn, optimizer, mesh=None)
    state, metrics = step(state, batch)   # loss, grad_norm, skipped, total_skipped

The step is jitted and donates the old state. Updates whose gradients are not
finite are skipped (through :func:`optax.apply_if_finite`) and counted. With a
:class:`jax.sharding.Mesh` that has a ``"data"`` axis, the leading axis of
every batch leaf is sharded over it and the state is replicated: the same code
runs on one CPU, several GPUs, or a TPU pod after ``jax.distributed.initialize()``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _checks

__all__ = ["TrainState", "make_train_step", "Checkpointer"]

#: apply_if_finite gives up skipping after this many non-finite updates in a
#: row; a training step here never does.
_NEVER = int(np.iinfo(np.int32).max)


def _guarded(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` behind :func:`optax.apply_if_finite` (same state for init and update)."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation, got "
            f"{_checks.describe(optimizer)}"
        )
    return optax.apply_if_finite(optimizer, max_consecutive_errors=_NEVER)


class TrainState(NamedTuple):
    """Everything a training step changes: a pytree, so it jits, shards and saves."""

    step: jax.Array  # () int32: steps taken, skipped ones included
    params: Any
    opt_state: Any  # optax.ApplyIfFiniteState around the optimizer's own state

    @classmethod
    def create(cls, params: Any, optimizer: optax.GradientTransformation) -> "TrainState":
        """A state at step 0 for ``params`` and ``optimizer`` (the one given to
        :func:`make_train_step`)."""
        return cls(jnp.zeros((), jnp.int32), params, _guarded(optimizer).init(params))


def make_train_step(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    *,
    mesh: Mesh | None = None,
    has_aux: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, dict[str, Any]]]:
    """Builds a jitted training step ``(state, batch) -> (state, metrics)``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> loss`` (``(loss, aux)`` with
        ``has_aux``), a scalar.
      optimizer: an Optax transformation, e.g. ``optax.chain(clip, adam)``;
        the same one given to :meth:`TrainState.create`.
      mesh: ``None`` for one device; else a mesh with a ``"data"`` axis over
        which the leading axis of every batch leaf is sharded (the state is
        replicated). The batch must divide evenly over that axis.
      has_aux: whether ``loss_fn`` returns ``(loss, aux)``; ``aux`` is returned
        in the metrics.

    Returns:
      A function ``step(state, batch)``, jitted, that donates ``state`` and
      returns the new state and ``metrics``: ``loss``, ``grad_norm`` (the global
      norm of the gradient before any clipping), ``skipped`` (this update had
      non-finite gradients and was not applied), ``total_skipped`` and, with
      ``has_aux``, ``aux``.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {_checks.describe(loss_fn)}")
    tx = _guarded(optimizer)

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        grad_fn = jax.value_and_grad(loss_fn, has_aux=has_aux)
        value, grads = grad_fn(state.params, batch)
        loss, aux = value if has_aux else (value, None)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "skipped": jnp.logical_not(opt_state.last_finite),
            "total_skipped": opt_state.total_notfinite,
        }
        if has_aux:
            metrics["aux"] = aux
        return TrainState(state.step + 1, params, opt_state), metrics

    if mesh is None:
        return jax.jit(step, donate_argnums=0)

    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh or None, got {_checks.describe(mesh)}")
    if "data" not in mesh.axis_names:
        raise ValueError(f'mesh must have a "data" axis, got axes {mesh.axis_names}')
    replicated = NamedSharding(mesh, PartitionSpec())
    sharded = NamedSharding(mesh, PartitionSpec("data"))
    jitted = jax.jit(
        step,
        in_shardings=(replicated, sharded),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    n = mesh.shape["data"]

    def sharded_step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
            shape = tuple(np.shape(leaf))
            if not shape or shape[0] % n:
                raise ValueError(
                    f"batch{jax.tree_util.keystr(path)} must have a leading (batch) axis "
                    f'divisible by the {n} devices of the mesh\'s "data" axis, got shape {shape}'
                )
        return jitted(state, batch)

    return sharded_step


class Checkpointer:
    """Saves a :class:`TrainState` every ``save_every`` steps with Orbax, and
    restores the latest.

    Example:
      .. code-block:: python

          ckpt = jr.training.Checkpointer("runs/adding/checkpoints", save_every=100)
          state = ckpt.restore_latest(state)       # unchanged if there is none
          for batch in batches:
              state, metrics = step(state, batch)
              ckpt.save(state)                     # only every 100 steps
          ckpt.save(state, force=True)             # and at the end
          ckpt.close()

    Args:
      directory: where checkpoints go (one sub-folder per step).
      save_every: save when ``state.step`` is a multiple of this; ``None``
        saves only when forced.
      max_to_keep: how many recent checkpoints to keep.
    """

    def __init__(
        self, directory: str | os.PathLike, *, save_every: int | None = None, max_to_keep: int = 3
    ):
        import orbax.checkpoint as ocp  # a flax dependency; imported when used

        if save_every is not None:
            save_every = _checks.positive_int("save_every", save_every)
        self._ocp = ocp
        self.save_every = save_every
        self._manager = ocp.CheckpointManager(
            os.path.abspath(os.fspath(directory)),
            options=ocp.CheckpointManagerOptions(max_to_keep=_checks.positive_int("max_to_keep", max_to_keep)),
        )

    def save(self, state: TrainState, *, force: bool = False) -> bool:
        """Saves ``state`` if its step is due (or ``force``); returns whether it did."""
        step = int(state.step)
        due = self.save_every is not None and step % self.save_every == 0
        if not (due or force) or step in self._manager.all_steps():
            return False
        self._manager.save(step, args=self._ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()
        return True

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, or ``None``."""
        return self._manager.latest_step()

    def restore_latest(self, like: TrainState) -> TrainState:
        """The newest checkpoint, shaped, typed and sharded like ``like``; ``like``
        itself when there is none."""
        step = self._manager.latest_step()
        if step is None:
            return like
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=getattr(x, "sharding", None)),
            like,
        )
        return self._manager.restore(step, args=self._ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self._manager.close()
