"""jaxrnn: recurrent neural networks in JAX that train well on long sequences.

Pure-function cells (:class:`SimpleRNN`, :class:`IRNN`, :class:`LSTM`,
:class:`GRU`), the sequence driver :func:`rnn` with its fused engine, stacks
and bidirectional layers over it, gradient clipping (:mod:`jaxrnn.clipping`)
and training steps (:mod:`jaxrnn.training`).
"""

from . import clipping as clipping
from . import diagnostics as diagnostics
from . import initializers as initializers
from . import interop as interop
from . import tasks as tasks
from . import training as training
from .cells import GRU as GRU
from .cells import IRNN as IRNN
from .cells import LSTM as LSTM
from .cells import Cell as Cell
from .cells import GRUParams as GRUParams
from .cells import LSTMParams as LSTMParams
from .cells import LSTMState as LSTMState
from .cells import SimpleRNN as SimpleRNN
from .cells import SimpleRNNParams as SimpleRNNParams
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
    "GRUParams",
    "LSTMState",
    "rnn",
    "bidirectional_rnn",
    "stacked_rnn",
    "init_stacked",
    "clipping",
    "diagnostics",
    "initializers",
    "interop",
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
