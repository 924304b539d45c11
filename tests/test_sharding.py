"""The fused engine and the training step under every way of sharding the batch.

Several devices need ``XLA_FLAGS=--xla_force_host_platform_device_count`` set
before JAX starts, so the checks run in subprocesses: ONE with four host
devices for all single-process modes (Auto and Explicit meshes, ``shard_map``),
and one pair of processes for multi-process training. ``vmap`` over params
(ensembles) and grad of grad of the fused engine are checked in-process by
``test_kernels.py::test_compositions``.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

TESTS = str(pathlib.Path(__file__).parent)
ENV = dict(os.environ, JAX_PLATFORMS="cpu")

# Each check prints "OK <name>" or "FAIL <name>: <error>", so that one failing
# mode does not hide the others and each test reports its own.
FOUR_DEVICES = textwrap.dedent(
    """
    import sys, time, traceback
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    sys.path.insert(0, {tests!r})
    from test_training import OPT, init_params, loss_fn, make_batch
    import jaxrnn as jr
    from jaxrnn.training import TrainState, make_train_step

    assert len(jax.devices()) == 4, jax.devices()
    close = lambda a, b: jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), a, b)

    def check(name):
        def run(fn):
            start = time.perf_counter()
            try:
                fn()
            except Exception:
                print(f"FAIL {{name}}: {{traceback.format_exc()[-3000:]}}")
            else:
                print(f"OK {{name}} ({{time.perf_counter() - start:.1f}} s)")
        return run

    batches = [make_batch(jax.random.PRNGKey(i)) for i in range(3)]
    one, s1, losses = make_train_step(loss_fn, OPT), TrainState.create(init_params(), OPT), []
    for batch in batches:
        s1, m1 = one(s1, batch)
        losses.append(m1["loss"])

    def train(mesh):
        \"\"\"Three steps over 4 devices, checked against one device; the batch type the loss saw.\"\"\"
        seen = []
        def spied(params, batch):
            seen.append(jax.typeof(batch[0]).sharding.spec)
            return loss_fn(params, batch)
        four, s4 = make_train_step(spied, OPT, mesh=mesh), TrainState.create(init_params(), OPT)
        for batch, loss in zip(batches, losses):
            s4, m4 = four(s4, batch)
            np.testing.assert_allclose(m4["loss"], loss, rtol=1e-5)
        assert len(s4.params["w"].sharding.device_set) == 4
        close(s4.params, s1.params)
        return four, s4, seen

    @check("auto_mesh")
    def _():
        four, s4, _ = train(jax.sharding.Mesh(np.array(jax.devices()), ("data",)))
        try:
            four(s4, make_batch(jax.random.PRNGKey(9), n=6))
        except ValueError as e:
            assert "divisible by the 4 devices" in str(e), e
        else:
            raise AssertionError("an indivisible batch was accepted")

    @check("explicit_mesh")
    def _():
        mesh = jax.make_mesh((4,), ("data",))
        assert mesh.axis_types == (jax.sharding.AxisType.Explicit,), mesh.axis_types
        _, _, seen = train(mesh)
        # traced once, with the batch sharded over "data" (data parallel, not replicated)
        assert len(seen) == 1 and seen[0][0] == "data", seen

    # jr.rnn itself, fused against scan on one device: an LSTM (two state
    # leaves) with lengths.
    cell = jr.LSTM(4)
    params = cell.init(jax.random.PRNGKey(1), 3)
    xs = jax.random.normal(jax.random.PRNGKey(2), (8, 5, 3))
    lengths = jnp.array([5, 1, 3, 0, 5, 4, 2, 5])

    def loss(impl, residuals="states", **kw):
        def f(p, x, n):
            final, ys = jr.rnn(cell, p, x, seq_lengths=n, impl=impl, residuals=residuals, **kw)
            return jnp.sum(ys ** 2) + jnp.sum(final.c ** 2)
        return f

    want = {{r: jax.jit(jax.value_and_grad(loss("scan", reverse=r), (0, 1)))(params, xs, lengths)
            for r in [False, True]}}

    @check("explicit_rnn")
    def _():
        mesh = jax.make_mesh((4,), ("data",))
        with jax.set_mesh(mesh):
            x = jax.device_put(xs, P("data"))
            n = jax.device_put(lengths, P("data"))
            p = jax.device_put(params, P())
            f = jax.jit(jax.value_and_grad(loss("fused", residuals=2, reverse=True), (0, 1)))
            got = f(p, x, n)
            assert got[1][1].sharding.spec[0] == "data", got[1][1].sharding
            close(got, want[True])
        # the batch sharded, the params on no mesh (or the other way round)
        f = jax.jit(jax.value_and_grad(loss("fused"), (0, 1)))
        close(f(params, jax.device_put(xs, NamedSharding(mesh, P("data"))), lengths), want[False])
        close(f(jax.device_put(params, NamedSharding(mesh, P())), xs, lengths), want[False])

    @check("explicit_rnn_dropout")
    def _():
        # Dropout's masks (drawn inside jr.rnn, replicated) enter the
        # per-shard kernel split like the batch.
        drop = dict(dropout=0.2, recurrent_dropout=0.3, zoneout=0.2, key=jax.random.key(3))
        want = jax.jit(jax.value_and_grad(loss("scan", **drop), (0, 1)))(params, xs, lengths)
        mesh = jax.make_mesh((4,), ("data",))
        with jax.set_mesh(mesh):
            x = jax.device_put(xs, P("data"))
            n = jax.device_put(lengths, P("data"))
            p = jax.device_put(params, P())
            f = jax.jit(jax.value_and_grad(loss("fused", residuals=2, **drop), (0, 1)))
            close(f(p, x, n), want)

    def per_shard(mesh, impl="fused"):
        def f(p, x, n):
            local = jax.shard_map(
                lambda p, x, n: jax.lax.psum(loss(impl)(p, x, n), "data"),
                mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P())
            return local(p, x, n)
        return jax.jit(jax.value_and_grad(f, (0, 1)))

    @check("shard_map")
    def _():
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
        close(per_shard(mesh)(params, xs, lengths), want[False])
        close(per_shard(mesh, "scan")(params, xs, lengths), want[False])  # the reference too
        mesh = jax.make_mesh((4,), ("data",))
        sharded = NamedSharding(mesh, P("data"))
        x, n = jax.device_put(xs, sharded), jax.device_put(lengths, sharded)
        close(per_shard(mesh)(jax.device_put(params, NamedSharding(mesh, P())), x, n), want[False])
    """
)


@pytest.fixture(scope="module")
def four_devices() -> str:
    env = dict(ENV, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    code = FOUR_DEVICES.format(tests=TESTS)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _result(stdout: str, name: str) -> None:
    for line in stdout.split("\n"):
        if line.startswith(f"OK {name} "):
            return
    failure = stdout[stdout.find(f"FAIL {name}:"):] if f"FAIL {name}:" in stdout else stdout
    pytest.fail(f"{name} did not pass:\n{failure[:4000]}")


def test_train_step_over_an_auto_mesh_equals_one_device(four_devices):
    """``jax.sharding.Mesh``: Auto axes; the indivisible batch is refused."""
    _result(four_devices, "auto_mesh")


def test_train_step_over_an_explicit_mesh_equals_one_device(four_devices):
    """``jax.make_mesh``: Explicit axes; the step traces once and sees the
    batch sharded over "data"."""
    _result(four_devices, "explicit_mesh")


def test_fused_rnn_under_explicit_sharding_equals_scan(four_devices):
    """Inputs typed as sharded over an Explicit mesh (with lengths, reverse,
    checkpointed residuals); also the batch and the params on different meshes."""
    _result(four_devices, "explicit_rnn")


def test_fused_rnn_with_dropout_under_explicit_sharding_equals_scan(four_devices):
    """Recurrent dropout and zoneout with the batch on an Explicit mesh: the
    same masks as the scan on one device."""
    _result(four_devices, "explicit_rnn_dropout")


def test_fused_rnn_inside_shard_map_equals_scan(four_devices):
    """The user's own ``shard_map`` over a data axis, Auto and Explicit."""
    _result(four_devices, "shard_map")


