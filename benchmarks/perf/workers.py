"""Throughput of `run --workers N`: runs per hour at N = 1, 2, 4, 8 on one device.

    python -m benchmarks.perf.workers --device cuda --out DIR [--data-root DIR] [--cache-dir DIR]

By default each level runs Omniglot 5-way 1-shot MAML under the omniglot-short protocol (meta-batch
32, 2,000 iterations, 1,000 test episodes), 2 x N runs (seeds 0 .. 2N-1) in a fresh results folder,
through the same worker pool as `run --workers N`, and times the whole level from the first start
to the last record: runs per hour = runs / wall time. Every level must end with all its runs done,
else the tool exits 1 naming the failures. It writes DIR/workers.json (the measurements, the
device, the command) and DIR/README.md (the table and the speed-up over N = 1); the records stay
under DIR/level-N/ for inspection. `--grid PATH` measures another grid (its first 2N runs at
level N), e.g. a tiny one for a test on the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common.files import atomic_write_bytes, atomic_write_json
from benchmarks.common.tables import markdown
from benchmarks.device.environment import environment, resolve_device
from benchmarks.runs.context import RunContext
from benchmarks.runs.grids import load_grid
from benchmarks.runs.workers import run_specs

DEFAULT_GRID = """description = "Omniglot 5-way 1-shot, the omniglot-short protocol: the workers throughput"
methods = ["{method}"]
seeds = {seeds}
[defaults]
reduced = true
iterations = {iterations}
val_every = 500
val_episodes = 200
test_episodes = 1000
checkpoint_every = 500
[[setting]]
dataset = "omniglot"
n_way = 5
k_shot = 1
"""


def measure(
    grid: Path, levels: list[int], runs_per_worker: int, context: RunContext, out: Path, iterations: int | None
) -> list[dict[str, Any]]:
    rows = []
    for workers in levels:
        needed = runs_per_worker * workers
        overrides = {"iterations": iterations} if iterations else {}
        specs = load_grid(str(grid), overrides).runs
        if len(specs) < needed:
            raise SystemExit(f"{grid} has {len(specs)} runs; level {workers} needs {needed} (seeds or methods)")
        level = RunContext(**{**context.__dict__, "results": out / f"level-{workers}"})
        print(f"N = {workers}: {needed} runs", flush=True)
        t0 = time.perf_counter()
        outcomes = run_specs(specs[:needed], level, workers)
        wall = time.perf_counter() - t0
        failed = [f"{o.spec.key}: {o.status}" for o in outcomes if o.status != "done"]
        if failed:
            raise SystemExit(f"N = {workers}: not every run finished:\n  " + "\n  ".join(failed))
        rows.append({"workers": workers, "runs": needed, "wall_s": wall, "runs_per_hour": needed / wall * 3600})
        print(
            f"N = {workers}: {needed} runs in {wall:.1f} s: {rows[-1]['runs_per_hour']:.1f} runs per hour", flush=True
        )
    base = rows[0]["runs_per_hour"]
    for row in rows:
        row["speedup"] = row["runs_per_hour"] / base
    return rows


def readme(result: dict[str, Any]) -> str:
    headers = ["workers", "runs", "wall (s)", "runs per hour", f"x N = {result['rows'][0]['workers']}"]
    table = markdown(
        headers,
        [
            [r["workers"], r["runs"], f"{r['wall_s']:.1f}", f"{r['runs_per_hour']:.1f}", f"{r['speedup']:.2f}"]
            for r in result["rows"]
        ],
    )
    env = result["environment"]
    return (
        f"# Runs per hour with `run --workers N`\n\n"
        f"Device: {env['device_name']} ({env['device']}), torch {env['torch']}, git {env['git_revision']}. "
        f"Measured {result['created']} by\n\n    {result['command']}\n\n"
        f"Grid: {result['grid']}; each level runs its first 2 x N runs in a fresh results folder, timed "
        "from the first start to the last record.\n\n" + table + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", required=True, help="folder for workers.json, README.md and the levels' records")
    parser.add_argument("--levels", default="1,2,4,8", help="worker counts (default 1,2,4,8)")
    parser.add_argument("--runs-per-worker", type=int, default=2)
    parser.add_argument("--grid", help="a grid TOML (default: Omniglot 5w1s MAML, omniglot-short protocol)")
    parser.add_argument("--method", default="maml", help="the default grid's method")
    parser.add_argument("--iterations", type=int, help="override every run's iterations (default grid: 2000)")
    parser.add_argument("--data-root", help="datasets folder (default: $AMFS_DATA_ROOT or ./data)")
    parser.add_argument("--cache-dir", help="preprocessed caches (default: $AMFS_CACHE_DIR or ./cache)")
    parser.add_argument("--threads", type=int, help="CPU threads per run (default: as `run --workers`)")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    if args.grid:
        grid = Path(args.grid)
    else:
        seeds = list(range(args.runs_per_worker * max(levels)))
        grid = out / "workers-omniglot.toml"
        grid.write_text(DEFAULT_GRID.format(method=args.method, seeds=seeds, iterations=args.iterations or 2000))
    context = RunContext(
        data_root=Path(args.data_root or os.environ.get("AMFS_DATA_ROOT") or "data"),
        cache_dir=Path(args.cache_dir or os.environ.get("AMFS_CACHE_DIR") or "cache"),
        results=out,
        device=device.type,
        threads=args.threads,
        progress=False,
    )
    rows = measure(grid, levels, args.runs_per_worker, context, out, args.iterations)
    result = {
        "schema": 1,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.perf.workers " + " ".join(argv if argv is not None else sys.argv[1:]),
        "grid": grid.name,
        "environment": environment(device),
        "rows": rows,
    }
    atomic_write_json(out / "workers.json", result)
    atomic_write_bytes(out / "README.md", readme(result).encode())
    print(f"wrote {out / 'workers.json'} and {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
