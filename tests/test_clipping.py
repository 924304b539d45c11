"""clip_gradient: identity forward, per-example norm-clipped cotangent backward."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn as jr
from jaxrnn._gradclip import clip_per_example
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


# --------------------------------------------------------------------------
# Optax transformations

import optax  # noqa: E402

from jaxrnn.clipping import adaptive_clip, clip_by_global_norm, clip_by_norm, zscore_clip  # noqa: E402


def tree(scale=1.0, key=KEY):
    k1, k2 = jax.random.split(key)
    return {"w": scale * jax.random.normal(k1, (3, 4)), "b": scale * jax.random.normal(k2, (4,))}


def run(tx, grads_seq):
    """Applies ``tx`` to a sequence of gradients under one jitted update."""
    state = tx.init(grads_seq[0])
    update = jax.jit(tx.update)
    outs, states = [], []
    for g in grads_seq:
        u, state = update(g, state)
        outs.append(u)
        states.append(state)
    return outs, states


def test_clip_by_norm_clips_each_leaf():
    g = {"big": jnp.array([30.0, 40.0]), "small": jnp.array([0.3, 0.4])}
    (u,), _ = run(clip_by_norm(1.0), [g])
    np.testing.assert_allclose(jnp.linalg.norm(u["big"]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(u["big"], g["big"] / 50.0, rtol=1e-6)  # direction kept
    np.testing.assert_array_equal(u["small"], g["small"])  # under the limit: untouched
    (again,), _ = run(clip_by_norm(1.0), [u])
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), again, u)


@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_by_global_norm_matches_optax_and_logs(scale):
    g = tree(scale)
    (u,), (state,) = run(clip_by_global_norm(1.0), [g])
    want, _ = optax.clip_by_global_norm(1.0).update(g, optax.clip_by_global_norm(1.0).init(g))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), u, want)
    np.testing.assert_allclose(state.global_norm, optax.tree.norm(g), rtol=1e-6)
    assert bool(state.clipped) == (scale == 10.0)
    assert float(optax.tree.norm(u)) <= 1.0 + 1e-6


def test_adaptive_clip_cuts_a_lone_spike():
    keys = jax.random.split(KEY, 40)
    grads = [tree(1.0 + 0.05 * i, k) for i, k in enumerate(keys)]
    grads[30] = tree(1000.0, keys[30])
    outs, states = run(adaptive_clip(percentile=50.0, history=20), grads)
    typical = float(np.median([optax.tree.norm(g) for g in grads[10:30]]))
    spike = states[30]
    assert bool(spike.clipped)
    assert float(optax.tree.norm(outs[30])) < 2 * typical
    # direction kept
    cos = optax.tree.vdot(outs[30], grads[30]) / (
        optax.tree.norm(outs[30]) * optax.tree.norm(grads[30])
    )
    np.testing.assert_allclose(cos, 1.0, rtol=1e-5)
    # shapes never change, and the update does not recompile
    assert all(s.norms.shape == (20,) for s in states)


def test_zscore_clip_cuts_a_lone_spike_after_warmup():
    keys = jax.random.split(KEY, 60)
    grads = [tree(1.0 + 0.1 * jnp.sin(i), k) for i, k in enumerate(keys)]
    tx = zscore_clip(z_threshold=2.5, decay=0.97, warmup=25)
    spiked = list(grads)
    spiked[50] = tree(1000.0, keys[50])
    outs, states = run(tx, spiked)
    assert bool(states[50].clipped)
    assert float(optax.tree.norm(outs[50])) < 10.0
    ordinary = [bool(s.clipped) for i, s in enumerate(states) if i != 50]
    assert sum(ordinary) <= 3  # ordinary norms mostly pass
    # the clipped norm, not the spike, enters the statistics
    assert float(states[50].mean) < 10.0
    # during warmup nothing is clipped, however large
    early = list(grads)
    early[5] = tree(1000.0, keys[5])
    _, states = run(tx, early[:10])
    assert not any(bool(s.clipped) for s in states)


@pytest.mark.parametrize(
    "make", [lambda: clip_by_norm(1.0), lambda: clip_by_global_norm(1.0), lambda: adaptive_clip(), lambda: zscore_clip()]
)
def test_transforms_chain_and_compile_once(make):
    tx = optax.chain(make(), optax.clip(0.5), optax.sgd(0.1))
    params = tree()
    state = tx.init(params)
    traces = 0

    def step(params, state, g):
        nonlocal traces
        traces += 1
        u, state = tx.update(g, state, params)
        return optax.apply_updates(params, u), state

    step = jax.jit(step)
    for i in range(3):
        params, state = step(params, state, tree(10.0 ** i))
    assert traces == 1
    for leaf in jax.tree_util.tree_leaves(params):
        assert jnp.all(jnp.isfinite(leaf))


@pytest.mark.parametrize(
    "make, error, pattern",
    [
        (lambda: clip_by_norm(0.0), ValueError, r"max_norm must be a positive float, got 0.0"),
        (lambda: clip_by_global_norm("1"), TypeError, r"max_norm must be a positive float, got str"),
        (lambda: adaptive_clip(percentile=0.0), ValueError, r"percentile must be a float in \(0, 100\], got 0.0"),
        (lambda: adaptive_clip(history=0), ValueError, r"history must be a positive int, got 0"),
        (lambda: zscore_clip(decay=1.0), ValueError, r"decay must be a float in \(0, 1\), got 1.0"),
        (lambda: zscore_clip(warmup=-1), ValueError, r"warmup must be a non-negative int, got -1"),
    ],
)
def test_transform_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize(
    "make, idempotent",
    [
        (lambda: clip_by_global_norm(1.0), True),
        (lambda: zscore_clip(warmup=2), True),
        # AutoClip's threshold is a percentile that includes the current norm,
        # so a clipped update fed back lowers it: not idempotent by design.
        (lambda: adaptive_clip(50.0, 8), False),
    ],
)
def test_global_norm_transforms_keep_state_shapes(make, idempotent):
    tx = make()
    grads = [tree(float(s), k) for s, k in zip([1, 2, 3, 50], jax.random.split(KEY, 4))]
    outs, states = run(tx, grads)
    shapes = [jax.tree_util.tree_map(jnp.shape, s) for s in states]
    assert all(s == shapes[0] for s in shapes)
    if idempotent:
        # clipping an already-clipped update again (same state) changes nothing
        again, _ = jax.jit(tx.update)(outs[-1], states[-2])
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), again, outs[-1])


# --------------------------------------------------------------------------
# Infinite thresholds, zero and integer gradients: never a NaN, never a zeroed leaf


def test_infinite_threshold_never_clips():
    g = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([1e30])}
    for tx in (clip_by_global_norm(float("inf")), clip_by_norm(float("inf"))):
        u, _ = tx.update(g, tx.init(g))
        jax.tree_util.tree_map(np.testing.assert_array_equal, u, g)
    ct = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(cotangent_through_clip(ct, float("inf")), ct)
    np.testing.assert_array_equal(jax.jit(cotangent_through_clip)(ct, jnp.float32(jnp.inf)), ct)
    # bptt_clip=inf: the scan engine goes through clip_gradient (above), the fused one
    # calls this at every step of its backward pass (with a traced threshold)
    lstm_ct = jr.LSTMState(ct, 2 * ct)
    out = jax.jit(clip_per_example)(lstm_ct, jnp.float32(jnp.inf))
    jax.tree_util.tree_map(np.testing.assert_array_equal, out, lstm_ct)


def test_traced_threshold_not_positive_makes_the_cotangent_nan():
    # the rule of jr.rnn's bptt_clip: a bad traced threshold poisons the gradient,
    # so the train step skips it, rather than flipping or zeroing it silently
    ct = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    clipped = jax.jit(clip_per_example)
    for bad in (0.0, -1.0, jnp.nan):
        assert np.isnan(np.asarray(clipped(ct, jnp.float32(bad)))).all(), bad
    np.testing.assert_allclose(clipped(ct, jnp.float32(1.0)), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_zero_gradient_gives_zero_update():
    zero = jax.tree_util.tree_map(jnp.zeros_like, tree())
    for tx in (clip_by_norm(1.0), clip_by_global_norm(1.0), adaptive_clip(), zscore_clip(warmup=1)):
        state = tx.init(zero)
        for g in (tree(), zero, zero):  # eager: nothing to compile
            u, state = tx.update(g, state)
        jax.tree_util.tree_map(np.testing.assert_array_equal, u, zero)


def test_adaptive_clip_threshold_survives_zero_gradients():
    zero = jax.tree_util.tree_map(jnp.zeros_like, tree())
    g = tree()
    outs, states = run(adaptive_clip(percentile=50.0, history=4), [zero, g, zero, zero, zero, zero, g])
    assert float(states[0].threshold) == np.inf  # nothing recorded yet: no clip
    assert int(states[-1].count) == 2  # only the two real norms were recorded
    np.testing.assert_allclose(states[-1].threshold, optax.tree.norm(g), rtol=1e-6)
    jax.tree_util.tree_map(np.testing.assert_array_equal, outs[-1], g)  # not clipped to 0


def test_integer_leaves_are_left_alone():
    g = {"w": jnp.array([30.0, 40.0]), "count": jnp.array([7], jnp.int32)}
    for tx in (clip_by_norm(1.0), clip_by_global_norm(1.0)):
        u, state = tx.update(g, tx.init(g))
        np.testing.assert_array_equal(u["count"], g["count"])
        np.testing.assert_allclose(u["w"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(state.global_norm, 50.0, rtol=1e-6)  # the int is not counted


@pytest.mark.parametrize("make", [adaptive_clip, zscore_clip])
def test_init_shares_no_buffer_between_fields(make):
    # a train step donates the state; one buffer in two fields cannot be donated
    leaves = jax.tree_util.tree_leaves(make().init(None))
    assert len({leaf.unsafe_buffer_pointer() for leaf in leaves}) == len(leaves)


def test_clip_by_global_norm_takes_a_traced_threshold():
    """An array threshold, traced under vmap (as the command-line runner trains
    clipped and unclipped runs side by side), gives each float threshold's result."""
    g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])}  # norm 13

    def clip_with(max_norm):
        tx = clip_by_global_norm(max_norm)
        return tx.update(g, tx.init(g))

    thresholds = jnp.array([1.0, 20.0, jnp.inf], jnp.float32)
    got, states = jax.jit(jax.vmap(clip_with))(thresholds)
    for i, t in enumerate([1.0, 20.0, float("inf")]):
        want, want_state = clip_with(t)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a[i], b), got, want)
        assert bool(states.clipped[i]) == bool(want_state.clipped)
        np.testing.assert_allclose(states.global_norm[i], 13.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"max_norm must be a positive float or a scalar float array"):
        clip_by_global_norm(jnp.ones(2))
    with pytest.raises(ValueError, match=r"max_norm must be a positive float, got 0.0"):
        clip_by_global_norm(jnp.float32(0.0))


