"""Tensor memory at the protocol's meta-batch, for the settings perf times with another one (the
CPU's reduced ones, or --meta-batch N).

The GPU target on memory (second-order MAML with 5 inner steps at or below learn2learn's peak) is
about the protocol's meta-batch, which a 2-core CPU cannot time in reasonable minutes. One
meta-iteration at that meta-batch is affordable, and the tensor count (perf_timing.TensorMemory) is
exact on any device: it is what the GPU allocator's peak would be, less its rounding and the
libraries' workspaces. So for each reduced setting, perf counts one meta-iteration of every method
and eager strategy, and of learn2learn's MAML and FO-MAML, at the full meta-batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import torch

from benchmarks.device.execution import GRAPHED
from benchmarks.perf.ours import failure_status, prepare_run, release_gradients
from benchmarks.perf.peers import PEER_LABELS, PEER_METHODS, PEER_STRATEGY, peer_step
from benchmarks.perf.settings import PerfSetting, synthetic_batch
from benchmarks.perf.strategies import parse_strategy, strategy_scope
from benchmarks.perf.timing import tensor_memory_mib


def protocol_setting(setting: PerfSetting) -> PerfSetting | None:
    """`setting` with the protocol's meta-batch, or None when it already has it."""
    if "meta_batch" not in setting.values:
        return None
    values = {k: v for k, v in setting.values.items() if k != "meta_batch"}
    full = PerfSetting(setting.key, values, setting.channels, setting.image_size)
    return None if full.config("maml")["meta_batch"] == setting.config("maml")["meta_batch"] else full


def _row(setting: PerfSetting, implementation: str, method: str, strategy: str, mib: float | None, status: str):
    return {
        "setting": setting.key,
        "meta_batch": setting.config("maml")["meta_batch"],
        "implementation": implementation,
        "method": method,
        "strategy": strategy,
        "tensor_mib": mib,
        "status": status,
    }


def _counted_step(step: Callable[[], object], device: torch.device) -> float:
    step()  # the optimiser's state is allocated here, as before perf's timed calls
    return tensor_memory_mib(step, device)


def _ours(setting: PerfSetting, method: str, strategy: str, batch: Any, device: torch.device, seed: int) -> float:
    with strategy_scope(strategy):
        run = prepare_run(setting, method, strategy, batch, device, seed, with_gradient=False)
        try:
            return _counted_step(run.step, device)
        finally:
            release_gradients(run.params)


def _peer(l2l: ModuleType, setting: PerfSetting, method: str, batch: Any, device: torch.device, seed: int) -> float:
    step, _, _ = peer_step(l2l, setting, method, batch, device, seed)
    return _counted_step(step, device)


def protocol_memory(
    setting: PerfSetting,
    methods: Sequence[str],
    strategies: Sequence[str],
    l2l: ModuleType | None,
    device: torch.device,
    seed: int,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Tensor memory of one meta-iteration at the protocol's meta-batch for every method and eager
    strategy (CUDA-graph replays run no operator the count could see) and, where installed, for
    learn2learn's MAML and FO-MAML; [] when `setting` already has the protocol's meta-batch. A
    failure (out of memory) is recorded in its row's status and the others go on."""
    full = protocol_setting(setting)
    if full is None:
        return []
    tasks = full.config("maml")["meta_batch"]
    batch = synthetic_batch(full, tasks, full.config("maml")["query_train"], seed, device)
    jobs: list[tuple[str, str, str, Callable[[], float]]] = [
        ("amfs-bench", method, strategy, lambda m=method, s=strategy: _ours(full, m, s, batch, device, seed))
        for method in methods
        for strategy in strategies
        if parse_strategy(strategy)[0] not in GRAPHED
    ]
    if l2l is not None:
        jobs += [
            ("learn2learn", method, PEER_STRATEGY, lambda m=method: _peer(l2l, full, m, batch, device, seed))
            for method in PEER_METHODS
        ]
    rows = []
    for implementation, method, strategy, count in jobs:
        try:
            row = _row(full, implementation, method, strategy, count(), "measured")
            text = f"{row['tensor_mib']:.1f} MiB"
        except Exception as e:  # one failing count (out of memory) must not lose the others
            reason = failure_status(e)
            row, text = _row(full, implementation, method, strategy, None, reason), reason
        rows.append(row)
        label = method if implementation == "amfs-bench" else PEER_LABELS.get(method, method)
        progress(f"   tensor memory at the protocol's {tasks} tasks: {implementation} {label} [{strategy}]: {text}")
    return rows


def _peer_mib(rows: list[dict[str, Any]], setting: str, method: str) -> float | None:
    for r in rows:
        if r["setting"] == setting and r["implementation"] == "learn2learn" and r["method"] == method:
            return r["tensor_mib"]
    return None


def protocol_memory_lines(data: dict[str, Any], device: str) -> list[str]:
    """The README section of the protocol-meta-batch counts; [] for a run without them."""
    rows = data.get("protocol_memory") or []
    if not rows:
        return []
    lines = [
        "",
        "## Tensor memory at the protocol's meta-batch",
        "",
        "The settings above are timed with another meta-batch than the protocol's (reduced on the CPU, "
        "or set by --meta-batch). One meta-iteration of every method and "
        "strategy at the protocol's meta-batch (synthetic inputs of the same shapes), counted as in the "
        "'tensor memory' column: what a GPU's allocator would hold at its peak, less its rounding and the "
        "libraries' workspaces. vs l2l MAML: this row's MiB over learn2learn's second-order MAML's "
        "(at most 1: no more memory than learn2learn).",
        "",
        "| device | setting | tasks | implementation | method | strategy | tensor memory MiB | vs l2l MAML |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peer = _peer_mib(rows, r["setting"], "maml")
        mib = r["tensor_mib"]
        ratio = "-" if mib is None or not peer else f"{mib / peer:.2f}x"
        method = r["method"] if r["implementation"] == "amfs-bench" else PEER_LABELS.get(r["method"], r["method"])
        cells = [device, r["setting"], str(r["meta_batch"]), r["implementation"], method, r["strategy"]]
        cells += [r["status"] if mib is None else f"{mib:.1f}", ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
