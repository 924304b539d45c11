"""Newton iterations at initialisation and after training on the adding problem.

Each (cell, H) model (the cell and a linear readout, ``jr.tasks.Adding``) is
trained with the sequential fused engine: Adam, global-norm clipping at 1
(``jaxrnn train``'s defaults), batch ``--train-batch``, ``--train-steps``
steps at T = ``--train-T``. Then ``jr.diagnostics.newton_convergence``
counts the iterations of each method on the same adding-problem inputs, for
the initial and the trained cell params, at each T of ``--iter-T``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn as jr

from .grid import Case
from .runners import SEED, info_dict, make_inputs, newton_info_fn, params_key

#: the test batch of a trained model (fixed, as in ``jaxrnn train``)
TEST_SIZE = 1000


@dataclasses.dataclass
class Trained:
    params: Any  # the readout model's params {"cell", "w_out", "b_out"}
    losses: np.ndarray  # (steps,) training loss of each step
    test_mse: float
    seconds: float  # training, compile included


def train_adding(cell: jr.Cell, T: int, steps: int, batch: int, lr: float) -> Trained:
    """``steps`` steps of Adam on ``jr.tasks.Adding(T)`` with the fused
    engine, in one jitted ``lax.scan`` (one data key per step)."""
    task = jr.tasks.Adding(T)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))
    loss_fn = task.make_loss(cell, impl="fused")
    # the cell params of the timed rows and of the counts at initialisation
    params = task.init_params(cell, params_key())

    @jax.jit
    def run(params):
        def step(carry, i):
            params, opt_state = carry
            batch_ = task.sample(jax.random.fold_in(jax.random.PRNGKey(SEED + 1), i), batch)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch_)
            # optax.adam's bias correction raises a float to an int32 power,
            # which strict dtype promotion rejects
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
        return params, losses

    @jax.jit
    def test_mse(params):
        xs, ys = task.sample(jax.random.PRNGKey(2**31 - 1), TEST_SIZE)
        return task.loss(task.apply(cell, params, xs, impl="fused"), ys)

    start = time.perf_counter()
    params, losses = jax.block_until_ready(run(params))
    seconds = time.perf_counter() - start
    return Trained(params, np.asarray(losses), float(test_mse(params)), seconds)


def count_iterations(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains every (cell, H) of the Newton grid and counts the iterations
    of each method, at initialisation and trained, at each T of ``--iter-T``.

    Returns:
      ``{"models": [...], "rows": [...]}``: per model its final training loss
      (the mean of the last tenth of the steps) and test MSE; per (cell, H,
      method, T, params) the iterations, final residual, convergence and the
      residual history.
    """
    models, rows = [], []
    for cell_name in args.newton_cells:
        for H in args.newton_H:
            case = Case("newton", cell_name, args.train_T, args.train_batch, 2, H)
            cell = case.make_cell()
            trained = train_adding(cell, args.train_T, args.train_steps, args.train_batch, args.lr)
            tail = trained.losses[-max(1, len(trained.losses) // 10):]
            model = {"cell": cell_name, "H": H, "T": args.train_T, "steps": args.train_steps,
                     "batch": args.train_batch, "lr": args.lr, "final_train_loss": float(np.mean(tail)),
                     "test_mse": trained.test_mse, "baseline": 1 / 6, "seconds": trained.seconds}
            models.append(model)
            log(f"trained {cell_name} H={H}: final train loss {model['final_train_loss']:.4f}, "
                f"test MSE {trained.test_mse:.4f} ({trained.seconds:.1f} s)")
            for T in args.iter_T:
                # the timed rows' inputs and initial params (those training starts from)
                inputs = make_inputs(Case("newton", cell_name, T, args.newton_B, 2, H))
                init = inputs.params
                for method in args.methods:
                    fn = newton_info_fn(cell, method)  # compiled once for both params
                    for which, p in (("init", init), ("trained", trained.params["cell"])):
                        info = info_dict(fn(p, inputs.xs))
                        rows.append({"cell": cell_name, "H": H, "T": T, "B": args.newton_B, "method": method,
                                     "params": which, **info})
                    a, b = rows[-2], rows[-1]
                    log(f"  {cell_name} H={H} T={T} {method}: iterations {a['iterations']} at init "
                        f"(residual {a['residual']:.1e}), {b['iterations']} trained ({b['residual']:.1e})")
    return {"models": models, "rows": rows}
