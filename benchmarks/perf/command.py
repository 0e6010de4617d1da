"""`python -m benchmarks perf`: every method under every task-batching strategy, timed against
learn2learn's MAML and FO-MAML in the same process, on the same device and inputs.

Writes, under <reports>/perf/ (--reports, default results/: not committed; `--reports reports` replaces
the committed reports/perf/): perf.json (every raw measurement), README.md (tables, fastest
strategy, learn2learn ratios, numerics checks, projected hours of the paper and ablations grids)
and ms_per_iteration.png. `--from-json PATH` rewrites README.md and the plot beside PATH from the
JSON alone, without measuring.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.files import atomic_write_bytes, atomic_write_json
from benchmarks.device.environment import environment, resolve_device
from benchmarks.device.execution import apply_precision
from benchmarks.device.heap import retain_freed_memory
from benchmarks.learner.registry import METHODS, method_spec
from benchmarks.perf.memory import protocol_memory
from benchmarks.perf.numerics import (
    BF16_RTOL,
    FLOOR_FACTOR,
    FLOOR_ORDERS,
    SAME_FUNCTION_RTOL,
    STRATEGY_RTOL,
    TF32_RTOL,
    relative_error,
)
from benchmarks.perf.ours import (
    add_numerics,
    failure_status,
    float64_gradient,
    initial_parameters,
    loop_gradient,
    measure_ours,
    reordered_floor,
    timing_row,
)
from benchmarks.perf.peers import (
    PEER_METHODS,
    PEER_RTOL,
    cross_check,
    import_learn2learn,
    measure_peer,
    missing_peer_row,
    paired_comparisons,
    speedup_interval,
)
from benchmarks.perf.report import render_readme, write_plot
from benchmarks.perf.settings import PerfSetting, default_settings, parse_meta_batch, select_settings, synthetic_batch
from benchmarks.perf.strategies import check_strategy, default_strategies, row_precision
from benchmarks.perf.timing import CPU_MEMORY_MEASURE, CUDA_MEMORY_MEASURE, TENSOR_MEMORY_MEASURE

SCHEMA = 1
PEERS = ("learn2learn",)
# (repeats, warm-up) per device type: 20 after 3 on a GPU; a 2-core CPU must finish in minutes.
DEFAULT_REPEATS = {"cuda": (20, 3), "cpu": (5, 1)}
# One CPU thread: on a CPU shared with other work, PyTorch's intra-op threads wait on each other
# whenever another process holds a core (reports/perf/NOTES.md, "Defaults in the code"). One thread measures the
# implementations, not that contention; --threads N asks for more, and every report states the count.
CPU_THREADS = 1
# Strategies paired with learn2learn: those whose row median is within this factor of the fastest (on a
# shared CPU separately timed rows can rank close strategies either way: reports/perf/NOTES.md).
PAIR_CANDIDATE_FACTOR = 1.5
PRECISION = "fp32"  # full float32 on both sides (no TF32), so the numerics checks mean something
TF32_ENVIRONMENT = ("NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE")


def _progress_line(device_name: str, row: dict[str, Any]) -> str:
    if row["ms"] is None:
        return f"{device_name} | {row['setting']} | {row['implementation']} {row['method']} | {row['status']}"
    memory = "n/a" if row["peak_mib"] is None else f"{row['peak_mib']:.1f} MiB"
    if row.get("tensor_mib") is not None:
        memory += f" (tensors {row['tensor_mib']:.1f} MiB)"
    check = "" if row["grad_rel_err_vs_loop"] is None else f" | grad err vs loop {row['grad_rel_err_vs_loop']:.1e}"
    if row.get("tolerance") is not None:
        verdict = {True: "", False: ", FLAGGED", None: ", inconclusive"}[row["numerics_ok"]]
        if row["numerics_ok"] and row.get("float32_ok") is not True:  # settled by the float64 check
            verdict = ", beyond it in float32" if row["float32_ok"] is False else ", inconclusive in float32"
        check += f" (tolerance {row['tolerance']:.1e}{verdict})"
    if row.get("float64_rel_err_vs_loop") is not None:
        check += f" | float64 vs loop {row['float64_rel_err_vs_loop']:.1e}"
    return (
        f"{device_name} | {row['setting']} | {row['implementation']} {row['method']} [{row['strategy']}] | "
        f"{row['ms']['median']:.2f} ms/iter (IQR {100 * row['ms']['iqr_fraction']:.0f}%) | "
        f"adapt {row['adapt_ms']['median']:.2f} ms | {memory}{check}"
    )


def tf32_state() -> dict[str, Any]:
    """What decides whether float32 matrix products and convolutions use TF32 on this machine: the
    PyTorch flags and the environment variables that override them (recorded, since a container may
    set them)."""
    return {
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        **{k: os.environ.get(k) for k in TF32_ENVIRONMENT if k in os.environ},
    }


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        # cuBLAS keeps a workspace per stream it has run on, and every CUDA-graph capture uses a new one
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear_workspaces is not None:
            clear_workspaces()
        torch.cuda.empty_cache()


def measure(
    settings: Sequence[PerfSetting],
    methods: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    repeats: int = 5,
    warmup: int = 1,
    peers: Sequence[str] = PEERS,
    strategies: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] = print,
    on_setting_done: Callable[[dict[str, Any]], None] | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time every (setting, method, strategy) and each peer; return the JSON-ready measurements.

    Per setting, all rows share one synthetic meta-batch and one test episode. The meta-gradient of
    each strategy at the initial parameters is compared with the 'loop' strategy's, and learn2learn's
    MAML/FO-MAML meta-gradients with ours. `on_setting_done` gets the measurements so far after each
    setting (to save partial results of a long run). `previous`: the measurements of an interrupted
    run to continue (ValueError unless resumable): its settings are kept, not measured again."""
    device = torch.device(device)
    methods = list(methods or METHODS)
    for m in methods:
        method_spec(m)
    strategies = list(strategies or default_strategies(device))
    for strategy in strategies:
        check_strategy(strategy, device)
    if "loop" in strategies:  # the reference for the numerics check is computed first
        strategies.remove("loop")
        strategies.insert(0, "loop")
    unknown_peers = [p for p in peers if p not in PEERS]
    if unknown_peers:
        raise ValueError(f"--peers: unknown peer(s) {unknown_peers}; valid: {', '.join(PEERS)} or 'none'")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"--repeats must be >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    apply_precision(PRECISION)
    env = environment(device)
    l2l, l2l_status = import_learn2learn() if "learn2learn" in peers else (None, "not measured (--peers none)")
    env["learn2learn"] = l2l_status
    env["tf32"] = tf32_state()
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "environment": env,
        "options": {
            "repeats": repeats,
            "warmup": warmup,
            "seed": seed,
            "precision": PRECISION,
            "strategies": strategies,
            "methods": methods,
            "peers": list(peers),
            "strategy_rtol": STRATEGY_RTOL,
            "tf32_rtol": TF32_RTOL,
            "bf16_rtol": BF16_RTOL,
            "peer_rtol": PEER_RTOL,
            "floor_factor": FLOOR_FACTOR,
            "floor_orders": FLOOR_ORDERS,
            "same_function_rtol": SAME_FUNCTION_RTOL,
            "pair_candidate_factor": PAIR_CANDIDATE_FACTOR,
            "memory_measure": CUDA_MEMORY_MEASURE if device.type == "cuda" else CPU_MEMORY_MEASURE,
            "tensor_memory_measure": TENSOR_MEMORY_MEASURE,
        },
        "settings": [],
        "rows": [],
        "cross_checks": [],
        "paired": [],
        "protocol_memory": [],
    }
    done = continue_from(previous, data, settings) if previous is not None else set()
    rows, checks = data["rows"], data["cross_checks"]
    progress(f"perf on {env['device_name']} ({device.type}), torch {env['torch']}, learn2learn: {l2l_status}")
    for setting in settings:
        if setting.key in done:
            progress(f"-- {setting.key}: kept from the run of {data['created']}")
            continue
        c = setting.config("maml")
        batch = synthetic_batch(setting, c["meta_batch"], c["query_train"], seed, device)
        eval_task = synthetic_batch(setting, 1, c["query_test"], seed + 1, device)
        progress(f"-- {setting.key}: {setting.describe()['description']}")
        for method in methods:
            try:
                start = initial_parameters(setting, method, batch, device, seed)
                exact = float64_gradient(setting, method, batch, device, seed, params=start)
            except Exception as e:  # without it the tolerance is the plain one; say why
                exact = None
                progress(f"   float64 reference of {method}: {failure_status(e)}")
            try:
                other_floor = reordered_floor(setting, method, batch, device, seed, exact)
            except Exception as e:  # the floor then comes from the batch as drawn alone
                other_floor = None
                progress(f"   float32 floor of {method} on reordered examples: {failure_status(e)}")
            loop = None
            if "loop" not in strategies:
                try:
                    loop = loop_gradient(setting, method, batch, device, seed)
                except Exception as e:  # the rows are still timed, without the numerics check
                    progress(f"   loop reference of {method}: {failure_status(e)}")
            for strategy in strategies:
                try:
                    row, gradient = measure_ours(
                        setting, method, strategy, batch, eval_task, device, repeats, warmup, seed
                    )
                except Exception as e:  # one failing row (capture error, out of memory) must not lose the others
                    row, gradient = timing_row(setting, "amfs-bench", method, strategy, status=failure_status(e)), None
                if strategy == "loop":
                    loop = gradient
                float64_error = None
                if exact is not None and gradient is not None and strategy != "loop":
                    try:
                        row_exact = float64_gradient(setting, method, batch, device, seed, strategy, start)
                        float64_error = relative_error(row_exact, exact)
                    except Exception as e:  # the float32 check alone then judges the row
                        progress(f"   float64 check of {method} [{strategy}]: {failure_status(e)}")
                add_numerics(row, gradient, loop, exact, other_floor, float64_error)
                rows.append(row)
                progress(_progress_line(env["device_name"], row))
                _free(device)
        if "learn2learn" in peers:
            for method in PEER_METHODS:
                if l2l is None:
                    row = missing_peer_row(setting, method, l2l_status)
                else:
                    try:
                        row = measure_peer(l2l, setting, method, batch, eval_task, device, repeats, warmup, seed)
                    except Exception as e:  # as above: record the failure, keep going
                        row = missing_peer_row(setting, method, failure_status(e))
                rows.append(row)
                progress(_progress_line(env["device_name"], row))
                _free(device)
            if l2l is not None:
                try:
                    setting_checks = cross_check(l2l, setting, batch, device, seed)
                except Exception as e:  # as above
                    setting_checks = []
                    progress(f"   learn2learn cross-check {failure_status(e)}")
                for check in setting_checks:
                    checks.append(check)
                    verdict = {True: "agree", False: "DISAGREE", None: "inconclusive"}[check["ok"]]
                    progress(
                        f"   learn2learn vs ours, {check['method']} meta-gradient: {check['rel_err']:.1e} ({verdict})"
                    )
                _free(device)
                for method in PEER_METHODS:
                    pairs = _paired(l2l, setting, method, rows, batch, device, repeats, warmup, seed, progress)
                    data["paired"] += pairs
                    _free(device)
        data["protocol_memory"] += protocol_memory(setting, methods, strategies, l2l, device, seed, progress)
        _free(device)
        data["settings"].append(setting.describe())
        if on_setting_done is not None:
            on_setting_done(data)
    return data


