"""``jaxrnn gradflow``: gradient norm against distance and Jacobian spectra at
initialisation; and the diagnostics of a readout model that ``demo`` shares.

With ``--init``, the command compares initialisations of the recurrent
matrix ``W_hh`` of plain tanh and ReLU RNNs instead of cells, and with
``--train-steps`` trains each on the adding problem too.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import Any

import jax

from .. import initializers
from .._runner import CELLS, OPTIMIZERS
from ._io import (
    DEFAULT_CELLS,
    UsageError,
    add_common,
    jsonable,
    length,
    nonneg_int,
    positive_float,
    positive_int,
    run_dir,
    table,
    write_atomic,
)
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


#: the ``W_hh`` initialisers ``--init`` compares, by name; each is called with
#: ``--identity-scale``, which only ``scaled_identity`` uses
W_HH_INITS: dict[str, Callable[[float], Any]] = {
    "glorot": lambda scale: jax.nn.initializers.glorot_uniform(),
    "he": lambda scale: jax.nn.initializers.he_normal(),
    "orthogonal": lambda scale: jax.nn.initializers.orthogonal(),
    "identity": lambda scale: initializers.identity(),
    "scaled_identity": lambda scale: initializers.scaled_identity(scale),
}
INIT_NAMES = tuple(W_HH_INITS)
#: the activations ``--init`` compares the initialisers on
ACTIVATIONS = ("tanh", "relu")


def _name_list(allowed: tuple[str, ...], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in allowed]
        if not names or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {what} from {', '.join(allowed)}, got {text!r}")
        return names

    return parse


def _fmt_mse(values: Any, spec: str = ".4f") -> str:
    """Test MSEs, one per seed; a non-finite one is ``diverged``."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    return " ".join("diverged" if not np.isfinite(v) else format(v, spec) for v in values)


