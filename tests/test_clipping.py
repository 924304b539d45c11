"""clip_gradient: identity forward, per-example norm-clipped cotangent backward."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn as jr
from jaxrnn.clipping import clip_gradient

KEY = jax.random.PRNGKey(0)


def cotangent_through_clip(ct, max_norm):
    """The cotangent clip_gradient passes back when the incoming one is ``ct``."""
    x = jax.tree_util.tree_map(jnp.zeros_like, ct)
    _, vjp = jax.vjp(lambda x: clip_gradient(x, max_norm), x)
    return vjp(ct)[0]


def test_forward_is_identity():
    x = jax.random.normal(KEY, (3, 5))
    np.testing.assert_array_equal(clip_gradient(x, 0.1), x)


def test_clips_each_example_to_the_threshold_keeping_direction():
    ct = jax.random.normal(KEY, (2, 3, 8)) * jnp.array([0.01, 10.0, 100.0])[None, :, None]
    out = cotangent_through_clip(ct, 1.0)
    norms_in = jnp.linalg.norm(ct, axis=-1)
    norms_out = jnp.linalg.norm(out, axis=-1)
    big = norms_in > 1.0
    np.testing.assert_allclose(norms_out[big], 1.0, rtol=1e-6)
    # below the threshold: unchanged, bit for bit
    np.testing.assert_array_equal(out[~big], ct[~big])
    # direction kept: out is a positive multiple of ct
    cos = jnp.sum(out * ct, -1) / (norms_in * norms_out)
    np.testing.assert_allclose(cos, 1.0, rtol=1e-6)


def test_idempotent():
    ct = 5.0 * jax.random.normal(KEY, (4, 6))
    once = cotangent_through_clip(ct, 0.5)
    twice = cotangent_through_clip(once, 0.5)
    np.testing.assert_allclose(once, twice, rtol=1e-6)


def test_pytree_uses_the_joint_norm():
    h = jnp.full((2, 3), 1.0)
    c = jnp.full((2, 4), 2.0)
    out = cotangent_through_clip(jr.LSTMState(h, c), 1.0)
    joint = jnp.sqrt(jnp.sum(out.h**2, -1) + jnp.sum(out.c**2, -1))
    np.testing.assert_allclose(joint, 1.0, rtol=1e-6)
    # both parts scaled by the same factor
    np.testing.assert_allclose(out.h / h, jnp.broadcast_to((out.c / c)[:, :1], h.shape), rtol=1e-6)
    np.testing.assert_allclose(out.c / c, jnp.broadcast_to((out.c / c)[:, :1], c.shape), rtol=1e-6)


def test_traced_threshold_and_zero_cotangent():
    f = jax.jit(lambda ct, m: cotangent_through_clip(ct, m))
    ct = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    out = f(ct, jnp.float32(2.5))
    np.testing.assert_allclose(out, [[1.5, 2.0], [0.0, 0.0]], rtol=1e-6)
    # the threshold gets a zero gradient, not a NaN
    g = jax.grad(lambda m: jnp.sum(clip_gradient(jnp.ones(3), m)))(jnp.float32(1.0))
    assert g == 0.0


@pytest.mark.parametrize(
    "args, error, pattern",
    [
        ((jnp.ones(3), 0.0), ValueError, r"max_norm must be a positive float, got 0.0"),
        ((jnp.ones(3), "1"), TypeError, r"max_norm must be a positive float, got str"),
        ((jnp.ones(3), jnp.ones(2)), ValueError, r"max_norm must be a scalar, got shape \(2,\)"),
        ((jnp.ones(()), 1.0), ValueError, r"x must have a feature axis"),
        ((jnp.ones(3, jnp.int32), 1.0), TypeError, r"x must be floating"),
        (((jnp.ones((2, 3)), jnp.ones((3, 3))), 1.0), ValueError, r"leaves of x must share their leading"),
    ],
)
def test_bad_input(args, error, pattern):
    with pytest.raises(error, match=pattern):
        clip_gradient(*args)
