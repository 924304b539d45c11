"""A compiled training loop for the demo and the command line (private).

Steps run in blocks: one jitted call does ``block`` optimisation steps in a
``lax.scan`` and returns their per-step metrics, so Python is visited (and a
progress bar moves) once per block. Several seeds of one configuration train
side by side under ``jax.vmap``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import cells as _cells
from . import clipping
from ._linear_cells import LINEAR_CELLS
from .tasks import Task

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": optax.adam,
    "sgd": optax.sgd,
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "rmsprop": optax.rmsprop,
}

#: cells by command-line name: jaxrnn.cells.NAMED_CELLS and the linear-recurrence cells
CELLS = {**_cells.NAMED_CELLS, **LINEAR_CELLS}


def make_optimizer(name: str) -> optax.GradientTransformation:
    """The optimizer ``name`` at learning rate 1; the training step scales
    its updates by each run's (traced) learning rate, which is exact for
    every optimizer here (their updates are linear in the learning rate)."""
    return OPTIMIZERS[name](1.0)


@dataclasses.dataclass(frozen=True)
class Config:
    """What one compiled training block depends on (hashable)."""

    cell: _cells.Cell
    optimizer: str = "adam"
    batch_size: int = 32
    block: int = 100
    impl: str = "auto"
    residuals: Any = "auto"
    #: the learning rate decays linearly from lr to ``lr * final_lr`` over
    #: ``decay_steps`` steps (``None``: constant), which keeps a run from
    #: wandering off a solution it found late
    decay_steps: int | None = None
    final_lr: float = 0.1


class Run(NamedTuple):
    """One model to train: its seed, learning rate and clipping thresholds."""

    seed: int
    lr: float
    clip: float | None  # the global norm's threshold; None: no norm clipping
    clip_value: float | None = None  # each element's (optax.clip); None: none


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_state(cell: _cells.Cell, optimizer: str, keys: jax.Array, task: Task) -> tuple[Any, Any]:
    params = jax.vmap(lambda k: task.init_params(cell, k))(keys)
    return params, jax.vmap(make_optimizer(optimizer).init)(params)


def init(cfg: Config, task: Task, runs: Sequence[Run]) -> tuple[Any, Any, Any]:
    """Stacked ``(params, opt_state, hyper)`` for ``runs`` (leading axis = run);
    ``hyper (runs, 3)`` holds each run's learning rate and its norm and value
    clipping thresholds (``inf``: none)."""
    keys = jnp.stack([jax.random.PRNGKey(r.seed) for r in runs])
    params, opt_state = _init_state(cfg.cell, cfg.optimizer, keys, task)

    def threshold(x: float | None) -> float:
        return math.inf if x is None else x

    hyper = jnp.asarray(
        [[r.lr, threshold(r.clip), threshold(r.clip_value)] for r in runs], jnp.float32
    )  # (runs, 3): learning rate, norm threshold, value threshold
    return params, opt_state, hyper


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(1, 2))
def run_block(
    cfg: Config, params: Any, opt_state: Any, hyper: jax.Array, keys: jax.Array, steps: jax.Array,
    task: Task,
):
    """``cfg.block`` steps for every run; ``keys (runs, block, 2)`` are the
    data keys of its steps, ``steps (block,)`` their indices. Returns the new params and optimizer state and per-step metrics
    ``(runs, block)``: loss, grad_norm (before clipping), clipped (whether
    the norm clip fired), cosine (between the clipped and the true gradient:
    1 for norm clipping, which keeps the direction)."""
    tx = make_optimizer(cfg.optimizer)
    loss_fn = task.make_loss(cfg.cell, impl=cfg.impl, residuals=cfg.residuals)

    def one_run(params, opt_state, hyper, keys, steps):
        lr, max_norm, max_value = hyper[0], hyper[1], hyper[2]

        def step(carry, inputs):
            k, i = inputs
            params, opt_state = carry
            batch = task.sample(k, cfg.batch_size)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            # A traced threshold: clipped and unclipped runs (max_norm = inf)
            # train side by side under vmap.
            clip = clipping.clip_by_global_norm(max_norm)
            true_grads = grads
            grads, clip_state = clip.update(grads, clip.init(grads))
            norm, clipped = clip_state.global_norm, clip_state.clipped
            grads, _ = optax.clip(max_value).update(grads, optax.EmptyState())
            cosine = clipping.cosine_similarity(grads, true_grads)
            # optax.adam's bias correction raises a float to an int32 power,
            # which strict dtype promotion rejects; the rest stays strict.
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = tx.update(grads, opt_state, params)
            rate = lr
            if cfg.decay_steps is not None:
                frac = jnp.minimum(i.astype(jnp.float32) / cfg.decay_steps, 1.0)
                rate = lr * (1.0 - (1.0 - cfg.final_lr) * frac)
            updates = jax.tree_util.tree_map(lambda u: rate.astype(u.dtype) * u, updates)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), (loss, norm, clipped, cosine)

        (params, opt_state), (loss, norm, clipped, cosine) = jax.lax.scan(
            step, (params, opt_state), (keys, steps)
        )
        return params, opt_state, {
            "loss": loss, "grad_norm": norm, "clipped": clipped, "cosine": cosine,
        }

    return jax.vmap(one_run, in_axes=(0, 0, 0, 0, None))(params, opt_state, hyper, keys, steps)


@functools.partial(jax.jit, static_argnums=(0, 1))
def evaluate(cell: _cells.Cell, impl: str, params: Any, inputs: jax.Array, targets: jax.Array, task: Task):
    """Per-run ``(loss, metric)`` of stacked ``params`` on one fixed batch."""

    def one(p):
        out = task.apply(cell, p, inputs, impl=impl)
        return task.loss(out, targets), task.metric(out, targets)

    return jax.vmap(one)(params)


@jax.jit
def _step_keys(key: jax.Array, steps: jax.Array) -> jax.Array:
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(steps)


def train(
    cfg: Config,
    task: Task,
    runs: Sequence[Run],
    steps: int,
    *,
    test_size: int = 1000,
    eval_every: int = 1,
    on_block: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> dict[str, Any]:
    """Trains the ``runs`` of ``cfg`` side by side for ``steps`` steps (a multiple
    of ``cfg.block``, rounded up) and evaluates on a fixed test batch every
    ``eval_every`` blocks.

    ``on_block(step, logs)`` is called after each block with the steps done so
    far and ``logs``: ``loss`` (runs,), the mean training loss over the block,
    and ``test_loss`` (runs,), the latest evaluation's.

    Returns:
      A dict of numpy arrays: ``loss``, ``grad_norm``, ``clipped``,
      ``cosine`` (runs, steps); ``eval_step`` (E,), ``test_loss``, ``test_metric`` (runs, E);
      ``params`` (stacked), ``seconds``.
    """
    n_blocks = -(-steps // cfg.block)
    params, opt_state, hyper = init(cfg, task, runs)
    test_inputs, test_targets = task.sample(jax.random.PRNGKey(2**31 - 1), test_size)
    data_keys = [jax.random.fold_in(jax.random.PRNGKey(r.seed), 1) for r in runs]
    logs: dict[str, list] = {"loss": [], "grad_norm": [], "clipped": [], "cosine": []}
    evals: list[tuple[int, Any, Any]] = []
    start = time.perf_counter()

    def record_eval(step_no: int) -> None:
        loss, metric = evaluate(cfg.cell, cfg.impl, params, test_inputs, test_targets, task)
        evals.append((step_no, np.asarray(loss), np.asarray(metric)))

    record_eval(0)
    for b in range(n_blocks):
        # One data key per step (not per block), so the data a run sees does
        # not depend on the block size.
        steps_b = jnp.arange(b * cfg.block, (b + 1) * cfg.block)
        keys = jnp.stack([_step_keys(k, steps_b) for k in data_keys])
        params, opt_state, metrics = run_block(cfg, params, opt_state, hyper, keys, steps_b, task)
        for name, log in logs.items():
            log.append(np.asarray(metrics[name]))
        if (b + 1) % eval_every == 0 or b == n_blocks - 1:
            record_eval((b + 1) * cfg.block)
        if on_block is not None:
            on_block((b + 1) * cfg.block, {"loss": np.mean(logs["loss"][-1].astype(np.float64), axis=1),
                                           "test_loss": evals[-1][1]})
    out = {name: np.concatenate(v, axis=1) for name, v in logs.items()}
    out["eval_step"] = np.array([e[0] for e in evals])
    out["test_loss"] = np.stack([e[1] for e in evals], axis=1)
    out["test_metric"] = np.stack([e[2] for e in evals], axis=1)
    out["params"] = params
    out["seconds"] = time.perf_counter() - start
    return out
