"""Flax modules over jaxrnn's kernels: linen here, nnx in :mod:`jaxrnn.flax.nnx`.

``jaxrnn.flax.RNN`` (a layer over any jaxrnn cell), ``LSTM``, ``GRU``,
``SimpleRNN``, ``IRNN`` and ``Stack`` are the linen modules of
:mod:`jaxrnn.flax.linen` (see there); ``jaxrnn.flax.nnx`` has their
``flax.nnx`` twins. Both keep their
parameters in jaxrnn's layout, so a module and :func:`jaxrnn.rnn` share
weights, and both use Flax's carry layout (LSTM: ``(c, h)``).
"""

from . import linen as linen
from . import nnx as nnx
from .linen import GRU as GRU
from .linen import IRNN as IRNN
from .linen import LSTM as LSTM
from .linen import RNN as RNN
from .linen import SimpleRNN as SimpleRNN
from .linen import Stack as Stack

__all__ = ["GRU", "IRNN", "LSTM", "RNN", "SimpleRNN", "Stack", "linen", "nnx"]
