"""``jaxrnn bench``: runs the BPTT benchmark suite of a source checkout.

The suite (``benchmarks/bptt/``, ``python -m benchmarks.bptt``) ships with a
git clone, not with the installed package. The checkout is the current
folder or one above it; failing that, the one jaxrnn is installed from (an
editable install). Results go under the current folder, as with
``python -m benchmarks.bptt`` (``--out`` picks another).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._io import UsageError

#: the file that marks a checkout's benchmark suite, relative to its root
SUITE = Path("benchmarks") / "bptt" / "__main__.py"


def find_checkout(start: Path | None = None) -> Path | None:
    """The root of the jaxrnn checkout holding the benchmark suite: ``start``
    (default the current folder) or a folder above it, else the checkout
    this package is installed from; None if there is none."""
    start = (Path.cwd() if start is None else start).resolve()
    installed_from = Path(__file__).resolve().parents[2]
    for root in (start, *start.parents, installed_from):
        if (root / SUITE).is_file():
            return root
    return None


def load_main(root: Path) -> Callable[[Sequence[str]], int]:
    """``benchmarks.bptt.main`` of the checkout at ``root``, imported as a
    package (its modules import each other), named ``jaxrnn bench`` in its
    help, errors and report."""
    loaded = sys.modules.get("benchmarks")
    if loaded is not None and not any(
        Path(p).resolve() == (root / "benchmarks").resolve() for p in getattr(loaded, "__path__", [])
    ):
        raise UsageError(f"jaxrnn bench: error: another 'benchmarks' package is already imported "
                         f"({list(getattr(loaded, '__path__', []))}); run python -m benchmarks.bptt in {root}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return functools.partial(importlib.import_module("benchmarks.bptt").main, prog="jaxrnn bench")


def run(args: argparse.Namespace) -> int:
    root = find_checkout()
    if root is None:
        raise UsageError(
            "jaxrnn bench: error: benchmarks/bptt/ not found; the benchmark suite ships "
            "with a source checkout of jaxrnn (git clone, then run `jaxrnn bench` inside it)"
        )
    return int(load_main(root)(list(args.bench_args)) or 0)


def register(sub: Any) -> None:
    """Adds the command's parser to ``sub`` (argparse subparsers)."""
    p = sub.add_parser("bench", help="run the BPTT benchmark suite (benchmarks/bptt/; needs a source checkout)",
                       description="Runs python -m benchmarks.bptt with every argument; "
                       "'jaxrnn bench --help' lists its options.",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)
