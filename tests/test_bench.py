"""The benchmark suite (benchmarks/bptt/) keeps working: a tiny in-process run.

benchmarks/ is not collected by pytest; the suite is imported as the package
``benchmarks.bptt`` from the checkout's root, as ``jaxrnn bench`` imports it.
"""

from __future__ import annotations

import importlib
import json
import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn as jr

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bptt():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.bptt")


TINY = ["--cells", "lstm", "--T", "8", "--sizes", "2x4", "--repeats", "1", "--peak-size", "64"]


@pytest.fixture(scope="module")
def tiny_run(bptt, tmp_path_factory):
    """One run of main(): the fused engine and a Flax nn.RNN made wrong on purpose
    (its outputs scaled by 1.01), which the check must catch."""
    out = tmp_path_factory.mktemp("bench")
    right = bptt.runners.flax_apply

    def wrong(cell, dtype):
        apply = right(cell, dtype)

        def perturbed(variables, xs):
            final, ys = apply(variables, xs)
            return final, ys * jnp.asarray(1.01, ys.dtype)

        return perturbed

    bptt.runners.flax_apply = wrong
    try:
        code = bptt.main([*TINY, "--impls", "fused-default,fused-states,flax,cudnn", "--out", str(out)])
    finally:
        bptt.runners.flax_apply = right
    return code, out, json.loads((out / "results.json").read_text())


def test_outputs_hold_finite_numbers(tiny_run):
    _, out, result = tiny_run
    for name in ("results.md", "time_per_step.png", "memory.png"):
        assert (out / name).stat().st_size > 0, name
    meta = result["meta"]
    assert meta["command"].startswith("python -m benchmarks.bptt --cells lstm")
    assert {"jax", "flax", "jaxrnn"} <= set(meta["versions"])
    assert math.isfinite(meta["gemm_peak"]["gflops"]) and meta["gemm_peak"]["gflops"] > 0
    assert meta["loss"] == "readout"
    for impl in ("fused-default", "fused-states"):
        (row,) = [r for r in result["rows"] if r["impl"] == impl]
        assert row["status"] == "ok"
        assert row["check"]["max_rel_err"] <= row["check"]["tolerance"]
        for which in ("fwd", "fwdbwd"):
            stats = row[which]
            for key in ("seconds", "median_seconds", "us_per_step", "tokens_per_s", "gflops", "peak_share"):
                assert math.isfinite(stats[key]) and stats[key] > 0, (which, key)
            assert stats["seconds"] == min(stats["samples"]) <= stats["median_seconds"]
            assert stats["temp_bytes"] >= 0
    md = (out / "results.md").read_text()
    assert "| lstm | 8 | 2 | 4 | 4 | fused-states |" in md and "| lstm | 8 | 2 | 4 | 4 | fused-default |" in md
    assert "Loss (readout)" in md


def test_a_wrong_implementation_is_caught_and_not_timed(tiny_run):
    code, out, result = tiny_run
    (row,) = [r for r in result["rows"] if r["impl"] == "flax"]
    assert row["status"] == "check failed"
    assert "outputs" in row["reason"] and row["check"]["max_rel_err"] > row["check"]["tolerance"]
    assert row["fwd"] is None and row["fwdbwd"] is None
    assert code == 1
    assert "check failed" in (out / "results.md").read_text()


def test_skips_say_why(tiny_run, bptt):
    _, _, result = tiny_run
    (row,) = [r for r in result["rows"] if r["impl"] == "cudnn"]
    if jax.default_backend() == "cpu":
        assert row["status"] == "skipped" and "GPU" in row["reason"]
    plan = bptt.plan("scan", bptt.Case("lstm", 10000, 64, 512), "fp32", "cpu", full=False)
    assert plan.mode == "memory" and "memory only" in plan.reason
    plan = bptt.plan("fused-ckpt", bptt.Case("lstm", 100000, 8, 128), "fp32", "cpu", full=False)
    assert plan.mode == "time" and plan.passes == ("fwdbwd",)


def test_cudnn_packing_matches_jaxrnn(bptt):
    """The weights the GPU-only cuDNN path gets, run through jax.experimental.rnn's
    reference (same packed layout, runs anywhere), give jaxrnn's LSTM."""
    from jax.experimental import rnn as jrnn

    I, H, B, T = 3, 4, 2, 5
    cell = jr.LSTM(H)
    params = cell.init(jax.random.PRNGKey(0), I)
    params = params._replace(b=jax.random.normal(jax.random.PRNGKey(2), params.b.shape))
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
    flat = bptt.cudnn_pack(params)
    assert flat.shape == (jrnn.get_num_params_in_lstm(I, H, 1, False),)
    jax.tree_util.tree_map(np.testing.assert_array_equal, bptt.cudnn_unpack(flat, I, H), params)

    def lstm_ref(x, h0, c0, weights, lengths, *, input_size, hidden_size, num_layers, dropout, bidirectional):
        W_ih, W_hh, b_ih, b_hh = jrnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidirectional)
        return jrnn.lstm_ref(x, h0, c0, W_ih, W_hh, b_ih, b_hh, lengths, input_size, hidden_size, num_layers, dropout, bidirectional)

    final, ys = bptt.cudnn_apply(I, H, lstm=lstm_ref)(flat, xs)
    want_final, want_ys = jr.rnn(cell, params, xs, impl="scan")
    np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), final, want_final)


