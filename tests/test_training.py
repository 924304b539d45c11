"""Training steps: metrics, non-finite skipping, sharding, checkpoints, and
Pascanu's exploding-gradient mechanism."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn as jr
from jaxrnn.training import Checkpointer, TrainState, make_train_step

KEY = jax.random.PRNGKey(0)
CELL = jr.GRU(8)


def init_params(key=KEY):
    k1, k2 = jax.random.split(key)
    return {"rnn": CELL.init(k1, 2), "w": jax.random.normal(k2, (8,)) / 8}


def loss_fn(params, batch):
    xs, ys = batch
    _, hs = jr.rnn(CELL, params["rnn"], xs)
    return jnp.mean((hs[:, -1] @ params["w"] - ys) ** 2)


def make_batch(key, n=8, steps=6):
    xs = jax.random.normal(key, (n, steps, 2))
    return xs, jnp.sum(xs[:, :, 0], axis=1) / 3


# (optax.adam's bias correction trips strict dtype promotion; SGD with momentum does not)
OPT = optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.sgd(0.05, momentum=0.9))


def test_step_learns_reports_and_compiles_once():
    traces = 0

    def counted_loss(params, batch):
        nonlocal traces
        traces += 1
        return loss_fn(params, batch)

    state = TrainState.create(init_params(), OPT)
    step = make_train_step(counted_loss, OPT)
    batch = make_batch(KEY)
    want_norm = optax.tree.norm(jax.grad(loss_fn)(init_params(), batch))
    first = None
    for i in range(30):
        state, metrics = step(state, batch)
        if first is None:
            first = metrics
    assert traces == 1  # value_and_grad traces loss_fn once; no retrace later
    np.testing.assert_allclose(first["grad_norm"], want_norm, rtol=1e-5)
    assert set(metrics) == {"loss", "grad_norm", "skipped", "total_skipped"}
    assert int(state.step) == 30
    assert float(metrics["loss"]) < 0.5 * float(first["loss"])
    assert not bool(metrics["skipped"])


def test_non_finite_batch_is_skipped_and_counted():
    state = TrainState.create(init_params(), OPT)
    step = make_train_step(loss_fn, OPT)
    xs, ys = make_batch(KEY)
    state, _ = step(state, (xs, ys))
    before = jax.tree_util.tree_map(np.asarray, state.params)
    state, metrics = step(state, (xs.at[0, 0, 0].set(jnp.nan), ys))
    assert bool(metrics["skipped"]) and int(metrics["total_skipped"]) == 1
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.params, before)
    state, metrics = step(state, (xs, ys))
    assert not bool(metrics["skipped"]) and int(metrics["total_skipped"]) == 1
    assert int(state.step) == 3


def quadratic(params, batch):  # compiles in a blink: for tests of the step's bookkeeping
    return jnp.sum((params["w"] * batch) ** 2)


def nan_maker():
    """A transform that turns finite gradients into NaN (0 * inf), as a broken clip would."""
    return optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda u, s, p=None: (jax.tree_util.tree_map(lambda g: g * jnp.float32(jnp.inf), u), s),
    )


@pytest.mark.parametrize(
    "clip, zero_update_skipped",
    [
        (jr.clipping.adaptive_clip(), False),  # its init once shared a buffer between fields
        (jr.clipping.zscore_clip(warmup=1), False),  # so did this one's
        (nan_maker(), True),  # finite gradients, NaN updates: must not reach the params
    ],
)
def test_non_finite_updates_are_skipped_and_zero_gradients_are_harmless(clip, zero_update_skipped):
    opt = optax.chain(clip, optax.sgd(0.1, momentum=0.9))
    state = TrainState.create({"w": jnp.ones(3)}, opt)
    step = make_train_step(quadratic, opt)
    for batch in (jnp.ones(3), jnp.zeros(3), jnp.ones(3)):
        before = np.asarray(state.params["w"])
        state, metrics = step(state, batch)
        assert np.all(np.isfinite(state.params["w"]))
        if zero_update_skipped:
            assert bool(metrics["skipped"])
            np.testing.assert_array_equal(state.params["w"], before)
        else:
            assert not bool(metrics["skipped"])
    assert int(metrics["total_skipped"]) == (3 if zero_update_skipped else 0)
    assert float(state.params["w"][0]) < 1.0 or zero_update_skipped


def test_state_is_checked_and_aliased_leaves_are_copied():
    sgd = optax.sgd(0.1, momentum=0.9)
    step = make_train_step(quadratic, sgd)
    with pytest.raises(TypeError, match=r"state must be a jaxrnn.training.TrainState; build it with TrainState.create.*got dict"):
        step({"params": {"w": jnp.ones(3)}}, jnp.ones(3))
    adam_state = TrainState.create({"w": jnp.ones(3)}, optax.adam(0.1))
    with pytest.raises(ValueError, match=r"state.opt_state does not match the optimizer .*TraceState.*ScaleByAdamState"):
        step(adam_state, jnp.ones(3))
    w = jnp.ones(3)  # tied weights: one buffer twice in the donated state
    state = TrainState.create({"w": w, "v": w}, sgd)
    state, metrics = make_train_step(lambda p, b: quadratic(p, b) + jnp.sum(p["v"]), sgd)(state, jnp.ones(3))
    assert not bool(metrics["skipped"])


def test_has_aux():
    def with_aux(params, batch):
        loss = loss_fn(params, batch)
        return loss, {"twice": 2 * loss}

    state = TrainState.create(init_params(), OPT)
    _, metrics = make_train_step(with_aux, OPT, has_aux=True)(state, make_batch(KEY))
    np.testing.assert_allclose(metrics["aux"]["twice"], 2 * metrics["loss"], rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"optimizer must be an optax.GradientTransformation, got str"):
        TrainState.create(init_params(), "adam")
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("model",))
    with pytest.raises(ValueError, match=r'mesh must have a "data" axis, got axes \(\'model\',\)'):
        make_train_step(loss_fn, OPT, mesh=mesh)


def test_resume_is_exact(tmp_path):
    step = make_train_step(loss_fn, OPT)
    batches = [make_batch(jax.random.PRNGKey(i)) for i in range(10)]

    straight = TrainState.create(init_params(), OPT)
    for b in batches:
        straight, _ = step(straight, b)

    ckpt = Checkpointer(tmp_path / "ckpt", save_every=5)
    state = TrainState.create(init_params(), OPT)
    for b in batches[:5]:
        state, _ = step(state, b)
        ckpt.save(state)
    assert ckpt.latest_step() == 5
    ckpt.close()

    resumed = Checkpointer(tmp_path / "ckpt", save_every=5)
    state = resumed.restore_latest(TrainState.create(init_params(jax.random.PRNGKey(1)), OPT))
    assert int(state.step) == 5
    for b in batches[5:]:
        state, _ = step(state, b)
    assert resumed.save(state, force=True)
    assert resumed.latest_step() == 10
    resumed.close()
    jax.tree_util.tree_map(np.testing.assert_array_equal, state, straight)


def test_pascanu_exploding_gradients_and_norm_clipping():
    """ReLU RNN with W_hh = 1.2 I on T=30: plain SGD blows up, clipped SGD learns."""
    H, T = 16, 30
    cell = jr.SimpleRNN(H, activation="relu", w_hh_init=jr.initializers.scaled_identity(1.2))
    params = {"rnn": cell.init(KEY, 1), "w": jnp.ones((H,)) / H}

    def loss(p, batch):
        xs, ys = batch
        _, hs = jr.rnn(cell, p["rnn"], xs)
        return jnp.mean((hs[:, -1] @ p["w"] - ys) ** 2)

    def train(opt):
        state = TrainState.create(jax.tree_util.tree_map(jnp.copy, params), opt)
        step = make_train_step(loss, opt)
        losses = []
        for i in range(40):
            xs = jax.random.normal(jax.random.fold_in(KEY, i), (16, T, 1))
            state, m = step(state, (xs, 3.0 * xs[:, 0, 0]))  # recall the first input
            losses.append(float(m["loss"]))
        return np.array(losses), int(m["total_skipped"])

    plain, plain_skipped = train(optax.sgd(1e-2))
    clipped, clipped_skipped = train(optax.chain(jr.clipping.clip_by_global_norm(1.0), optax.sgd(1e-2)))
    assert plain_skipped > 0 or not np.all(np.isfinite(plain[1:])) or plain[1:].max() > 1e6
    assert np.all(np.isfinite(clipped)) and clipped_skipped == 0
    assert clipped[-5:].mean() < 0.01 * clipped[0]


# ---------------------------------------------------------------------------
# checkpoints that survive faults


def _tiny_state(value, step, size=3):
    state = TrainState.create({"w": jnp.full((size,), float(value))}, OPT)
    return state._replace(step=jnp.asarray(step, state.step.dtype))


def _corrupt(folder: pathlib.Path, how: str) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for p in files:
        if how == "zeroed":
            p.write_bytes(bytes(p.stat().st_size))
        elif how == "truncated":
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        else:  # files deleted, folders left
            p.unlink()
    if how == "emptied":
        for p in folder.iterdir():
            shutil.rmtree(p)


@pytest.mark.parametrize("how", ["zeroed", "truncated", "deleted", "emptied"])
def test_restore_falls_back_past_a_corrupt_checkpoint(tmp_path, how):
    with Checkpointer(tmp_path, save_every=1) as ckpt:
        for step in (1, 2):
            assert ckpt.save(_tiny_state(step, step))
    _corrupt(tmp_path / "2", how)
    with Checkpointer(tmp_path, save_every=1) as ckpt:
        with pytest.warns(jr.training.CheckpointWarning, match=r"step 2 .* cannot be read .* restored step 1"):
            state = ckpt.restore_latest(_tiny_state(9, 0))
        assert int(state.step) == 1 and ckpt.latest_step() == 1
        np.testing.assert_array_equal(state.params["w"], np.ones(3))
        assert (tmp_path / "2.corrupt").is_dir()  # set aside, not deleted
        assert ckpt.save(_tiny_state(2, 2)) and ckpt.latest_step() == 2  # saved afresh


def test_restore_refuses_another_model_and_unreadable_checkpoints(tmp_path):
    with Checkpointer(tmp_path, save_every=1) as ckpt:
        assert ckpt.save(_tiny_state(1, 1))
        with pytest.raises(ValueError, match=r"params\.w: checkpoint \(3,\), state \(4,\)"):
            ckpt.restore_latest(_tiny_state(0, 0, size=4))
    _corrupt(tmp_path / "1", "zeroed")
    with Checkpointer(tmp_path) as ckpt, pytest.raises(ValueError, match="no checkpoint .* can be read: step 1"):
        ckpt.restore_latest(_tiny_state(0, 0))
    assert (tmp_path / "1").is_dir()  # nothing is set aside when nothing can be restored


FAILED_SAVE = """
import os, sys, jax.numpy as jnp, optax
from jaxrnn.training import Checkpointer, TrainState
ckpt = Checkpointer(sys.argv[1])
os.rmdir(sys.argv[1]); open(sys.argv[1], "w").write("x")  # the folder became a file
try:
    ckpt.save(TrainState.create({"w": jnp.ones(3)}, optax.sgd(0.1)), force=True)
except OSError:
    print("SAVE-FAILED")
"""


def test_checkpointer_fails_fast_on_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="directory must be a folder .* got the file"):
        Checkpointer(tmp_path / "file")
    # A save that fails raises at once and the process can exit: an async Orbax
    # save left non-daemon threads that kept it alive for about 300 s. (The
    # timeout only bounds a hang; the run takes a few seconds of imports.)
    done = subprocess.run(
        [sys.executable, "-c", FAILED_SAVE, str(tmp_path / "ckpt")],
        check=False, capture_output=True, text=True, timeout=150, env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SAVE-FAILED" in done.stdout
