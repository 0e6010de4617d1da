"""Claims 1a and 1b (AMFS's and MAML's levels on 5-way 1-shot mini-ImageNet) and the harness check H
(our MAML against Finn et al. 2017): levels against published numbers, on full-iteration runs only."""

from __future__ import annotations

import math

from benchmarks.report import published
from benchmarks.report.compare import Paired, level, paired_difference
from benchmarks.report.formatting import interval, number
from benchmarks.report.labels import (
    cell_label,
    method_name,
)
from benchmarks.report.runs import RunSet
from benchmarks.report.verdicts import (
    NOT_COMPARABLE,
    NOT_RUN,
    REFUTED,
    SUPPORTED,
    ClaimResult,
    caveats,
    flags,
    join,
)


# --- claim 1 and the harness check: levels against published numbers -------------------------
def level_text(p: Paired) -> str:
    """'47.10% [45.90, 48.20]': a level with its bootstrap 95% CI."""
    return f"{number(p.ci.mean, 2)}% [{number(p.ci.low, 2)}, {number(p.ci.high, 2)}]"


def level_claim(runs: RunSet, cid: str, method: str) -> ClaimResult:
    """Claim 1a (AMFS) or 1b (MAML): our mini-ImageNet 5w1s level against the claimed one (LEVEL_RULE)."""
    dataset, setting = "mini-imagenet", "5w1s"
    claimed = published.claimed(method, dataset, setting)
    paper = f"{method_name(method)} {claimed.mean:.2f}%"
    claim = f"{method_name(method)} reaches {claimed.mean:.2f}% on 5-way 1-shot mini-ImageNet"
    cell = runs.cell(dataset, setting, method)
    diff = paired_difference(runs.cell(dataset, setting, "amfs"), runs.cell(dataset, setting, "maml"))
    difference = f"AMFS − MAML {interval(diff.ci, 2)} pp{flags(diff)}" if diff and cid == "1a" else "–"
    if not cell:
        what = f"mini-ImageNet 5w1s {method_name(method)}"
        reason = runs.absent_reason(what, "paper", dataset=dataset, setting=setting, method=method)
        return ClaimResult(cid, claim, paper, "–", difference, NOT_RUN, reason)
    full = {seed: run for seed, run in cell.items() if not run.reduced}
    if not full:
        ours = f"{level_text(level(cell))}{flags(level(cell))}"  # flags: † and any data marks
        reason = f"reduced iterations in grid {runs.grid}: run the paper grid for the full protocol"
        return ClaimResult(cid, claim, paper, ours, difference, NOT_COMPARABLE, reason)
    ours_level = level(full)
    ci = ours_level.ci
    ours = f"{level_text(ours_level)}{flags(ours_level)}"
    note = caveats([ours_level])
    if cid == "1a":
        finn = published.reference("maml", dataset, setting)
        note = join(note, f"for scale: {finn.source} reports MAML at {finn.value()}%" if finn else "")
    if claimed.mean > ci.high:
        reason = join(f"claimed {claimed.mean:.2f} lies above our CI upper bound {number(ci.high, 2)}", note)
        return ClaimResult(cid, claim, paper, ours, difference, REFUTED, reason)
    reason = join(f"claimed {claimed.mean:.2f} does not exceed our CI upper bound {number(ci.high, 2)}", note)
    return ClaimResult(cid, claim, paper, ours, difference, SUPPORTED, reason)


def harness_check(runs: RunSet) -> ClaimResult:
    claim = "Harness check: our MAML reproduces Finn et al. 2017"
    refs = [p for p in published.PUBLISHED if p.method == "maml" and p.source == published.FINN_2017]
    paper = "MAML " + "; ".join(f"{cell_label(p.dataset, p.setting)} {p.value()}" for p in refs) + " (%)"
    rows: list[tuple[str, ...]] = []
    compared: list[tuple[str, bool, Paired]] = []
    reduced_only: list[str] = []
    for ref in refs:
        assert ref.mean is not None and ref.ci95 is not None
        label = cell_label(ref.dataset, ref.setting)
        cell = runs.cell(ref.dataset, ref.setting, "maml")
        full = {seed: run for seed, run in cell.items() if not run.reduced}
        if cell and not full:
            reduced_only.append(label)
        ours = level(full) if full else None
        if ours is None:
            continue
        ci = ours.ci
        tolerance = math.hypot((ci.high - ci.low) / 2, ref.ci95)
        consistent = abs(ci.mean - ref.mean) <= tolerance
        compared.append((label, consistent, ours))
        rows.append(
            (
                label,
                ref.value(),
                f"{level_text(ours)}{flags(ours)}",
                f"{number(ci.mean - ref.mean, 2, True)} (tolerance {number(tolerance, 2)})",
                str(len(ours.seeds)),
                "consistent" if consistent else "inconsistent",
            )
        )
    headers = ("setting", "Finn et al. 2017 (%)", "ours (%, 95% CI)", "ours − published (pp)", "seeds", "result")
    if not compared:
        if reduced_only:
            reason = f"not comparable: reduced iterations ({', '.join(reduced_only)}); run the paper grid"
            return ClaimResult("H", claim, paper, "–", "–", NOT_COMPARABLE, reason)
        reason = "; ".join(
            filter(None, (runs.failure_reason(dataset=d, method="maml") for d in ("omniglot", "mini-imagenet")))
        ) or runs.missing_text("MAML Omniglot or mini-ImageNet", "paper")
        return ClaimResult("H", claim, paper, "–", "–", NOT_RUN, reason)
    bad = [label for label, ok, _ in compared if not ok]
    ours_text = f"consistent in {len(compared) - len(bad)} of {len(compared)} settings"
    reduced_note = f"not comparable (reduced): {', '.join(reduced_only)}" if reduced_only else ""
    note = join(caveats([p for *_, p in compared]), reduced_note)
    verdict = REFUTED if bad else SUPPORTED
    reason = join(f"inconsistent in {', '.join(bad)}" if bad else "every compared setting consistent", note)
    return ClaimResult("H", claim, paper, ours_text, "see details", verdict, reason, headers, tuple(rows))
