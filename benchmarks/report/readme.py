"""The markdown of reports/<grid>/README.md, assembled from the tables, claims and figures of a grid.
Nothing here depends on the clock, the results folder's location or dictionary order."""

from __future__ import annotations

from collections import Counter

from benchmarks.common.tables import markdown as table
from benchmarks.report.figures import RenderedFigure
from benchmarks.report.labels import (
    CACHE_ONLY_MARK,
    CHECKSUM_MARK,
    PARTIAL_MARK,
    REDUCED_MARK,
    cell_label,
    dataset_name,
    dataset_order,
)
from benchmarks.report.runs import Run, RunSet
from benchmarks.report.tables import (
    TF32_TOLERANCE_PP,
    other_references,
    precision_table,
    result_table,
    timing_table,
)
from benchmarks.report.verdicts import VERDICTS, ClaimResult
from benchmarks.runs.assumptions import ASSUMPTIONS, HEAD_INIT_PREFIX, recorded_assumptions
from benchmarks.runs.config import BEFORE_SETTING

HEADING = "# Results of grid `{grid}`"  # the first line of every report; `report` recognises its own by it
METHOD_TEXT = (
    "Differences are paired: two runs with the same dataset, setting and seed were evaluated on the same "
    "test episodes, so the per-episode difference is one sample. Its 95% CI comes from a bootstrap that "
    "resamples training seeds with replacement, then episodes within each drawn seed (2,000 resamples, "
    "fixed generator seed), so it accounts for seed-to-seed variance as well as episode sampling; with a "
    "single seed it reflects episodes only. Accuracy differences are in percentage points (pp). Claims are "
    "about classification accuracy; sinusoid runs (MSE) never enter a verdict."
)
VERDICT_TEXT = (
    "Verdicts: **supported**, **refuted**, **inconclusive** (the CIs do not decide), **not comparable** (a "
    "level against a published full-protocol number, from reduced-iteration runs), **not run** (the runs it "
    "needs are absent; the reason says which and why)."
)


def claims_section(claims: list[ClaimResult], heading: str = "##") -> str:
    """The claims table, the verdict rules and each claim's per-setting details."""
    rows = [(c.cid, c.claim, c.paper, c.ours, c.difference, f"**{c.verdict}**", c.reason) for c in claims]
    headers = ("#", "claim", "paper's value", "ours", "paired difference (95% CI)", "verdict", "reason")
    counts = Counter(c.verdict for c in claims)
    tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    parts = [
        f"{heading} Claims",
        table(headers, rows),
        f"Tally: {tally}.",
        METHOD_TEXT,
        VERDICT_TEXT,
        f"{heading}# Verdict rules",
        "\n".join(f"- **{c.cid}**: {c.rule}" for c in claims),
    ]
    detailed = [c for c in claims if c.details]
    if detailed:
        parts.append(f"{heading}# Details")
        for c in detailed:
            parts += [f"**{c.cid}.** {c.claim}", table(c.detail_headers, c.details)]
    return "\n\n".join(parts)


def _split_descriptions(runs: RunSet, flag: str, detail) -> list[str]:
    """'<dataset> <split><detail>' for each split behind a data flag ('partial_splits', ...), from the records'
    provenance, in dataset order."""
    found = set()
    for run in runs.done:
        for split in getattr(run, flag):
            text = f"{dataset_name(run.dataset)} {split}{detail(run.record['data'][split])}"
            found.add((dataset_order(run.dataset), text))
    return [text for _, text in sorted(found)]


def _counts(provenance: dict) -> str:
    """': 22400 of 38400 images' for a partial split."""
    images, expected = provenance.get("images"), provenance.get("expected_images")
    return f": {images} of {expected} images" if images is not None and expected is not None else ""


def _mismatched(provenance: dict) -> str:
    """' (images_background.zip)' for the source files whose checksum did not match."""
    checksum = provenance.get("checksum")
    if isinstance(checksum, dict):
        parts = [f"{part}.zip" for part, state in sorted(checksum.items()) if str(state).startswith("mismatch")]
        return f" ({', '.join(parts)})" if parts else ""
    return ""


def _cache_file(provenance: dict) -> str:
    """' (omniglot-test-v2.pt, content sha256 verified)': the cache file, and whether its content was checked
    (caches of version 1 carried no checksum)."""
    name = str(provenance.get("cache_file") or "").replace("\\", "/").rsplit("/", 1)[-1] or "cache file not recorded"
    checked = provenance.get("cache_check") == "content sha256 verified"
    return f" ({name}, content {'sha256 verified' if checked else 'not verified'})"


