"""Every stored run of every store, grouped into evidence tiers, and the tier each claim rests on.

A tier is the runs of one dataset setting that share a protocol and a fidelity level
(benchmarks.report.fidelity). Within a tier two records of the same method, variant and seed (the
same run in two stores) are replicates: one is used, from the store with more default-variant runs
in the tier, then by store name. For each claim and dataset setting, the claim uses the best tier in
which the claim's own function (benchmarks.report.claims) finds the runs it needs; a verdict
combines the chosen tiers of all settings. Runs of different tiers are never paired.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from benchmarks.report.claims import evaluate_claims
from benchmarks.report.fidelity import (
    BY_RANK,
    REDUCED,
    Level,
    Signature,
    applicable,
    fidelity,
    fits,
    iterations_of,
    protocol_id,
    run_signature,
)
from benchmarks.report.labels import dataset_order, method_order, setting_order, variant_order
from benchmarks.report.runs import Run, RunSet, load_runs
from benchmarks.report.verdicts import NOT_RUN, RULES, ClaimResult
from benchmarks.runs.store import StoreError

LEDGER_GRID = "(every store)"  # the grid name of the combined evidence, which the claims' texts quote


class EvidenceError(RuntimeError):
    """No stores, no finished runs, or a store that cannot be read: the ledger is not written."""


@dataclass(frozen=True)
class Store:
    label: str  # where the page says the records are, never an absolute path
    grid: str
    runs: RunSet


@dataclass(frozen=True)
class Item:
    """One finished run, with its store, fidelity and protocol signature."""

    run: Run
    store: str
    level: Level
    part: Signature

    @property
    def cell(self) -> tuple[str, str, int]:
        return (self.run.method, self.run.variant, self.run.seed)


@dataclass(frozen=True)
class Tier:
    dataset: str
    setting: str
    level: Level
    protocol: Signature
    chosen: tuple[Item, ...]  # one per method, variant and seed
    set_aside: tuple[Item, ...]  # replicates not used

    @property
    def pid(self) -> str:
        return protocol_id(self.dataset, self.setting, self.protocol)

    @property
    def iterations(self) -> int:
        values = [iterations_of(i.run) for i in self.chosen]
        return min((v for v in values if v is not None), default=0)

    def rank(self) -> tuple:
        """Sort key, best first: fidelity, iterations, number of runs, then the protocol id."""
        return (-self.level.rank, -self.iterations, -len(self.chosen), self.pid)

    @cached_property
    def runset(self) -> RunSet:
        return RunSet(LEDGER_GRID, [i.run for i in self.chosen])

    @cached_property
    def claims(self) -> dict[str, ClaimResult]:
        return {c.cid: c for c in evaluate_claims(self.runset)}


def display_path(path: Path, base: Path) -> str:
    """path relative to base (posix), else its last two parts: never an absolute path."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return "/".join(path.resolve().parts[-2:])


def _store(root: Path, grid: str, label: str) -> Store:
    try:
        return Store(label, grid, load_runs(root, grid))
    except (StoreError, OSError, ValueError) as e:
        raise EvidenceError(f"cannot read the store {root / grid / 'runs'}: {e}") from e


def find_stores(reports_dir: Path, extra: Iterable[Path] = ()) -> list[Store]:
    """reports_dir/*/results/<grid>/runs/ and <dir>/<grid>/runs/ of each extra results folder, sorted."""
    stores = []
    base = reports_dir.resolve().parent
    for runs_dir in sorted(reports_dir.glob("*/results/*/runs")):
        if runs_dir.is_dir():
            root, grid = runs_dir.parent.parent, runs_dir.parent.name
            stores.append(_store(root, grid, display_path(runs_dir.parent, base)))
    for results in sorted(Path(p) for p in extra):
        found = sorted(p for p in results.glob("*/runs") if p.is_dir())
        if not found:
            raise EvidenceError(f"--results {results}: no <grid>/runs/ folder in it; pass a results folder")
        for runs_dir in found:
            stores.append(_store(results, runs_dir.parent.name, display_path(runs_dir.parent, Path.cwd())))
    if not any(s.runs.done for s in stores):
        where = ", ".join(s.label for s in stores) or f"{reports_dir}/*/results/<grid>/runs/"
        raise EvidenceError(f"no finished run records in {where}; nothing to write")
    return sorted(stores, key=lambda s: (s.grid, s.label))


def make_item(run: Run, store: str) -> Item:
    # a run with fewer iterations than the protocol's is reduced whatever its grid declares, so that
    # the claims' own rules treat it as such
    if not run.reduced and REDUCED in applicable(run):
        run = dataclasses.replace(run, reduced=True)
    return Item(run, store, fidelity(run), run_signature(run))


