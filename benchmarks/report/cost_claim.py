"""Claim 3: the kernel inner loop costs less than MAML: time per meta-iteration, adaptation time per
test episode and peak memory, in pairs of default runs on one device."""

from __future__ import annotations

import numpy as np

from benchmarks.report.formatting import number
from benchmarks.report.labels import (
    method_name,
)
from benchmarks.report.runs import RunSet
from benchmarks.report.verdicts import (
    INCONCLUSIVE,
    NOT_RUN,
    REFUTED,
    SUPPORTED,
    ClaimResult,
    classification_settings,
)

# --- claim 3 ------------------------------------------------------------------------------------
COST_MEASURES = (
    ("meta_iteration_ms_median", "time per meta-iteration"),
    ("adaptation_ms_per_episode", "adaptation time per test episode"),
    ("peak_memory_mb", "peak memory"),
)


def cost_ratios(runs: RunSet, method: str, measure: str) -> tuple[list[float], list[str]]:
    """method/MAML ratios of one timing measure over default runs paired by dataset, setting, seed and device."""
    ratios, devices = [], set()
    for dataset, setting in classification_settings(runs):
        ours, maml = runs.cell(dataset, setting, method), runs.cell(dataset, setting, "maml")
        for seed in sorted(set(ours) & set(maml)):
            a, b = ours[seed], maml[seed]
            va, vb = a.timing.get(measure), b.timing.get(measure)
            if a.device != b.device or not isinstance(va, int | float) or not isinstance(vb, int | float) or vb <= 0:
                continue
            ratios.append(float(va) / float(vb))
            devices.add(a.device[1])
    return ratios, sorted(devices)


def claim_3(runs: RunSet) -> ClaimResult:
    rows, summaries, any_pairs = [], [], False
    always_below, always_above, untaken = True, [], []
    for method in ("i-amfs", "amfs"):
        parts, missing = [], []
        for measure, name in COST_MEASURES:
            ratios, devices = cost_ratios(runs, method, measure)
            if not ratios:
                missing.append(f"{method_name(method)} {name}")
                continue
            any_pairs = True
            geo = float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-300)))))
            always_below &= max(ratios) < 1
            if min(ratios) > 1:
                always_above.append(f"{method_name(method)} {name}")
            parts.append(f"{name} ×{number(geo, 2)}")
            rows.append(
                (
                    f"{method_name(method)} / MAML",
                    name,
                    str(len(ratios)),
                    f"×{number(geo, 2)}",
                    f"×{number(min(ratios), 2)} … ×{number(max(ratios), 2)}",
                    ", ".join(devices),
                )
            )
        if parts:  # a method with some paired runs: the measures it lacks were not taken
            summaries.append(f"{method_name(method)}/MAML: " + ", ".join(parts))
            untaken += missing
    headers = ("ratio", "measure", "paired runs", "geometric mean", "range", "devices")
    claim = "The kernel inner loop needs one step per task and costs less than MAML (time, adaptation, memory)"
    paper = "one step per task; cheaper than MAML"
    if not any_pairs:
        reason = runs.missing_text("I-AMFS/AMFS and MAML pairs timed on one device", "paper")
        return ClaimResult("3", claim, paper, "–", "–", NOT_RUN, reason)
    ours = "; ".join(summaries) + " (geometric mean)"
    if always_above:
        verdict, reason = REFUTED, f"costlier than MAML in every paired run: {', '.join(always_above)}"
    elif always_below and untaken:
        verdict = INCONCLUSIVE
        reason = f"cheaper in every paired run of the measures taken, but not measured: {', '.join(untaken)}"
    elif always_below:
        verdict, reason = SUPPORTED, "cheaper than MAML in every paired run of all three measures"
    else:
        verdict, reason = INCONCLUSIVE, "cheaper in some paired runs or measures, costlier in others"
    return ClaimResult("3", claim, paper, ours, "ratios: see details", verdict, reason, headers, tuple(rows))
