"""reports/perf/README.md and ms_per_iteration.png, as pure functions of perf.json."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common.tables import markdown
from benchmarks.learner.registry import METHODS
from benchmarks.perf.memory import protocol_memory_lines
from benchmarks.perf.numerics import FLOOR_LIMIT, agreement_verdict, same_function
from benchmarks.perf.ours import numerics_verdict
from benchmarks.perf.peers import PEER_LABELS, PEER_METHODS, speedup_interval
from benchmarks.perf.projection import project_grid
from benchmarks.perf.strategies import row_precision

PROJECTED_GRIDS = ("paper", "ablations")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _sci(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1e}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return markdown(header, rows).split("\n")


def sorted_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows in report order: setting, our methods (registry order) then peers, strategy."""
    settings = [s["key"] for s in data["settings"]]
    methods = list(METHODS)
    strategies = data["options"]["strategies"]

    def order(r: dict[str, Any]) -> tuple:
        peer = r["implementation"] != "amfs-bench"
        method = list(PEER_METHODS).index(r["method"]) if peer else methods.index(r["method"])
        strategy = strategies.index(r["strategy"]) if r["strategy"] in strategies else len(strategies)
        return settings.index(r["setting"]), peer, method, strategy

    return sorted(data["rows"], key=order)


def _label(row: dict[str, Any]) -> str:
    if row["implementation"] == "amfs-bench":
        return f"{row['method']} [{row['strategy']}]"
    return f"learn2learn {PEER_LABELS.get(row['method'], row['method'])}"


def _peer_ms(data: dict[str, Any], setting: str, method: str) -> float | None:
    for r in data["rows"]:
        if r["setting"] == setting and r["implementation"] == "learn2learn" and r["method"] == method and r["ms"]:
            return r["ms"]["median"]
    return None


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _speedup(peer: float | None, ours: dict | None) -> float | None:
    return None if peer is None or ours is None else peer / ours["median"]


def _main_table(data: dict[str, Any], device: str) -> list[str]:
    header = [
        "device",
        "setting",
        "implementation",
        "method",
        "strategy",
        "ms / meta-iteration",
        "spread",
        "adaptation ms / episode",
        "peak memory MiB",
        "tensor memory MiB",
        "grad rel. err. vs loop",
        "vs float64",
        "tolerance",
        "float64 vs loop",
        "vs l2l MAML",
        "vs l2l FO-MAML",
        "check",
    ]
    # measurements older than the float64 check of each row have no such column
    with_float64 = "same_function_rtol" in data["options"]
    if not with_float64:
        header.remove("float64 vs loop")
    # nor those older than the tensor count a column of it
    with_tensors = "tensor_memory_measure" in data["options"]
    if not with_tensors:
        header.remove("tensor memory MiB")
    rows = []
    for r in sorted_rows(data):
        if r["ms"] is None:
            rows.append(
                [device, r["setting"], r["implementation"], r["method"], r["strategy"], r["status"]]
                + ["n/a"] * (len(header) - 6)
            )
            continue
        ours = r["implementation"] == "amfs-bench"
        maml = _peer_ms(data, r["setting"], "maml")
        fomaml = _peer_ms(data, r["setting"], "fomaml")
        tolerance = r.get("tolerance") or data["options"]["strategy_rtol"]
        check = _check_text(r, tolerance) if ours else "-"
        rows.append(
            [
                device,
                r["setting"],
                r["implementation"],
                r["method"] if ours else PEER_LABELS.get(r["method"], r["method"]),
                r["strategy"],
                _ms(r["ms"]["median"]),
                f"{100 * r['ms']['iqr_fraction']:.0f}%",
                _ms(r["adapt_ms"]["median"]),
                "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.1f}",
                *([_mib(r.get("tensor_mib"))] if with_tensors else []),
                _sci(r["grad_rel_err_vs_loop"]) if ours else "-",
                _sci(r.get("grad_rel_err_vs_float64")) if ours else "-",
                _sci(tolerance) if ours and r["grad_rel_err_vs_loop"] is not None else "-",
                *(
                    [_sci(r.get("float64_rel_err_vs_loop")) if ours and r["strategy"] != "loop" else "-"]
                    if with_float64
                    else []
                ),
                _ratio(_speedup(maml, r["ms"])),
                _ratio(_speedup(fomaml, r["ms"])),
                check,
            ]
        )
    return _table(header, rows)


