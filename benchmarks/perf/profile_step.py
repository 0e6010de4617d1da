"""Where a meta-iteration's time goes: the PyTorch profiler's table of the most expensive operators
for one method, setting and strategy of `python -m benchmarks perf`, on synthetic inputs.

    python -m benchmarks.perf.profile_step --device cuda --setting omniglot-5w1s --method maml \
        --strategy vmap [--meta-batch protocol] [--out profile.txt]

`--strategy learn2learn` profiles learn2learn's MAML (or FO-MAML with `--method fomaml`) on the same
batch, for a side-by-side table. On CUDA the table is sorted by device time (kernels), on the CPU by
CPU time. The graph strategy cannot be profiled operator by operator (a replay is one launch):
profile 'vmap' for its kernels.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.device.environment import resolve_device
from benchmarks.perf.ours import prepare_run, release_gradients
from benchmarks.perf.peers import PEER_METHODS, import_learn2learn, peer_step
from benchmarks.perf.settings import default_settings, parse_meta_batch, select_settings, synthetic_batch
from benchmarks.perf.strategies import strategy_scope

PEER = "learn2learn"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--setting", default="omniglot-5w1s")
    parser.add_argument("--method", default="maml")
    parser.add_argument("--strategy", default="vmap", help=f"one of perf's strategies, or {PEER!r}")
    parser.add_argument("--meta-batch", help="as perf's --meta-batch (default: perf's for the device)")
    parser.add_argument("--steps", type=int, default=3, help="profiled meta-iterations (after 2 untimed)")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--out", help="also write the table here")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    setting = select_settings(default_settings(device, parse_meta_batch(args.meta_batch)), args.setting)[0]
    config = setting.config(args.method)
    batch = synthetic_batch(setting, config["meta_batch"], config["query_train"], 0, device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])

    def profiled(step) -> profile:
        for _ in range(2):
            step()
        with profile(activities=activities) as prof:
            for _ in range(args.steps):
                step()
            if cuda:
                torch.cuda.synchronize(device)
        return prof

    if args.strategy == PEER:
        if args.method not in PEER_METHODS:
            parser.error(f"learn2learn has {', '.join(PEER_METHODS)} only, not {args.method!r}")
        l2l, status = import_learn2learn()
        if l2l is None:
            parser.error(f"learn2learn: {status}")
        step, _, _ = peer_step(l2l, setting, args.method, batch, device, 0)
        prof = profiled(step)
    else:
        with strategy_scope(args.strategy):
            run = prepare_run(setting, args.method, args.strategy, batch, device, 0, with_gradient=False)
            prof = profiled(run.step)
            release_gradients(run.params)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    title = f"{setting.key} {args.method} [{args.strategy}] on {device}, {args.steps} meta-iterations, sorted by {sort}"
    table = f"{title}\n{prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=70)}"
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
