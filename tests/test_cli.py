"""The ``jaxrnn`` command, in-process at tiny sizes: files written, tables
printed, resume, bad arguments answered in one line with exit status 2, help
that shows every default, and what each command says while it works."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import pathlib
import re
import sys
import types

import jax
import numpy as np
import pytest

import jaxrnn
from jaxrnn import cli, training
from jaxrnn.cli import _bench, _io, _train

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = cli.main(["demo", "--cells", "relu", "--steps", "20", "--block", "10", "--length", "6",
                       "--hidden", "3", "--batch", "8", "--out", str(out), "--no-progress"])
    return rc, stdout.getvalue(), out, stderr.getvalue()


def test_demo_writes_report_and_metrics(demo_run):
    rc, text, out, err = demo_run
    assert rc == 0
    # It says what it does from the start: diagnostics, compiling, then log lines.
    # The ReLU runs are at T/5 (here 2), for twice the steps: no clip, norm
    # clip, value clip.
    labels = ["relu T=2 no clip", "relu T=2 clip 1", "relu T=2 value clip 0.01"]
    for word in (f"diagnostics at initialisation: {labels[0]}, gradient norms",
                 f"{' + '.join(labels)}: compiling the training loop",
                 "step 10/40", "train mse", "test mse", "diagnostics after training"):
        assert word in err
    assert (out / "report.png").stat().st_size > 10_000
    for word in ("test MSE", *labels, "momentum 0.05, value clip 0.01", "cos",
                 "baseline (predict the mean): MSE 0.167"):
        assert word in text
    metrics = json.loads((out / "metrics.json").read_text())
    runs = {r["label"]: r for r in metrics["runs"]}
    assert set(runs) == set(labels)
    free, clipped, valued = (runs[k] for k in labels)
    assert free["clipped_share"] == 0.0 and clipped["clip"] == 1.0 and valued["clip_value"] == 0.01
    assert len(clipped["grad_norm"]) == 40 and len(clipped["gradflow_init"]) == 2
    # The clipped run clips exactly the steps whose pre-clip norm is above 1,
    # and keeps the gradient's direction; value clipping turns it.
    norms = np.array(clipped["grad_norm"], dtype=float)
    assert clipped["clipped_share"] == pytest.approx(np.mean(norms > 1.0))
    np.testing.assert_allclose(clipped["cosine"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(free["cosine"], 1.0, rtol=1e-5)
    assert 0.0 < valued["mean_cosine"] < 1.0
    assert clipped["spectrum_init"]["verdict"] in ("vanishing", "stable", "exploding")


def test_gradflow_writes_plot_and_table(tmp_path, capsys):
    rc = cli.main(["gradflow", "--cells", "tanh", "--length", "8", "--hidden", "2", "--batch", "2",
                   "--out", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "gradflow.png").is_file()
    data = json.loads((tmp_path / "gradflow.json").read_text())
    assert [r["cell"] for r in data["runs"]] == ["tanh"]
    assert len(data["runs"][0]["gradflow"]) == 8
    captured = capsys.readouterr()
    assert "verdict" in captured.out
    assert captured.err.startswith("jaxrnn gradflow: adding problem T=8") and "tanh, Jacobian spectrum" in captured.err


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs."""


