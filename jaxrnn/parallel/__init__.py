"""Parallel in time: linear-recurrence cells by associative scan, nonlinear
cells by Newton's method over the whole sequence.

:func:`jaxrnn.rnn` runs them: a linear-recurrence cell (:class:`jaxrnn.MinGRU`,
:class:`jaxrnn.MinLSTM`, :class:`jaxrnn.LRU`, :class:`jaxrnn.RGLRU`) by a
parallel scan by default, and any other cell with ``impl="parallel"`` and a
``method`` (``"deer"``, ``"quasi"``, ``"elk"``, ``"quasi-elk"``). How a
Newton run went (iterations, residual, fallback) is read with
:func:`jaxrnn.diagnostics.newton_convergence`. See the guide "Parallel in
time" for what each method computes and when it pays.
"""

from ._newton import DEFAULT_DAMPING as DEFAULT_DAMPING
from ._newton import DEFAULT_MAX_ITER as DEFAULT_MAX_ITER
from ._newton import METHODS as METHODS
from ._newton import ON_FAILURE as ON_FAILURE
from ._newton import NewtonInfo as NewtonInfo
from ._newton import NotConvergedError as NotConvergedError
from ._newton import default_tol as default_tol

__all__ = [
    "METHODS",
    "ON_FAILURE",
    "DEFAULT_DAMPING",
    "DEFAULT_MAX_ITER",
    "NewtonInfo",
    "NotConvergedError",
    "default_tol",
]
