"""What the commands share (private): argument types, help that shows every
default, run folders, atomic writes, tables, JSON-safe numbers and the
one-line usage error."""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._rnn import IMPLS


class UsageError(Exception):
    """A bad command line; reported as one line, exit status 2."""


def format_default(value: Any) -> str:
    """A default as a user would type it: lists comma-separated (never
    ``[...]`` or ``(...)``), floats as ``%g``."""
    if isinstance(value, (list, tuple)):
        return ",".join(format_default(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """Ends each option's help with ``(default: ...)``, written as it would be
    typed. Help that already states its default (it holds ``(default``) is
    left alone, and so are flags and options whose default is ``None``: their
    help says in words what happens without them, as ``(default: True)``
    would not."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "(default" in text or action.default is None
                or action.default is argparse.SUPPRESS or isinstance(action.default, bool)):
            return text
        return f"{text} (default: {format_default(action.default)})".replace("%", "%%") if text else text


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UsageError`)
    and whose help shows every default (:class:`HelpFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


# --------------------------------------------------------------------------
# argument types


def _int_at_least(minimum: int, expected: str, why: str = "") -> Any:
    """An argparse type: an integer of at least ``minimum`` (``expected`` and
    ``why`` word its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}{why}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1, "a positive integer")
nonneg_int = _int_at_least(0, "a non-negative integer")
#: a sequence length for the adding problem
length = _int_at_least(2, "an integer of at least 2", " (the adding problem has two marked steps)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def rate(text: str) -> float:
    """An argparse type: a dropout rate in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text}")
    return value


def cell_list(allowed: Sequence[str]) -> Any:
    """An argparse type: a comma-separated list of names from ``allowed``."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in allowed]
        if not names or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of cells from {', '.join(allowed)}, got {text!r}"
            )
        return names

    return parse


def residuals(text: str) -> Any:
    if text in ("auto", "gates", "states"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'gates', 'states' or a positive int K (keep every K-th state), got {text!r}"
        )
    return value


# --------------------------------------------------------------------------
# helpers


def run_dir(out: str | None, command: str, name: str) -> Path:
    if out is None:
        out = str(Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"jaxrnn {command}: error: --out must be a folder, got the file {out}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"jaxrnn {command}: error: --out {out} cannot be created: {e.strerror or e}") from None
    return path


def write_atomic(path: Path, text: str) -> None:
    """Writes ``path`` whole or not at all: a temporary file in the same folder,
    flushed to disk, then renamed over ``path`` (a rename within a file system
    is atomic), so a crash never leaves it half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def finite(x: float) -> float | None:
    """JSON has no NaN/inf: non-finite numbers become null."""
    x = float(x)
    return x if math.isfinite(x) else None


def jsonable(tree: Any) -> Any:
    import numpy as np

    if isinstance(tree, dict):
        return {k: jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [jsonable(v) for v in tree]
    if isinstance(tree, np.ndarray):
        return jsonable(tree.tolist())
    if isinstance(tree, (float, np.floating)):
        return finite(tree)
    if isinstance(tree, np.integer):
        return int(tree)
    if isinstance(tree, np.bool_):
        return bool(tree)
    return tree



#: the cells of ``demo`` and ``gradflow`` when ``--cells`` is not given
DEFAULT_CELLS = ["tanh", "irnn", "lstm", "gru", "relu"]

_IMPL_HELP = (
    "jaxrnn.rnn implementation: auto (the fused engine, with the Pallas kernels where they are the "
    "default; an associative scan for the linear cells mingru, minlstm, lru, rglru), fused (its loops "
    "in XLA), pallas (its loops as Pallas kernels; exact but slow on CPU), parallel (Newton's method "
    "over the sequence, see --method) or scan (the lax.scan reference)"
)


def add_common(p: argparse.ArgumentParser, *, out: str, cells: Sequence[str] | None = None,
               impl: str = "auto", impl_why: str = "") -> None:
    """The options every training command takes.

    Args:
      p: the command's parser.
      out: the default run folder, as the help shows it.
      cells: the names ``--cells`` takes (``None``: no ``--cells``).
      impl: the default ``--impl``; ``impl_why`` says why, where it is not auto.
    """
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden units")
    p.add_argument("--seed", type=nonneg_int, default=0, help="PRNG seed")
    p.add_argument("--impl", choices=IMPLS, default=impl,
                   help=_IMPL_HELP + (f" (default: {impl}, {impl_why})" if impl_why else ""))
    p.add_argument("--out", default=None, help=f"run folder (default: {out})")
    if cells is not None:
        p.add_argument("--cells", type=cell_list(cells), default=[c for c in DEFAULT_CELLS if c in cells],
                       help=f"comma-separated, from {', '.join(cells)}")