# (flag attribute of report.runs.Run, mark, what it means, detail of each split, what follows from it)
DATA_FLAGS = (
    (
        "partial_splits",
        PARTIAL_MARK,
        "partial data",
        "a split the run used is incomplete",
        _counts,
        "no run used a partial split",
    ),
    (
        "checksum_splits",
        CHECKSUM_MARK,
        "checksum mismatch",
        "a source file the run read does not have its published checksum, so the data may differ from the "
        "official release",
        _mismatched,
        "no run read a source file whose published checksum did not match",
    ),
    (
        "cache_only_splits",
        CACHE_ONLY_MARK,
        "cache only",
        "a split was served from its cache alone, with no source files to check it against",
        _cache_file,
        "every run's data was checked against its source files",
    ),
)


def _flags_text(runs: RunSet) -> str:
    reduced = sum(r.reduced for r in runs.done)
    lines = [
        f"- {REDUCED_MARK} reduced iterations ({reduced} of {len(runs.done)} runs): the grid shortens the "
        "protocol, so levels are not comparable with published numbers; paired comparisons within the grid are.",
    ]
    for flag, mark, name, meaning, detail, none in DATA_FLAGS:
        flagged = sum(bool(getattr(r, flag)) for r in runs.done)
        if flagged:
            lines.append(
                f"- {mark} {name} ({flagged} of {len(runs.done)} runs): {meaning} "
                f"({'; '.join(_split_descriptions(runs, flag, detail))}). See each record's `data` field."
            )
        else:
            lines.append(f"- {mark} {name}: {none}.")
    return "\n".join(lines)


def _results_section(runs: RunSet) -> str:
    parts = ["## Results"]
    if not runs.done:
        return "## Results\n\nNo finished runs in this grid."
    for dataset in runs.datasets():
        for setting in runs.settings(dataset):
            parts.append(f"### {cell_label(dataset, setting)}")
            parts.append(result_table(runs, dataset, setting))
            others = other_references(runs, dataset, setting)
            if others:
                parts.append("Published, not run here: " + "; ".join(others) + ".")
    parts.append(
        "Accuracy and its 95% CI are over all test episodes pooled over seeds (1.96 · std / √n); the seed "
        "spread is the standard deviation of the per-seed means; Δ vs MAML is the paired difference on the "
        "same episodes with a bootstrap CI over seeds and episodes; 'selected iteration' is the "
        "validation-selected checkpoint (range over seeds)."
    )
    head_note = _head_init_note(runs)
    if head_note:
        parts.append(head_note)
    precision = precision_table(runs)
    if precision:
        parts += [
            "### TF32 accuracy check",
            precision,
            f"TF32 (TensorFloat-32 matrix units, 10-bit mantissa inputs) is admissible for a method and setting "
            f"when the paired 95% CI of its accuracy change against the same method in full float32 lies within "
            f"±{TF32_TOLERANCE_PP} pp; 'outside' when the whole CI is beyond the bound. The meta-gradient check of "
            "`python -m benchmarks perf` (tolerance 1e-2) is stricter and does not decide this.",
        ]
    timing = timing_table(runs)
    if timing:
        parts += ["### Time and memory (median over seeds)", timing]
    return "\n\n".join(parts)


def _figures_section(figures: list[RenderedFigure], skipped: list[str]) -> str:
    parts = ["## Figures"]
    if figures:
        parts.append(
            "Each method has its own colour and marker; hollow markers and † mark reduced-iteration runs. Every "
            "axis names its unit and whether lower or higher is better."
        )
    parts += [f"**{f.caption}.**\n\n![{f.caption}]({f.name})" for f in figures]
    if skipped:
        parts.append("Not drawn (their data is absent):\n\n" + "\n".join(f"- {s}" for s in skipped))
    return "\n\n".join(parts)


def _not_finished_section(runs: RunSet) -> str:
    if not runs.failed:
        return "## Runs that did not finish\n\nNone."
    rows = [(r.key, r.reason or "failed, no reason recorded") for r in sorted(runs.failed, key=lambda r: r.key)]
    return "## Runs that did not finish\n\n" + table(("run", "reason"), rows)


def _runs(n: int, noun: str = "run") -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _record_assumptions(run: Run) -> tuple[list[str] | None, bool]:
    """The assumption ids a finished run stands for (None: it recorded no list), and whether one was read
    from its config (runs.assumptions.recorded_assumptions)."""
    listed = run.record.get("assumptions")
    if not isinstance(listed, list):
        return None, False
    return recorded_assumptions([str(i) for i in listed], run.config)


