"""The vocabulary of the claim verdicts: the verdict names, each claim's rule as the README prints
it, the ClaimResult every claim function returns, and the pieces of text they share.

Claims are about classification accuracy (Omniglot, mini-ImageNet, CUB, FC100): sinusoid runs (MSE)
never enter a verdict. Differences are paired: same seeds, same test episodes, in percentage points
(pp), with a 95% CI from a bootstrap over seeds and episodes (benchmarks.common.stats).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.report.compare import Paired
from benchmarks.report.formatting import interval, number
from benchmarks.report.labels import (
    CACHE_ONLY_MARK,
    CHECKSUM_MARK,
    CLASSIFICATION_DATASETS,
    PARTIAL_MARK,
    REDUCED_MARK,
    dataset_name,
    marks,
)
from benchmarks.report.runs import RunSet

SUPPORTED, REFUTED, INCONCLUSIVE, NOT_COMPARABLE, NOT_RUN = (
    "supported",
    "refuted",
    "inconclusive",
    "not comparable",
    "not run",
)
VERDICTS = (SUPPORTED, REFUTED, INCONCLUSIVE, NOT_COMPARABLE, NOT_RUN)


EVERY_SETTING_RULE = (
    "over the classification settings with the runs it needs: **refuted** if any setting's paired 95% CI lies "
    "entirely below 0; else **supported** if every setting's CI lies entirely above 0; else **inconclusive**; "
    "**not run** if no setting has the runs"
)


LEVEL_RULE = (
    "on runs with the full iterations only (reduced-iteration runs: **not comparable**): **refuted** if the "
    "claimed value lies above the upper bound of our 95% CI (bootstrap over seeds and episodes), else **supported**"
)


RULES: dict[str, str] = {
    "1a": "AMFS on mini-ImageNet 5w1s, " + LEVEL_RULE + ".",
    "1b": "MAML on mini-ImageNet 5w1s, " + LEVEL_RULE + ".",
    "2": "Paired difference AMFS − MAML (default variants), "
    + EVERY_SETTING_RULE
    + "; all CIs above 0 but some of the four datasets not run: **inconclusive**.",
    "3": (
        "Ratios I-AMFS/MAML and AMFS/MAML of time per meta-iteration, adaptation time per test episode and peak "
        "memory, over pairs of default runs with the same dataset, setting, seed and device: **supported** if "
        "every ratio of all three measures is below 1 (a measure not taken, such as peak memory on the CPU, "
        "cannot support it: then **inconclusive**, naming it); **refuted** if, for some method and measure, "
        "every ratio is above 1; else **inconclusive**; **not run** without such pairs. One solve per task "
        "holds by construction (docs/methods.md)."
    ),
    "4": (
        "Paired difference of drops (MAML − MAML first-order) − (AMFS − AMFS first-order), MAML first-order "
        "being MAML's first-order variant or else FO-MAML; positive means MAML degrades more; "
        + EVERY_SETTING_RULE
        + "."
    ),
    "5a": "Paired difference AMFS (both terms) − AMFS reg-none (no regularizer), " + EVERY_SETTING_RULE + ".",
    "5b": (
        "Paired difference AMFS (both terms) − AMFS reg-gamma-only (gradient-norm term removed), "
        + EVERY_SETTING_RULE
        + "."
    ),
    "5c": (
        "Paired difference AMFS (both terms) − AMFS reg-mu-only (information term removed), " + EVERY_SETTING_RULE + "."
    ),
    "6a": (
        "Paired difference O-AMFS − MAML at every meta-batch size run (meta-batch variants and the default), "
        "each (setting, size) counted as a setting: " + EVERY_SETTING_RULE + "."
    ),
    "6b": (
        "Least-squares slope of the paired difference O-AMFS − MAML against log2(meta-batch size), per setting "
        "with at least two sizes, in pp per doubling, bootstrapped per episode: " + EVERY_SETTING_RULE + "."
    ),
    "H": (
        "Our MAML (default variant, full iterations only; reduced: **not comparable**) against Finn et al. 2017 "
        "in each setting they report: consistent if |ours − published| <= sqrt(h_ours^2 + h_pub^2), h the 95% CI "
        "half-widths (ours: half the bootstrap CI width); **supported** if every compared setting is "
        "consistent, **refuted** if any is not; **not run** if none is compared."
    ),
}


@dataclass(frozen=True)
class ClaimResult:
    """One row of the claims table, with the per-setting details behind it."""

    cid: str
    claim: str
    paper: str
    ours: str
    difference: str
    verdict: str
    reason: str
    detail_headers: tuple[str, ...] = ()
    details: tuple[tuple[str, ...], ...] = ()

    @property
    def rule(self) -> str:
        return RULES[self.cid]


# --- shared pieces ------------------------------------------------------------------------------
def flags(p: Paired) -> str:
    return marks(p)


def side(p: Paired) -> str:
    if p.ci.above_zero:
        return "above 0"
    if p.ci.below_zero:
        return "below 0"
    return "overlaps 0"


def caveats(comparisons: list[Paired]) -> str:
    """Notes every verdict built on these comparisons carries."""
    notes = []
    if any(len(p.seeds) == 1 for p in comparisons):
        notes.append("a single seed: its CI ignores training-seed variance")
    if any(p.reduced for p in comparisons):
        notes.append(f"{REDUCED_MARK} reduced iterations")
    for mark, name, text in (
        (PARTIAL_MARK, "partial_splits", "partial data"),
        (CHECKSUM_MARK, "checksum_splits", "data whose checksum did not match"),
        (CACHE_ONLY_MARK, "cache_only_splits", "data from a cache alone"),
    ):
        splits = sorted({s for p in comparisons for s in getattr(p, name)})
        if splits:
            notes.append(f"{mark} {text} ({', '.join(splits)} split{'s' if len(splits) > 1 else ''})")
    return "; ".join(notes)


def join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def every_setting(labelled: list[tuple[str, Paired]], missing: str) -> tuple[str, str]:
    """EVERY_SETTING_RULE -> (verdict, reason)."""
    if not labelled:
        return NOT_RUN, missing
    below = [label for label, p in labelled if p.ci.below_zero]
    above = [label for label, p in labelled if p.ci.above_zero]
    note = caveats([p for _, p in labelled])
    if below:
        return REFUTED, join(f"CI below 0 in {', '.join(below)}", note, missing)
    if len(above) == len(labelled):
        return SUPPORTED, join(f"CI above 0 in all {len(labelled)} settings run", note, missing)
    return INCONCLUSIVE, join(f"CI above 0 in {len(above)} of {len(labelled)}, none below", note, missing)


def spread_text(labelled: list[tuple[str, Paired]]) -> str:
    """The range of mean differences over settings, or the one difference with its CI."""
    if not labelled:
        return "–"
    if len(labelled) == 1:
        p = labelled[0][1]
        return f"{interval(p.ci, 2)} {p.unit}{flags(p)}"
    means = [p.ci.mean for _, p in labelled]
    return f"{number(min(means), 2, True)} … {number(max(means), 2, True)} pp over {len(labelled)} settings"


def count_text(labelled: list[tuple[str, Paired]], subject: str) -> str:
    if not labelled:
        return "–"
    above = sum(p.ci.above_zero for _, p in labelled)
    below = sum(p.ci.below_zero for _, p in labelled)
    return f"{subject}: CI above 0 in {above}, below 0 in {below} of {len(labelled)} settings"


def detail_row(label: str, p: Paired, *extra: str) -> tuple[str, ...]:
    return (label, *extra, f"{interval(p.ci, 2)}{flags(p)}", str(len(p.seeds)), side(p))


def classification_settings(runs: RunSet) -> list[tuple[str, str]]:
    return [(d, s) for d in runs.datasets() if d in CLASSIFICATION_DATASETS for s in runs.settings(d)]


def missing_datasets(runs: RunSet, compared: set[str], what: str, suggest: str, **match: str) -> str:
    """Why the claim's datasets without a comparison have none: failure reasons per dataset, and one
    line for those no record mentions."""
    failures, unmentioned = [], []
    for dataset in CLASSIFICATION_DATASETS:
        if dataset in compared:
            continue
        reason = runs.failure_reason(dataset=dataset, **match)
        if reason:
            failures.append(f"{dataset_name(dataset)}: {reason}")
        else:
            unmentioned.append(dataset_name(dataset))
    if unmentioned:
        failures.insert(0, runs.missing_text(f"{what} ({', '.join(unmentioned)})", suggest))
    return "; ".join(failures)
