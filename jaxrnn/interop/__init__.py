"""Weights and states between jaxrnn cells and Flax linen or PyTorch cells.

The gate orders are the same (PyTorch's and cuDNN's), so the conversions are
transposes, slices and (PyTorch) one bias sum. Two halves, one namespace:

- Flax linen (``flax_cell``, ``to_flax_params``, ``from_flax_params``,
  ``to_flax_carry``, ``from_flax_carry``): see ``jaxrnn/interop/_flax.py``
  for the name mapping. Flax is imported only by :func:`flax_cell`.
- PyTorch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` state dicts (``to_torch``,
  ``from_torch``, ``to_torch_state``, ``from_torch_state``,
  ``torch_module``): see ``jaxrnn/interop/_torch.py`` for how the two
  PyTorch biases fold into one. torch is imported only by
  :func:`torch_module`.
"""

from ._flax import flax_cell as flax_cell
from ._flax import from_flax_carry as from_flax_carry
from ._flax import from_flax_params as from_flax_params
from ._flax import to_flax_carry as to_flax_carry
from ._flax import to_flax_params as to_flax_params
from ._torch import from_torch as from_torch
from ._torch import from_torch_state as from_torch_state
from ._torch import to_torch as to_torch
from ._torch import to_torch_state as to_torch_state
from ._torch import torch_module as torch_module

__all__ = [
    "flax_cell",
    "from_flax_carry",
    "from_flax_params",
    "from_torch",
    "from_torch_state",
    "to_flax_carry",
    "to_flax_params",
    "to_torch",
    "to_torch_state",
    "torch_module",
]
