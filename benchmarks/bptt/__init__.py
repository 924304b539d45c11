"""Backpropagation through time: jaxrnn against the RNNs people use today.

For each cell (LSTM, GRU, tanh RNN), sequence length T and (batch B, hidden H),
with input size I = H (or I given: ``--sizes BxIxH``), this times the forward
pass and the forward+backward pass of:

=============  ==============================================================
impl           what
=============  ==============================================================
fused-default  ``jr.rnn(cell, params, xs)``: no impl, no residuals, whatever
               this jaxrnn's defaults are (impl="auto": the fused engine on a CPU)
fused-gates    ``jr.rnn(impl="fused", residuals="gates")``
fused-states   ``jr.rnn(impl="fused", residuals="states")``
fused-ckpt     ``jr.rnn(impl="fused", residuals=K)``, ``K = ceil(sqrt(T))``
pallas-gates   ``jr.rnn(impl="pallas", residuals="gates")``: the fused engine, each
               chunk's recurrence one Pallas kernel (Triton on a GPU)
pallas-states  ``jr.rnn(impl="pallas", residuals="states")``
pallas-ckpt    ``jr.rnn(impl="pallas", residuals=K)``; pallas-* rows are skipped
               on a CPU (the Pallas interpreter) unless named in ``--impls``
               or ``--pallas-interpret``, and where the kernel refuses the
               shape (Triton: H a power of two, 16-128 fp32, 16-256 bf16)
scan           ``jr.rnn(impl="scan")``: autodiff through ``lax.scan``
scan-remat     ``lax.scan`` over ``jax.checkpoint(cell step)``: keeps only
               the carry of every step and recomputes the step in the backward
flax           Flax ``nn.RNN`` over ``nn.LSTMCell`` / ``nn.GRUCell`` /
               ``nn.SimpleCell`` (weights from ``jaxrnn.interop.to_flax_params``)
torch          PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (CPU or CUDA), when
               torch is importable (weights from ``jaxrnn.interop.to_torch``)
cudnn          ``jax.experimental.rnn.lstm`` (cuDNN), LSTM, float32, GPU only
=============  ==============================================================

"fwd" is the jitted forward (outputs and final state); "fwd+bwd" is
``jax.value_and_grad`` of the loss with respect to the params and the inputs,
jitted (torch: the same loss, ``.backward()``). The loss (``--loss``) is by
default ``readout``: ``mean((ys @ w_out - target)**2)``, a linear readout
``w_out (H, 1)`` and squared error against ``target (B, T, 1)``, both fixed
random, nonlinear in the outputs as in training; ``linear`` is
``sum(ys * w)`` (``w (B, T, H)`` fixed random), whose gradient with respect
to the outputs is a constant. Every implementation, and the check, use the
same loss.

Method. Before anything is timed, every implementation's outputs, final state
and gradients (params, in jaxrnn's layout, and inputs) are checked against
jaxrnn's reference (``impl="scan"``, float32, ``Precision.HIGHEST``): the
relative L2 error of each array must be below a tolerance set by the dtype and
the device. An implementation that fails is reported and not timed. For T above
``--check-steps`` the check runs the same implementation (same K) at
T = ``--check-steps``. Compilation is ahead of time and timed apart. The
implementations of one case are all compiled, checked and called once first,
then timed together in ``--repeats`` rounds: each round runs every
implementation once (fwd, then fwd+bwd, each call blocking on its results), in
an order that rotates between rounds, so that a noisy neighbour does not fall
on one implementation only. A measurement takes part in fewer rounds when its
calls would take more than ``--budget`` seconds together (a call longer than
that is timed once, by its first call after compilation). Reported: the best
(min) over the rounds, the headline and the basis of every ratio and rate, and
the median beside it.

Also reported: time per step, tokens per second (B*T / time), achieved GFLOP/s as a
share of the device's GEMM peak measured in the same run (a square matmul in
the run's dtype), and memory: the compiled temporary bytes of each jitted
function (``memory_analysis().temp_size_in_bytes``, deterministic), and the
device's peak bytes in use where it reports them (GPU). FLOPs are the model's:
``2*B*(I+H)*G*H`` per step forward (G gates), three times that for
forward+backward; recomputation is not counted.

Output (``--out DIR``, default ``benchmarks/results/bptt-<time>/`` under the
current folder):
``results.json`` (machine, versions, command, every row), ``results.md`` (the
tables) and three plots (``time_per_step.png``, ``memory.png``,
``speedup_vs_flax.png``). ``--docs`` also writes the tables into
``docs/benchmarks.md`` (between its markers) and the plots into
``docs/benchmarks/``. What runs at which size: see :func:`plan`.

Run::

    python -m benchmarks.bptt --quick          # < 2 min on 2 CPU cores
    python -m benchmarks.bptt                  # the default grid (see --help)
    python -m benchmarks.bptt --dtype bf16     # on a GPU
    bash benchmarks/gpu.sh                     # the GPU grid, fp32 and bf16 (~8 min, H100/H200)
    python -m benchmarks.bptt --grid gpu --list gpu   # its rows and skips, without running
    python -m benchmarks.bptt --grid cpu-targets      # the CPU speed targets' sizes (T=1000)

The package reads in order: :mod:`.grid` (what runs where), :mod:`.runners`
(each implementation), :mod:`.check`, :mod:`.timing`, :mod:`.run` (one row),
:mod:`.report` and :mod:`.cli` (the options and the run).
"""

from .check import Reference, check, reference, relative_errors, tolerance
from .cli import main, parser
from .grid import (
    CELLS, CPU_TARGETS_GRID, DTYPES, GPU_GRID, GRIDS, IMPLS, PALLAS_IMPLS, PALLAS_ON_CPU, QUICK, Case, Plan,
    availability, checkpoint_every, grid_cases, plan,
)
from .report import BEGIN, DOCS_PAGE, END, markdown, plots, write_docs
from .runners import (
    LOSSES,
    Inputs,
    Runner,
    abstract_inputs,
    build,
    build_jax,
    build_torch,
    cudnn_apply,
    cudnn_pack,
    cudnn_unpack,
    loss_of,
    make_inputs,
)
from .timing import rotation, time_interleaved

__all__ = ["main"]
