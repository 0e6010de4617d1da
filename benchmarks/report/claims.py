"""Verdicts on the claims of the paper (docs/protocol.md, "Claims") and a harness check, computed from
the runs of one grid. Each claim's rule is stated in its RULES entry, which the README prints, and
implemented by the function that evaluates it.

Claims are about classification accuracy (Omniglot, mini-ImageNet, CUB, FC100): sinusoid runs (MSE)
never enter a verdict. Differences are paired: same seeds, same test episodes, in percentage points
(pp), with a 95% CI from a bootstrap over seeds and episodes (benchmarks.common.stats).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.common.stats import least_squares_weights
from benchmarks.report import published
from benchmarks.report.compare import Paired, level, paired_combination, paired_difference
from benchmarks.report.formatting import interval, number
from benchmarks.report.labels import (
    CACHE_ONLY_MARK,
    CHECKSUM_MARK,
    CLASSIFICATION_DATASETS,
    PARTIAL_MARK,
    REDUCED_MARK,
    cell_label,
    dataset_name,
    marks,
    meta_batch_of_variant,
    method_name,
)
from benchmarks.report.runs import Cell, RunSet

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


# --- claim 2 ------------------------------------------------------------------------------------
def claim_2(runs: RunSet) -> ClaimResult:
    labelled, rows, compared = [], [], set()
    for dataset, setting in classification_settings(runs):
        p = paired_difference(runs.cell(dataset, setting, "amfs"), runs.cell(dataset, setting, "maml"))
        if p is not None:
            label = cell_label(dataset, setting)
            labelled.append((label, p))
            compared.add(dataset)
            rows.append(detail_row(label, p))
    missing = missing_datasets(runs, compared, "AMFS and MAML", "paper")
    verdict, reason = every_setting(labelled, missing)
    if verdict == SUPPORTED and compared != set(CLASSIFICATION_DATASETS):
        # "every dataset" is only shown by runs on every dataset: a subset cannot support it.
        verdict = INCONCLUSIVE
        reason = join(f"AMFS ahead in every setting run, but only {len(compared)} of the claim's datasets", reason)
    return ClaimResult(
        "2",
        "AMFS outperforms MAML on every dataset and setting (Omniglot, mini-ImageNet, CUB, FC100)",
        "AMFS > MAML everywhere",
        count_text(labelled, "AMFS − MAML"),
        spread_text(labelled),
        verdict,
        reason,
        ("setting", "AMFS − MAML (pp, 95% CI)", "seeds", "CI"),
        tuple(rows),
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


# --- claim 4 ------------------------------------------------------------------------------------
def maml_first_order(runs: RunSet, dataset: str, setting: str) -> tuple[Cell, str]:
    """MAML's first-order variant if run, else FO-MAML."""
    cell = runs.cell(dataset, setting, "maml", "first-order")
    if cell:
        return cell, "MAML first-order"
    return runs.cell(dataset, setting, "fomaml"), "FO-MAML"


def claim_4(runs: RunSet) -> ClaimResult:
    labelled, rows, compared = [], [], set()
    for dataset, setting in classification_settings(runs):
        maml, amfs = runs.cell(dataset, setting, "maml"), runs.cell(dataset, setting, "amfs")
        maml_fo, fo_name = maml_first_order(runs, dataset, setting)
        amfs_fo = runs.cell(dataset, setting, "amfs", "first-order")
        p = paired_combination([(1.0, maml), (-1.0, maml_fo), (-1.0, amfs), (1.0, amfs_fo)])
        if p is None:
            continue
        seeds = set(p.seeds)
        maml_drop = paired_difference({s: maml[s] for s in seeds}, maml_fo)
        amfs_drop = paired_difference({s: amfs[s] for s in seeds}, amfs_fo)
        assert maml_drop is not None and amfs_drop is not None
        label = cell_label(dataset, setting)
        labelled.append((label, p))
        compared.add(dataset)
        rows.append(detail_row(label, p, fo_name, interval(maml_drop.ci, 2), interval(amfs_drop.ci, 2)))
    missing = missing_datasets(runs, compared, "AMFS first-order", "ablations", method="amfs", variant="first-order")
    verdict, reason = every_setting(labelled, missing)
    return ClaimResult(
        "4",
        "AMFS degrades less than MAML under first-order approximation",
        "AMFS more robust to first order",
        count_text(labelled, "MAML drop − AMFS drop"),
        spread_text(labelled),
        verdict,
        reason,
        (
            "setting",
            "MAML first order",
            "MAML drop (pp)",
            "AMFS drop (pp)",
            "difference of drops (pp, 95% CI)",
            "seeds",
            "CI",
        ),
        tuple(rows),
    )


# --- claim 5 ------------------------------------------------------------------------------------
REGULARIZER_PARTS = (
    ("5a", "reg-none", "both terms (vs no regularizer)"),
    ("5b", "reg-gamma-only", "the gradient-norm term (vs information term only)"),
    ("5c", "reg-mu-only", "the information term (vs gradient-norm term only)"),
)


