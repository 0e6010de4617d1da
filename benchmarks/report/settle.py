"""The runs each claim needs, and the exact `python -m benchmarks run` commands that produce them.

`run_commands(grid, wanted, overrides)` is the one place commands are made: it covers exactly the
runs of a grid that `wanted` accepts with a few `--only` globs (coarsest first), and checks each
glob against the grid's own expansion. Point it at any grid (paper, ablations, a campaign grid).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from benchmarks.report import published
from benchmarks.report.evidence import Evidence, Tier
from benchmarks.report.fidelity import FULL, REDUCED, fits, signature
from benchmarks.report.labels import CLASSIFICATION_DATASETS
from benchmarks.runs.config import DEFAULTS, protocol_defaults
from benchmarks.runs.grids import RunSpec, load_grid

Cells = tuple[tuple[str, str], ...]  # (method, variant glob)


@dataclass(frozen=True)
class Need:
    """What settles a claim: the grid that runs it at the full protocol, the cells it compares (to
    be run), other cells it can use, the dataset settings it is about (None: every classification
    setting of the grid), and whether only full-protocol runs can decide it (a level against a
    published number)."""

    grid: str
    cells: Cells
    also: Cells = ()
    settings: tuple[tuple[str, str], ...] | None = None
    full_only: bool = False

    def uses(self, method: str, variant: str) -> bool:
        return any(m == method and fnmatch.fnmatchcase(variant, v) for m, v in self.cells + self.also)

    def wants(self, spec: RunSpec) -> bool:
        in_scope = spec.dataset in CLASSIFICATION_DATASETS and (
            self.settings is None or (spec.dataset, spec.setting) in self.settings
        )
        return in_scope and any(m == spec.method and fnmatch.fnmatchcase(spec.variant, v) for m, v in self.cells)


MINI_5W1S = (("mini-imagenet", "5w1s"),)
FINN_SETTINGS = tuple(
    (p.dataset, p.setting) for p in published.PUBLISHED if p.method == "maml" and p.source == published.FINN_2017
)
META_BATCH = (("maml", "meta-batch-*"), ("o-amfs", "meta-batch-*"))
NEEDS: dict[str, Need] = {
    "1a": Need("paper", (("amfs", "default"),), (("maml", "default"),), MINI_5W1S, full_only=True),
    "1b": Need("paper", (("maml", "default"),), settings=MINI_5W1S, full_only=True),
    "2": Need("paper", (("amfs", "default"), ("maml", "default"))),
    "3": Need("paper", (("maml", "default"), ("i-amfs", "default"), ("amfs", "default"))),
    "4": Need(
        "ablations",
        (("maml", "default"), ("maml", "first-order"), ("amfs", "default"), ("amfs", "first-order")),
        (("fomaml", "default"),),
    ),
    "5a": Need("ablations", (("amfs", "default"), ("amfs", "reg-none"))),
    "5b": Need("ablations", (("amfs", "default"), ("amfs", "reg-gamma-only"))),
    "5c": Need("ablations", (("amfs", "default"), ("amfs", "reg-mu-only"))),
    "6a": Need("paper", (("maml", "default"), ("o-amfs", "default")), META_BATCH),
    "6b": Need("ablations", (("maml", "default"), ("o-amfs", "default"), *META_BATCH)),
    "H": Need("paper", (("maml", "default"),), settings=FINN_SETTINGS, full_only=True),
}


@lru_cache(maxsize=64)
def _grid(grid: str, overrides: str) -> tuple[RunSpec, ...]:
    return tuple(load_grid(grid, json.loads(overrides)).runs)


def grid_runs(grid: str, overrides: dict[str, Any] | None = None, only: str | None = None) -> list[RunSpec]:
    """The runs of a grid as `python -m benchmarks run --grid grid --set ... --only only` would list them."""
    if only is not None:
        return list(load_grid(grid, overrides or {}, only).runs)
    return list(_grid(grid, json.dumps(overrides or {}, sort_keys=True)))


def _selects(pattern: str, key: str) -> bool:
    # the rule of grids.load_grid for --only
    return fnmatch.fnmatch(key, pattern) or pattern in key


def _glob(parts: tuple[str | None, ...]) -> str:
    """dataset/setting/method/variant/seed with None as '*', runs of '*' merged ('*' spans '/')."""
    text = "/".join(p or "*" for p in parts)
    while "*/*" in text:
        text = text.replace("*/*", "*")
    return text


def _candidates(specs: list[RunSpec], all_seeds: set[int]) -> list[str]:
    """--only globs from coarsest (fewest fixed parts) to finest, the runs' keys last; with a seed glob
    when the wanted seeds are some of the grid's."""
    seeds = sorted({s.seed for s in specs})
    seed_globs: list[str | None] = [None]
    if set(seeds) != all_seeds and all(0 <= s <= 9 for s in seeds):
        seed_globs.append(f"seed{seeds[0]}" if len(seeds) == 1 else "seed[" + "".join(map(str, seeds)) + "]")
    found: set[tuple[int, tuple[bool, ...], str]] = set()
    for s in specs:
        stem = re.sub(r"-\d+$", "-*", s.variant)  # meta-batch-8 -> meta-batch-*: every size at once
        for d, st, m, v, seed in itertools.product(
            (None, s.dataset), (None, s.setting), (None, s.method), {None, s.variant, stem}, seed_globs
        ):
            parts = (d, st, m, v, seed)
            # fewest fixed parts first; among as many, a fixed dataset before a fixed setting, method ...
            found.add((sum(p is not None for p in parts), tuple(p is None for p in parts), _glob(parts)))
    return [glob for *_, glob in sorted(found)] + sorted(s.key for s in specs)


