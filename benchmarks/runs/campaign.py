"""Campaigns: an ordered list of grid slices, each naming the claims it serves, run by one command
(`python -m benchmarks campaign`) highest value first, under a budget, with several workers.

A campaign is a TOML file (benchmarks/configs/campaigns/NAME.toml, or a path):

    description = "..."
    [[slice]]
    name = "omniglot-ablations"            # unique in the campaign
    grid = "evidence-omniglot"             # a named grid or a .toml path (relative to this file)
    claims = ["4", "5a", "5b"]             # claim ids of docs/protocol.md, or "tables"
    only = ["omniglot/*/maml/*"]           # optional: glob(s) over run keys, as `run --only`
    set = { iterations = 5000 }            # optional: overrides, as `run --set`
    why = "..."                            # optional: one line shown by --list

Records land in the slices' own stores (results/<grid>/), where `list`, `report` and the claims
read them; a run listed by two slices runs once, for the first. All the campaign's runs form one
queue in slice order, so the budget (runs/budget.py) and the workers (runs/workers.py) work across
slices: with a budget, a run that fits may start before an earlier one that does not.
"""

from __future__ import annotations

import fnmatch
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runs.config import ConfigError, check_keys
from benchmarks.runs.context import RunContext
from benchmarks.runs.executors import ExecutorOptions
from benchmarks.runs.grids import CONFIG_DIR, RunSpec, load_grid
from benchmarks.runs.status import run_status
from benchmarks.runs.store import ResultsStore

CAMPAIGN_DIR = CONFIG_DIR / "campaigns"
#: The claims a slice may name (docs/protocol.md, "Claims"), and "tables" for the accuracy tables.
CLAIM_IDS = ("1a", "1b", "2", "3", "4", "5a", "5b", "5c", "6a", "6b", "H", "tables")
SLICE_KEYS = {"name", "grid", "claims", "only", "set", "why"}


@dataclass
class Slice:
    name: str
    grid: str
    claims: list[str]
    only: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    runs: list[RunSpec] = field(default_factory=list)  # this slice's runs, not listed by an earlier slice


@dataclass
class Campaign:
    name: str
    description: str
    source: Path
    slices: list[Slice]


