"""Bad input raises a clear error naming the argument, the expected and the received."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn as jr

KEY = jax.random.PRNGKey(0)
LSTM = jr.LSTM(4)
PARAMS = LSTM.init(KEY, 3)
XS = jnp.ones((2, 5, 3))


def run(**overrides):
    args = dict(cell=LSTM, params=PARAMS, xs=XS, state=None)
    kwargs = {k: overrides.pop(k) for k in list(overrides) if k not in args}
    args.update(overrides)
    kwargs.setdefault("impl", "scan")
    return jr.rnn(args["cell"], args["params"], args["xs"], args["state"], **kwargs)


CASES = {
    # inputs
    "xs rank": (dict(xs=jnp.ones((3,))), ValueError, r"xs must have shape \(\*batch, time, features\).*got shape \(3,\)"),
    "xs rank time-major": (dict(xs=jnp.ones((3,)), time_major=True), ValueError, r"xs must have shape \(time, \*batch, features\)"),
    "xs features": (dict(xs=jnp.ones((2, 5, 7))), ValueError, r"xs must have 3 features.*got shape \(2, 5, 7\)"),
    "xs integer": (dict(xs=jnp.ones((2, 5, 3), jnp.int32)), TypeError, r"xs must have a floating dtype, got int32"),
    "xs not array": (dict(xs=[[1.0, 2.0, 3.0]]), TypeError, r"xs must be an array .* got list"),
    "xs other float": (dict(xs=jnp.ones((2, 5, 3), jnp.bfloat16)), TypeError, r"xs has dtype bfloat16 but params have dtype float32"),
    # seq_lengths
    "lengths shape": (dict(seq_lengths=jnp.array([5])), ValueError, r"seq_lengths must have the batch shape of xs, \(2,\), got shape \(1,\)"),
    "lengths scalar": (dict(seq_lengths=jnp.array(5)), ValueError, r"seq_lengths must have the batch shape of xs, \(2,\), got shape \(\)"),
    "lengths dtype": (dict(seq_lengths=jnp.array([5.0, 2.0])), TypeError, r"seq_lengths must have an integer dtype, got float32"),
    "lengths bool": (dict(seq_lengths=jnp.array([True, False])), TypeError, r"seq_lengths must have an integer dtype, got bool"),
    "lengths too long": (dict(seq_lengths=jnp.array([6, 2])), ValueError, r"seq_lengths must lie in \[0, 5\].*got values from 2 to 6"),
    "lengths negative": (dict(seq_lengths=np.array([-1, 2])), ValueError, r"seq_lengths must lie in \[0, 5\].*from -1 to 2"),
    # state
    "state shape": (dict(state=LSTM.initial_state((3,))), ValueError, r"state.h must have shape \(2, 4\).*got shape \(3, 4\)"),
    "state c shape": (dict(state=jr.LSTMState(jnp.zeros((2, 4)), jnp.zeros((2, 5)))), ValueError, r"state.c must have shape \(2, 4\).*got shape \(2, 5\)"),
    "state structure": (dict(state=jnp.zeros((2, 4))), TypeError, r"state must be LSTMState for LSTM, got an array of shape \(2, 4\)"),
    "state dtype": (dict(state=LSTM.initial_state((2,), jnp.float16)), TypeError, r"state.h must have dtype float32 .*got float16"),
    "gru state shape": (dict(cell=jr.GRU(4), params=jr.GRU(4).init(KEY, 3), state=jnp.zeros((4,))), ValueError, r"state must have shape \(2, 4\).*got shape \(4,\)"),
    # params
    "params of another cell": (dict(params=jr.GRU(4).init(KEY, 3)), TypeError, r"params must be a LSTMParams for LSTM, got a GRUParams"),
    "params of another size": (dict(params=jr.LSTM(8).init(KEY, 3)), ValueError, r"params.w_ih must have shape \(3, 16\) for LSTM\(hidden_size=4\).*got shape \(3, 32\)"),
    "params mixed dtypes": (dict(params=PARAMS._replace(b=PARAMS.b.astype(jnp.float16))), TypeError, r"all of params must share one dtype: params.w_ih is float32, params.b is float16"),
    "params not a tuple": (dict(params={"w_ih": 1}), TypeError, r"params must be a LSTMParams for LSTM, got dict"),
    "params integer": (dict(params=jax.tree_util.tree_map(lambda a: a.astype(jnp.int32), PARAMS), xs=XS), TypeError, r"params.w_ih must have a floating dtype, got int32"),
    "cell": (dict(cell="lstm"), TypeError, r"cell must be a jaxrnn Cell, got str 'lstm'"),
    # options
    "impl": (dict(impl="cudnn"), ValueError, r"impl must be one of \('auto', 'fused', 'pallas', 'parallel', 'scan'\), got 'cudnn'"),
    "residuals name": (dict(residuals="all"), ValueError, r"residuals must be one of \('auto', 'gates', 'states'\) or a positive int.*got 'all'"),
    "residual_budget": (dict(residual_budget=0), ValueError, r"residual_budget must be a positive int, got 0"),
    "residuals zero": (dict(residuals=0), ValueError, r"residuals must be a positive int, got 0"),
    "residuals float": (dict(residuals=2.5), TypeError, r"residuals must be one of .* got float 2.5"),
    "bptt_clip negative": (dict(bptt_clip=-1.0), ValueError, r"bptt_clip must be a positive float, got -1.0"),
    "bptt_clip string": (dict(bptt_clip="1"), TypeError, r"bptt_clip must be a positive float, got str"),
    "unroll": (dict(unroll=0), ValueError, r"unroll must be a positive int, got 0"),
    "reverse": (dict(reverse="yes"), TypeError, r"reverse must be a bool, got str 'yes'"),
    "time_major": (dict(time_major=1), TypeError, r"time_major must be a bool, got int 1"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_rnn_rejects_bad_input(case):
    overrides, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        run(**overrides)


@pytest.mark.parametrize(
    "make, error, pattern",
    [
        (lambda: jr.LSTM(0), ValueError, r"hidden_size must be a positive int, got 0"),
        (lambda: jr.GRU(-3), ValueError, r"hidden_size must be a positive int, got -3"),
        (lambda: jr.SimpleRNN(2.0), TypeError, r"hidden_size must be a positive int, got float 2.0"),
        (lambda: jr.IRNN(True), TypeError, r"hidden_size must be a positive int, got bool True"),
        (lambda: jr.SimpleRNN(4, activation="sigmoid"), ValueError, r"activation must be one of \['relu', 'tanh'\] or a callable, got 'sigmoid'"),
        (lambda: jr.SimpleRNN(4, activation=3), TypeError, r"activation must be a string or a callable, got int 3"),
        (lambda: jr.GRU(4, reset_after="no"), TypeError, r"reset_after must be a bool, got str 'no'"),
        (lambda: jr.LSTM(4, forget_bias="1"), TypeError, r"forget_bias must be a float, got str '1'"),
        (lambda: jr.IRNN(4, scale=None), TypeError, r"scale must be a float, got NoneType None"),
        (lambda: LSTM.init(KEY, 0), ValueError, r"input_size must be a positive int, got 0"),
        (lambda: LSTM.init(KEY, 3, dtype=jnp.int32), TypeError, r"dtype must be a floating dtype, got int32"),
        (lambda: LSTM.initial_state((2, -1)), TypeError, r"batch_shape must be a tuple of non-negative ints"),
        (lambda: LSTM.initial_state((2,), dtype="int8"), TypeError, r"dtype must be a floating dtype, got int8"),
    ],
)
def test_configs_reject_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_out_of_range_lengths_are_only_checked_when_concrete():
    # Under jit the values are unknown; the shape and dtype checks still run.
    f = jax.jit(lambda lengths: run(seq_lengths=lengths)[1])
    assert f(jnp.array([5, 0])).shape == (2, 5, 4)
    with pytest.raises(ValueError, match="seq_lengths must have the batch shape"):
        f(jnp.array([5, 0, 1]))


def test_stacks_reject_bad_structure():
    layers = [jr.LSTM(4), (jr.GRU(3), jr.GRU(3))]
    params = jr.init_stacked(KEY, layers, 3)
    with pytest.raises(ValueError, match=r"params must hold one item per layer \(2\), got 1"):
        jr.stacked_rnn(layers, params[:1], XS, impl="scan")
    with pytest.raises(TypeError, match=r"layers\[1\] must be a \(forward, backward\) pair"):
        jr.stacked_rnn([jr.LSTM(4), (jr.GRU(3),)], params, XS, impl="scan")
    with pytest.raises(TypeError, match=r"layers must be a non-empty sequence"):
        jr.init_stacked(KEY, [], 3)
    with pytest.raises(ValueError, match=r'merge="sum" needs equal output sizes, got 4 \(forward\) and 3'):
        jr.bidirectional_rnn((jr.LSTM(4), jr.GRU(3)), (PARAMS, jr.GRU(3).init(KEY, 3)), XS, merge="sum", impl="scan")
    with pytest.raises(ValueError, match=r"merge must be one of \['concat', 'sum'\]"):
        jr.bidirectional_rnn((LSTM, LSTM), (PARAMS, PARAMS), XS, merge="max", impl="scan")
