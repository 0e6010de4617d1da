"""The dependency rules of the package layout, checked from the source: data flows down the pipeline
(files -> data -> learner -> runs -> report), and no module imports a layer above its own.

    amfs, baselines          the methods: import nothing of benchmarks, nor each other
    benchmarks.common   0    atomic files, statistics, tables
    benchmarks.device   1    how fast, never what (never imports the learner)
    benchmarks.data     2    loaders, caches, episodes, dataset facts
    benchmarks.learner  3    what is computed: registry, meta-learner, backbones
    benchmarks.runs     4    config, grids, build, step, trainer, runner, executors, store
    benchmarks.report   5    records -> claims, tables, figures, README, ledger
    benchmarks.perf     6    times what runs.build assembles
    benchmarks.cli      7    argument parsing; imported by nothing but __main__

Every import counts, also one inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("amfs", "baselines", "benchmarks")
LAYERS = {"common": 0, "device": 1, "data": 2, "learner": 3, "runs": 4, "report": 5, "perf": 6, "cli": 7}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name refers to (the longest known prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports, anywhere in its source."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = resolve(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def layer(module: str) -> tuple[str, int] | None:
    """(layer name, rank) of a benchmarks module; None for benchmarks itself and __main__."""
    parts = module.split(".")
    if parts[0] != "benchmarks" or len(parts) < 2 or parts[1] == "__main__":
        return None
    return parts[1], LAYERS[parts[1]]


def test_every_benchmarks_module_belongs_to_a_layer():
    placed = (*LAYERS, "__main__")
    unplaced = [m for m in source_modules() if m.startswith("benchmarks.") and m.split(".")[1] not in placed]
    assert not unplaced, f"modules outside the layers {sorted(LAYERS)}: {unplaced}"


def test_the_methods_import_nothing_of_the_harness_nor_each_other():
    bad = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        if m.split(".")[0] in ("amfs", "baselines")
        for t in targets
        if t.split(".")[0] != m.split(".")[0]
    ]
    assert not bad, "\n".join(bad)


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for m, targets in graph().items():
        own = layer(m)
        for t in targets:
            other = layer(t)
            if own is None or other is None:
                continue
            if other[1] > own[1]:
                bad.append(f"{m} ({own[0]}) imports {t} ({other[0]})")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_cli_but_main():
    bad = [m for m, targets in graph().items() if "benchmarks.cli" in targets and m != "benchmarks.__main__"]
    assert not bad, f"these import benchmarks.cli: {bad}"


def test_there_are_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            # a package's __init__ re-exporting its own modules is not a cycle of the modules
            if node == nxt.rpartition(".")[0] or nxt == node.rpartition(".")[0]:
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [*path, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from benchmarks.runs import store\n", {"benchmarks.runs.store"}),
        ("def f():\n    from benchmarks.report.claims import X\n", {"benchmarks.report.claims"}),
        ("import benchmarks.learner.registry as r\n", {"benchmarks.learner.registry"}),
        ("from . import grids\n", {"benchmarks.runs.grids"}),
    ],
)
def test_the_import_finder_sees_every_form(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert imports_of("benchmarks.runs.probe", path, source_modules()) >= expected