def campaign_path(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".toml":
        if not candidate.exists():
            raise ConfigError(f"campaign file {candidate} does not exist")
        return candidate
    path = CAMPAIGN_DIR / f"{name}.toml"
    if not path.exists():
        names = sorted(p.stem for p in CAMPAIGN_DIR.glob("*.toml"))
        raise ConfigError(f"unknown campaign {name!r}; named campaigns: {', '.join(names)} (or pass a .toml path)")
    return path


def load_campaign(name: str) -> Campaign:
    """Read a campaign and expand its slices into runs (each run once, in the first slice naming it)."""
    path = campaign_path(name)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from e
    unknown = set(raw) - {"description", "slice"}
    if unknown:
        raise ConfigError(f"{path}: unknown campaign field(s) {sorted(unknown)}; valid: description, slice")
    slices: list[Slice] = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(raw.get("slice", [])):
        where = f"{path} [[slice]] #{i + 1}"
        if set(entry) - SLICE_KEYS:
            raise ConfigError(
                f"{where}: unknown field(s) {sorted(set(entry) - SLICE_KEYS)}; valid: {sorted(SLICE_KEYS)}"
            )
        missing = [k for k in ("name", "grid", "claims") if k not in entry]
        if missing:
            raise ConfigError(f"{where}: a slice needs {', '.join(missing)}")
        bad = [c for c in entry["claims"] if c not in CLAIM_IDS]
        if bad:
            raise ConfigError(f"{where}: unknown claim(s) {bad}; valid: {', '.join(CLAIM_IDS)}")
        if entry["name"] in {s.name for s in slices}:
            raise ConfigError(f"{where}: slice name {entry['name']!r} is used twice")
        only = entry.get("only", [])
        only = [only] if isinstance(only, str) else list(only)
        overrides = dict(entry.get("set", {}))
        check_keys(overrides, where)
        grid_name = entry["grid"]
        if grid_name.endswith(".toml") and not Path(grid_name).is_absolute():
            grid_name = str(path.parent / grid_name)
        grid = load_grid(grid_name, overrides)
        piece = Slice(entry["name"], grid.name, list(entry["claims"]), only, overrides, entry.get("why", ""))
        matched = [s for s in grid.runs if not only or any(fnmatch.fnmatch(s.key, p) or p in s.key for p in only)]
        if not matched:
            raise ConfigError(f"{where}: no run of grid {grid.name} matches {only or 'the grid'}")
        for spec in matched:
            if (spec.grid, spec.run_id) not in seen:
                seen.add((spec.grid, spec.run_id))
                piece.runs.append(spec)
        slices.append(piece)
    if not slices:
        raise ConfigError(f"{path}: a campaign needs at least one [[slice]]")
    return Campaign(path.stem, raw.get("description", ""), path, slices)


def _load(name: str) -> Campaign | None:
    try:
        return load_campaign(name)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def list_campaign(name: str, results: Path) -> int:
    """The slices in order: their claims, and how many of their runs are done, running, pending ..."""
    campaign = _load(name)
    if campaign is None:
        return 2
    print(f"campaign {campaign.name} ({campaign.source})\n{campaign.description.strip()}\n")
    totals: dict[str, int] = {}
    for i, piece in enumerate(campaign.slices, 1):
        counts: dict[str, int] = {}
        for spec in piece.runs:
            status, _ = run_status(ResultsStore(results, spec.grid), spec)
            counts[status] = counts.get(status, 0) + 1
            totals[status] = totals.get(status, 0) + 1
        selection = f" --only {' '.join(piece.only)}" if piece.only else ""
        overrides = " --set " + " ".join(f"{k}={v}" for k, v in piece.overrides.items()) if piece.overrides else ""
        said = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(f"{i}. {piece.name}: claims {', '.join(piece.claims)}")
        print(f"   grid {piece.grid}{selection}{overrides}: {len(piece.runs)} runs: {said}")
        if piece.why:
            print(f"   {piece.why}")
    runs = sum(len(s.runs) for s in campaign.slices)
    said = ", ".join(f"{n} {s}" for s, n in sorted(totals.items()))
    print(f"\n{runs} runs in {len(campaign.slices)} slices: {said}; results in {results}")
    return 0


def run_campaign(name: str, context: RunContext, options: ExecutorOptions) -> int:
    """Run every unfinished run of the campaign, slice by slice in order, in one queue."""
    from benchmarks.runs.commands import execute_todo

    campaign = _load(name)
    if campaign is None:
        return 2
    todo: list[RunSpec] = []
    conflicts: list[str] = []
    print(f"campaign {campaign.name}: {len(campaign.slices)} slices; results in {context.results}")
    for i, piece in enumerate(campaign.slices, 1):
        left = 0
        for spec in piece.runs:
            status, detail = run_status(ResultsStore(context.results, spec.grid), spec)
            if status == "conflict":
                conflicts.append(f"{spec.grid}: {spec.key}: {detail}")
            elif status != "done":
                todo.append(spec)
                left += 1
        print(f"  {i}. {piece.name} (claims {', '.join(piece.claims)}): {len(piece.runs)} runs, {left} to run")
    if conflicts:
        print("error: runs stored or running with a different config:\n  " + "\n  ".join(conflicts), file=sys.stderr)
        return 2
    if options.kind != "local":
        return _submit_by_grid(todo, context, options)
    code, last = execute_todo(todo, context, options, f"campaign {name}")
    print(f"see `python -m benchmarks campaign --campaign {name} --list --results {context.results}`")
    if last:
        print(last)
    return code


def _submit_by_grid(todo: list[RunSpec], context: RunContext, options: ExecutorOptions) -> int:
    """One submission (a job array) per grid, in the campaign's order."""
    from benchmarks.runs.commands import execute_todo

    code = 0
    grids = list(dict.fromkeys(spec.grid for spec in todo))
    for grid in grids:
        got, last = execute_todo([s for s in todo if s.grid == grid], context, options, f"grid {grid}")
        if last:
            print(last)
        code = max(code, got)
    return code