def test_docs_block_is_replaced_between_its_markers(bptt, tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# B\n\n## Running it\n\nbefore\n\n{bptt.BEGIN}\nold table\n{bptt.END}\n\nafter\n")
    png = tmp_path / "memory.png"
    png.write_bytes(b"png")
    for _ in range(2):  # a second run replaces the first one's block
        bptt.write_docs("| new | table |", [png], quick=True, page=page)
    text = page.read_text()
    assert "old table" not in text and text.count("| new | table |") == 1
    assert text.startswith("# B") and text.rstrip().endswith("after")
    assert "--quick" in text and "![memory](benchmarks/memory.png)" in text
    assert (tmp_path / "benchmarks" / "memory.png").read_bytes() == b"png"


def test_docs_fold_the_long_tables_away(bptt):
    md = "\n".join([
        "Command: `x`  ", "",
        "### Targets", "", "| target | measured | |", "|---|---|---|",
        "| a ≥ 2× Flax | 2.10× | met |", "| b ≥ 2× Flax | 1.10× | NOT met |", "",
        "### Results", "", "Times are µs per step.", "",
        "#### lstm", "", "| cell | T |", "|---|---|", "| lstm | 8 |", "| lstm | 16 |", "",
        "† compiled memory only.", "",
        "### Not timed", "", "- needs a GPU: cudnn lstm T=8 (2,4), cudnn lstm T=16 (2,4)",
        "- T=16, B\\*H > 8\\*128: torch lstm T=16 (2,4)", "",
    ])
    folded = bptt.report.fold(md)
    assert '??? note "Targets: 1 of 2 met"' in folded and "    | a ≥ 2× Flax | 2.10× | met |" in folded
    assert '??? note "Every row: lstm (2 rows)"' in folded and "    | lstm | 16 |" in folded
    assert '??? note "Not timed: 3 rows, and why"' in folded
    # the header, the prose and the footnote stay in view; nothing is lost
    assert "\nCommand: `x`  " in "\n" + folded and "\n† compiled memory only." in folded
    assert "### Results" in folded and "\nTimes are µs per step." in folded
    assert "### Targets" not in folded and "#### lstm" not in folded
    assert bptt.report.fold(folded) == folded


def test_gradient_alone_is_compiled_from_shapes(bptt):
    """The memory of jax.grad alone (no loss value): compiled from shapes, no data."""
    case = bptt.Case("gru", 16, 2, 4)
    shapes = bptt.abstract_inputs(case, jnp.float32)
    assert isinstance(shapes.xs, jax.ShapeDtypeStruct)
    runner = bptt.build_jax("fused-ckpt", case, shapes, (), K=4, execute=False, grad_memory=True)
    assert runner.fwd is None and runner.fwdbwd is None
    assert runner.temp_bytes["grad"] > 0


def test_no_module_state_is_mutated_by_a_run(bptt, tiny_run):
    """Settings travel as arguments: K of fused-ckpt comes from --ckpt-every or T."""
    assert bptt.checkpoint_every(100) == 10 and bptt.checkpoint_every(100, 7) == 7
    assert bptt.DOCS_PAGE == ROOT / "docs" / "benchmarks.md"


def test_default_output_is_under_the_current_folder(bptt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = bptt.main([*TINY, "--impls", "fused-states", "--no-plots", "--no-grad-memory"])
    assert code == 0
    (run,) = (tmp_path / "benchmarks" / "results").iterdir()
    assert (run / "results.json").is_file() and (run / "results.md").is_file()


def test_pallas_rows_gpu_grid_and_cpu_skip(bptt):
    """The GPU grid holds pallas rows at T=1000, B in {16, 64}, H in {128, 256, 512}
    (Triton-refused shapes skipped with the reason); on a CPU the pallas rows
    are skipped unless asked for; the cpu-targets grid has the targets' sizes.
    Plans only: nothing is run."""
    args = bptt.cli.parse_args(["--grid", "gpu"])
    assert {"pallas-states", "pallas-gates", "fused-states", "scan", "flax", "torch", "cudnn"} <= set(args.impls)
    cases = bptt.grid_cases(args.cells, args.T, args.sizes, args.grid)
    assert {(c.B, c.H) for c in cases if c.T == 1000} == {(B, H) for B in (16, 64) for H in (128, 256, 512)}
    assert any(c.T == 10000 for c in cases) and not args.pallas_cpu
    pallas = lambda H, dtype: bptt.plan("pallas-states", bptt.Case("lstm", 1000, 16, H), dtype, "gpu", full=False)
    assert pallas(128, "fp32").mode == "time" and pallas(256, "bf16").mode == "time"
    assert pallas(256, "fp32").mode == "skip" and "Triton" in pallas(256, "fp32").reason
    assert pallas(512, "bf16").mode == "skip"
    case = bptt.Case("lstm", 1000, 8, 64)
    on_cpu = bptt.plan("pallas-states", case, "fp32", "cpu", full=False)
    assert on_cpu.mode == "skip" and on_cpu.reason == bptt.PALLAS_ON_CPU
    assert bptt.plan("pallas-states", case, "fp32", "cpu", full=False, pallas_cpu=True).mode == "time"
    assert bptt.cli.parse_args(["--impls", "pallas-gates"]).pallas_cpu
    assert bptt.cli.parse_args(["--pallas-interpret"]).pallas_cpu and not bptt.cli.parse_args([]).pallas_cpu
    args = bptt.cli.parse_args(["--grid", "cpu-targets"])
    assert args.impls[0] == "fused-default" and args.torch_threads == 2 and args.T == (1000,)
    cases = bptt.grid_cases(args.cells, args.T, args.sizes, args.grid)
    assert {(c.cell, c.B, c.I, c.H) for c in cases} == {
        ("lstm", 8, 32, 128), ("lstm", 32, 32, 128), ("lstm", 64, 256, 256), ("gru", 8, 32, 128), ("gru", 32, 32, 128)}


def test_interleaved_rounds_rotate_within_the_budget(bptt):
    """Every implementation runs once per round, fwd then fwd+bwd, in an order
    that rotates between rounds; a measurement slower than the budget allows
    takes fewer rounds, and one slower than the whole budget is its first call."""
    now, log = [0.0], []
    cost = {"a": 1.0, "b": 2.0, "c": 3.0, "slow": 100.0}

    def call(impl, name):
        def fn():
            log.append((impl, name))
            now[0] += cost[impl] + len(log) % 3  # noise: 0, 1 or 2 s more
        return fn

    calls = {i: {"fwd": call(i, "fwd"), "fwdbwd": call(i, "fwdbwd")} for i in ("a", "b", "c")}
    calls["slow"] = {"fwdbwd": call("slow", "fwdbwd")}
    firsts = {i: {name: cost[i] for name in calls[i]} for i in calls}
    firsts["c"]["fwdbwd"] = 5.0  # 10 s of budget: two calls
    samples, failed = bptt.time_interleaved(calls, firsts, repeats=3, budget=10.0, clock=lambda: now[0])
    assert not failed
    both = lambda i: [(i, "fwd"), (i, "fwdbwd")]
    assert log == [  # round by round; "slow" is in the rotation but takes no round
        *both("a"), *both("b"), *both("c"),
        *both("b"), *both("c"), *both("a"),
        ("c", "fwd"), *both("a"), *both("b"),
    ]
    assert [len(samples[i]["fwd"]) for i in "abc"] == [3, 3, 3] and len(samples["c"]["fwdbwd"]) == 2
    assert samples["slow"]["fwdbwd"] == [100.0]  # its first call, no more
    assert ("slow", "fwdbwd") not in log
    assert all(s >= cost[i] for i in "abc" for s in samples[i]["fwd"])
    assert bptt.rotation(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_readout_loss_is_the_same_for_every_impl(bptt):
    """The default loss, a readout and squared error, gives the reference's
    value and gradients through jaxrnn's default call, Flax and PyTorch."""
    case = bptt.Case("gru", 6, 2, 4, 3)
    inputs = bptt.make_inputs(case, jnp.float32)
    assert inputs.loss == "readout" and [w.shape for w in inputs.weights] == [(4, 1), (2, 6, 1)]
    ref = bptt.reference(case, inputs, "cpu")
    ys = ref.fwd[1]
    want = np.mean((ys @ np.asarray(inputs.weights[0], np.float64) - np.asarray(inputs.weights[1])) ** 2)
    np.testing.assert_allclose(ref.fwdbwd[0], want, rtol=1e-5)
    impls = ["fused-default", "flax"] + (["torch"] if bptt.grid.torch_or_none() is not None else [])
    for impl in impls:
        runner = bptt.build(impl, case, inputs, ("fwd", "fwdbwd"), K=2, torch_threads=1)
        _, failure = bptt.check(runner, {"fwd": runner.fwd(), "fwdbwd": runner.fwdbwd()}, ref, 1e-5)
        assert failure is None, (impl, failure)
    linear = bptt.make_inputs(case, jnp.float32, loss="linear")
    assert [w.shape for w in linear.weights] == [(2, 6, 4)]


def test_parallel_benchmark_checks_and_reports(tmp_path):
    # benchmarks.parallel at a tiny size: rows checked against impl="scan",
    # finite times, a results.json and the crossover table.
    import json

    from benchmarks import parallel

    code = parallel.main([
        "--parts", "linear", "--linear-cells", "mingru", "--linear-T", "40",
        "--linear-long-cells", "mingru", "--linear-size", "2x3x4", "--repeats", "1",
        "--no-plots", "--out", str(tmp_path),
    ])
    assert code == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert {r["impl"] for r in rows} >= {"scan"} and len(rows) >= 2
    for r in rows:
        assert r["status"] == "ok" and r["check"]["max_rel_err"] < 1e-4
        assert r["fwdbwd"]["ms"] > 0 and r["memory"]["total"] > 0
    assert "Crossovers" in (tmp_path / "results.md").read_text()