def test_cosine_similarity_shows_what_clipping_does_to_the_direction():
    cos = jr.clipping.cosine_similarity
    g = {"w": jnp.array([[3.0, -0.2], [0.1, 40.0]]), "b": jnp.array([0.5]), "step": jnp.int32(7)}
    norm_clipped, _ = clip_by_global_norm(1.0).update(g, clip_by_global_norm(1.0).init(g))
    np.testing.assert_allclose(cos(norm_clipped, g), 1.0, rtol=1e-6)
    floats = {"w": g["w"], "b": g["b"]}
    value_clipped, _ = optax.clip(0.5).update(floats, optax.EmptyState())
    flat = lambda t: np.concatenate([np.ravel(t["w"]), np.ravel(t["b"])])  # noqa: E731
    a, b = flat(value_clipped), flat(g)
    want = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert want < 0.7  # the 40 dominated the direction; clipped, it no longer does
    np.testing.assert_allclose(cos(value_clipped, floats), want, rtol=1e-6)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, g)
    assert float(cos(zeros, zeros)) == 1.0
    assert np.isnan(cos({"w": jnp.array([jnp.inf, 1.0])}, {"w": jnp.array([1.0, 1.0])}))
    with pytest.raises(ValueError, match="same floating leaves and shapes"):
        cos({"w": jnp.ones(2)}, {"w": jnp.ones(3)})