def claim_5(runs: RunSet, cid: str, ablated: str, what: str) -> ClaimResult:
    labelled, rows, compared = [], [], set()
    for dataset, setting in classification_settings(runs):
        p = paired_difference(runs.cell(dataset, setting, "amfs"), runs.cell(dataset, setting, "amfs", ablated))
        if p is not None:
            label = cell_label(dataset, setting)
            labelled.append((label, p))
            compared.add(dataset)
            rows.append(detail_row(label, p))
    missing = missing_datasets(runs, compared, f"AMFS {ablated}", "ablations", method="amfs", variant=ablated)
    verdict, reason = every_setting(labelled, missing)
    return ClaimResult(
        cid,
        f"The composite regularizer prevents overfitting: {what}",
        "regularizer improves test accuracy",
        count_text(labelled, f"AMFS − {ablated}"),
        spread_text(labelled),
        verdict,
        reason,
        ("setting", f"AMFS − AMFS {ablated} (pp, 95% CI)", "seeds", "CI"),
        tuple(rows),
    )


# --- claim 6 ------------------------------------------------------------------------------------
def meta_batch_pairs(runs: RunSet, dataset: str, setting: str) -> list[tuple[int, Cell, Cell]]:
    """(meta-batch size, O-AMFS cell, MAML cell) for every size run for both, ascending, one per size:
    the meta-batch-n variants, plus the default variant at its own size when no variant has it."""
    found: dict[int, tuple[Cell, Cell]] = {}
    variants = set(runs.variants(dataset, setting, "o-amfs")) & set(runs.variants(dataset, setting, "maml"))
    for variant in sorted(variants):
        size = meta_batch_of_variant(variant)
        if size is not None:
            found[size] = (runs.cell(dataset, setting, "o-amfs", variant), runs.cell(dataset, setting, "maml", variant))
    o_default, m_default = runs.cell(dataset, setting, "o-amfs"), runs.cell(dataset, setting, "maml")
    sizes = {r.meta_batch for r in [*o_default.values(), *m_default.values()]}
    if o_default and m_default and len(sizes) == 1 and None not in sizes:
        found.setdefault(sizes.pop(), (o_default, m_default))
    return [(size, *found[size]) for size in sorted(found)]


def claim_6a(runs: RunSet) -> ClaimResult:
    labelled, rows, compared = [], [], set()
    for dataset, setting in classification_settings(runs):
        for size, o_amfs, maml in meta_batch_pairs(runs, dataset, setting):
            p = paired_difference(o_amfs, maml)
            if p is not None:
                label = f"{cell_label(dataset, setting)}, meta-batch {size}"
                labelled.append((label, p))
                compared.add(dataset)
                rows.append(detail_row(cell_label(dataset, setting), p, str(size)))
    missing = missing_datasets(runs, compared, "O-AMFS and MAML", "paper")
    verdict, reason = every_setting(labelled, missing)
    return ClaimResult(
        "6a",
        "Task-gradient weighting helps (O-AMFS vs MAML)",
        "O-AMFS > MAML",
        count_text(labelled, "O-AMFS − MAML").replace("settings", "settings × sizes"),
        spread_text(labelled).replace("settings", "settings × sizes"),
        verdict,
        reason,
        ("setting", "meta-batch", "O-AMFS − MAML (pp, 95% CI)", "seeds", "CI"),
        tuple(rows),
    )


def claim_6b(runs: RunSet) -> ClaimResult:
    labelled, rows = [], []
    for dataset, setting in classification_settings(runs):
        pairs = meta_batch_pairs(runs, dataset, setting)
        if len(pairs) < 2:
            continue
        weights = least_squares_weights([math.log2(size) for size, _, _ in pairs])
        terms = [
            (w * sign, cell)
            for w, (_, o, m) in zip(weights, pairs, strict=True)
            for sign, cell in ((1.0, o), (-1.0, m))
        ]
        p = paired_combination(terms)
        if p is None:
            continue
        label = cell_label(dataset, setting)
        labelled.append((label, p))
        rows.append(detail_row(label, p, ", ".join(str(size) for size, _, _ in pairs)))
    missing = "" if labelled else runs.missing_text("O-AMFS and MAML meta-batch-n (two sizes or more)", "ablations")
    verdict, reason = every_setting(labelled, missing)
    return ClaimResult(
        "6b",
        "Task-gradient weighting helps more with larger meta-batches (the paper used 2-4 tasks)",
        "benefit grows with meta-batch size",
        count_text(labelled, "slope"),
        spread_text(labelled).replace(" pp", " pp/doubling") if labelled else "–",
        verdict,
        reason,
        ("setting", "meta-batch sizes", "slope (pp per doubling, 95% CI)", "seeds", "CI"),
        tuple(rows),
    )


def evaluate_claims(runs: RunSet) -> list[ClaimResult]:
    """Every claim's verdict, in the order of docs/protocol.md, then the harness check."""
    steps: list[Callable[[], ClaimResult]] = [
        lambda: level_claim(runs, "1a", "amfs"),
        lambda: level_claim(runs, "1b", "maml"),
        lambda: claim_2(runs),
        lambda: claim_3(runs),
        lambda: claim_4(runs),
        *[lambda c=c, v=v, w=w: claim_5(runs, c, v, w) for c, v, w in REGULARIZER_PARTS],
        lambda: claim_6a(runs),
        lambda: claim_6b(runs),
        lambda: harness_check(runs),
    ]
    return [step() for step in steps]
