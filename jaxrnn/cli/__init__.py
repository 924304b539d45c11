"""The ``jaxrnn`` command: ``demo``, ``train``, ``gradflow`` and ``bench``.

``jaxrnn demo`` (no arguments needed) trains the plain tanh RNN, the IRNN,
the LSTM and the GRU on the adding problem, and a ReLU RNN with and without
gradient-norm clipping; it prints a table and writes a run folder with
``report.png`` and ``metrics.json``. ``jaxrnn <command> --help`` lists the
options of each command.

``jaxrnn train`` writes its run folder (``--out``) as it goes, so that a run
killed at any moment loses nothing it cannot redo:

- ``config.json``: the run's settings; ``--resume`` refuses other values of
  the settings that define the run (task, length, cell, hidden, optimizer,
  learning rate, clipping, batch, seed, data) and names the ones that differ;
- ``metrics.jsonl``: one JSON line per step (``step``, ``loss``,
  ``grad_norm``, ``skipped``; ``eval_loss`` and ``eval_metric`` on evaluation
  steps), flushed as each step ends; ``--resume`` keeps the lines up to the
  restored step and trains the rest again. ``loss`` is the training batch's,
  ``eval_*`` the fixed test batch's; ``skipped`` marks a step whose gradient
  or update was not finite, so the weights were left as they were;
- ``checkpoints/<step>/``: Orbax checkpoints every ``--checkpoint-every``
  steps and at the end. ``--resume`` restores the newest intact one; a damaged
  one is renamed ``<step>.corrupt`` with a warning;
- at the end, ``metrics.json`` (a summary and the whole history),
  ``metrics.csv`` (one row per step: the columns of ``metrics.jsonl``, with
  ``eval_metric`` named for the metric, e.g. ``eval_accuracy``, and for the
  char LM ``eval_bpc`` and ``eval_perplexity``; empty where there was no
  evaluation) and ``curves.png``, each written to a temporary file and
  renamed, so none is ever half written.

Errors in the arguments are reported in one line, with exit status 2, before
anything trains. ``jaxrnn`` alone prints the help, ``jaxrnn --version`` the
version.

Every command says what it is doing from its start: a line before the first
step (which waits for compilation), then tqdm bars; under ``--no-progress``,
a log line at each evaluation and every tenth of the steps, as Keras's
``verbose=2`` does. These go to stderr; tables and summaries to stdout.
``train --tensorboard DIR`` also writes TensorBoard events (with the
``tensorboard`` extra: ``pip install 'jaxrnn[tensorboard]'``).

One module per command (``_demo``, ``_train``, ``_gradflow``, ``_bench``),
each adding its own parser; ``_io`` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _bench, _demo, _gradflow, _train
from ._demo import DEMO_STEPS, SOLVED_MSE, DemoRun, demo_runs
from ._io import Parser, UsageError, write_atomic
from ._train import HISTORY_KEYS, RUN_SETTINGS

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxrnn`` argument parser (for documentation and tests)."""
    from .. import __version__

    parser = Parser(prog="jaxrnn", description="Recurrent networks in JAX: demo, training, "
                    "gradient-flow plots and benchmarks. 'jaxrnn <command> --help' lists a command's "
                    "options.")
    parser.add_argument("--version", action="version", version=f"jaxrnn {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", required=True, parser_class=Parser,
                                metavar="<command>")
    for command in (_demo, _train, _gradflow, _bench):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``jaxrnn`` command; returns the exit status.

    Args:
      argv: the arguments after ``jaxrnn`` (default ``sys.argv[1:]``).

    Returns:
      0 on success (and for no arguments, which prints the help), 2 for a
      bad command line (reported in one line on stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv:
            build_parser().print_help()
            return 0
        if argv[:1] == ["bench"]:
            # Everything after "bench" belongs to the benchmark's own parser.
            return _bench.run(argparse.Namespace(bench_args=argv[1:]))
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except SystemExit as e:  # --help, or a benchmark's SystemExit("message")
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        command = f"jaxrnn {argv[0]}" if argv else "jaxrnn"
        print(f"{command}: error: {' '.join(str(e.code).split())}", file=sys.stderr)
        return 2