def test_train_checkpoints_and_resumes(tmp_path, capsys, monkeypatch):
    common = ["train", "--task", "adding", "--length", "5", "--cell", "gru", "--hidden", "4",
              "--batch", "4", "--optimizer", "sgd", "--checkpoint-every", "2", "--eval-every", "4",
              "--out", str(tmp_path), "--no-progress", "--steps", "8"]
    save = training.Checkpointer.save

    def save_then_die(self, state, **kw):
        if int(state.step) == 7:
            raise Killed
        return save(self, state, **kw)

    def read_log():
        return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]

    with jax.numpy_dtype_promotion("standard"):
        with monkeypatch.context() as m:
            m.setattr(training.Checkpointer, "save", save_then_die)
            with pytest.raises(Killed):
                cli.main(common)
        # Killed after step 7: its metrics are on disk, line by line.
        killed = read_log()
        assert [r["step"] for r in killed] == list(range(1, 8))
        assert not (tmp_path / "metrics.json").exists()
        # The latest checkpoint (6) is damaged: the run resumes from 4, and says so.
        for f in (tmp_path / "checkpoints" / "6").rglob("*"):
            if f.is_file():
                f.write_bytes(bytes(f.stat().st_size))
        assert cli.main([*common, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "resumed from step 4" in captured.out
    assert "jaxrnn train: warning: checkpoint step 6" in captured.err
    # --no-progress: a line before the first step, then log lines, train and test labelled.
    err = captured.err
    assert err.index("gru: compiling the model, the training step") < err.index("step 5/8")
    assert re.search(r"step 8/8  \d+s  train mse \d\.\d{4}  test mse \d\.\d{4}", err), err
    log = read_log()
    assert [r["step"] for r in log] == list(range(1, 9))
    assert log[:7] == killed  # steps 5-7 trained again, to the same numbers
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["history"]["step"] == list(range(1, 9))
    assert metrics["history"]["eval_step"] == [4, 8]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,loss,grad_norm,skipped,eval_loss,eval_mse" and len(lines) == 9
    evals = {int(line.split(",")[0]): line.split(",")[4:] for line in lines[1:]}
    assert evals[3] == ["", ""] and float(evals[4][0]) == metrics["history"]["eval_loss"][0]
    assert (tmp_path / "curves.png").is_file()


def test_write_atomic_leaves_the_old_file_whole_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text("old")

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(_io.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        _io.write_atomic(path, "new")
    assert path.read_text() == "old"


class FakeWriter:
    """tensorboardX.SummaryWriter, recording its scalars."""

    def __init__(self, logdir):
        self.logdir, self.scalars, self.closed = logdir, [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step, value))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_train_char_lm_samples_text(tmp_path, capsys, monkeypatch):
    writers = []
    fake = types.ModuleType("tensorboardX")
    fake.SummaryWriter = lambda logdir: writers.append(FakeWriter(logdir)) or writers[-1]
    monkeypatch.setitem(sys.modules, "tensorboardX", fake)
    text = tmp_path / "corpus.txt"
    text.write_text("abc abd abe\n" * 30)
    rc = cli.main(["train", "--task", "charlm", "--text", str(text), "--length", "6", "--cell", "tanh",
                   "--hidden", "4", "--batch", "2", "--steps", "3", "--optimizer", "sgd",
                   "--sample-chars", "12", "--prompt", "ab", "--out", str(tmp_path / "run"),
                   "--no-progress", "--eval-every", "2", "--tensorboard", str(tmp_path / "tb")])
    assert rc == 0
    sample = (tmp_path / "run" / "sample.txt").read_text()
    assert sample.startswith("ab") and len(sample) == 14
    out = capsys.readouterr().out
    assert "sample (temperature" in out
    # The char LM's units: nats, bits per character and perplexity.
    assert re.search(r"test loss \d\.\d{4} nats/char = \d\.\d{3} bits/char, perplexity \d", out), out
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,loss,grad_norm,skipped,eval_loss,eval_accuracy,eval_bpc,eval_perplexity"
    # --tensorboard: every step's training numbers, the test numbers at steps 2 and 3.
    (board,) = writers
    assert board.logdir == str(tmp_path / "tb") and board.closed
    tags = {(tag, step) for tag, step, _ in board.scalars}
    assert {("train/loss", 1), ("train/grad_norm", 3), ("test/loss", 2), ("test/accuracy", 3)} <= tags
    assert ("test/loss", 1) not in tags


def test_tensorboard_without_a_writer_names_the_package(tmp_path, capsys, monkeypatch):
    for name in ("tensorboardX", "torch"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    assert cli.main(["train", "--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "tensorboardX" in err and "jaxrnn[tensorboard]" in err


@pytest.mark.parametrize(
    "cell, extra",
    [("mingru", []), ("gru", ["--impl", "parallel", "--method", "quasi"])],
)
def test_train_runs_the_parallel_paths(tmp_path, cell, extra):
    out = tmp_path / "run"
    rc = cli.main(["train", "--task", "adding", "--length", "6", "--cell", cell, "--hidden", "4",
                   "--batch", "2", "--steps", "2", "--eval-every", "2", "--out", str(out),
                   "--optimizer", "sgd", "--no-progress", *extra])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["cell"] == cell and config.get("method") == ("quasi" if extra else None)
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert math.isfinite(summary["final_test_loss"])


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
        (["demo", "--cells", "mingru"], ["--cells", "mingru"]),
        (["demo", "--out", "{file}"], ["--out", "folder", "{file}"]),
        (["train", "--out", "{file}"], ["--out", "folder", "{file}"]),
        (["gradflow", "--out", "{file}/run"], ["--out", "{file}/run"]),
        (["demo", "--length", "1"], ["--length", "at least 2", "1"]),
        (["gradflow", "--length", "1"], ["--length", "at least 2", "1"]),
        (["train", "--task", "charlm", "--text", "{text}", "--prompt", ""], ["--prompt", "''"]),
        (["train", "--task", "charlm", "--text", "{text}", "--prompt", "def "], ["--prompt", "'ef'"]),
        (["train", "--task", "mnist", "--mnist", "{file}"], ["{file}", "zip"]),
        (["train", "--task", "mnist", "--mnist", "{npz}"], ["{npz}", "zip"]),
        (["train", "--resume", "--cell", "lstm", "--hidden", "8"],
         ["--resume", "--cell is 'lstm'", "'gru'", "--hidden is 8", "4"]),
        (["train", "--hidden", "4"], ["holds the checkpoints", "--resume"]),
        (["bench", "--repeats", "0"], ["--repeats", "positive"]),
        (["train", "--impl", "bogus"], ["--impl", "invalid choice", "bogus", "pallas"]),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(argv, words, capsys, tmp_path):
    # Each is refused before anything trains or compiles.
    paths = {"{file}": tmp_path / "file.npz", "{text}": tmp_path / "text.txt", "{npz}": tmp_path / "cut.npz"}
    paths["{file}"].write_text("not a zip")
    paths["{text}"].write_text("abc abd\n" * 20)
    paths["{npz}"].write_bytes(b"PK\x03\x04" + bytes(60))  # a zip's header, cut short
    run = tmp_path / "run"  # a run of --cell gru --hidden 4 with a checkpoint at step 8
    (run / "checkpoints" / "8").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"cell": "gru", "hidden": 4}))
    for key, path in paths.items():
        argv = [a.replace(key, str(path)) for a in argv]
        words = [w.replace(key, str(path)) for w in words]
    rc = cli.main([*argv, *(["--out", str(run)] if argv[:1] == ["train"] and "--out" not in argv else [])])
    assert rc == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("jaxrnn")
    for w in words:
        assert w in err


def test_impl_takes_every_implementation():
    # The choices are jr.rnn's; train and gradflow default to "auto", the demo to "scan".
    parser = cli.build_parser()
    for command in ("train", "gradflow", "demo"):
        assert parser.parse_args([command, "--impl", "pallas"]).impl == "pallas"
    assert parser.parse_args(["train"]).impl == "auto"
    assert parser.parse_args(["gradflow"]).impl == "auto"
    assert parser.parse_args(["demo"]).impl == "scan"


def test_bare_command_prints_help_and_version(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jaxrnn") and all(c in out for c in ("demo", "train", "gradflow", "bench"))
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"jaxrnn {jaxrnn.__version__}"


def option_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's help as printed, by its first flag."""
    formatter = parser._get_formatter()
    return {a.option_strings[0]: " ".join(formatter._expand_help(a).split())
            for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS
            and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))}


def check_defaults(helps: dict[str, str]) -> None:
    """Every help states its default once, as typed: no Python values."""
    for flag, text in helps.items():
        assert text.count("(default") == 1, (flag, text)
        default = text[text.index("(default"):]
        assert not re.search(r"None|True|False|[\[(]'|\(\d", default), (flag, text)


def test_every_option_shows_its_default_once():
    subs = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("demo", "train", "gradflow"):
        check_defaults(option_helps(subs.choices[name]))
    helps = option_helps(subs.choices["train"])
    assert "skipped" in subs.choices["train"].description
    assert "(default: 0.01)" in helps["--lr"] and "(default: a bar)" in helps["--no-progress"]
    assert "demo" not in option_helps(subs.choices["gradflow"])["--impl"]
    assert "(default: scan, faster" in option_helps(subs.choices["demo"])["--impl"]
    assert "(default: tanh,irnn,lstm,gru,relu)" in option_helps(subs.choices["gradflow"])["--cells"]


def test_train_hints_at_what_is_known_when_a_run_stays_at_the_baseline():
    args = argparse.Namespace(task="adding", length=100, cell="lstm", steps=300)
    task = jaxrnn.tasks.Adding(100)
    summary = {"final_test_loss": 0.165, "final_test_metric": 0.165, "first_step_seconds": 3.0,
               "skipped_steps": 2}
    first, note = _train.summary_lines(args, task, summary, 10.0, 300)
    assert "test MSE 0.1650 (baseline 0.1667" in first and "2 steps skipped (their gradient" in first
    assert note.startswith("note: the test loss is 0.99 times the baseline") and "750+ steps" in note
    solved = _train.summary_lines(args, task, {**summary, "final_test_loss": 0.001, "skipped_steps": 0}, 10.0, 300)
    assert len(solved) == 1 and "no step skipped" in solved[0]


def test_bench_help_and_report_name_the_command(capsys):
    assert cli.main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jaxrnn bench")
    bptt_cli = sys.modules["benchmarks.bptt.cli"]
    check_defaults(option_helps(bptt_cli.parser()))
    assert "(default: 8x128," in option_helps(bptt_cli.parser())["--sizes"]


def test_bench_warns_on_a_busy_machine(monkeypatch):
    if str(ROOT) not in sys.path:
        monkeypatch.syspath_prepend(str(ROOT))
    bptt_cli = importlib.import_module("benchmarks.bptt.cli")
    report = importlib.import_module("benchmarks.bptt.report")
    monkeypatch.setattr(bptt_cli.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(bptt_cli.os, "getloadavg", lambda: (3.5, 3.0, 3.0))
    assert bptt_cli.load_warning("gpu", 16) is None  # 3.5 of 16 cores
    assert bptt_cli.load_warning("cpu", 16) is None
    warning = bptt_cli.load_warning("cpu", 2)  # above 1.5 x PyTorch's 2 threads
    assert "load average 3.5" in warning and "PyTorch's multi-threaded" in warning
    monkeypatch.setattr(bptt_cli.os, "getloadavg", lambda: (17.0, 3.0, 3.0))
    assert bptt_cli.load_warning("gpu", 16) is not None  # above the cores
    meta = {"command": "jaxrnn bench --quick", "machine": "m", "versions": {}, "dtype": "fp32",
            "date": "d", "gemm_peak": {"gflops": 1.0, "n": 64, "dtype": "float32"}, "warnings": [warning]}
    assert f"**Warning:** {warning}." in report.markdown({"meta": meta, "rows": []})


def test_seq_mnist_example_refuses_a_bad_path_in_one_line(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("seq_mnist", ROOT / "examples" / "seq_mnist.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for path in (tmp_path / "missing.npz", tmp_path):
        with pytest.raises(SystemExit) as exit_:
            example.main(["--mnist", str(path)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and str(path) in err
        assert err.startswith("seq_mnist.py: error: --mnist")


def fake_checkout(root):
    """A checkout whose benchmarks.bptt records the argv it is given."""
    suite = root / "benchmarks" / "bptt"
    suite.mkdir(parents=True)
    (suite / "__main__.py").write_text("")
    return suite


def test_bench_finds_the_checkout_from_a_subfolder(tmp_path):
    fake_checkout(tmp_path)
    (tmp_path / "docs" / "api").mkdir(parents=True)
    assert _bench.find_checkout(tmp_path / "docs" / "api") == tmp_path.resolve()


def test_bench_finds_this_checkout():
    root = _bench.find_checkout()
    assert root is not None and (root / "benchmarks" / "bptt" / "cli.py").is_file()


def test_bench_forwards_arguments(tmp_path, monkeypatch):
    fake_checkout(tmp_path)
    seen = []

    def load_main(root):
        assert root == tmp_path.resolve()
        return lambda argv: seen.append(argv) or 0

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_bench, "load_main", load_main)
    assert cli.main(["bench", "--quick", "--cells", "lstm"]) == 0
    assert seen == [["--quick", "--cells", "lstm"]]


def test_bench_without_a_checkout_says_so(monkeypatch, capsys):
    monkeypatch.setattr(_bench, "find_checkout", lambda: None)
    assert cli.main(["bench"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_gradflow_compares_w_hh_initialisers_and_trains_each(tmp_path, capsys):
    """--init: a run per (activation, initialiser); the scaled identity's
    Jacobian gain is at most its scale (tanh' <= 1), the identity's at most 1;
    --train-steps trains each, seeds side by side."""
    rc = cli.main(["gradflow", "--init", "identity,scaled_identity", "--activations", "tanh",
                   "--identity-scale", "0.5", "--length", "6", "--hidden", "4", "--batch", "2",
                   "--train-steps", "2", "--train-seeds", "2", "--train-batch", "4", "--optimizer", "sgd",
                   "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    assert (tmp_path / "gradflow.png").is_file()
    data = json.loads((tmp_path / "gradflow.json").read_text())
    assert data["identity_scale"] == 0.5 and data["train"]["steps"] == 2
    runs = {r["init"]: r for r in data["runs"]}
    assert list(runs) == ["identity", "scaled_identity"]
    assert {r["activation"] for r in runs.values()} == {"tanh"}
    scaled, ident = runs["scaled_identity"]["spectrum"]["rate"], runs["identity"]["spectrum"]["rate"]
    assert scaled <= math.log(0.5) + 1e-5 and ident <= 1e-5 and scaled < ident
    assert all(len(r["gradflow"]) == 6 for r in runs.values())
    for r in runs.values():
        assert r["train"]["seeds"] == [0, 1] and len(r["train"]["test_mse"]) == 2
        assert all(math.isfinite(v) for v in r["train"]["test_mse"])
    captured = capsys.readouterr()
    assert "W_hh init" in captured.out and "test MSE after 2 steps" in captured.out
    assert "tanh, scaled_identity, training 2 steps" in captured.err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["gradflow", "--init", "identity,xavier"], ["--init", "xavier", "glorot"]),
        (["gradflow", "--init", "identity", "--cells", "lstm"], ["--cells", "--init", "exclude"]),
        (["gradflow", "--train-steps", "5"], ["--train-steps", "needs --init"]),
        (["gradflow", "--init", "he", "--activations", "sigmoid"], ["--activations", "sigmoid"]),
        (["train", "--task", "cue", "--length", "0"], ["--length", "0"]),
    ],
)
def test_gradflow_init_and_cue_bad_arguments(argv, words, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("jaxrnn"), err
    assert all(w in err for w in words), err
    assert not (tmp_path / "run").exists()


def test_train_runs_the_cue_answer_task(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "--task", "cue", "--length", "3", "--cell", "lstm", "--hidden", "4",
                   "--batch", "4", "--steps", "2", "--eval-every", "2", "--optimizer", "sgd",
                   "--out", str(out), "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert summary["task"] == "cue" and summary["metric"] == "accuracy"
    assert summary["baseline"] == pytest.approx(math.log(8))
    assert 0.0 <= summary["final_test_metric"] <= 1.0
    assert "cue T=3 lstm: test loss" in capsys.readouterr().out


def test_cue_distance_example_writes_results_and_reuses_them(tmp_path, capsys):
    """examples/cue_distance.py at a tiny size: a JSON entry per (cell, D) with
    an accuracy per seed, a plot, and --reuse that trains only what is new."""
    spec = importlib.util.spec_from_file_location("cue_distance", ROOT / "examples" / "cue_distance.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    common = ["--cells", "tanh", "--hidden", "4", "--steps", "2", "--block", "2", "--seeds", "2",
              "--batch", "4", "--test-size", "16", "--plot", str(tmp_path / "a.png")]
    assert example.main([*common, "--distances", "2", "--json", str(tmp_path / "a.json")]) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    (run,) = first["results"]
    assert (run["cell"], run["distance"], run["seeds"]) == ("tanh", 2, [0, 1])
    assert len(run["accuracy"]) == 2 and all(0.0 <= a <= 1.0 for a in run["accuracy"])
    assert (tmp_path / "a.png").is_file()
    capsys.readouterr()
    assert example.main([*common, "--distances", "2,3", "--reuse", str(tmp_path / "a.json"),
                         "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "reusing 1 runs" in out and "tanh  D=   3: test accuracy" in out and "D=   2: test" not in out
    second = json.loads((tmp_path / "b.json").read_text())
    assert [r["distance"] for r in second["results"]] == [2, 3] and second["results"][0] == run
    with pytest.raises(SystemExit):  # other settings: refused
        example.main([*common, "--distances", "2", "--hidden", "5", "--reuse", str(tmp_path / "a.json")])


def test_paper_calibration_example_runs_and_shifts_the_input_gate(tmp_path, capsys):
    """examples/paper_calibration.py at a tiny size: the evaluations against the
    task's baseline in JSON, and --input-bias moving only the LSTM's input gate."""
    spec = importlib.util.spec_from_file_location("paper_calibration",
                                                  ROOT / "examples" / "paper_calibration.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "copy.json"
    assert example.main(["--task", "copy", "--length", "3", "--cell", "lstm", "--hidden", "4",
                         "--clip-value", "1", "--batch", "4", "--steps", "2", "--eval-every", "1",
                         "--test", "8", "--input-bias", "-1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["baseline"] == pytest.approx(10 * math.log(8) / 23)
    assert [e["step"] for e in result["evals"]] == [1, 2]
    assert all(0.0 <= e["test_metric"] <= 1.0 and math.isfinite(e["test_loss"]) for e in result["evals"])
    assert "x baseline" in capsys.readouterr().out
    task, cell, key = jaxrnn.tasks.TemporalOrder(length=10), jaxrnn.LSTM(3), jax.random.PRNGKey(0)
    plain, shifted = (example.init_params(task, cell, key, bias) for bias in (None, -2.0))
    np.testing.assert_allclose(shifted["cell"].b[:3], plain["cell"].b[:3] - 2.0)
    np.testing.assert_array_equal(shifted["cell"].b[3:], plain["cell"].b[3:])
    with pytest.raises(SystemExit):  # --input-bias is for the LSTM
        example.main(["--task", "order", "--length", "10", "--cell", "gru", "--input-bias", "-1"])
