"""Fixtures: the cells under test, and dtypes with their tolerances."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import CELLS, Precision


@pytest.fixture(params=list(CELLS), ids=list(CELLS))
def cell(request):
    return CELLS[request.param]


@pytest.fixture(params=["float32", "float64"])
def prec(request):
    """A dtype and matching tolerances; float64 runs with x64 enabled."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield Precision(np.dtype("float64"), rtol=1e-10, atol=1e-12)
    else:
        yield Precision(np.dtype("float32"), rtol=1e-5, atol=1e-6)


