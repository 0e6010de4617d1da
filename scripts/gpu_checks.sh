#!/usr/bin/env bash
# The GPU checks in one go, each stage under its own time limit so that one slow stage cannot take
# the others' time, and everything finished so far kept:
#   1. perf against learn2learn: every method, strategies vmap, graph, graph-batched and
#      graph-batched+nhwc (the loop strategy is the untimed numerics reference; it is timed on the CPU);
#   2. the omniglot-short grid (five methods, 2,000 iterations on real Omniglot), one method at a
#      time, and its report;
#   3. the per-task convolution formulations at the perf shapes (scripts/grouped_conv_bench.py);
#   4. profiles of the vmap and batched+nhwc MAML steps (which kernels take the time).
# Under OUT (default ./gpu-out): perf/ (README.md, perf.json, plot), perf.log, run.log and
# gpu-results.tgz (results, reports, grouped-conv.txt, profile-*.txt; refreshed after every stage).
# Data: $AMFS_DATA_ROOT, or only the caches in $AMFS_CACHE_DIR (see `python -m benchmarks data prepare`).
# Stage limits in seconds: PERF_S, TRAIN_S, SWEEP_S, PROFILE_S.
set -uo pipefail
OUT=$(realpath -m "${1:-gpu-out}")
WORK=${GPU_WORK:-$(mktemp -d)}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
START=$SECONDS

pack() {
    tar czf "$OUT/gpu-results.tgz.part" -C "$WORK" . && mv "$OUT/gpu-results.tgz.part" "$OUT/gpu-results.tgz"
    echo "[$((SECONDS - START)) s] packed $OUT/gpu-results.tgz"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'

timeout "${PERF_S:-240}" python3 -m benchmarks perf --device cuda \
    --strategies vmap,graph,graph-batched,graph-batched+nhwc \
    --reports "$OUT" 2>&1 | tee "$OUT/perf.log"
echo "[$((SECONDS - START)) s] perf done"

TRAIN_END=$((SECONDS + ${TRAIN_S:-270}))
for method in maml i-amfs amfs fomaml o-amfs; do
    left=$((TRAIN_END - SECONDS))
    if ((left < 20)); then
        echo "no time left for $method" | tee -a "$OUT/run.log"
        continue
    fi
    timeout "$left" python3 -m benchmarks run --grid omniglot-short --device cuda --only "*/$method/*" \
        --results "$WORK/results" --no-progress 2>&1 | tee -a "$OUT/run.log"
    echo "[$((SECONDS - START)) s] $method done" | tee -a "$OUT/run.log"
    pack
done
python3 -m benchmarks report --grid omniglot-short --results "$WORK/results" --reports "$WORK/reports" 2>&1 |
    tee -a "$OUT/run.log"
pack

timeout "${SWEEP_S:-40}" python3 scripts/grouped_conv_bench.py --out "$WORK/grouped-conv.txt" ||
    echo "grouped-conv bench did not finish"
for strategy in vmap batched+nhwc; do
    timeout "${PROFILE_S:-25}" python3 scripts/profile_step.py --device cuda --setting omniglot-5w1s --method maml \
        --strategy "$strategy" --out "$WORK/profile-${strategy/+/-}.txt" >/dev/null 2>&1 ||
        echo "profile $strategy did not finish"
done
pack
echo "[$((SECONDS - START)) s] all stages done"
