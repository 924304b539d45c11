from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import initializers


def test_scaled_identity():
    w = initializers.scaled_identity(0.7)(jax.random.PRNGKey(0), (3, 3), jnp.float32)
    np.testing.assert_array_equal(w, 0.7 * np.eye(3, dtype=np.float32))
    assert w.dtype == jnp.float32
    rect = initializers.identity()(None, (2, 4))
    np.testing.assert_array_equal(rect, np.eye(2, 4))


def test_scaled_identity_needs_a_matrix():
    with pytest.raises(ValueError, match=r"scaled_identity needs a 2-D shape, got shape \(3,\)"):
        initializers.identity()(None, (3,))