def _verdict_text(error: float, floor: float | None, tolerance: float, good: str, bad: str) -> str:
    """The verdict of perf_numerics.agreement_verdict, recomputed from the stored numbers."""
    return _verdict_words(agreement_verdict(error, floor, tolerance), floor, good, bad)


def _verdict_words(verdict: bool | None, floor: float | None, good: str, bad: str) -> str:
    if verdict is None:
        return f"inconclusive (float32 floor {floor:.1e} > {FLOOR_LIMIT:.0e})"
    return good if verdict else bad


# The check of a row whose float32 meta-gradient alone did not pass, but whose float64 one is the
# loop's: the same function, the difference float32 rounding (perf.ours.numerics_verdict).
SAME_IN_FLOAT64 = "ok (same in float64)"
PASSED = ("ok", SAME_IN_FLOAT64, "reference")


def _check_text(row: dict[str, Any], tolerance: float) -> str:
    if row["grad_rel_err_vs_loop"] is None:
        return "-"
    if row["strategy"] == "loop":
        return "reference"
    float64_error = row.get("float64_rel_err_vs_loop")
    if same_function(float64_error) is False:
        return "FLAGGED (differs in float64)"
    floor = row.get("float32_floor")
    float32_ok = agreement_verdict(row["grad_rel_err_vs_loop"], floor, tolerance)
    if float32_ok is not True and numerics_verdict(float32_ok, float64_error, row["strategy"]):
        return SAME_IN_FLOAT64
    return _verdict_words(float32_ok, floor, "ok", "FLAGGED")


def _row_check(row: dict[str, Any], data: dict[str, Any]) -> str:
    return _check_text(row, row.get("tolerance") or data["options"]["strategy_rtol"])


def _passed(row: dict[str, Any], data: dict[str, Any]) -> bool:
    """The row's meta-gradient agreed with the loop's (or is the loop itself) in full float32."""
    return _row_check(row, data) in PASSED and row_precision(row["strategy"]) == "fp32"