def _value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def command(grid: str, pattern: str, overrides: dict[str, Any] | None = None) -> str:
    text = f"python -m benchmarks run --grid {grid} --only {shlex.quote(pattern)}"
    if overrides:
        text += " --set " + " ".join(shlex.quote(f"{k}={_value(v)}") for k, v in sorted(overrides.items()))
    return text


def run_commands(grid: str, wanted: Callable[[RunSpec], bool], overrides: dict[str, Any] | None = None) -> list[str]:
    """Commands that run exactly the runs of `grid` (under `overrides`) that `wanted` accepts."""
    specs = grid_runs(grid, overrides)
    target = {s.key for s in specs if wanted(s)}
    usable = []  # (glob, the wanted runs it selects): globs that select nothing unwanted
    for pattern in _candidates([s for s in specs if s.key in target], {s.seed for s in specs}):
        selected = frozenset(s.key for s in specs if _selects(pattern, s.key))
        if selected and selected <= target:
            usable.append((pattern, selected))
    covered: set[str] = set()
    patterns = []
    while covered != target:  # greedy cover: the glob adding most runs, the coarsest among equals
        pattern, selected = max(usable, key=lambda u: len(u[1] - covered))
        patterns.append(pattern)
        covered |= selected
    for pattern in patterns:  # the grid's own expansion decides what a command runs
        listed = {s.key for s in grid_runs(grid, overrides, pattern)}
        if not listed <= target:
            raise AssertionError(f"--only {pattern!r} on grid {grid} selects {sorted(listed - target)} too")
    return [command(grid, p, overrides) for p in patterns]


def _at_full(evidence: Evidence, spec: RunSpec) -> bool:
    """A full-protocol run of this spec's cell and seed whose protocol is the spec's."""
    own = signature(spec.config, spec.overrides)
    return any(
        i.level == FULL
        and (i.run.dataset, i.run.setting, i.run.method, i.run.variant, i.run.seed)
        == (spec.dataset, spec.setting, spec.method, spec.variant, spec.seed)
        and fits(i.part, own)
        for i in evidence.items
    )


def full_commands(cid: str, evidence: Evidence) -> list[str]:
    """The need's runs at the grid's full protocol that no full-protocol record has yet."""
    need = NEEDS[cid]
    return run_commands(need.grid, lambda s: need.wants(s) and not _at_full(evidence, s))


def protocol_overrides(tier: Tier, specs: list[RunSpec]) -> dict[str, Any] | None:
    """The --set that gives these runs the tier's protocol, or None when no --set can (a key their
    variants set differs, or a key the tier lacks)."""
    protocol = dict(tier.protocol)
    wanted: dict[str, Any] = {}
    for spec in specs:
        for key, value in signature(spec.config, spec.overrides):
            if key not in protocol:
                return None
            if value != protocol[key]:
                wanted[key] = json.loads(protocol[key])
    if any(key in spec.overrides for spec in specs for key in wanted):
        return None
    config = specs[0].config
    protocol_iterations = protocol_defaults(tier.dataset, config["n_way"], config["k_shot"]).get(
        "iterations", DEFAULTS["iterations"]
    )
    iterations = wanted.get("iterations", config.get("iterations"))
    if isinstance(iterations, int) and iterations < protocol_iterations:
        wanted["reduced"] = True
    return wanted


def reduced_commands(cid: str, evidence: Evidence) -> list[str]:
    """For a claim decidable below the full protocol: in each setting that has evidence, the need's
    runs (every seed of the grid) under the protocol of that setting's best tier."""
    need = NEEDS[cid]
    if need.full_only:
        return []
    out: list[str] = []
    for (dataset, setting), tiers in evidence.tiers.items():
        specs = [s for s in grid_runs(need.grid) if need.wants(s) and (s.dataset, s.setting) == (dataset, setting)]
        if not specs or tiers[0].level.rank > REDUCED.rank:
            continue
        overrides = protocol_overrides(tiers[0], specs)
        if overrides is None:
            continue
        keys = {s.key for s in specs}
        moved = [s for s in grid_runs(need.grid, overrides) if s.key in keys]
        if all(fits(signature(s.config, s.overrides), tiers[0].protocol) for s in moved):
            out += run_commands(need.grid, lambda s, keys=keys: s.key in keys, overrides)
    return out
