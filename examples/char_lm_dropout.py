"""Regularisation measured: a character LM with and without dropout, validation bits per character.

The Python standard library's sources (no download), cut in two: the first
``--train-chars`` characters to train on, the next ``--valid-chars`` to
validate on (other files: text the model never saw). A model large enough to
overfit a small training text is trained for the same steps, with the same
data order and initialisation, once per setting:

- ``none``: no regularisation;
- ``dropout``: variational dropout on the inputs and on the recurrent state
  (``jr.rnn(..., dropout=p, recurrent_dropout=p)``, Gal & Ghahramani 2016);
- ``zoneout``: zoneout on the state (``zoneout=p``, Krueger et al. 2017).

Validation runs deterministically (no dropout; zoneout by its expectation)
over fixed windows. Prints a line per evaluation from the first step and
writes ``results.json`` and ``valid_bpc.png`` into ``--out``.

Run:  python examples/char_lm_dropout.py [--steps 3000] [--out runs/char_lm_dropout]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn as jr

SETTINGS = {
    "none": {},
    "dropout": {"dropout": None, "recurrent_dropout": None},  # None: --rate
    "zoneout": {"zoneout": None},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--rate", type=float, default=0.25, help="the dropout/zoneout rate")
    parser.add_argument("--train-chars", type=int, default=100_000)
    parser.add_argument("--valid-chars", type=int, default=50_000)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", default="runs/char_lm_dropout")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print("reading the standard library's sources ...", flush=True)
    text = jr.tasks.stdlib_text(args.train_chars + args.valid_chars)
    vocab = jr.tasks.CharVocab.from_text(text)
    ids = vocab.encode(text)
    train = jr.tasks.CharLM(jnp.asarray(ids[: args.train_chars]), vocab, args.length)
    valid = jr.tasks.CharLM(jnp.asarray(ids[args.train_chars :]), vocab, args.length)
    # Fixed validation windows, evaluated in 8 batches.
    valid_batches = [valid.sample(jax.random.PRNGKey(10_000 + i), 64) for i in range(8)]
    cell = jr.LSTM(args.hidden) if args.cell == "lstm" else jr.GRU(args.hidden)
    optimizer = optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.adam(2e-3))
    sample = jax.jit(lambda task, key: task.sample(key, args.batch))
    print(f"train {args.train_chars:,} chars, validate on the next {len(ids) - args.train_chars:,}; "
          f"vocabulary {len(vocab)}; {args.cell} H={args.hidden}, {args.steps} steps, rate {args.rate}",
          flush=True)

    results = {"config": vars(args), "runs": {}}
    for name in args.settings.split(","):
        options = {k: args.rate for k in SETTINGS[name]}

        def loss_fn(params, batch, options=options):
            inputs, targets, key = batch
            return train.loss(train.apply(cell, params, inputs, key=key, **options), targets)

        eval_options = {"zoneout": options["zoneout"], "deterministic": True} if "zoneout" in options else {}

        @jax.jit
        def evaluate(params, batch, eval_options=tuple(eval_options.items())):
            inputs, targets = batch
            return valid.loss(valid.apply(cell, params, inputs, **dict(eval_options)), targets)

        state = jr.training.TrainState.create(train.init_params(cell, jax.random.PRNGKey(0)), optimizer)
        step = jr.training.make_train_step(loss_fn, optimizer)
        run = {"step": [], "train_bpc": [], "valid_bpc": []}
        recent, start = [], time.perf_counter()
        for i in range(args.steps):
            batch = (*sample(train, jax.random.PRNGKey(i)), jax.random.fold_in(jax.random.PRNGKey(1), i))
            state, metrics = step(state, batch)
            recent.append(float(metrics["loss"]))
            if (i + 1) % args.eval_every == 0 or i == 0:
                v = float(np.mean([evaluate(state.params, b) for b in valid_batches]))
                run["step"].append(i + 1)
                run["train_bpc"].append(float(np.mean(recent)) / math.log(2))
                run["valid_bpc"].append(v / math.log(2))
                recent = []
                print(f"{name:8s} step {i + 1:5d}  train {run['train_bpc'][-1]:.3f}  "
                      f"valid {run['valid_bpc'][-1]:.3f} bits/char  ({time.perf_counter() - start:.0f}s)",
                      flush=True)
        run["best_valid_bpc"] = min(run["valid_bpc"])
        run["seconds"] = time.perf_counter() - start
        results["runs"][name] = run
        (out / "results.json").write_text(json.dumps(results, indent=1))

    plot(results, out / "valid_bpc.png")
    print(f"wrote {out / 'results.json'} and {out / 'valid_bpc.png'}")
    for name, run in results["runs"].items():
        print(f"{name:8s} best valid {run['best_valid_bpc']:.3f}  final valid {run['valid_bpc'][-1]:.3f}  "
              f"final train {run['train_bpc'][-1]:.3f} bits/char")


def plot(results: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for (name, run), color in zip(results["runs"].items(), ["C3", "C0", "C2"]):
        ax.plot(run["step"][1:], run["valid_bpc"][1:], color=color, lw=2, label=f"{name}: validation")
        ax.plot(run["step"][1:], run["train_bpc"][1:], color=color, lw=1, ls="--", label=f"{name}: training")
    cfg = results["config"]
    ax.set_xlabel("training step", fontsize=12)
    ax.set_ylabel("bits per character", fontsize=12)
    ax.set_title(f"char LM, {cfg['cell'].upper()} H={cfg['hidden']}, {cfg['train_chars'] // 1000}k training chars",
                 fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10, ncol=2)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