def _head_inits(runs: RunSet) -> tuple[Counter[tuple[str, str]], int]:
    """(head.init value, head-init id) -> finished gradient-inner-loop runs, and how many of them were
    recorded before the setting existed (their value is BEFORE_SETTING's)."""
    counts: Counter[tuple[str, str]] = Counter()
    before = 0
    for run in runs.done:
        ids, inferred = _record_assumptions(run)
        head = [i for i in ids or [] if i.startswith(HEAD_INIT_PREFIX)]
        if head:
            counts[(str(run.config.get("head.init", BEFORE_SETTING["head.init"])), head[0])] += 1
            before += inferred
    return counts, before


def _head_init_note(runs: RunSet) -> str | None:
    """Which head initialisation the runs with a gradient inner loop used, read from their records."""
    counts, before = _head_inits(runs)
    if not counts:
        return None
    used = "; ".join(
        f"`head.init = {value}` in {_runs(n)} (assumption [`{key}`](#assumptions-in-force))"
        for (value, key), n in sorted(counts.items())
    )
    note = "Head initialisation of the runs with a gradient inner loop (MAML, FO-MAML, O-AMFS), from their records: "
    note += f"{used}."
    if before:
        note += (
            f" {before} of them {'was' if before == 1 else 'were'} recorded before the setting existed: their configs "
            f"lack it, and they ran with its default then, `{BEFORE_SETTING['head.init']}`."
        )
    return note


def _assumptions_section(runs: RunSet) -> str:
    counts: Counter[str] = Counter()
    unrecorded = 0
    inferred_runs = 0
    for run in runs.done:
        ids, inferred = _record_assumptions(run)
        if ids is None:
            unrecorded += 1
        else:
            counts.update(set(ids))
            inferred_runs += inferred
    order = {key: i for i, key in enumerate(ASSUMPTIONS)}
    ids = sorted(counts, key=lambda k: (order.get(k, len(order)), k))
    rows = [
        (
            f"`{key}`",
            ASSUMPTIONS.get(key, "not in this version's catalogue (benchmarks/runs/assumptions.py)"),
            str(counts[key]),
        )
        for key in ids
    ]
    parts = ["## Assumptions in force"]
    parts.append(
        "Every definition this suite had to fix (docs/methods.md) or the code makes, as recorded by the runs "
        "(union over finished runs; 'runs' counts those it applies to)."
    )
    parts.append(table(("id", "assumption", "runs"), rows) if rows else "No finished run recorded assumptions.")
    if inferred_runs:
        parts.append(
            f"{_runs(inferred_runs, 'finished run')} {'was' if inferred_runs == 1 else 'were'} recorded before the "
            "setting `head.init` existed: their head-init id "
            f"is read from their config (without the setting: `{BEFORE_SETTING['head.init']}`, the default then), not "
            "from their assumptions list."
        )
    if unrecorded:
        parts.append(f"{unrecorded} finished runs recorded no assumptions list.")
    return "\n\n".join(parts)


def _environment_section(runs: RunSet) -> str:
    counts: Counter[tuple[str, ...]] = Counter()
    for run in runs.done:
        env = run.environment
        revision = str(env.get("git_revision", "unknown"))[:12] + (" (dirty)" if env.get("git_dirty") else "")
        counts[
            (
                f"{env.get('device_name', 'unknown')} ({env.get('device', 'unknown')})",
                str(env.get("torch", "unknown")),
                str(env.get("python", "unknown")),
                str(env.get("strategy") or (env.get("execution") or {}).get("strategy", "unknown")),
                revision,
                str(env.get("source_sha256") or "not recorded")[:12],
            )
        ] += 1
    rows = [(*key, str(n)) for key, n in sorted(counts.items())]
    if not rows:
        return "## Environment\n\nNo finished runs."
    header = ("device", "torch", "python", "strategy", "git revision", "code sha256", "runs")
    return "## Environment\n\n" + table(header, rows)


def render_readme(runs: RunSet, claims: list[ClaimResult], figures: list[RenderedFigure], skipped: list[str]) -> str:
    datasets = ", ".join(dataset_name(d) for d in runs.datasets()) or "none"
    not_run = sum(1 for r in runs.failed if str(r.reason or "").startswith("not run:"))
    intro = (
        f"{HEADING.format(grid=runs.grid)}\n\n"
        f"Generated by `python -m benchmarks report --grid {runs.grid}` from the stored run records: every number "
        "is computed from them, except the published values, each shown with its source "
        "(benchmarks/report/published.py). The same records always give the same file.\n\n"
        f"Runs: {len(runs.done)} finished, {len(runs.failed)} did not finish ({not_run} not run). "
        f"Datasets with finished runs: {datasets}."
    )
    sections = [
        intro,
        _flags_text(runs),
        claims_section(claims),
        _results_section(runs),
        _figures_section(figures, skipped),
        _not_finished_section(runs),
        _assumptions_section(runs),
        _environment_section(runs),
    ]
    return "\n\n".join(sections) + "\n"
