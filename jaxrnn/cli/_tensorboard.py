"""``jaxrnn train --tensorboard DIR``: the run's metrics as TensorBoard
events (private).

The writer is tensorboardX's ``SummaryWriter`` (``pip install
'jaxrnn[tensorboard]'``), or PyTorch's ``torch.utils.tensorboard`` where
tensorboardX is missing and PyTorch and tensorboard are installed. Scalars,
by step: ``train/loss``, ``train/grad_norm``, ``train/skipped`` at every
step; ``test/loss`` and ``test/<metric>`` at each evaluation.
"""

from __future__ import annotations

from typing import Any

from ._io import UsageError


class Board:
    """Writes the rows of ``metrics.jsonl`` to a TensorBoard ``SummaryWriter``."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def add_step(self, row: dict[str, Any], metric_name: str) -> None:
        """One row of ``metrics.jsonl``; a value that is None (not finite) is
        left out."""
        step = row["step"]
        scalars = {"train/loss": row["loss"], "train/grad_norm": row["grad_norm"],
                   "train/skipped": float(row["skipped"])}
        if "eval_loss" in row:
            scalars.update({"test/loss": row["eval_loss"], f"test/{metric_name}": row["eval_metric"]})
        for tag, value in scalars.items():
            if value is not None:
                self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def open_writer(logdir: str) -> Board:
    """A :class:`Board` writing to ``logdir``; a :class:`UsageError` naming
    the package to install when no writer can be imported."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError(
                "jaxrnn train: error: --tensorboard needs the tensorboardX package: "
                "pip install 'jaxrnn[tensorboard]' (or pip install tensorboardX)"
            ) from None
    try:
        return Board(SummaryWriter(logdir))
    except OSError as e:
        raise UsageError(f"jaxrnn train: error: --tensorboard {logdir} cannot be written: "
                         f"{e.strerror or e}") from None
