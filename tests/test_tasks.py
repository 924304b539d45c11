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


def test_cue_answer_layout_targets_and_baseline():
    """The first step is the cue, D filler steps follow, the last is the query;
    the target is the cue's class, and ignoring the past scores ln K."""
    D, K, F, B = 7, 5, 3, 3000
    task = tasks.CueAnswer(D, num_pairs=K, num_fillers=F)
    inputs, targets = sample(task, B)
    assert inputs.shape == (B, D + 2, K + F + 1) and inputs.dtype == jnp.float32
    assert targets.shape == (B,) and targets.dtype == jnp.int32
    assert (task.input_size, task.output_size) == (K + F + 1, K)
    np.testing.assert_array_equal(np.asarray(inputs).sum(-1), 1.0)  # one-hot
    tokens = np.asarray(jnp.argmax(inputs, -1))
    np.testing.assert_array_equal(tokens[:, 0], targets)  # the cue names the answer
    assert ((tokens[:, 1:-1] >= K) & (tokens[:, 1:-1] < K + F)).all()  # fillers only
    np.testing.assert_array_equal(tokens[:, -1], K + F)  # the query, the same for all
    np.testing.assert_allclose(np.bincount(np.asarray(targets), minlength=K) / B, 1 / K, atol=0.03)
    np.testing.assert_allclose(np.bincount(tokens[:, 1:-1].ravel() - K, minlength=F) / (B * D), 1 / F, atol=0.02)
    uniform = float(task.loss(jnp.zeros((B, K)), targets))
    assert uniform == pytest.approx(task.baseline, rel=1e-6) and task.baseline == pytest.approx(math.log(K))


def test_cue_answer_targets_depend_on_the_cue_only():
    """The same key gives the same cues at every distance, and so the same
    targets, whatever the fillers; a model's answer to a sequence with its
    fillers shuffled in time is the same target."""
    gen = jax.jit(tasks.cue_answer, static_argnums=(1, 2), static_argnames=("num_pairs", "num_fillers"))
    x5, y5 = gen(KEY, 64, 5)
    x9, y9 = gen(KEY, 64, 9)
    np.testing.assert_array_equal(y5, y9)
    np.testing.assert_array_equal(jnp.argmax(x5[:, 0], -1), jnp.argmax(x9[:, 0], -1))
    # A model that reads the first step: right on every sequence, fillers permuted or not.
    perm = np.random.default_rng(0).permutation(5) + 1
    shuffled = x5.at[:, 1:6].set(x5[:, perm])
    assert not np.array_equal(shuffled, x5)
    np.testing.assert_array_equal(jnp.argmax(shuffled[:, 0, :8], -1), y5)
    # Another key draws other fillers, yet the pairing (cue k -> class k) holds.
    x_other, y_other = gen(jax.random.PRNGKey(1), 64, 5)
    np.testing.assert_array_equal(jnp.argmax(x_other[:, 0], -1), y_other)
    # jit with the task as an argument (a pytree with static fields) matches the eager call.
    xe, ye = tasks.CueAnswer(5).sample(KEY, 64)
    np.testing.assert_array_equal(xe, x5)
    np.testing.assert_array_equal(ye, y5)


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