def _fastest_table(data: dict[str, Any], device: str) -> list[str]:
    """Per method and setting: the fastest row whatever its check, and the fastest full-float32 row
    whose meta-gradient check passed (what a run can use without changing the computation)."""
    header = [
        "device",
        "setting",
        "method",
        "fastest strategy",
        "ms / meta-iteration",
        "its check",
        "fastest fp32 strategy that passed",
        "ms",
        "vs l2l MAML",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in sorted_rows(data):
        if r["implementation"] == "amfs-bench" and r["ms"] is not None:
            groups[(r["setting"], r["method"])].append(r)
    rows = []
    for (setting, method), members in groups.items():
        ranked = sorted(members, key=lambda r: r["ms"]["median"])
        best = ranked[0]
        passed = next((r for r in ranked if _passed(r, data)), None)
        maml = _peer_ms(data, setting, "maml")
        rows.append(
            [
                device,
                setting,
                method,
                best["strategy"],
                _ms(best["ms"]["median"]),
                _row_check(best, data),
                passed["strategy"] if passed else "none",
                _ms(passed["ms"]["median"]) if passed else "-",
                _ratio(_speedup(maml, passed["ms"])) if passed else "-",
            ]
        )
    return _table(header, rows)


def _interval_text(pairs: list[dict[str, Any]]) -> str:
    """What the 95% CI column is, with the coverage it actually has for the pair counts here."""
    coverages = {}
    for p in pairs:
        interval = speedup_interval(p)
        if interval is not None:
            coverages[interval.n] = interval.coverage
    reached = ", ".join(f"{100 * c:.1f}% with {n} pairs" for n, c in sorted(coverages.items()))
    return (
        " 95% CI: distribution-free confidence interval of the median speed-up, two order statistics of the "
        f"per-pair ratios (the sign test inverted; coverage {reached or 'none reached'}; '-' with fewer than 6 "
        "pairs); it assumes the pairs independent, which drifting load on a shared machine can break."
    )


def _paired_text(options: dict[str, Any], pairs: list[dict[str, Any]]) -> str:
    factor = options.get("pair_candidate_factor")
    if factor is None:  # measured before several strategies were paired
        return (
            "Our fastest strategy of the method (table above) and learn2learn's, timed in alternation on the same "
            "meta-batch, so that load from other work hits both sides of each pair alike. Speed-up: median over "
            "pairs of learn2learn's ms / ours (above 1: ours is faster); spread as above, of the per-pair ratios."
            + _interval_text(pairs)
        )
    return (
        "Each of our full-float32 strategies of the method that passed its numerics check and whose row median "
        f"is within {factor:g}x of the fastest such row (table above), and learn2learn's, timed in alternation on "
        "the same meta-batch: every round times each strategy followed by learn2learn, so that load from other "
        "work hits both sides of each pair alike and every strategy is sampled over the same minutes. Speed-up: "
        "median over pairs of learn2learn's ms / ours (above 1: ours is faster), in bold for the method's fastest "
        "strategy in pairs; spread as above, of the per-pair ratios." + _interval_text(pairs)
    )


def _paired_table(data: dict[str, Any], device: str) -> list[str]:
    """One row per paired strategy; per setting and method the fastest in pairs first, its speed-up in
    bold where several were paired."""
    header = [
        "device",
        "setting",
        "method",
        "our strategy",
        "ours ms",
        "learn2learn ms",
        "speed-up",
        "95% CI",
        "spread",
    ]
    order = [s["key"] for s in data["settings"]]
    methods = list(PEER_METHODS)
    pairs = sorted(
        data["paired"],
        key=lambda p: (order.index(p["setting"]), methods.index(p["method"]), -p["speedup"]["median"]),
    )
    counts = Counter((p["setting"], p["method"]) for p in pairs)
    rows, seen = [], set()
    for p in pairs:
        key = (p["setting"], p["method"])
        best = key not in seen and counts[key] > 1
        seen.add(key)
        speedup = _ratio(p["speedup"]["median"])
        interval = speedup_interval(p)
        rows.append(
            [
                device,
                p["setting"],
                f"{p['method']} vs l2l {PEER_LABELS.get(p['method'], p['method'])}",
                p["strategy"],
                _ms(p["ours_ms"]["median"]),
                _ms(p["peer_ms"]["median"]),
                f"**{speedup}**" if best else speedup,
                "-" if interval is None else f"{interval.low:.2f}-{interval.high:.2f}x",
                f"{100 * p['speedup']['iqr_fraction']:.0f}%",
            ]
        )
    return _table(header, rows)


def _cross_check_table(data: dict[str, Any], device: str) -> list[str]:
    header = [
        "device",
        "setting",
        "meta-gradient",
        "rel. error l2l vs ours",
        "l2l vs float64",
        "ours vs float64",
        "tolerance",
        "l2l vs ours of the other order",
        "verdict",
    ]
    order = [s["key"] for s in data["settings"]]
    checks = sorted(
        data["cross_checks"], key=lambda c: (order.index(c["setting"]), list(PEER_METHODS).index(c["method"]))
    )
    rows = [
        [
            device,
            c["setting"],
            PEER_LABELS.get(c["method"], c["method"]),
            _sci(c["rel_err"]),
            _sci(c.get("vs_float64")),
            _sci(c.get("float32_floor")),
            _sci(c["tolerance"]),
            _sci(c["vs_other_order"]),
            _verdict_text(c["rel_err"], c.get("float32_floor"), c["tolerance"], "agree", "DISAGREE"),
        ]
        for c in checks
    ]
    return _table(header, rows)


def _hours(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _projection_section(data: dict[str, Any], grid: str, unit: str) -> list[str]:
    try:
        runs, missing = project_grid(grid, data)
    except Exception as e:  # a grid that no longer loads must not hide the measurements
        return [f"### Grid `{grid}`", "", f"not projected: {type(e).__name__}: {e}", ""]
    methods = [m for m in METHODS if any(r.method == m for r in runs)]
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    reasons: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in runs:
        cells[(r.dataset_setting, r.variant)][r.method] += r.hours
        counts[(r.dataset_setting, r.variant)] += 1
        reasons[(r.dataset_setting, r.variant)].update(r.reasons)
    header = ["setting", "variant", "runs", *methods, "total", "basis"]
    rows = []
    for key in cells:  # grid order
        row_cells = [_hours(cells[key][m]) if m in cells[key] else "-" for m in methods]
        basis = "; ".join(sorted(reasons[key])) or "measured setting"
        estimate = "estimate: " if reasons[key] else ""
        rows.append([key[0], key[1], str(counts[key]), *row_cells, _hours(sum(cells[key].values())), estimate + basis])
    total = sum(r.hours for r in runs)
    exact = sum(r.hours for r in runs if not r.estimate)
    train = sum(r.train_hours for r in runs)
    lines = [f"### Grid `{grid}`: {_hours(total)} {unit} in all ({len(runs)} runs)", ""]
    lines += [
        f"Meta-training {_hours(train)} h, validation and test adaptation {_hours(total - train)} h; "
        f"{_hours(exact)} h from exactly measured settings, {_hours(total - exact)} h estimated. "
        f"{unit} per cell, summed over seeds.",
        "",
    ]
    lines += _table(header, rows)
    if missing:
        lines += ["", f"Not projected (no measured row of a matching method): {', '.join(missing)}"]
    return lines + [""]


def _noise_lines(data: dict[str, Any]) -> list[str]:
    spreads = [r["ms"]["iqr_fraction"] for r in data["rows"] if r["ms"] is not None and len(r["ms_samples"]) >= 2]
    if not spreads:
        return ["Too few repeats to say anything about noise."]
    worst = max((r for r in data["rows"] if r["ms"] is not None), key=lambda r: r["ms"]["iqr_fraction"])
    return [
        f"Spread (interquartile range of the {data['options']['repeats']} timed meta-iterations, as a fraction of "
        f"their median): median {100 * statistics.median(spreads):.0f}% over the rows, largest "
        f"{100 * worst['ms']['iqr_fraction']:.0f}% ({worst['setting']}, {_label(worst)})."
    ]


def _tolerance_text(options: dict[str, Any]) -> str:
    text = (
        "- grad rel. err. vs loop: ||g - g_loop|| / ||g_loop|| of the float32 meta-gradients at the initial "
        "parameters; vs float64: the same against the loop strategy's meta-gradient computed in float64. "
    )
    if "floor_factor" not in options:
        return (
            text + f"A row is FLAGGED above {options['strategy_rtol']:.0e} (this measurement has no float64 reference)."
        )
    return text + (
        f"A row is FLAGGED above its tolerance, max({options['strategy_rtol']:.0e}, {options['floor_factor']:g} x the "
        "float32 loop gradient's own error against float64"
        + (
            f", the largest over the meta-batch as drawn and {options['floor_orders'] - 1} re-orderings of each "
            "task's examples (the same function, summed in other orders)"
            if options.get("floor_orders", 1) > 1
            else ""
        )
        + "): on some meta-batches float32 rounding alone moves the "
        "meta-gradient by more than 1e-4 (a few ill-conditioned tasks), and correct implementations then differ by "
        f"that much too. Where that float32 floor exceeds {FLOOR_LIMIT:.0e}, agreement proves little and the check "
        "says inconclusive, unless the two meta-gradients are bit for bit equal."
        + (
            f" Rows whose strategy carries `+tf32` (TensorFloat-32 convolutions and matrix products) use "
            f"{options['tf32_rtol']:.0e} in place of {options['strategy_rtol']:.0e}: TF32 rounds the inputs of "
            "every product to a 10-bit mantissa, and within that tolerance it counts as the same computation. "
            "Whether TF32 changes what training learns is measured separately, by the paired accuracy check of "
            "grid `omniglot-tf32` (`python -m benchmarks report --grid omniglot-tf32`)."
            if "tf32_rtol" in options
            else ""
        )
        + (
            f" Rows whose strategy carries `+bf16` (the backbone in bfloat16 under autocast, everything after its "
            f"features in float32) use {options['bf16_rtol']:.0e}: bfloat16 keeps an 8-bit mantissa on activations and "
            "gradients too; the accuracy cost is measured by grid `omniglot-bf16`. A `+bf16` row keeps its float32 "
            "verdict; its float64 check is the float32 strategy's function (autocast leaves float64 alone)."
            if "bf16_rtol" in options
            else ""
        )
        + (
            " float64 vs loop: the row's strategy computed in float64 from the loop's initial parameters (a CUDA-graph "
            "row by the eager strategy it replays), against the float64 loop meta-gradient. Above "
            f"{options['same_function_rtol']:.0e} the row computes another function: FLAGGED (differs in float64) "
            "whatever float32 says. Within it, a full-float32 row beyond its float32 tolerance (or inconclusive) is "
            f"`{SAME_IN_FLOAT64}`: the same function, its float32 result further from float64 than the loop's on this "
            "meta-batch (the vs float64 column says how far). A `+tf32` row keeps its float32 verdict."
            if "same_function_rtol" in options
            else ""
        )
    )


def _tf32_text(state: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in state.items())


def render_readme(data: dict[str, Any]) -> str:
    """The perf report as markdown, from the measurements alone (plus the grid files for the
    projections)."""
    env, options = data["environment"], data["options"]
    device = env["device_name"]
    gpu = env["device"] == "cuda"
    unit = "GPU-hours" if gpu else "CPU-hours"
    lines = [
        "# Performance: amfs-bench methods against learn2learn",
        "",
        f"Measured by `python -m benchmarks perf` on **{device}** ({env['device']}, "
        f"PyTorch CPU threads: {env['threads']}"
        + (f"; heap: {env['heap']}" if "heap" in env else "")  # recorded since the heap policy exists
        + "), "
        f"{data['created']}"
        + "".join(f", resumed {t}" for t in data.get("resumed", []))  # perf --resume: same code and options
        + f"; torch {env['torch']}, Python {env['python']}, learn2learn {env['learn2learn']}; "
        f"git {env['git_revision'][:12]}{' (uncommitted changes)' if env['git_dirty'] else ''}"
        + (f"; TF32 state while measuring: {_tf32_text(env['tf32'])}." if gpu else "."),
        "",
        f"Median of {options['repeats']} meta-iterations after {options['warmup']} warm-up, per row; synthetic inputs "
        "of the real shapes (random images, labels 0..N-1); the same meta-batch and test episode for every row of a "
        f"setting; full float32 on both sides (precision `{options['precision']}`, TF32 off) except in rows whose "
        "strategy carries `+tf32`"
        + (" or `+bf16` (the backbone in bfloat16)" if "bf16_rtol" in options else "")
        + "; `+unfold`: im2col + matrix-product convolutions instead of cuDNN's; `+shifted`: "
        "convolutions as nine shifted views times kernel taps; `+bench`: cuDNN's autotuner on; `+nhwc`: the "
        "batched strategy's grouped convolutions in NHWC memory (layers 2-4); `+nhwc-all`: every layer of the "
        "passes of at least 16 x 28 x 28 input pixels per task (device.convolutions.large_pass) in NHWC, except passes "
        "differentiated twice (second-order MAML's support passes), each batch norm's input centred first "
        "(device.convolutions.centre_channels). Regenerate this page and the plot without measuring: "
        "`python -m benchmarks perf --from-json <this folder>/perf.json`.",
        "",
        "## Settings",
        "",
    ]
    lines += _table(
        ["setting", "what is timed", "note"],
        [[s["key"], s["description"], s["note"] or "-"] for s in data["settings"]],
    )
    lines += [
        "",
        "## Time per meta-iteration, adaptation time, memory",
        "",
        "- ms / meta-iteration: one meta-gradient of the meta-batch plus the Adam step, "
        + ("timed with CUDA events" if gpu else "wall clock")
        + "; strategies: `loop` (tasks one by one), `vmap` (all tasks in one torch.func computation), `batched` "
        "(all tasks in one network whose layers are grouped by task)"
        + (", `graph` and `graph-batched` (the vmap or batched step replayed from a CUDA graph)" if gpu else "")
        + "; learn2learn: `l2l.algorithms.MAML` with its clone/adapt loop on an nn.Module copy of the same Conv-4.",
        "- spread: interquartile range of the timed meta-iterations over their median.",
        "- adaptation: test-time adaptation of one episode (MetaLearner.evaluate on one task with the test steps; "
        "learn2learn: clone + first-order adapt steps + query accuracy).",
        f"- peak memory: {options['memory_measure']}.",
        *([f"- tensor memory: {options['tensor_memory_measure']}."] if "tensor_memory_measure" in options else []),
        _tolerance_text(options),
        "- vs l2l MAML / FO-MAML: learn2learn's ms / this row's ms in the same run (above 1: this row is faster).",
        "",
    ]
    lines += _main_table(data, device)
    if data.get("paired"):
        lines += ["", "## Paired comparison with learn2learn (alternating iterations)", ""]
        lines += [_paired_text(data["options"], data["paired"]), ""]
        lines += _paired_table(data, device)
    lines += protocol_memory_lines(data, device)
    lines += [
        "",
        "## Fastest strategy per method",
        "",
        "The fastest row of each method and setting with its meta-gradient check, and the fastest row in full "
        "float32 whose check passed; 'vs l2l MAML' is learn2learn's second-order MAML ms over the latter.",
        "",
    ]
    lines += _fastest_table(data, device)
    lines += ["", "## learn2learn cross-check of the meta-gradient", ""]
    if data["cross_checks"]:
        lines += [
            "Same weights, same meta-batch: learn2learn's MAML (second order) and FO-MAML meta-gradients against ours "
            "(`maml` and `fomaml`, loop strategy), with the tolerance rule above (float64 reference: the float32 "
            "floor is our float32 gradient's error against it). Two independent implementations agreeing, while each "
            "is far from the other order's gradient, is strong evidence that both are right.",
            "",
        ]
        lines += _cross_check_table(data, device)
    else:
        lines += [f"Not run: learn2learn {env['learn2learn']}."]
    lines += ["", "## Time per meta-iteration (plot)", "", "![ms per meta-iteration](ms_per_iteration.png)", ""]
    lines += [f"## Projected {unit} of the paper and ablations grids", ""]
    if gpu:
        lines += [f"Projected from this measurement on {device}."]
    else:
        lines += [
            f"**CPU projections** (measured on {device}): projections of the grids only make sense from a GPU "
            "measurement; these say how long the grids would take on this CPU."
        ]
    lines += [
        "",
        "Per run: iterations x ms per meta-iteration (times the run's meta-batch / the measured meta-batch where "
        "they differ: linear scaling, an approximation) + (test episodes + validation episodes) x adaptation ms per "
        "episode, with the method's row in the closest measured setting under the strategy the run would use. A cell "
        "marked *estimate* lists what differs from the measurement (setting timed as another, meta-batch scaled, ...).",
        "",
    ]
    for grid in PROJECTED_GRIDS:
        lines += _projection_section(data, grid, unit)
    lines += ["## Noise", ""]
    lines += _noise_lines(data)
    if not gpu:
        lines += [
            "",
            "The CPU is shared with other work while measuring, so CPU timings carry that noise; medians are reported.",
        ]
    return "\n".join(lines) + "\n"


def write_plot(data: dict[str, Any], path: Path) -> None:
    """Log-scale horizontal bars of ms per meta-iteration, one panel per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = [s["key"] for s in data["settings"]]
    rows = [r for r in sorted_rows(data) if r["ms"] is not None]
    strategies = data["options"]["strategies"]
    palette = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860"]
    colours = {s: palette[i % len(palette)] for i, s in enumerate(strategies)}
    per_setting = [[r for r in rows if r["setting"] == s] for s in settings]
    heights = [max(len(p), 1) * 0.32 + 0.9 for p in per_setting]
    fig, axes = plt.subplots(len(settings), 1, figsize=(9, sum(heights) + 0.8), height_ratios=heights, squeeze=False)
    for ax, setting, members in zip(axes[:, 0], settings, per_setting, strict=True):
        labels = [_label(r) for r in members]
        values = [r["ms"]["median"] for r in members]
        colors = [
            colours.get(r["strategy"], "#c44e52") if r["implementation"] == "amfs-bench" else "#c44e52" for r in members
        ]
        ax.barh(range(len(members)), values, color=colors)
        ax.set_yticks(range(len(members)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_title(setting, fontsize=10, loc="left")
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=7)
        if values:
            ax.set_xlim(min(values) / 1.5, max(values) * 3)
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[-1, 0].set_xlabel("ms per meta-iteration (median, log scale; lower is faster)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[s]) for s in strategies]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#c44e52"))
    fig.legend(handles, [f"ours: {s}" for s in strategies] + ["learn2learn"], loc="upper right", fontsize=8)
    fig.suptitle(f"Time per meta-iteration on {data['environment']['device_name']}", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=120)
    plt.close(fig)
