"""``jaxrnn gradflow``: gradient norm against distance and Jacobian spectra at
initialisation; and the diagnostics of a readout model that ``demo`` shares."""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import Any

import jax

from .._runner import CELLS
from ._io import add_common, jsonable, length, positive_int, run_dir, table, write_atomic
from ._progress import Parts, say

#: the parts of :func:`diagnose`, in order (for progress)
DIAGNOSE_PARTS = ("gradient norms", "Jacobian spectrum")


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _gradflow(cell, task, impl, params, inputs, targets):
    """Mean over the batch of ``||dL/dh_t||`` for the task's loss."""
    import jax.numpy as jnp

    from .. import diagnostics

    def loss_fn(final, ys):
        del final
        return task.loss(task.readout(params, ys), targets)

    norms = diagnostics.state_gradient_norms(cell, params["cell"], inputs, loss_fn, impl=impl)
    return jnp.mean(norms, axis=0)


def diagnose(cell, task, impl: str, params, inputs, targets, n_spectrum: int = 4,
             on_part: Callable[[str], None] | None = None) -> dict:
    """Gradient norms vs step and the Jacobian spectrum (mean over examples).

    ``on_part(name)`` is called as each of :data:`DIAGNOSE_PARTS` begins (each
    compiles on its first use, which takes most of the time)."""
    import jax.numpy as jnp
    import numpy as np

    from .. import diagnostics

    report = on_part or (lambda name: None)
    report(DIAGNOSE_PARTS[0])
    norms = np.asarray(_gradflow(cell, task, impl, params, inputs, targets))
    report(DIAGNOSE_PARTS[1])
    # Only the largest singular value is shown; at most the state size can exist.
    state_size = sum(int(np.size(s)) for s in jax.tree_util.tree_leaves(cell.initial_state(())))
    spec = diagnostics.jacobian_spectrum(cell, params["cell"], inputs[:n_spectrum],
                                         num_singular=min(4, state_size))
    top = jnp.mean(spec.log_singular_values[..., 0], axis=0)
    rate = float(diagnostics.growth_rate(top))
    horizon = int(inputs.shape[-2])
    return {
        "gradflow": norms,
        "spectrum": {
            "log_sv_top": np.asarray(top),
            "rate": rate,
            "verdict": diagnostics.verdict(rate, horizon=horizon),
        },
    }


def run(args: argparse.Namespace) -> int:
    import jax

    from .. import _report
    from ..tasks import Adding

    out = run_dir(args.out, "gradflow", "gradflow")
    say(f"jaxrnn gradflow: adding problem T={args.length}, batch {args.batch}, hidden {args.hidden}, "
        f"cells {','.join(args.cells)}; each cell compiles, then runs, its gradient norms and Jacobian "
        f"spectrum; writing {out}")
    task = Adding(args.length)
    inputs, targets = task.sample(jax.random.PRNGKey(args.seed + 1), args.batch)
    runs, rows = [], []
    with Parts("gradflow", len(DIAGNOSE_PARTS) * len(args.cells), bar=args.progress) as parts:
        for name in args.cells:
            cell = CELLS[name](args.hidden)
            params = task.init_params(cell, jax.random.PRNGKey(args.seed))
            d = diagnose(cell, task, args.impl, params, inputs, targets,
                         on_part=lambda part, name=name: parts.start(f"{name}, {part}"))
            g = d["gradflow"]
            runs.append({"label": name, "cell": name, "gradflow": g, "spectrum": d["spectrum"]})
            rows.append([name, f"{g[-1]:.3g}", f"{g[0]:.3g}", f"{d['spectrum']['rate']:+.4f}",
                         d["spectrum"]["verdict"]])
    print(table(rows, ["cell", "|dL/dh| at the loss", f"at distance {args.length - 1}",
                        "log growth/step", "verdict"]))
    title = f"gradient flow at initialisation: adding problem, T={args.length}, H={args.hidden}, seed {args.seed}"
    _report.gradflow_report(out / "gradflow.png", runs, title)
    write_atomic(out / "gradflow.json", json.dumps(jsonable({
        "length": args.length, "hidden": args.hidden, "seed": args.seed, "runs": runs}), indent=1))
    print(f"wrote {out / 'gradflow.png'} and {out / 'gradflow.json'}")
    return 0


def register(sub: Any) -> None:
    """Adds the command's parser to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("gradflow", help="gradient norm vs distance and Jacobian spectra at initialisation",
                       description="For each cell at initialisation on the adding problem: ||dL/dh_t|| "
                       "against the distance from the loss, and the top singular values of dh_t/dh_0.")
    p.add_argument("--length", "-T", type=length, default=100,
                   help="sequence length T of the adding problem, at least 2: the gradient is followed "
                   "back over T-1 steps")
    p.add_argument("--batch", type=positive_int, default=16,
                   help="sequences the gradient norms are averaged over")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="a line per cell and part instead of a progress bar (default: a bar)")
    add_common(p, out="runs/gradflow-<time>", cells=sorted(CELLS))
    p.set_defaults(func=run)
