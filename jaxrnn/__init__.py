"""jaxrnn: recurrent neural networks in JAX that train well on long sequences.

Pure-function cells (:class:`SimpleRNN`, :class:`IRNN`, :class:`LSTM`,
:class:`GRU`, and the linear-recurrence cells :class:`MinGRU`,
:class:`MinLSTM`, :class:`LRU`, :class:`RGLRU`), the sequence driver
:func:`rnn` with its fused engine and its parallel-in-time paths
(:mod:`jaxrnn.parallel`), stacks and bidirectional layers over it, gradient
clipping (:mod:`jaxrnn.clipping`) and training steps (:mod:`jaxrnn.training`).
"""

from . import clipping as clipping
from . import diagnostics as diagnostics
from . import initializers as initializers
from . import interop as interop
from . import parallel as parallel
from . import tasks as tasks
from . import training as training
from .cells import GRU as GRU
from .cells import IRNN as IRNN
from .cells import LSTM as LSTM
from .cells import Cell as Cell
from .cells import GRUParams as GRUParams
from .cells import LSTMParams as LSTMParams
from .cells import LSTMPParams as LSTMPParams
from .cells import LSTMState as LSTMState
from .cells import SimpleRNN as SimpleRNN
from .cells import SimpleRNNParams as SimpleRNNParams
from ._linear_cells import LRU as LRU
from ._linear_cells import RGLRU as RGLRU
from ._linear_cells import LinearCell as LinearCell
from ._linear_cells import LRUParams as LRUParams
from ._linear_cells import LRUState as LRUState
from ._linear_cells import MinGRU as MinGRU
from ._linear_cells import MinGRUParams as MinGRUParams
from ._linear_cells import MinLSTM as MinLSTM
from ._linear_cells import MinLSTMParams as MinLSTMParams
from ._linear_cells import RGLRUParams as RGLRUParams
from ._rnn import bidirectional_rnn as bidirectional_rnn
from ._rnn import init_stacked as init_stacked
from ._rnn import rnn as rnn
from ._rnn import stacked_rnn as stacked_rnn

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "SimpleRNN",
    "IRNN",
    "LSTM",
    "GRU",
    "SimpleRNNParams",
    "LSTMParams",
    "LSTMPParams",
    "GRUParams",
    "LSTMState",
    "LinearCell",
    "MinGRU",
    "MinLSTM",
    "LRU",
    "RGLRU",
    "MinGRUParams",
    "MinLSTMParams",
    "LRUParams",
    "LRUState",
    "RGLRUParams",
    "rnn",
    "bidirectional_rnn",
    "stacked_rnn",
    "init_stacked",
    "clipping",
    "diagnostics",
    "initializers",
    "interop",
    "parallel",
    "tasks",
    "training",
]


def __getattr__(name: str):
    # jaxrnn.flax (Flax linen/nnx modules) is imported on first use: it pulls
    # in flax.nnx, which would add about 0.4 s to every `import jaxrnn`.
    if name == "flax":
        import importlib

        return importlib.import_module(".flax", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
