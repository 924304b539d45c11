"""Tasks: the data they generate, their baselines measured on generated data,
loading local files, and a short training run that beats the adding baseline."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn as jr
from jaxrnn import _runner, tasks

KEY = jax.random.PRNGKey(0)


def sample(task, batch_size):
    """One compiled call instead of many eager ops (the tests stay fast)."""
    return jax.jit(lambda t, k: t.sample(k, batch_size))(task, KEY)


def test_adding_markers_targets_and_baseline():
    T = 20
    inputs, targets = sample(tasks.Adding(T), 20000)
    assert inputs.shape == (20000, T, 2) and targets.shape == (20000,)
    values, markers = np.asarray(inputs[..., 0]), np.asarray(inputs[..., 1])
    assert ((values >= 0) & (values <= 1)).all()
    np.testing.assert_array_equal(markers[:, : T // 2].sum(1), 1)
    np.testing.assert_array_equal(markers[:, T // 2 :].sum(1), 1)
    np.testing.assert_allclose(targets, (values * markers).sum(1), rtol=1e-6)
    # Predicting the mean (1) scores Var(U1 + U2) = 1/6: the documented baseline.
    task = tasks.Adding(T)
    mse = float(task.loss(jnp.ones((20000, 1)), targets))
    assert abs(mse - task.baseline) < 0.01
    assert task.baseline == pytest.approx(1 / 6)


def test_adding_with_seq_lengths():
    """Markers fall in the halves of each example's own length."""
    T, B = 12, 500
    lengths = jax.random.randint(jax.random.PRNGKey(3), (B,), 2, T + 1)
    inputs, targets = jax.jit(tasks.adding, static_argnums=(1, 2))(
        jax.random.PRNGKey(4), B, T, seq_lengths=lengths
    )
    values, markers = np.asarray(inputs[..., 0]), np.asarray(inputs[..., 1])
    steps, ends = np.arange(T)[None, :], np.asarray(lengths)[:, None]
    first_half, second_half = steps < ends // 2, (steps >= ends // 2) & (steps < ends)
    np.testing.assert_array_equal((markers * first_half).sum(1), 1)
    np.testing.assert_array_equal((markers * second_half).sum(1), 1)
    np.testing.assert_allclose(targets, (values * markers).sum(1), rtol=1e-6)
    # Without seq_lengths: the fixed-length problem, unchanged.
    fixed, _ = tasks.adding(jax.random.PRNGKey(4), B, T)
    np.testing.assert_array_equal(fixed[..., 0], inputs[..., 0])
    with pytest.raises(ValueError, match=r"seq_lengths must have shape \(500,\)"):
        tasks.adding(jax.random.PRNGKey(4), B, T, seq_lengths=lengths[:3])
    with pytest.raises(TypeError, match="seq_lengths must be integers"):
        tasks.adding(jax.random.PRNGKey(4), B, T, seq_lengths=jnp.ones((B,)))


def test_copy_memory_layout_and_baseline():
    T = 15
    task = tasks.CopyMemory(T)
    inputs, targets = sample(task, 256)
    assert inputs.shape == (256, T + 20, 10) and targets.shape == (256, T + 20)
    tokens = np.asarray(jnp.argmax(inputs, -1))
    assert ((tokens[:, :10] >= 1) & (tokens[:, :10] <= 8)).all()
    np.testing.assert_array_equal(tokens[:, T + 9], 9)  # the delimiter
    np.testing.assert_array_equal(np.delete(tokens[:, 10:], T - 1, axis=1), 0)
    np.testing.assert_array_equal(targets[:, -10:], tokens[:, :10])
    np.testing.assert_array_equal(targets[:, :-10], 0)
    # Blanks for T+10 steps, then a uniform guess over the 8 symbols: the baseline.
    logits = np.full((256, T + 20, 9), -1e9, np.float32)
    logits[:, :-10, 0] = 0.0
    logits[:, -10:, 1:] = 0.0
    loss = float(task.loss(jnp.asarray(logits), targets))
    assert loss == pytest.approx(task.baseline, rel=1e-5)
    assert task.baseline == pytest.approx(10 * math.log(8) / (T + 20))
    assert float(task.metric(jnp.asarray(logits), targets)) < 0.5


def test_temporal_order_positions_classes_and_baseline():
    T = 50
    task = tasks.TemporalOrder(T)
    inputs, targets = sample(task, 4000)
    tokens = np.asarray(jnp.argmax(inputs, -1))
    relevant = tokens >= 4
    np.testing.assert_array_equal(relevant.sum(1), 2)
    pos = np.argwhere(relevant)[:, 1].reshape(-1, 2)
    assert ((pos[:, 0] >= 5) & (pos[:, 0] < 10) & (pos[:, 1] >= 25) & (pos[:, 1] < 30)).all()
    sym = tokens[relevant].reshape(-1, 2) - 4
    np.testing.assert_array_equal(2 * sym[:, 0] + sym[:, 1], targets)
    freq = np.bincount(np.asarray(targets), minlength=4) / 4000
    np.testing.assert_allclose(freq, 0.25, atol=0.03)
    uniform = float(task.loss(jnp.zeros((4000, 4)), targets))
    assert uniform == pytest.approx(task.baseline, rel=1e-6)