def _replicate_choice(items: list[Item]) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
    defaults = defaultdict(int)
    for item in items:
        defaults[item.store] += item.run.variant == "default"
    ordered = sorted(items, key=lambda i: (-defaults[i.store], i.store, str(i.run.path)))
    chosen: dict[tuple[str, str, int], Item] = {}
    aside = []
    for item in ordered:
        if item.cell in chosen:
            aside.append(item)
        else:
            chosen[item.cell] = item
    by_cell = sorted(chosen.values(), key=lambda i: (method_order(i.run.method), variant_order(i.run.variant), i.cell))
    return tuple(by_cell), tuple(sorted(aside, key=lambda i: (i.cell, i.store)))


def build_tiers(items: Iterable[Item]) -> dict[tuple[str, str], list[Tier]]:
    """The tiers of every dataset setting, best first. A candidate protocol is any run's signature; a
    protocol whose runs all belong to another protocol's tier is not a tier of its own."""
    by_setting: dict[tuple[str, str, int], list[Item]] = defaultdict(list)
    for item in items:
        by_setting[(item.run.dataset, item.run.setting, item.level.rank)].append(item)
    tiers: dict[tuple[str, str], list[Tier]] = defaultdict(list)
    for (dataset, setting, rank), group in sorted(by_setting.items()):
        candidates = {}
        for protocol in sorted({i.part for i in group}, key=sorted):
            members = frozenset(id(i) for i in group if fits(i.part, protocol))
            candidates.setdefault(members, protocol)
        for members, protocol in candidates.items():
            if any(members < other for other in candidates):
                continue
            chosen, aside = _replicate_choice([i for i in group if id(i) in members])
            tiers[(dataset, setting)].append(Tier(dataset, setting, BY_RANK[rank], protocol, chosen, aside))
    for key in tiers:
        tiers[key].sort(key=Tier.rank)
    return dict(sorted(tiers.items(), key=lambda kv: (dataset_order(kv[0][0]), setting_order(kv[0][1]))))


@dataclass(frozen=True)
class ClaimEvidence:
    result: ClaimResult
    tiers: tuple[Tier, ...]  # the tier chosen in each dataset setting that has the runs

    @property
    def level(self) -> Level | None:
        """The lowest fidelity among the chosen tiers (None: no tier)."""
        return min((t.level for t in self.tiers), key=lambda level: level.rank, default=None)


class Evidence:
    """Every store, its runs as tiers, and each claim's verdict on its chosen tiers."""

    def __init__(self, stores: list[Store]):
        self.stores = sorted(stores, key=lambda s: (s.grid, s.label))
        items = [make_item(run, s.label) for s in self.stores for run in s.runs.done]
        self.items = sorted(items, key=lambda i: (i.run.key, i.store))
        self.failed = [run for s in self.stores for run in s.runs.failed]
        try:  # paired runs of a tier on different test episodes break an invariant: name the files
            self.tiers = build_tiers(self.items)
            for tiers in self.tiers.values():
                for tier in tiers:
                    tier.claims  # noqa: B018
            self.claims  # noqa: B018
        except StoreError as e:
            raise EvidenceError(str(e)) from e

    def tiers_for(self, cid: str) -> tuple[Tier, ...]:
        """The best tier of each dataset setting in which claim cid has the runs it needs."""
        chosen = []
        for tiers in self.tiers.values():
            usable = [t for t in tiers if t.claims[cid].verdict != NOT_RUN]
            if usable:
                chosen.append(usable[0])
        return tuple(chosen)

    @cached_property
    def claims(self) -> list[ClaimEvidence]:
        cids = list(RULES)
        evaluated: dict[tuple[str, ...], dict[str, ClaimResult]] = {}
        out = []
        for cid in cids:
            tiers = self.tiers_for(cid)
            key = tuple(t.pid + t.level.name for t in tiers)
            if key not in evaluated:
                runs = [i.run for t in tiers for i in t.chosen] + self.failed
                evaluated[key] = {c.cid: c for c in evaluate_claims(RunSet(LEDGER_GRID, runs))}
            out.append(ClaimEvidence(evaluated[key][cid], tiers))
        return out

    def best_cells(self) -> dict[tuple[str, str, str, str], Tier]:
        """(dataset, setting, method, variant) -> the best tier holding that cell."""
        best: dict[tuple[str, str, str, str], Tier] = {}
        for (dataset, setting), tiers in self.tiers.items():
            for tier in tiers:  # best first
                for item in tier.chosen:
                    best.setdefault((dataset, setting, item.run.method, item.run.variant), tier)
        return best