_VOCAB = tasks.CharVocab("ab")
_IMAGES = jnp.zeros((4, 3))
BAD_TASK_ARGS = {
    # the generators: lengths, sizes, keys
    "adding lengths out of range": (lambda: tasks.adding(KEY, 3, 10, seq_lengths=[1, 10, 14]), ValueError, r"seq_lengths must lie in \[2, 10\].*got values from 1 to 14"),
    "adding length 1": (lambda: tasks.adding(KEY, 3, 1), ValueError, r"length must be at least 2, got 1"),
    "adding batch -1": (lambda: tasks.adding(KEY, -1, 10), ValueError, r"batch_size must be a positive int, got -1"),
    "adding batch float": (lambda: tasks.adding(KEY, 2.0, 10), TypeError, r"batch_size must be a positive int, got float 2.0"),
    "adding key": (lambda: tasks.adding(0, 2, 10), TypeError, r"key must be a PRNG key .*got int 0"),
    "order length 3": (lambda: tasks.temporal_order(KEY, 2, 3), ValueError, r"length must be at least 10, got 3"),
    "order batch 0": (lambda: tasks.temporal_order(KEY, 0, 10), ValueError, r"batch_size must be a positive int, got 0"),
    "copy delay 0": (lambda: tasks.copy_memory(KEY, 2, 0), ValueError, r"delay must be a positive int, got 0"),
    "copy batch -1": (lambda: tasks.copy_memory(KEY, -1, 5), ValueError, r"batch_size must be a positive int, got -1"),
    "cue distance 0": (lambda: tasks.cue_answer(KEY, 2, 0), ValueError, r"distance must be a positive int, got 0"),
    "cue distance float": (lambda: tasks.cue_answer(KEY, 2, 5.0), TypeError, r"distance must be a positive int, got float 5.0"),
    "cue one pair": (lambda: tasks.cue_answer(KEY, 2, 5, num_pairs=1), ValueError, r"num_pairs must be at least 2, got 1"),
    "cue no fillers": (lambda: tasks.cue_answer(KEY, 2, 5, num_fillers=0), ValueError, r"num_fillers must be a positive int, got 0"),
    "cue batch 0": (lambda: tasks.cue_answer(KEY, 0, 5), ValueError, r"batch_size must be a positive int, got 0"),
    "cue key": (lambda: tasks.cue_answer(3, 2, 5), TypeError, r"key must be a PRNG key .*got int 3"),
    "CueAnswer distance": (lambda: tasks.CueAnswer(-1), ValueError, r"distance must be a positive int, got -1"),
    "CueAnswer pairs": (lambda: tasks.CueAnswer(5, num_pairs=1), ValueError, r"num_pairs must be at least 2, got 1"),
    "charlm batch": (lambda: tasks.CharLM.from_text("abcdefgh", length=3).sample(KEY, -1), ValueError, r"batch_size must be a positive int, got -1"),
    "charlm text": (lambda: tasks.CharLM.from_text(5), TypeError, r"text must be a str, got int 5"),
    "vocab encode": (lambda: _VOCAB.encode(5), TypeError, r"text must be a str, got int 5"),
    # MNIST labels (a label outside [0, 10) made the loss NaN) and sizes
    "mnist labels": (lambda: tasks.SequentialMNIST(_IMAGES, jnp.array([0, 1, 10, 2])), ValueError, r"labels must hold class labels in \[0, 10\), got values from 0 to 10"),
    "mnist negative label": (lambda: tasks.SequentialMNIST(_IMAGES, np.array([0, -1, 3, 2])), ValueError, r"labels must hold class labels in \[0, 10\).*from -1"),
    "mnist float labels": (lambda: tasks.SequentialMNIST(_IMAGES, jnp.zeros(4)), TypeError, r"labels must be integer class labels, got dtype float32"),
    "mnist label count": (lambda: tasks.SequentialMNIST(_IMAGES, jnp.zeros(3, jnp.int32)), ValueError, r"labels must have shape \(4,\).*got shape \(3,\)"),
    "mnist batches": (lambda: tasks.SequentialMNIST(_IMAGES, jnp.zeros(4, jnp.int32)).batches(0), ValueError, r"batch_size must be a positive int, got 0"),
    "load_mnist path": (lambda: tasks.load_mnist(5), TypeError, r"path must be a file path .*got int 5"),
    "load_text path": (lambda: tasks.load_text(None), TypeError, r"path must be a file path .*got NoneType"),
    # the readout model
    "init_params key": (lambda: tasks.Adding(5).init_params(jr.GRU(3), 0), TypeError, r"key must be a PRNG key"),
    "make_loss cell": (lambda: tasks.Adding(5).make_loss("gru"), TypeError, r"cell must be a jaxrnn Cell, got str 'gru'"),
    "apply params": (lambda: tasks.Adding(5).apply(jr.GRU(3), {"w": 1}, jnp.ones((2, 5, 2))), TypeError, r"params must be the readout model's dict"),
    "loss shapes": (lambda: tasks.Adding(5).loss(jnp.ones((2, 1)), jnp.ones((3,))), ValueError, r"outputs must have shape \(3, 1\).*got shape \(2, 1\)"),
    "loss float classes": (lambda: tasks.TemporalOrder(10).loss(jnp.ones((2, 4)), jnp.ones((2,))), TypeError, r"targets must be integer class indices, got dtype float32"),
    "sample_text vocab": (lambda: tasks.sample_text(jr.GRU(4), {}, "ab", KEY, "a", 3), TypeError, r"vocab must be a CharVocab, got str 'ab'"),
    "sample_text params": (lambda: tasks.sample_text(jr.GRU(4), {"cell": 1}, _VOCAB, KEY, "a", 3), TypeError, r"params must be the readout model's dict"),
}


@pytest.mark.parametrize("case", list(BAD_TASK_ARGS), ids=list(BAD_TASK_ARGS))
def test_tasks_reject_bad_arguments(case):
    make, error, pattern = BAD_TASK_ARGS[case]
    with pytest.raises(error, match=pattern):
        make()


def test_traced_adding_lengths_are_clamped():
    """Under jit the lengths cannot be checked: they are clamped to [2, T], so
    every example still has two markers, one in each half, and their sum."""
    T, B = 12, 500  # test_adding_with_seq_lengths's shapes: its compilation is reused
    lengths = jnp.zeros((B,), jnp.int32).at[:4].set(jnp.array([0, 1, 12, 14]))
    inputs, targets = jax.jit(tasks.adding, static_argnums=(1, 2))(KEY, B, T, seq_lengths=lengths)
    values, markers = np.asarray(inputs[..., 0]), np.asarray(inputs[..., 1])
    ends = np.clip(np.asarray(lengths), 2, T)[:, None]
    steps = np.arange(T)[None, :]
    np.testing.assert_array_equal((markers * (steps < ends // 2)).sum(1), 1)
    np.testing.assert_array_equal((markers * ((steps >= ends // 2) & (steps < ends))).sum(1), 1)
    np.testing.assert_allclose(targets, (values * markers).sum(1), rtol=1e-6)


def test_unreadable_mnist_files_are_value_errors(tmp_path, mnist_file):
    """Truncated, corrupt, non-zip files and bad labels: a ValueError naming the path."""
    data = mnist_file.read_bytes()
    cases = {
        "truncated.npz": data[: len(data) // 2],
        "text.npz": b"not an archive",
        "empty.npz": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"mnist file '.*{name}' is not a zip archive"):
            tasks.load_mnist(tmp_path / name)
    corrupt = bytearray(data)
    corrupt[200:260] = bytes(60)  # inside the first array's data: its CRC fails
    (tmp_path / "corrupt.npz").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match=r"mnist file '.*corrupt.npz' is corrupt or truncated"):
        tasks.load_mnist(tmp_path / "corrupt.npz")
    bad_labels = tmp_path / "labels.npz"
    np.savez(bad_labels, x_train=np.zeros((3, 4, 4), np.uint8), y_train=np.array([0, 1, 10]),
             x_test=np.zeros((1, 4, 4), np.uint8), y_test=np.array([0]))
    with pytest.raises(ValueError, match=r"labels.npz': y_train must hold class labels in \[0, 10\)"):
        tasks.SequentialMNIST.from_npz(bad_labels)