def resume_obstacles(previous: dict[str, Any], data: dict[str, Any], settings: Sequence[PerfSetting] = ()) -> list[str]:
    """Why the measurements `previous` cannot be continued by the run `data` describes: a resumed
    report must read as one run, so the schema, the environment (code fingerprint included), the
    options and the config values of every setting both name (`--meta-batch`) must all be the same.
    Empty when it can."""
    if previous.get("schema") != data["schema"]:
        return [f"schema {previous.get('schema')!r} (now {data['schema']})"]
    obstacles = []
    for part in ("environment", "options"):
        before, now = previous.get(part) or {}, data[part]
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if changed:
            obstacles.append(f"{part} changed: {', '.join(changed)}")
    kept = {s["key"]: s.get("values") for s in previous.get("settings", [])}
    for setting in settings:
        now = setting.describe()["values"]
        if setting.key in kept and kept[setting.key] != now:
            obstacles.append(f"setting {setting.key} changed: {kept[setting.key]} before, now {now}")
    return obstacles


def continue_from(previous: dict[str, Any], data: dict[str, Any], settings: Sequence[PerfSetting] = ()) -> set[str]:
    """Take the finished settings of `previous` into `data` (rows, learn2learn checks, pairs); return
    their keys. ValueError, saying what changed, when the run cannot be continued."""
    obstacles = resume_obstacles(previous, data, settings)
    if obstacles:
        raise ValueError(
            "cannot resume the earlier perf run: " + "; ".join(obstacles) + ". Measure afresh (without --resume)."
        )
    for key in ("settings", "rows", "cross_checks", "paired", "protocol_memory"):
        data[key] = list(previous.get(key, []))
    data["resumed"] = [*previous.get("resumed", []), data["created"]]
    data["created"] = previous["created"]
    return {s["key"] for s in previous["settings"]}


