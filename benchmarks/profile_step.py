"""Where one forward+backward of ``jr.rnn`` spends its time, by XLA thunk.

Traces a few calls of ``jax.value_and_grad`` of the benchmark's readout loss
with ``jax.profiler`` and sums the duration of each XLA CPU thunk (dot,
fusion, while loop ...) per time step, largest first::

    python -m benchmarks.profile_step --cell lstm --batch 8 --input 32 --hidden 128

A dot inside the loop appears about once per step; a chunk's batched GEMMs
once per chunk. Thunks run on several threads; their times are summed over
the threads. The figures are wall time of each thunk, so nested ones (a
``while`` and what runs in it) overlap.
"""

from __future__ import annotations

import argparse
import collections
import glob
import tempfile

import jax
import jax.numpy as jnp
from jax._src.lib import _profile_data

import jaxrnn as jr


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", choices=sorted(jr.cells.NAMED_CELLS), default="lstm")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--residuals", default="auto")
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args(argv)
    residuals = int(args.residuals) if args.residuals.isdigit() else args.residuals

    cell = jr.cells.NAMED_CELLS[args.cell](args.hidden)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = cell.init(keys[0], args.input)
    xs = jax.random.normal(keys[1], (args.batch, args.steps, args.input))
    w_out = jax.random.normal(keys[2], (args.hidden, 1)) / args.hidden**0.5
    target = jax.random.normal(keys[3], (args.batch, args.steps, 1))

    def loss(params, xs):
        _, ys = jr.rnn(cell, params, xs, residuals=residuals)
        return jnp.mean((ys @ w_out - target) ** 2)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    print(f"compiling {args.cell} B={args.batch} I={args.input} H={args.hidden} T={args.steps} ...")
    for _ in range(2):
        jax.block_until_ready(step(params, xs))
    print(f"tracing {args.calls} calls ...")
    out = tempfile.mkdtemp()
    with jax.profiler.trace(out):
        for _ in range(args.calls):
            jax.block_until_ready(step(params, xs))
    path = glob.glob(f"{out}/**/*.xplane.pb", recursive=True)[0]
    total: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for plane in _profile_data.ProfileData.from_file(path).planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):  # the XLA CPU threads
                continue
            for event in line.events:
                if event.name.startswith("ThunkExecutor"):  # the wrapper of the others
                    continue
                total[event.name] += event.duration_ns
                count[event.name] += 1
    per_step = args.calls * args.steps * 1e3
    print(f"{'us/step':>8}  {'calls/step':>10}  thunk")
    for name, ns in total.most_common(args.top):
        calls = count[name] / args.calls / args.steps
        print(f"{ns / per_step:8.2f}  {calls:10.3f}  {name}")


if __name__ == "__main__":
    main()