TWO_PROCESSES = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address="localhost:{port}", num_processes=2,
                               process_id=int(sys.argv[1]), initialization_timeout=60)
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_training import OPT, init_params, loss_fn, make_batch
    from jaxrnn.training import TrainState, make_train_step

    me = jax.process_index()
    assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
    mesh = jax.make_mesh((4,), ("data",))
    # This process's rows: those of its devices' positions on the "data" axis.
    rows = [i for i, d in enumerate(mesh.devices) if d.process_index == me]
    assert rows == [2 * me, 2 * me + 1], rows

    step = make_train_step(loss_fn, OPT, mesh=mesh, local_batch=True)
    one = make_train_step(loss_fn, OPT)                # this process alone, on every row
    state, ref = TrainState.create(init_params(), OPT), TrainState.create(init_params(), OPT)
    for i in range(3):
        xs, ys = make_batch(jax.random.PRNGKey(i), n=8)  # 2 rows for each of 4 devices
        mine = slice(4 * me, 4 * me + 4)
        state, metrics = step(state, (xs[mine], ys[mine]))
        ref, want = one(ref, (xs, ys))
        np.testing.assert_allclose(float(metrics["loss"]), float(want["loss"]), rtol=1e-5)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-6),
        state.params, ref.params)
    print("TWO-PROCESS-OK", me)
    """
)


def test_two_processes_with_local_batches_train_as_one():
    """``jax.distributed`` on localhost: 2 processes x 2 host devices over gloo,
    each passing its own half of the batch (``local_batch=True``), reach the
    parameters one process reaches on the whole batch."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(ENV, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    code = TWO_PROCESSES.format(port=port, tests=TESTS)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(i)], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(2)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=180))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for i, (p, (out, err)) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"process {i}:\n{err[-3000:]}"
        assert f"TWO-PROCESS-OK {i}" in out


def test_local_batch_arguments():
    from test_training import OPT, loss_fn

    from jaxrnn.training import make_train_step

    with pytest.raises(TypeError, match=r"local_batch must be a bool, got str"):
        make_train_step(loss_fn, OPT, local_batch="yes")
    with pytest.raises(ValueError, match=r"local_batch=True needs a mesh .* got mesh=None"):
        make_train_step(loss_fn, OPT, local_batch=True)