def _paired(
    l2l: Any,
    setting: PerfSetting,
    method: str,
    rows: list[dict[str, Any]],
    batch: Any,
    device: torch.device,
    repeats: int,
    warmup: int,
    seed: int,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The alternating comparisons with learn2learn's `method` (full float32) of each of our
    full-float32 strategies of it that passed its numerics check and whose row median is within
    PAIR_CANDIDATE_FACTOR of the fastest such row: on a loaded machine separately timed rows can rank
    close strategies either way."""
    ours = [
        r
        for r in rows
        if r["setting"] == setting.key
        and r["implementation"] == "amfs-bench"
        and r["method"] == method
        and r["ms"]
        and r["numerics_ok"] is not False  # a strategy that computes something else is no competitor
        and row_precision(r["strategy"]) == "fp32"
    ]
    if not ours:
        return []
    ours.sort(key=lambda r: r["ms"]["median"])
    limit = PAIR_CANDIDATE_FACTOR * ours[0]["ms"]["median"]
    candidates = [r["strategy"] for r in ours if r["ms"]["median"] <= limit]
    try:
        pairs = paired_comparisons(l2l, setting, method, candidates, batch, device, repeats, warmup, seed)
    except Exception as e:  # as for the rows: record nothing invented, say why
        progress(f"   paired comparison of {method}: {failure_status(e)}")
        return []
    for pair in pairs:
        interval = speedup_interval(pair)
        progress(
            f"   paired, alternating iterations: {method} [{pair['strategy']}] {pair['ours_ms']['median']:.2f} ms vs "
            f"learn2learn {pair['peer_ms']['median']:.2f} ms: ours {pair['speedup']['median']:.2f}x faster "
            "(median over pairs"
            + ("" if interval is None else f", 95% CI {interval.low:.2f}-{interval.high:.2f}x")
            + ")"
        )
    return pairs


def write_reports(data: dict[str, Any], folder: Path) -> Path:
    """perf.json, README.md and ms_per_iteration.png in `folder`; returns the README path."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "perf.json", data)
    return regenerate(folder / "perf.json")


def load_measurements(json_path: Path) -> dict[str, Any]:
    """The contents of a perf.json; ValueError, naming the file, when it cannot be read."""
    try:
        return json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{json_path}: cannot read perf measurements ({e}); run `python -m benchmarks perf`") from e


def regenerate(json_path: Path) -> Path:
    """README.md and the plot beside a perf.json, from its contents only."""
    data = load_measurements(json_path)
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{json_path}: schema {data.get('schema')!r}, expected {SCHEMA}; re-measure")
    readme = json_path.parent / "README.md"
    atomic_write_bytes(readme, render_readme(data).encode())
    write_plot(data, json_path.parent / "ms_per_iteration.png")
    return readme


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def perf_command(args: argparse.Namespace) -> int:
    """Entry point of `python -m benchmarks perf`."""
    from_json = getattr(args, "from_json", None)
    try:
        if from_json:
            print(f"wrote {regenerate(Path(from_json))}")
            return 0
        device = resolve_device(args.device)
        default_repeats, default_warmup = DEFAULT_REPEATS["cuda" if device.type == "cuda" else "cpu"]
        repeats = args.repeats if args.repeats is not None else default_repeats
        warmup = args.warmup if args.warmup is not None else default_warmup
        meta_batch = parse_meta_batch(getattr(args, "meta_batch", None))
        settings = select_settings(default_settings(device, meta_batch), getattr(args, "settings", None))
        methods = _split(getattr(args, "methods", None))
        for m in methods or []:
            method_spec(m)
        strategies = _split(getattr(args, "strategies", None))
        for strategy in strategies or []:
            check_strategy(strategy, device)
        peers = [] if args.peers == "none" else _split(args.peers) or []
        threads = getattr(args, "threads", None)
        if threads is None and device.type == "cpu":
            threads = CPU_THREADS
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        retain_freed_memory()  # every row, learn2learn's too, under the same heap policy (benchmarks/device/heap.py)
    except (ValueError, KeyError, RuntimeError) as e:  # bad arguments or no such device: say which
        print(f"perf: {e}", file=sys.stderr)
        return 2
    folder = Path(args.reports) / "perf"
    previous = None
    if getattr(args, "resume", False):
        if not (folder / "perf.json").exists():
            print(f"perf: --resume: no earlier run in {folder}", file=sys.stderr)
            return 2
        try:
            previous = load_measurements(folder / "perf.json")
        except ValueError as e:
            print(f"perf: --resume: {e}", file=sys.stderr)
            return 2
    try:
        data = measure(
            settings,
            methods,
            device,
            repeats,
            warmup,
            peers,
            strategies,
            on_setting_done=lambda d: write_reports(d, folder),
            previous=previous,
        )
    except ValueError as e:  # an earlier run that cannot be continued: before anything was measured
        print(f"perf: {e}", file=sys.stderr)
        return 2
    readme = write_reports(data, folder)
    print(f"wrote {readme}, {readme.parent / 'perf.json'} and {readme.parent / 'ms_per_iteration.png'}")
    return 0
