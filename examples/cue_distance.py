"""How far can each cell carry a cue? Accuracy on the cue-answer task against D.

The seeds' example, "I grew up in *France* ... I speak fluent *French*", as a
curve: the first step names one of K cues (a country), D random filler tokens
follow, and at the query token the model must name the cue's answer (its
language). Chance is 1/K. For each cell and each distance D, a few seeds
train side by side (``jax.vmap``) for a fixed budget of Adam steps, and their
accuracy on a fixed test batch is recorded.

Writes a JSON of every run and a plot of accuracy against D (one line per
cell, the chance level dashed). Prints a line per block of steps as it goes.

Run:  python examples/cue_distance.py [--distances 5,20,50,100,200]
          [--cells tanh,irnn,lstm,gru] [--hidden 32] [--steps 600] [--seeds 2]
          [--json cue_distance.json] [--plot cue_distance.png] [--reuse OLD.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

print(f"cue_distance: starting (importing jax) at {time.strftime('%H:%M:%S')}", flush=True)

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn as jr

CELLS = {
    "tanh": lambda h: jr.SimpleRNN(h),
    "irnn": lambda h: jr.IRNN(h),
    "lstm": lambda h: jr.LSTM(h),
    "gru": lambda h: jr.GRU(h),
}


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints, got {text!r}")
    return values


def name_list(text: str) -> list[str]:
    names = [v for v in text.split(",") if v]
    bad = [n for n in names if n not in CELLS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected cells from {', '.join(CELLS)}, got {text!r}")
    return names


def make_trainer(cell, task, tx, batch_size: int, block: int):
    """A jitted block of ``block`` Adam steps for a stack of seeds (vmap)."""
    loss_fn = task.make_loss(cell)

    def one(params, opt_state, key, start):
        def step(carry, i):
            params, opt_state = carry
            batch = task.sample(jax.random.fold_in(key, i), batch_size)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            # optax.adam's bias correction raises a float to an int32 power,
            # which strict dtype promotion (the test suite's) rejects.
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), start + jnp.arange(block))
        return params, opt_state, losses

    run_block = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)))

    @jax.jit
    def accuracy(params, inputs, targets):
        def acc(p):
            return task.metric(task.apply(cell, p, inputs), targets)

        return jax.vmap(acc)(params)

    return run_block, accuracy


def train_cell(name: str, distance: int, args, log) -> dict:
    task = jr.tasks.CueAnswer(distance, num_pairs=args.pairs, num_fillers=args.fillers)
    cell = CELLS[name](args.hidden)
    tx = optax.chain(jr.clipping.clip_by_global_norm(args.clip), optax.adam(args.lr))
    seeds = list(range(args.seeds))
    params = jax.vmap(lambda k: task.init_params(cell, k))(jnp.stack([jax.random.PRNGKey(s) for s in seeds]))
    opt_state = jax.vmap(tx.init)(params)
    data_keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 1) for s in seeds])
    test_inputs, test_targets = task.sample(jax.random.PRNGKey(2**31 - 1), args.test_size)
    run_block, accuracy = make_trainer(cell, task, tx, args.batch, args.block)
    start = time.perf_counter()
    losses = []
    for b in range(-(-args.steps // args.block)):
        params, opt_state, loss = run_block(params, opt_state, data_keys, b * args.block)
        losses.append(np.asarray(loss).mean(axis=1))
        log(f"  {name:5s} D={distance:4d} step {(b + 1) * args.block:5d}  train loss "
            + " ".join(f"{v:.3f}" for v in losses[-1]) + f"  ({time.perf_counter() - start:.0f}s)")
    acc = np.asarray(accuracy(params, test_inputs, test_targets))
    seconds = time.perf_counter() - start
    return {
        "cell": name, "distance": distance, "seeds": seeds, "accuracy": acc.tolist(),
        "mean_accuracy": float(acc.mean()), "final_train_loss": losses[-1].tolist(),
        "train_loss": np.stack(losses, axis=1).tolist(), "seconds": seconds,
    }


def plot(results: list[dict], args, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 14})
    fig, ax = plt.subplots(figsize=(8, 5.2))
    markers = {"tanh": "o", "irnn": "s", "lstm": "^", "gru": "D"}
    for name in args.cells:
        rows = sorted((r for r in results if r["cell"] == name), key=lambda r: r["distance"])
        d = [r["distance"] for r in rows]
        mean = [r["mean_accuracy"] for r in rows]
        ax.plot(d, mean, marker=markers.get(name, "o"), lw=2, ms=8, label=name)
        for r in rows:  # each seed, faint
            ax.scatter([r["distance"]] * len(r["accuracy"]), r["accuracy"], s=18, alpha=0.35,
                       color=ax.lines[-1].get_color())
    ax.axhline(1.0 / args.pairs, color="black", ls="--", lw=1.5, label=f"chance 1/{args.pairs}")
    ax.set_xscale("log")
    ax.set_xticks(args.distances)
    ax.set_xticklabels([str(d) for d in args.distances])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("distance D between cue and query (filler steps)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"cue-answer task, K={args.pairs}: H={args.hidden}, {args.steps} Adam steps "
                 f"(lr {args.lr:g}), {args.seeds} seeds", fontsize=14)
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="lower left", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--distances", type=int_list, default=[5, 20, 50, 100, 200])
    p.add_argument("--cells", type=name_list, default=list(CELLS))
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--steps", type=int, default=600, help="Adam steps per run (a multiple of --block)")
    p.add_argument("--block", type=int, default=100, help="steps per compiled block (a line per block)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per (cell, D), trained side by side")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--clip", type=float, default=1.0, help="global-norm clipping threshold")
    p.add_argument("--pairs", type=int, default=8, help="K, the number of cue-answer pairs")
    p.add_argument("--fillers", type=int, default=8, help="F, the filler vocabulary")
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--reuse", default=None, metavar="JSON",
                   help="take the (cell, D) runs already in this JSON (made with the same settings) instead "
                   "of training them again (default: train every run)")
    p.add_argument("--json", default="cue_distance.json")
    p.add_argument("--plot", default="cue_distance.png")
    args = p.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    load = os.getloadavg()
    log(f"cue_distance: cells {','.join(args.cells)}, D {args.distances}, H={args.hidden}, {args.steps} steps, "
        f"{args.seeds} seeds, Adam lr {args.lr:g} + global-norm clip {args.clip:g}, batch {args.batch}; "
        f"{jax.device_count()} {jax.default_backend()} device(s), load average {load[0]:.2f}")
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "plot", "reuse", "distances", "cells")}
    done = {}
    if args.reuse:
        with open(args.reuse) as f:
            old = json.load(f)
        same = {k: v for k, v in old["settings"].items() if k in settings}
        if same != settings:
            p.error(f"--reuse {args.reuse}: made with other settings: {same} (now {settings})")
        done = {(r["cell"], r["distance"]): r for r in old["results"]}
        log(f"reusing {len(done)} runs from {args.reuse}")
    results = []
    start = time.perf_counter()
    for distance in args.distances:
        for name in args.cells:
            if (name, distance) in done:
                results.append(done[(name, distance)])
                continue
            r = train_cell(name, distance, args, log)
            results.append(r)
            log(f"{name:5s} D={distance:4d}: test accuracy " + " ".join(f"{a:.3f}" for a in r["accuracy"])
                + f" (mean {r['mean_accuracy']:.3f}, chance {1 / args.pairs:.3f}) in {r['seconds']:.0f}s")
    total = time.perf_counter() - start
    out = {
        "settings": {**settings, "distances": args.distances, "cells": args.cells},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "backend": jax.default_backend(),
                    "load_average_start": load, "load_average_end": os.getloadavg(),
                    "jax": jax.__version__, "python": sys.version.split()[0]},
        "seconds": total, "results": results,
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    plot(results, args, args.plot)
    log("\n| cell | " + " | ".join(f"D={d}" for d in args.distances) + " |")
    log("|---|" + "---|" * len(args.distances))
    for name in args.cells:
        accs = {r["distance"]: r["mean_accuracy"] for r in results if r["cell"] == name}
        log(f"| {name} | " + " | ".join(f"{accs[d]:.2f}" for d in args.distances) + " |")
    log(f"total {total:.0f}s; wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
