#!/usr/bin/env bash
# The adding problem through `jaxrnn train`: the linear-recurrence cells
# (mingru, minlstm, lru, rglru) beside lstm and gru, at T=100 and T=1000,
# every run with the same settings (Adam, lr 1e-2, global-norm clipping at 1,
# batch 32, H=64, seed 0; each cell's default engine: the fused engine for
# lstm and gru, the associative scan for the linear cells). Then the table:
# python -m benchmarks.parallel.adding OUT.
#
#   bash benchmarks/parallel/adding.sh [OUT]    # default benchmarks/results/adding-<time>
#
# Settings by environment: CELLS, LENGTHS, STEPS_100 (default 1000),
# STEPS_1000 (default 500), HIDDEN, BATCH, LR, IMPL, JAXRNN (the command).
# A finished run (its metrics.json) is not run again, so a stopped script
# can be started again on the same OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/benchmarks/results/adding-$(date -u +%Y%m%dT%H%M%SZ)}")
cd "$ROOT"  # python -m benchmarks.parallel.adding runs from the checkout's root
CELLS=${CELLS:-"lstm gru mingru minlstm lru rglru"}
LENGTHS=${LENGTHS:-"100 1000"}
STEPS_100=${STEPS_100:-1000}
STEPS_1000=${STEPS_1000:-500}
HIDDEN=${HIDDEN:-64}
BATCH=${BATCH:-32}
LR=${LR:-1e-2}
IMPL=${IMPL:-auto}
JAXRNN=${JAXRNN:-jaxrnn}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
echo "adding.sh: $OUT; cells $CELLS; T $LENGTHS; steps $STEPS_100 (T=100), $STEPS_1000 (T=1000); H=$HIDDEN, batch $BATCH, lr $LR, impl $IMPL"
for T in $LENGTHS; do
  steps=$([ "$T" -le 100 ] && echo "$STEPS_100" || echo "$STEPS_1000")
  for cell in $CELLS; do
    run="$OUT/$cell-T$T"
    if [ -f "$run/metrics.json" ]; then
      echo "$run: done already"
      continue
    fi
    rm -rf "$run"  # a run stopped part way starts again
    echo "$(date -u +%H:%M:%S) $cell T=$T: $steps steps (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    $JAXRNN train --task adding --length "$T" --cell "$cell" --steps "$steps" --hidden "$HIDDEN" \
      --batch "$BATCH" --lr "$LR" --impl "$IMPL" --eval-every 100 --checkpoint-every 100000 \
      --no-progress --out "$run"
  done
done
$PYTHON -m benchmarks.parallel.adding "$OUT"
