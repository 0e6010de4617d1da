#!/usr/bin/env bash
# The GPU checks in one go: the perf benchmark against learn2learn, then the omniglot-short grid
# (five methods, 2,000 iterations on real Omniglot) and its report. Everything lands under OUT
# (default ./gpu-out), also packed as gpu-results.tgz to copy back. Data: $AMFS_DATA_ROOT, or a
# prepared cache in $AMFS_CACHE_DIR (see `python -m benchmarks data prepare`).
set -euo pipefail
OUT=${1:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m benchmarks perf --device cuda --reports "$OUT/reports" 2>&1 | tee "$OUT/perf.log"
python3 -m benchmarks run --grid omniglot-short --device cuda --results "$OUT/results" --no-progress 2>&1 |
    tee "$OUT/run.log"
python3 -m benchmarks report --grid omniglot-short --results "$OUT/results" --reports "$OUT/reports"
tar czf "$OUT/gpu-results.tgz" -C "$OUT" reports results
echo "wrote $OUT/gpu-results.tgz"
