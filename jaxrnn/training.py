"""Training steps: a train state, a jitted (and optionally sharded) step, checkpoints.

.. code-block:: python

    state = jr.training.TrainState.create(params, optimizer)
    step = jr.training.make_train_step(loss_fn, optimizer, mesh=None)
    state, metrics = step(state, batch)   # loss, grad_norm, skipped, total_skipped

The step is jitted and donates the old state. A step whose gradients, or whose
updates (what the optimizer makes of them: a clip, Adam's moments), are not
finite is skipped, leaving params and optimizer state as they were, and
counted. With a
:class:`jax.sharding.Mesh` that has a ``"data"`` axis, the leading axis of
every batch leaf is sharded over it and the state is replicated: the same code
runs on one CPU, several GPUs, or a TPU pod after ``jax.distributed.initialize()``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _checks
from .cells import PyTree

__all__ = ["CheckpointWarning", "Checkpointer", "TrainState", "make_train_step"]

def _all_finite(tree: Any) -> jax.Array:
    """Whether every floating leaf of ``tree`` is finite (other leaves always are)."""
    checks = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def _guarded(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer``, skipping every update it would make that is not finite.

    :func:`optax.apply_if_finite` looks only at the gradients that come in; a
    NaN made inside the chain (a clip computing ``0 / 0``, an optimizer that
    overflows) would reach the params. This guard looks at the gradients
    *and* at the updates the optimizer makes of them; when either is not
    finite, it returns zero updates and the optimizer's old state. It never
    gives up skipping (apply_if_finite does, after ``max_consecutive_errors``).

    Its state is optax's :class:`optax.ApplyIfFiniteState`, with the same
    meaning, so the layout of a :class:`TrainState` (and of its checkpoints)
    is the one apply_if_finite gives: ``notfinite_count`` (() int32, skips in
    a row), ``last_finite`` (() bool, whether the last update was applied),
    ``total_notfinite`` (() int32, skips in all) and ``inner_state`` (the
    optimizer's own state).
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation, got "
            f"{_checks.describe(optimizer)}"
        )

    def init_fn(params: Any) -> optax.ApplyIfFiniteState:
        return optax.ApplyIfFiniteState(
            notfinite_count=jnp.zeros((), jnp.int32),
            last_finite=jnp.array(True),
            total_notfinite=jnp.zeros((), jnp.int32),
            inner_state=optimizer.init(params),
        )

    def update_fn(
        grads: Any, state: optax.ApplyIfFiniteState, params: Any = None
    ) -> tuple[Any, optax.ApplyIfFiniteState]:
        updates, inner_state = optimizer.update(grads, state.inner_state, params)
        finite = _all_finite(grads) & _all_finite(updates)
        # Branch-free: both outcomes are computed, one is kept.
        updates = jax.tree_util.tree_map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
        inner_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(finite, new, old), inner_state, state.inner_state
        )
        skipped = jnp.logical_not(finite).astype(jnp.int32)
        return updates, optax.ApplyIfFiniteState(
            notfinite_count=jnp.where(finite, 0, state.notfinite_count + 1),
            last_finite=finite,
            total_notfinite=state.total_notfinite + skipped,
            inner_state=inner_state,
        )

    return optax.GradientTransformation(init_fn, update_fn)


def _unaliased(tree: Any) -> Any:
    """``tree`` with every array that appears more than once (the same buffer
    twice: tied weights, or an optimizer state that holds one zero array in
    two fields) copied, so a step that donates it does not donate one buffer
    twice, which XLA refuses."""
    seen: set[Any] = set()

    def fresh(x: Any) -> Any:
        if not isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer):
            return x
        try:
            keys = {(s.device, s.data.unsafe_buffer_pointer()) for s in x.addressable_shards}
        except (RuntimeError, NotImplementedError):  # deleted, or no raw pointers here
            keys = {id(x)}
        if keys & seen:
            return jnp.copy(x)
        seen.update(keys)
        return x

    return jax.tree_util.tree_map(fresh, tree)


def _named_tuples(tree: Any) -> list[str]:
    """The names of the NamedTuple nodes in ``tree``, in order, without repeats."""
    names: list[str] = []

    def visit(x: Any) -> bool:
        if isinstance(x, tuple) and hasattr(x, "_fields") and type(x).__name__ not in names:
            names.append(type(x).__name__)
        return False

    jax.tree_util.tree_leaves(tree, is_leaf=visit)
    return names


def _check_state(state: Any, tx: optax.GradientTransformation) -> None:
    """Checks, at trace time, that ``state`` is a :class:`TrainState` whose
    ``opt_state`` is what ``tx`` makes for its params (same tree, same shapes)."""
    if not isinstance(state, TrainState):
        raise TypeError(
            "state must be a jaxrnn.training.TrainState; build it with "
            f"TrainState.create(params, optimizer), got {type(state).__name__}"
        )
    want = jax.eval_shape(tx.init, state.params)
    fix = "build it with TrainState.create(params, optimizer) from the optimizer given to make_train_step"
    if jax.tree_util.tree_structure(want) != jax.tree_util.tree_structure(state.opt_state):
        want_names, got_names = _named_tuples(want), _named_tuples(state.opt_state)
        extra = [n for n in got_names if n not in want_names]
        missing = [n for n in want_names if n not in got_names]
        if missing and extra:
            what = f"expected a state with {', '.join(missing)}, got one with {', '.join(extra)}"
        elif missing:
            what = f"expected a state with {', '.join(missing)}, got one without"
        elif extra:
            what = f"got a state with {', '.join(extra)}, which the optimizer's state lacks"
        else:
            what = "the two states are built alike but nested differently"
        want_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(want)]
        got_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state.opt_state)]
        first = next(
            (f"; first difference: state.opt_state{g} where the optimizer's state has {w}"
             for w, g in zip(want_paths, got_paths) if w != g),
            f"; state.opt_state has {len(got_paths)} leaves, the optimizer's state {len(want_paths)}",
        )
        raise ValueError(
            "state.opt_state does not match the optimizer given to make_train_step: "
            f"{what}{first}; {fix}"
        )
    for (path, w), g in zip(
        jax.tree_util.tree_leaves_with_path(want), jax.tree_util.tree_leaves(state.opt_state)
    ):
        if tuple(w.shape) != tuple(np.shape(g)):
            raise ValueError(
                f"state.opt_state{jax.tree_util.keystr(path)} must have shape {tuple(w.shape)} "
                f"for these params and this optimizer, got shape {tuple(np.shape(g))}; {fix}"
            )


class TrainState(NamedTuple):
    """Everything a training step changes: a pytree, so it jits, shards and saves."""

    step: jax.Array  # () int32: steps taken, skipped ones included
    params: PyTree
    opt_state: optax.OptState  # optax.ApplyIfFiniteState; the optimizer's own state is .inner_state

    @classmethod
    def create(cls, params: PyTree, optimizer: optax.GradientTransformation) -> "TrainState":
        """A state at step 0 for ``params`` and ``optimizer`` (the one given to
        :func:`make_train_step`).

        An array that appears twice in the state (tied weights; an optimizer
        state that reuses one array in two fields) is copied, since the step
        donates the state and XLA cannot donate one buffer twice."""
        return _unaliased(cls(jnp.zeros((), jnp.int32), params, _guarded(optimizer).init(params)))


def make_train_step(
    loss_fn: Callable[[PyTree, PyTree], Any],
    optimizer: optax.GradientTransformation,
    *,
    mesh: Mesh | None = None,
    local_batch: bool = False,
    has_aux: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, dict[str, Any]]]:
    """Builds a jitted training step ``(state, batch) -> (state, metrics)``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> loss`` (``(loss, aux)`` with
        ``has_aux``), a scalar.
      optimizer: an Optax transformation, e.g. ``optax.chain(clip, adam)``;
        the same one given to :meth:`TrainState.create`.
      mesh: ``None`` for one device; else a :class:`jax.sharding.Mesh` with a
        ``"data"`` axis over which the leading axis of every batch leaf is
        sharded (the state is replicated). Its axes may be Auto
        (``jax.sharding.Mesh(devices, ("data",))``) or Explicit
        (``jax.make_mesh``'s default). The batch must divide evenly over that
        axis.
      local_batch: with several processes (``jax.distributed.initialize()``),
        whether each process passes only its own share of the batch: the rows
        for its devices on the ``"data"`` axis, in their order. The step
        assembles the global batch with
        :func:`jax.make_array_from_process_local_data`: the processes train as
        one process would on all their rows (concatenated in process order
        when the ``"data"`` axis lists the devices process by process).
        ``False``: every process passes the same, whole batch. Needs ``mesh``;
        in one process, both are the same.
      has_aux: whether ``loss_fn`` returns ``(loss, aux)``; ``aux`` is returned
        in the metrics.

    Returns:
      A function ``step(state, batch)``, jitted, that donates ``state`` and
      returns the new state and ``metrics``: ``loss``, ``grad_norm`` (the global
      norm of the gradient before any clipping), ``skipped`` (the gradients or
      the updates the optimizer made of them were not finite, so params and
      optimizer state were kept; ``state.step`` still advances),
      ``total_skipped`` and, with ``has_aux``, ``aux``.

    Raises:
      TypeError: (at the first call) ``state`` is not a :class:`TrainState`.
      ValueError: (at the first call) ``state.opt_state`` was not made by
        ``optimizer`` for these params (an Adam state in an SGD step, say).
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {_checks.describe(loss_fn)}")
    tx = _guarded(optimizer)

    def step(state: TrainState, batch: PyTree) -> tuple[TrainState, dict[str, Any]]:
        _check_state(state, tx)  # at trace time: costs the compiled step nothing
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

    if not isinstance(local_batch, bool):
        raise TypeError(f"local_batch must be a bool, got {_checks.describe(local_batch)}")
    if mesh is None:
        if local_batch:
            raise ValueError("local_batch=True needs a mesh (the batch is split over its \"data\" axis), got mesh=None")
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
    # The batch passed in is split this many ways: over the positions on the
    # "data" axis of all devices or, with local_batch, of this process's devices.
    axis = mesh.axis_names.index("data")
    n = len({i[axis] for i in np.ndindex(mesh.devices.shape)
             if not local_batch or mesh.devices[i].process_index == jax.process_index()})
    where = "devices of this process on" if local_batch else "devices of"

    def sharded_step(state: TrainState, batch: PyTree) -> tuple[TrainState, dict[str, Any]]:
        for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
            shape = tuple(np.shape(leaf))
            if not shape or shape[0] % n:
                raise ValueError(
                    f"batch{jax.tree_util.keystr(path)} must have a leading (batch) axis "
                    f'divisible by the {n} {where} the mesh\'s "data" axis, got shape {shape}'
                )
        if local_batch:
            batch = jax.tree_util.tree_map(
                lambda x: jax.make_array_from_process_local_data(sharded, np.asarray(x)), batch
            )
        # Placed before the call, not only through in_shardings: under Explicit
        # mesh axes (jax.make_mesh) the sharding is part of an array's type, so
        # the step must see a batch typed as sharded (else it runs replicated)
        # and a state typed the same at every call (else it retraces).
        state, batch = jax.device_put((state, batch), (replicated, sharded))
        with jax.set_mesh(mesh):
            return jitted(state, batch)

    return sharded_step


class CheckpointWarning(UserWarning):
    """A checkpoint could not be read; :meth:`Checkpointer.restore_latest` set it
    aside and restored an older one."""


class Checkpointer:
    """Saves a :class:`TrainState` every ``save_every`` steps with Orbax, and
    restores the latest intact one.

    Each save is complete when :meth:`save` returns: Orbax writes into a
    temporary folder and renames it, so a process killed mid-save leaves the
    previous checkpoints as they were. A checkpoint damaged later (zeroed or
    truncated files, an emptied folder) is set aside by :meth:`restore_latest`,
    which falls back to the newest one it can read and says so with a
    :class:`CheckpointWarning`.

    Example:
      .. code-block:: python

          ckpts = jr.training.Checkpointer("runs/adding/checkpoints", save_every=100)
          with ckpts as ckpt:
              state = ckpt.restore_latest(state)   # unchanged if there is none
              for batch in batches:
                  state, metrics = step(state, batch)
                  ckpt.save(state)                 # only every 100 steps
              ckpt.save(state, force=True)         # and at the end

    Args:
      directory: where checkpoints go (one sub-folder per step); created if
        missing.
      save_every: save when ``state.step`` is a multiple of this; ``None``
        saves only when forced.
      max_to_keep: how many recent checkpoints to keep.

    Raises:
      ValueError: if ``directory`` is a file or cannot be created.
    """

    def __init__(
        self, directory: str | os.PathLike, *, save_every: int | None = None, max_to_keep: int = 3
    ):
        import orbax.checkpoint as ocp  # a flax dependency; imported when used

        if save_every is not None:
            save_every = _checks.positive_int("save_every", save_every)
        max_to_keep = _checks.positive_int("max_to_keep", max_to_keep)
        path = os.path.abspath(os.fspath(directory))
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"directory must be a folder for checkpoints, got the file {path}")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise ValueError(f"directory {path} cannot be created: {e.strerror or e}") from None
        self._ocp = ocp
        self.directory = path
        self.save_every = save_every
        # Synchronous saves: save() waited for each one anyway, and an async save
        # that fails leaves Orbax's non-daemon signalling threads waiting ~300 s
        # for a commit that never comes, so the process could not exit.
        self._manager = ocp.CheckpointManager(
            path,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False),
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def __enter__(self) -> Checkpointer:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        """The newest intact checkpoint, shaped, typed and sharded like ``like``;
        ``like`` itself when there is none.

        A newer checkpoint that cannot be read is renamed ``<step>.corrupt``
        (kept for inspection, out of Orbax's sight, so that step is saved
        afresh) with a :class:`CheckpointWarning` naming it and the error.

        Raises:
          ValueError: if a readable checkpoint holds a differently shaped state
            than ``like`` (another model or optimizer: the message names the
            first leaves that differ), or if no checkpoint can be read.
        """
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=getattr(x, "sharding", None)),
            like,
        )
        unreadable: list[tuple[int, Exception]] = []
        restored = None
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                stored = self._manager.item_metadata(step)
                if stored is None:
                    raise FileNotFoundError("its metadata is missing")
                stored = {_dotted(p): tuple(m.shape) for p, m in jax.tree_util.tree_flatten_with_path(stored)[0]}
            except Exception as e:  # noqa: BLE001 (JSONDecodeError, Orbax's ValueErrors, OSError, ...)
                unreadable.append((step, e))
                continue
            self._check_matches(step, stored, like)
            try:
                restored = self._manager.restore(step, args=self._ocp.args.StandardRestore(abstract))
            except Exception as e:  # noqa: BLE001 (tensorstore DATA_LOSS, truncated files, ...)
                unreadable.append((step, e))
                continue
            break
        if restored is None:
            if unreadable:
                raise ValueError(
                    f"no checkpoint in {self.directory} can be read: "
                    + "; ".join(f"step {s}: {_first_line(e)}" for s, e in unreadable)
                ) from unreadable[0][1]
            return like
        for step, e in unreadable:
            aside = self._set_aside(step)
            warnings.warn(
                f"checkpoint step {step} in {self.directory} cannot be read ({_first_line(e)}); "
                f"moved it to {aside} and restored step {int(restored.step)}",
                CheckpointWarning,
                stacklevel=2,
            )
        if unreadable:
            self._manager.reload()
        return restored

    def _check_matches(self, step: int, stored: dict[str, tuple], like: TrainState) -> None:
        wanted = {_dotted(p): tuple(np.shape(x)) for p, x in jax.tree_util.tree_flatten_with_path(like)[0]}
        diffs = [
            f"{name}: checkpoint {stored.get(name, 'absent')}, state {wanted.get(name, 'absent')}"
            for name in sorted(set(stored) | set(wanted))
            if stored.get(name) != wanted.get(name)
        ]
        if diffs:
            more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
            raise ValueError(
                f"checkpoint step {step} in {self.directory} does not fit the state to restore (another "
                f"model or optimizer?): {'; '.join(diffs[:3])}{more}"
            )

    def _set_aside(self, step: int) -> str:
        source = os.path.join(self.directory, str(step))
        target, n = f"{source}.corrupt", 1
        while os.path.exists(target):
            n += 1
            target = f"{source}.corrupt{n}"
        if jax.process_index() == 0:
            os.replace(source, target)
        return target

    def close(self) -> None:
        self._manager.close()


def _dotted(path: tuple) -> str:
    """A pytree key path as Orbax names a leaf: ``opt_state.inner_state.0.mu``."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"
