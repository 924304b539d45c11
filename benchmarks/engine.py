"""Fused engine vs autodiff through lax.scan: time per step and memory, fwd+bwd.

For each cell and (B, H) at sequence length T, this times the forward+backward
pass (``jax.grad`` of the sum of the outputs, with respect to params and
inputs) of ``impl="scan"`` and of the fused engine with each residual policy,
and reads the compiled temporary memory of the same jitted function.

Method: every implementation's outputs and gradients are first checked
against ``impl="scan"``; compilation is done (and timed) apart; each call is
blocked on; the figure is the median of ``--repeats`` calls.

Run:  python benchmarks/engine.py [--steps 1000] [--repeats 5] [--quick]
Writes benchmarks/results/engine-<time>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn as jr

try:
    from tqdm import tqdm
except ImportError:  # the bench extra installs it; run without a bar otherwise
    def tqdm(iterable, **_):
        return iterable

CELLS = {"LSTM": jr.LSTM, "GRU": jr.GRU}
IMPLS = {"scan": ("scan", "states"), "fused gates": ("fused", "gates"), "fused states": ("fused", "states")}


def measure(cell, params, xs, impl, residuals, repeats):
    def loss(p, x):
        return jnp.sum(jr.rnn(cell, p, x, impl=impl, residuals=residuals)[1])

    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    start = time.perf_counter()
    compiled = fn.lower(params, xs).compile()
    compile_s = time.perf_counter() - start
    result = jax.block_until_ready(compiled(params, xs))  # warm-up, and the answer to check
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, xs))
        times.append(time.perf_counter() - start)
    return {
        "seconds_median": statistics.median(times),
        "compile_seconds": compile_s,
        "temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
    }, result


def check(result, reference, what):
    """float32 sums over T·B terms: elementwise agreement up to a tolerance
    scaled to each array's largest entry."""
    for got, want in zip(jax.tree_util.tree_leaves(result), jax.tree_util.tree_leaves(reference)):
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-5 * scale, err_msg=what)


def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="T=100, B=8, H=32: a smoke run")
    args = parser.parse_args()
    sizes = [(8, 128), (32, 128), (64, 256)]
    T = args.steps
    if args.quick:
        sizes, T, args.repeats = [(8, 32)], 100, 2

    rows = []
    grid = [(c, b, h) for c in CELLS for b, h in sizes]
    for cell_name, B, H in tqdm(grid, desc="configs"):
        cell = CELLS[cell_name](H)
        params = cell.init(jax.random.PRNGKey(0), H)
        xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, H))
        reference = None
        for name, (impl, residuals) in IMPLS.items():
            stats, result = measure(cell, params, xs, impl, residuals, args.repeats)
            if reference is None:
                reference = result
            else:
                check(result, reference, f"{cell_name} B={B} H={H} {name}")
            rows.append({"cell": cell_name, "T": T, "B": B, "H": H, "I": H, "impl": name, **stats})

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = pathlib.Path(__file__).parent / "results" / f"engine-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    meta = {
        "command": " ".join([pathlib.Path(sys.executable).name, *sys.argv]),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores; JAX device: "
        f"{jax.devices()[0].device_kind} x{len(jax.devices())}",
        "versions": {"jax": jax.__version__, "jaxrnn": jr.__version__, "python": platform.python_version()},
        "dtype": "float32",
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))

    print(f"\n{meta['command']}  ({meta['machine']}; jax {jax.__version__})\n")
    print("| cell | B | H | impl | us/step fwd+bwd | temp MB | vs scan |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(s for s in rows if s["impl"] == "scan" and (s["cell"], s["B"], s["H"]) == (r["cell"], r["B"], r["H"]))
        print(
            f"| {r['cell']} | {r['B']} | {r['H']} | {r['impl']} | "
            f"{r['seconds_median'] / T * 1e6:.0f} | {r['temp_bytes'] / 1e6:.1f} | "
            f"{base['seconds_median'] / r['seconds_median']:.2f}x |"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
