#!/usr/bin/env bash
# The GPU checks in one go, each stage under its own time limit so that one slow stage cannot take
# the others' time, and everything finished so far kept. Stages (STAGES, default "perf train"):
#   perf    perf against learn2learn: every method, the strategies in PERF_STRATEGIES (default
#           graph, graph-batched+nhwc, its +tf32 and +bf16 variants, graph-batched+nhwc-all (every layer
#           of the large passes in NHWC, the CPU's default) and graph-loop, the low-memory one;
#           the loop strategy is the untimed numerics reference, and is timed on the CPU);
#   train   the grids in TRAIN_GRIDS (default "omniglot-bf16"), each followed by its report;
#   sweep   the per-task convolution formulations at the perf shapes (python -m benchmarks.perf.grouped_conv_bench);
#   profile profiles of the steps in PROFILE_TARGETS (method:setting:strategy; default the batched+nhwc
#           steps of MAML on mini-ImageNet 5w1s and Omniglot and of I-AMFS on mini-ImageNet 5w1s, and
#           MAML's loop beside learn2learn's on mini-ImageNet 5w1s, whose eager times differ on the GPU
#           though they run the same operators): which kernels take the time;
#   compile torch.compile'd backbone passes against eager ones (python -m benchmarks.perf.compile_bench).
# Under OUT (default ./gpu-out): perf/ (README.md, perf.json, plot), perf.log, run.log and
# gpu-results.tgz (results, reports, grouped-conv.txt, profile-*.txt, compile.txt; refreshed after every stage).
# Data: $AMFS_DATA_ROOT, or only the caches in $AMFS_CACHE_DIR (see `python -m benchmarks data prepare`).
# Stage limits in seconds: PERF_S, TRAIN_S (for all grids together), SWEEP_S, PROFILE_S, COMPILE_S.
set -uo pipefail
OUT=$(realpath -m "${1:-gpu-out}")
WORK=${GPU_WORK:-$(mktemp -d)}
STAGES=" ${STAGES:-perf train} "
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
START=$SECONDS

pack() {
    tar czf "$OUT/gpu-results.tgz.part" -C "$WORK" . && mv "$OUT/gpu-results.tgz.part" "$OUT/gpu-results.tgz"
    echo "[$((SECONDS - START)) s] packed $OUT/gpu-results.tgz"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'

if [[ $STAGES == *" perf "* ]]; then
    timeout "${PERF_S:-300}" python3 -m benchmarks perf --device cuda \
        --strategies "${PERF_STRATEGIES:-graph,graph-batched+nhwc,graph-batched+nhwc+tf32,graph-batched+nhwc+bf16,graph-batched+nhwc-all,graph-loop}" \
        --reports "$OUT" 2>&1 | tee "$OUT/perf.log"
    echo "[$((SECONDS - START)) s] perf done"
fi

if [[ $STAGES == *" train "* ]]; then
    TRAIN_END=$((SECONDS + ${TRAIN_S:-270}))
    for grid in ${TRAIN_GRIDS:-omniglot-bf16}; do
        left=$((TRAIN_END - SECONDS))
        if ((left < 20)); then
            echo "no time left for grid $grid" | tee -a "$OUT/run.log"
            continue
        fi
        # a run cut off by the limit keeps its checkpoints; the same command resumes it
        timeout "$left" python3 -m benchmarks run --grid "$grid" --device cuda --results "$WORK/results" \
            --no-progress 2>&1 | tee -a "$OUT/run.log"
        python3 -m benchmarks report --grid "$grid" --results "$WORK/results" --reports "$WORK/reports" 2>&1 |
            tee -a "$OUT/run.log"
        echo "[$((SECONDS - START)) s] grid $grid done" | tee -a "$OUT/run.log"
        pack
    done
fi

if [[ $STAGES == *" sweep "* ]]; then
    timeout "${SWEEP_S:-40}" python3 -m benchmarks.perf.grouped_conv_bench --out "$WORK/grouped-conv.txt" ||
        echo "grouped-conv bench did not finish"
    pack
fi

if [[ $STAGES == *" profile "* ]]; then
    default_targets="maml:mini-imagenet-5w1s:batched+nhwc maml:omniglot-5w1s:batched+nhwc"
    default_targets+=" i-amfs:mini-imagenet-5w1s:batched+nhwc maml:mini-imagenet-5w1s:loop maml:mini-imagenet-5w1s:learn2learn"
    for target in ${PROFILE_TARGETS:-$default_targets}; do
        IFS=: read -r method setting strategy <<<"$target"
        timeout "${PROFILE_S:-25}" python3 -m benchmarks.perf.profile_step --device cuda --setting "$setting" \
            --method "$method" --strategy "$strategy" --out "$WORK/profile-$method-$setting-${strategy//+/-}.txt" \
            >/dev/null 2>&1 || echo "profile $method $setting $strategy did not finish"
    done
    pack
fi

if [[ $STAGES == *" compile "* ]]; then
    timeout "${COMPILE_S:-240}" python3 -m benchmarks.perf.compile_bench --device cuda \
        --settings omniglot-5w1s,mini-imagenet-5w1s --out "$WORK/compile.txt" || echo "compile bench did not finish"
    pack
fi
echo "[$((SECONDS - START)) s] stages done:$STAGES"
