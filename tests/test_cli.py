"""The ``jaxrnn`` command, in-process at tiny sizes: files written, tables
printed, resume, bad arguments answered in one line with exit status 2."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jaxrnn import cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = cli.main(["demo", "--cells", "relu", "--steps", "20", "--block", "10", "--length", "6",
                       "--hidden", "8", "--batch", "8", "--out", str(out), "--no-progress"])
    return rc, stdout.getvalue(), out


def test_demo_writes_report_and_metrics(demo_run):
    rc, text, out = demo_run
    assert rc == 0
    assert (out / "report.png").stat().st_size > 10_000
    for word in ("test MSE", "relu T=6 no clip", "relu T=6 clip 1", "baseline (predict the mean): MSE 0.167"):
        assert word in text
    metrics = json.loads((out / "metrics.json").read_text())
    runs = {r["label"]: r for r in metrics["runs"]}
    assert set(runs) == {"relu T=6 no clip", "relu T=6 clip 1"}
    clipped, free = runs["relu T=6 clip 1"], runs["relu T=6 no clip"]
    assert free["clipped_share"] == 0.0 and clipped["clip"] == 1.0
    assert len(clipped["grad_norm"]) == 20 and len(clipped["gradflow_init"]) == 6
    # The clipped run clips exactly the steps whose pre-clip norm is above 1.
    norms = np.array(clipped["grad_norm"], dtype=float)
    assert clipped["clipped_share"] == pytest.approx(np.mean(norms > 1.0))
    assert clipped["spectrum_init"]["verdict"] in ("vanishing", "stable", "exploding")


def test_gradflow_writes_plot_and_table(tmp_path, capsys):
    rc = cli.main(["gradflow", "--cells", "tanh", "--length", "8", "--hidden", "4", "--batch", "2",
                   "--out", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "gradflow.png").is_file()
    data = json.loads((tmp_path / "gradflow.json").read_text())
    assert [r["cell"] for r in data["runs"]] == ["tanh"]
    assert len(data["runs"][0]["gradflow"]) == 8
    assert "verdict" in capsys.readouterr().out


def test_train_checkpoints_and_resumes(tmp_path, capsys):
    common = ["train", "--task", "adding", "--length", "5", "--cell", "gru", "--hidden", "4",
              "--batch", "4", "--optimizer", "sgd", "--checkpoint-every", "4", "--eval-every", "4",
              "--out", str(tmp_path), "--no-progress"]
    with jax.numpy_dtype_promotion("standard"):
        assert cli.main([*common, "--steps", "8"]) == 0
        assert (tmp_path / "checkpoints" / "8").is_dir()
        assert cli.main([*common, "--steps", "12", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resumed from step 8" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["history"]["step"] == list(range(1, 13))
    assert metrics["history"]["eval_step"] == [4, 8, 12]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,loss,grad_norm,skipped" and len(lines) == 13
    assert (tmp_path / "curves.png").is_file()


def test_train_char_lm_samples_text(tmp_path, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text("abc abd abe\n" * 30)
    rc = cli.main(["train", "--task", "charlm", "--text", str(text), "--length", "6", "--cell", "tanh",
                   "--hidden", "4", "--batch", "2", "--steps", "3", "--optimizer", "sgd",
                   "--sample-chars", "12", "--prompt", "ab", "--out", str(tmp_path / "run"),
                   "--no-progress"])
    assert rc == 0
    sample = (tmp_path / "run" / "sample.txt").read_text()
    assert sample.startswith("ab") and len(sample) == 14
    assert "sample (temperature" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["demo", "--steps", "0"], ["--steps", "positive integer", "0"]),
        (["demo", "--cells", "tanh,elman"], ["--cells", "elman"]),
        (["train", "--lr", "-1"], ["--lr", "positive number"]),
        (["train", "--residuals", "all"], ["--residuals", "'all'"]),
        (["train", "--task", "mnist"], ["--mnist"]),
        (["train", "--task", "charlm", "--text", "/no/such/file.txt"], ["/no/such/file.txt", "does not exist"]),
        (["train", "--task", "mnist", "--mnist", "/no/such.npz"], ["/no/such.npz"]),
        (["fly"], ["invalid choice", "fly"]),
        ([], ["required"]),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(argv, words, capsys, tmp_path):
    rc = cli.main([*argv, *(["--out", str(tmp_path)] if argv and argv[0] == "train" else [])])
    assert rc == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("jaxrnn")
    for w in words:
        assert w in err


def test_bench_forwards_arguments(tmp_path, monkeypatch):
    script = tmp_path / "benchmarks" / "bptt.py"
    script.parent.mkdir()
    script.write_text("SEEN = []\ndef main(argv):\n    SEEN.append(argv)\n    print('bench', argv)\n    return 0\n")
    monkeypatch.setattr(cli, "_find_benchmark", lambda: script)
    assert cli.main(["bench", "--quick", "--cells", "lstm"]) == 0


def test_bench_without_a_checkout_says_so(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_find_benchmark", lambda: None)
    assert cli.main(["bench"]) == 2
    assert "source checkout" in capsys.readouterr().err
