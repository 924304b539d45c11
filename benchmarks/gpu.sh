#!/usr/bin/env bash
# The GPU benchmark of the Pallas kernels, fp32 then bf16, in one command:
#
#   bash benchmarks/gpu.sh [RUN_DIR]       # from the checkout's root; about 8 minutes on an H100/H200
#
# Runs `python -m benchmarks.bptt --grid gpu` (see GPU_GRID in
# benchmarks/bptt/grid.py: lstm,gru; T=1000 at B in 16,64 x H in 128,256,512,
# T=10000 at 16x128,64x128; pallas-states, pallas-gates, fused-states, scan,
# flax, torch (cuDNN, when torch with CUDA is installed), cudnn
# (jax.experimental.rnn, LSTM fp32)) once per dtype. Each run checks every row
# against impl="scan" before timing it. Rows not begun within the time budget
# (TOTAL_S, default 450 s of rows for both dtypes; fp32 gets FP32_S of it) are
# listed under "Not timed" instead of running, so the command ends on time.
#
# Writes RUN_DIR (default benchmarks/results/gpu-<time>/, which git ignores):
# log.txt, fp32/ and bf16/ (each: results.json, results.md, plots).
# Extra arguments after RUN_DIR go to both runs (e.g. --cells lstm).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
RUN=${1:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}
shift || true
TOTAL_S=${TOTAL_S:-450}
FP32_S=${FP32_S:-240}
mkdir -p "$RUN"
LOG="$RUN/log.txt"
echo "benchmarks/gpu.sh: writing $RUN (log: $LOG); rows for $TOTAL_S s at most" | tee "$LOG"
start=$(date +%s)
status=0
"$PY" -u -m benchmarks.bptt --grid gpu --dtype fp32 --no-grad-memory --time-limit "$FP32_S" \
    --out "$RUN/fp32" "$@" 2>&1 | tee -a "$LOG" || status=1
left=$(( TOTAL_S - ($(date +%s) - start) ))
(( left < 60 )) && left=60
"$PY" -u -m benchmarks.bptt --grid gpu --dtype bf16 --no-grad-memory --time-limit "$left" \
    --out "$RUN/bf16" "$@" 2>&1 | tee -a "$LOG" || status=1
echo "benchmarks/gpu.sh: done in $(( $(date +%s) - start )) s; tables in $RUN/fp32/results.md and $RUN/bf16/results.md" | tee -a "$LOG"
exit $status
