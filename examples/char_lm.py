"""Character-level language model: a GRU learns to write Python, then samples.

Trains on any text file you name, or by default on the Python standard
library's own source files found on this machine (no download). Every step
predicts the next character (many-to-many); the baseline is the unigram
entropy of the text, what knowing only the character frequencies scores.

Run:  python examples/char_lm.py [--text FILE] [--steps 2000] [--temperature 0.7]
"""

from __future__ import annotations

import argparse

import jax
import optax

import jaxrnn as jr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", default=None, help="a text file (default: the stdlib sources)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()

    text = None if args.text is None else jr.tasks.load_text(args.text)
    task = jr.tasks.CharLM.from_text(text, length=100)
    cell = jr.GRU(args.hidden)
    optimizer = optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.adam(2e-3))
    state = jr.training.TrainState.create(task.init_params(cell, jax.random.PRNGKey(0)), optimizer)
    step = jr.training.make_train_step(task.make_loss(cell), optimizer)
    # The task is a pytree whose text is a leaf: pass it in, do not bake it in.
    sample = jax.jit(lambda task, key: task.sample(key, 32))

    print(f"{task.tokens.shape[0]:,} characters, vocabulary {len(task.vocab)}; "
          f"unigram baseline {task.baseline:.3f} nats/char")
    for i in range(args.steps):
        state, metrics = step(state, sample(task, jax.random.PRNGKey(i)))
        if (i + 1) % 200 == 0:
            print(f"step {i + 1:5d}  cross-entropy {float(metrics['loss']):.3f} nats/char")
    text = jr.tasks.sample_text(cell, state.params, task.vocab, jax.random.PRNGKey(0),
                                prompt="def ", num_chars=400, temperature=args.temperature)
    print("\n--- sample ---\ndef " + text)


if __name__ == "__main__":
    main()
