"""Parallel in time against sequential, forward+backward, and Newton's iterations.

Three parts (``--parts``), each a table of the report:

``linear``
    The linear-recurrence cells (MinGRU, LRU, MinLSTM, RG-LRU) at T = 1000,
    10000 (and 100000 for MinGRU and LRU), B=8, I=32, H=64:
    ``jr.rnn(impl="scan")`` (a ``lax.scan`` over the cell's step,
    differentiated by JAX) against ``jr.rnn(impl="auto")`` (an associative
    scan, ``O(log T)`` depth, with a hand-written backward).
``newton``
    GRU and tanh RNN at H = 4, 16, 64, T = 1000 and 10000, B=8, on
    adding-problem inputs (I=2): the sequential engines ``impl="fused"`` and
    ``impl="scan"`` against ``impl="parallel"`` with ``method="deer"`` and
    ``"quasi"`` (``--methods`` adds ``elk``, ``quasi-elk``), at their
    defaults (tol 1e-5, at most 100 iterations, falling back to the
    sequential engine when not converged). Each Newton row also reports its
    iterations (``jr.diagnostics.newton_convergence`` on the same inputs).
    DEER above :data:`.grid.DEER_RUN_LIMIT` Jacobian entries is compiled
    for its memory only (``--full`` runs it).
``iterations``
    Each (cell, H) model is trained on the adding problem (T=100, Adam,
    300 steps, the fused engine); the Newton iterations and the residual
    history are counted at initialisation and trained, at T = 100 and 1000.

From the timed rows, the crossover: the T from which the parallel form is
faster than the sequential one, per cell (and H, method, sequential engine),
interpolated log-log between the measured T, or that there is none in the
range measured.

Method. The loss is ``mean((ys @ w_out - target)²)`` (a linear readout,
fixed random, squared error at every step: benchmarks.bptt's default); the
timed function is ``jax.value_and_grad`` of it with respect to the params and
the inputs, jitted and compiled ahead of time (compile time reported apart).
In each case, the reference ``impl="scan"`` runs first; every other row's
loss and gradients are checked against it (relative L2 error, see
:data:`.measure.TOLERANCE`) and a row that fails is reported, not timed. The
rows of a case are then timed together in interleaved rounds with a rotating
order (benchmarks.bptt's :func:`~benchmarks.bptt.timing.time_interleaved`),
each call blocking on its results; best (min) and median are reported, and
the load average before and after. Memory: ``memory_analysis()`` of the
compiled function, temp + argument + output bytes.

The adding-problem results of the new cells beside LSTM and GRU come from
``jaxrnn train`` runs: ``bash benchmarks/parallel/adding.sh OUT`` (long; run
it apart), then ``--adding OUT`` puts their table into the report.

Output (``--out``, default ``benchmarks/results/parallel-<time>/``):
``results.json`` (machine, versions, command, load averages, every row),
``results.md`` and three plots (``linear_time.png``, ``newton_time.png``,
``newton_residuals.png``). ``--docs`` writes the tables into
``docs/parallel.md`` (between its ``parallel:begin``/``parallel:end``
markers; the page is created as a draft if missing) and the plots into
``docs/figures/parallel/``.

Run::

    python -m benchmarks.parallel --quick      # a tiny grid of every part (a test)
    python -m benchmarks.parallel              # the default grid (8-9 min on 2 busy cores)
    bash benchmarks/parallel/adding.sh DIR     # the adding-problem runs (long)
    python -m benchmarks.parallel --adding DIR --docs

The package reads in order: :mod:`.grid`, :mod:`.runners`, :mod:`.measure`
(one case: check, then time), :mod:`.iterations`, :mod:`.report`,
:mod:`.adding` and :mod:`.cli`.
"""

from .cli import main, parser
from .grid import DEER_RUN_LIMIT, LINEAR_CELLS, METHODS, NEWTON_CELLS, QUICK, Case, Plan
from .report import (
    BEGIN,
    DOCS_PAGE,
    END,
    crossover,
    crossovers,
    markdown,
    plots,
    write_docs,
)

__all__ = [
    "BEGIN",
    "DEER_RUN_LIMIT",
    "DOCS_PAGE",
    "END",
    "LINEAR_CELLS",
    "METHODS",
    "NEWTON_CELLS",
    "QUICK",
    "Case",
    "Plan",
    "crossover",
    "crossovers",
    "main",
    "markdown",
    "parser",
    "plots",
    "write_docs",
]