def test_char_lm_windows_and_unigram_baseline(tmp_path):
    text = "the quick brown fox jumps over the lazy dog\n" * 40
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    task = tasks.CharLM.from_text(tasks.load_text(path), length=12)
    inputs, targets = jax.jit(lambda t, k: t.sample(k, 3000))(task, KEY)  # the task is a pytree
    assert inputs.shape == (3000, 12, len(task.vocab))
    ids = np.asarray(jnp.argmax(inputs, -1))
    np.testing.assert_array_equal(ids[:, 1:], targets[:, :-1])
    assert task.vocab.decode(task.vocab.encode("lazy dog")) == "lazy dog"
    # The unigram predictor scores the unigram entropy, measured on windows.
    counts = np.bincount(task.vocab.encode(text), minlength=len(task.vocab))
    logits = jnp.broadcast_to(jnp.log(jnp.asarray(counts / counts.sum(), jnp.float32)), (3000, 12, len(task.vocab)))
    assert float(task.loss(logits, targets)) == pytest.approx(task.baseline, rel=0.03)


def test_char_lm_default_corpus_is_the_stdlib():
    text = tasks.stdlib_text(max_chars=5000)
    assert len(text) == 5000 and "def " in text or "import" in text


def test_sample_text_length_and_vocabulary():
    task = tasks.CharLM.from_text("abcabcabd\n" * 5, length=4)
    cell = jr.GRU(8)
    params = task.init_params(cell, KEY)
    out = tasks.sample_text(cell, params, task.vocab, KEY, "a", 25, temperature=0.5)
    assert len(out) == 25 and set(out) <= set(task.vocab.chars)
    with pytest.raises(ValueError, match="prompt"):
        tasks.sample_text(cell, params, task.vocab, KEY, "", 5)


@pytest.fixture(scope="module")
def mnist_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (30, 4, 4), dtype=np.uint8),
        y_train=rng.integers(0, 10, 30),
        x_test=rng.integers(0, 256, (10, 4, 4), dtype=np.uint8),
        y_test=rng.integers(0, 10, 10),
    )
    return path


def test_sequential_and_permuted_mnist(mnist_file):
    data = tasks.load_mnist(mnist_file)
    assert data["x_train"].shape == (30, 16) and data["x_train"].max() <= 1.0
    plain = tasks.SequentialMNIST.from_npz(mnist_file)
    perm = tasks.SequentialMNIST.from_npz(mnist_file, permuted=True)
    x, y = plain.sample(KEY, 5)
    xp, yp = perm.sample(KEY, 5)
    assert x.shape == (5, 16, 1) and plain.length == 16
    np.testing.assert_array_equal(y, yp)
    # One fixed permutation of the pixels, the same for every image.
    order = np.argsort(np.asarray(x[0, :, 0]), kind="stable")
    assert not np.array_equal(np.asarray(x), np.asarray(xp))
    np.testing.assert_array_equal(np.sort(np.asarray(xp[..., 0]), 1), np.sort(np.asarray(x[..., 0]), 1))
    del order
    test = tasks.SequentialMNIST.from_npz(mnist_file, split="test")
    assert sum(b[0].shape[0] for b in test.batches(4)) == 10
    assert plain.baseline == pytest.approx(math.log(10))


def test_bad_files_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist file"):
        tasks.load_mnist(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="lacks"):
        tasks.load_mnist(bad)
    with pytest.raises(ValueError, match="length must be at least 2"):
        tasks.Adding(1)
    with pytest.raises(TypeError, match="length must be a positive int"):
        tasks.CopyMemory(2.5)
    with pytest.raises(ValueError, match="longer than"):
        tasks.CharLM.from_text("abc", length=5)
    with pytest.raises(TypeError, match="cell must be a jaxrnn Cell"):
        tasks.Adding(5).init_params("gru", KEY)


def test_gru_beats_the_adding_baseline():
    """A short run at T=8: a GRU learns to add (test MSE far below 1/6)."""
    task = tasks.Adding(8)
    cfg = _runner.Config(cell=jr.GRU(8), batch_size=32, block=400)
    out = _runner.train(cfg, task, [_runner.Run(0, 1e-2, 1.0)], 400, test_size=500)
    assert out["test_loss"][0, 0] > 0.1  # it starts at or above the baseline
    assert out["test_loss"][0, -1] < 0.25 * task.baseline
    assert np.isfinite(out["grad_norm"]).all()