def _train_inits(args: argparse.Namespace, cell, task, parts: Parts, label: str) -> dict:
    """``--train-steps`` Adam/SGD steps on the adding problem for seeds
    ``seed .. seed + train_seeds - 1`` side by side; the test MSE on 1000
    sequences."""
    import math

    import numpy as np

    from .. import _runner

    parts.start(f"{label}, training {args.train_steps} steps")
    block = math.gcd(args.train_steps, 100)
    cfg = _runner.Config(cell=cell, optimizer=args.optimizer, batch_size=args.train_batch, block=block,
                         impl=args.impl)
    runs = [_runner.Run(args.seed + i, args.lr, args.clip) for i in range(args.train_seeds)]
    res = _runner.train(cfg, task, runs, args.train_steps, test_size=1000,
                        eval_every=max(1, args.train_steps // block // 10))
    final = np.asarray(res["test_loss"][:, -1], dtype=np.float64)
    return {"seeds": [r.seed for r in runs], "test_mse": final,
            "eval_step": res["eval_step"], "test_loss": res["test_loss"]}


def _inits_figure(path: Any, runs: list[dict], activations: list[str], title: str) -> None:
    """``--init``'s figure: a row per activation; gradient norm against
    distance (left) and the largest singular value of dh_t/dh_0 (right), a
    line per initialiser, the test MSE after training in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    colors = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(INIT_NAMES)}
    with plt.rc_context({"font.size": 13, "axes.titlesize": 14, "legend.fontsize": 11}):
        fig, axes = plt.subplots(len(activations), 2, figsize=(12, 4.6 * len(activations) + 0.6),
                                 squeeze=False)
        for row, act in zip(axes, activations):
            for run in (r for r in runs if r["activation"] == act):
                color, label = colors[run["init"]], run["init"]
                if "train" in run:
                    label += f" (MSE {_fmt_mse(run['train']['test_mse'], '.3f')})"
                norms = np.asarray(run["gradflow"], dtype=np.float64)
                distance = np.arange(len(norms))[::-1]
                ok = np.isfinite(norms) & (norms > 0)
                row[0].semilogy(distance[ok], norms[ok], color=color, lw=2.2, label=label)
                logsv = np.asarray(run["spectrum"]["log_sv_top"], dtype=np.float64)
                rate = run["spectrum"]["rate"]
                rate_txt = "dead" if not np.isfinite(rate) else f"{rate:+.3f}/step"
                row[1].plot(np.arange(1, len(logsv) + 1), logsv / np.log(10.0), color=color, lw=2.2,
                            label=f"{run['init']}: {rate_txt}")
            row[0].set_title(f"{act} RNN: gradient vs distance")
            row[0].set_xlabel("distance from the loss, T - t")
            row[0].set_ylabel("||dL/dh_t||")
            row[0].legend(loc="best")
            row[1].axhline(0.0, color="black", lw=0.8)
            row[1].set_title(f"{act} RNN: top singular value of dh_t/dh_0")
            row[1].set_xlabel("t (steps)")
            row[1].set_ylabel("log10 sigma_1")
            row[1].legend(loc="best")
            for ax in row:
                ax.grid(alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)


def _run_inits(args: argparse.Namespace, out: Any) -> int:
    """``--init``: each initialiser of ``W_hh`` on a tanh and a ReLU RNN."""
    from ..cells import SimpleRNN
    from ..tasks import Adding

    train = args.train_steps > 0
    say(f"jaxrnn gradflow: W_hh initialisers {','.join(args.init)} on {','.join(args.activations)} RNNs, "
        f"adding problem T={args.length}, batch {args.batch}, hidden {args.hidden}"
        + (f"; then {args.train_steps} {args.optimizer} steps (lr {args.lr:g}, global-norm clip {args.clip:g}, "
           f"batch {args.train_batch}, {args.train_seeds} seeds) each" if train else "")
        + f"; writing {out}")
    task = Adding(args.length)
    inputs, targets = task.sample(jax.random.PRNGKey(args.seed + 1), args.batch)
    runs, rows = [], []
    n_parts = len(args.activations) * len(args.init) * (len(DIAGNOSE_PARTS) + int(train))
    with Parts("gradflow", n_parts, bar=args.progress) as parts:
        for act in args.activations:
            for name in args.init:
                label = f"{act}, {name}"
                cell = SimpleRNN(args.hidden, activation=act, w_hh_init=W_HH_INITS[name](args.identity_scale))
                params = task.init_params(cell, jax.random.PRNGKey(args.seed))
                d = diagnose(cell, task, args.impl, params, inputs, targets,
                             on_part=lambda part, label=label: parts.start(f"{label}, {part}"))
                g = d["gradflow"]
                run = {"label": label, "activation": act, "init": name, "gradflow": g, "spectrum": d["spectrum"]}
                row = [act, name, f"{g[-1]:.3g}", f"{g[0]:.3g}", f"{d['spectrum']['rate']:+.4f}",
                       d["spectrum"]["verdict"]]
                if train:
                    run["train"] = _train_inits(args, cell, task, parts, label)
                    row.append(_fmt_mse(run["train"]["test_mse"]))
                runs.append(run)
                rows.append(row)
    header = ["activation", "W_hh init", "|dL/dh| at the loss", f"at distance {args.length - 1}",
              "log growth/step", "verdict"]
    if train:
        header.append(f"test MSE after {args.train_steps} steps (baseline {task.baseline:.4f})")
    print(table(rows, header))
    scale = f", scaled_identity {args.identity_scale:g}·I" if "scaled_identity" in args.init else ""
    title = (f"W_hh initialisers at initialisation: adding problem T={args.length}, H={args.hidden}, "
             f"seed {args.seed}{scale}")
    if train:
        title += f"\nlegend: test MSE of each of {args.train_seeds} seeds after {args.train_steps} " \
                 f"{args.optimizer} steps, lr {args.lr:g} (baseline {task.baseline:.3f})"
    _inits_figure(out / "gradflow.png", runs, args.activations, title)
    settings = {"length": args.length, "hidden": args.hidden, "seed": args.seed, "batch": args.batch,
                "identity_scale": args.identity_scale, "baseline": task.baseline}
    if train:
        settings["train"] = {"steps": args.train_steps, "optimizer": args.optimizer, "lr": args.lr,
                             "clip": args.clip, "batch": args.train_batch, "seeds": args.train_seeds}
    write_atomic(out / "gradflow.json", json.dumps(jsonable({**settings, "runs": runs}), indent=1))
    print(f"wrote {out / 'gradflow.png'} and {out / 'gradflow.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    import jax

    from .. import _report
    from ..tasks import Adding

    if args.init is not None and args.cells != [c for c in DEFAULT_CELLS if c in CELLS]:
        raise UsageError("jaxrnn gradflow: error: --cells and --init exclude each other: --init compares "
                         "initialisers of W_hh on plain RNNs, one per --activations")
    if args.init is None and args.train_steps:
        raise UsageError("jaxrnn gradflow: error: --train-steps needs --init (it trains each initialiser)")
    out = run_dir(args.out, "gradflow", "gradflow")
    if args.init is not None:
        return _run_inits(args, out)
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
                       "against the distance from the loss, and the top singular values of dh_t/dh_0. With "
                       "--init: the same for each initialiser of W_hh on tanh and ReLU RNNs, and with "
                       "--train-steps the test MSE of each after training on the adding problem at --length.")
    p.add_argument("--length", "-T", type=length, default=100,
                   help="sequence length T of the adding problem, at least 2: the gradient is followed "
                   "back over T-1 steps")
    p.add_argument("--batch", type=positive_int, default=16,
                   help="sequences the gradient norms are averaged over")
    p.add_argument("--init", type=_name_list(INIT_NAMES, "initialisers"), default=None,
                   help="compare these initialisers of W_hh (comma-separated, from "
                   f"{', '.join(INIT_NAMES)}) on plain RNNs with each of --activations, instead of "
                   "comparing --cells (default: none, compare cells)")
    p.add_argument("--activations", type=_name_list(ACTIVATIONS, "activations"), default=list(ACTIVATIONS),
                   help="with --init: the RNNs' activations")
    p.add_argument("--identity-scale", type=positive_float, default=0.9,
                   help="with --init: scaled_identity is this times I (Le et al. 2015 suggest a small "
                   "scale to forget, 1 to remember)")
    p.add_argument("--train-steps", type=nonneg_int, default=0,
                   help="with --init: train each on the adding problem at --length for this many steps and "
                   "report the test MSE on 1000 sequences (default: 0, no training)")
    p.add_argument("--train-seeds", type=positive_int, default=2,
                   help="with --train-steps: seeds --seed, --seed+1, ... trained side by side")
    p.add_argument("--train-batch", type=positive_int, default=32, help="with --train-steps: batch size")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="with --train-steps: the optimizer")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="with --train-steps: learning rate")
    p.add_argument("--clip", type=positive_float, default=1.0,
                   help="with --train-steps: global-norm clipping threshold")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="a line per cell and part instead of a progress bar (default: a bar)")
    add_common(p, out="runs/gradflow-<time>", cells=sorted(CELLS))
    p.set_defaults(func=run)
