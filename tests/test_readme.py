"""Every command the README shows works as written, after the README's own install steps.

The README's code blocks are read from the file itself. Each `python -m benchmarks ...` command (and
the command each `nox -s <session> -- ...` line runs) is parsed by the suite's real argument parser,
so an option the README names must exist with valid values. The cheap ones then run, in the
README's order, in a fresh folder: the quick grid as the README runs it but cut to its sinusoid MAML
run for a few iterations (`--only` and `--set`, so the commands after it have results to work on).
Commands that need a GPU, a cluster or data this machine lacks are parsed only."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# nox sessions whose arguments go to a `python -m benchmarks` command (noxfile.py), and its default
SESSION_COMMANDS = {
    "benchmark": ["run", "--grid", "quick"],
    "report": ["report", "--grid", "quick"],
    "claims": ["claims", "--grid", "quick"],
    "evidence": ["evidence"],
    "perf": ["perf"],
}
# the quick grid, cut to one short run where the README runs it whole
QUICK_RUN = ["--only", "sinusoid/*/maml/*/seed0", "--set", "iterations=20", "val_every=10", "test_episodes=20"]
# commands that run here; the others (a GPU, a cluster, a data root elsewhere, minutes of work) are parsed only
RUNS_HERE = {"methods", "settings", "list", "report", "claims", "data", "run"}


def readme_commands() -> list[str]:
    """The commands of the README's code blocks (indented or fenced), continuation lines joined,
    comments dropped, in order."""
    lines, commands, fenced = README.read_text().splitlines(), [], False
    block: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            block.append(line.strip())
            continue
        text = "\n".join(block).replace("\\\n", " ")
        block = []
        for command in text.splitlines():
            command = re.sub(r"\s+#.*$", "", command).strip()
            if command.startswith(("python", "nox", ".", "pip")):
                commands.append(command)
    return commands


def nox_sessions() -> set[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any("session" in ast.unparse(d) for d in node.decorator_list)
    }


def suite_arguments(command: str) -> list[str] | None:
    """The `python -m benchmarks` arguments a README command stands for (None: an install step)."""
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "benchmarks"]:
        return words[3:]
    if words[:2] == ["nox", "-s"]:
        session = words[2]
        assert session in nox_sessions(), f"README names nox session {session!r}, which noxfile.py lacks"
        extra = words[words.index("--") + 1 :] if "--" in words else []
        base = SESSION_COMMANDS.get(session)
        if base is None:
            return None  # tests, lint, env: the session's existence is what the README promises
        grid_given = any(w.startswith("--grid") for w in extra)
        return [*(base[:1] if grid_given else base), *extra]
    return None


def test_the_readme_shows_the_two_commands_and_the_install():
    commands = readme_commands()
    assert "nox -s benchmark" in commands and "nox -s tests" in commands
    assert "python3 -m pip install nox" in commands and "nox -s env" in commands


def test_every_readme_command_parses():
    parser = build_parser()
    checked = 0
    for command in readme_commands():
        arguments = suite_arguments(command)
        if arguments is None:
            continue
        try:
            parser.parse_args(arguments)
        except SystemExit as e:
            if e.code not in (0, None):  # --help exits 0
                pytest.fail(f"README command does not parse: {command}")
        checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_the_cheap_readme_commands_run_in_order_in_a_fresh_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AMFS_DATA_ROOT": str(tmp_path / "data")}
    (tmp_path / "data").mkdir()
    ran = []
    for command in readme_commands():
        arguments = suite_arguments(command)
        if arguments is None or arguments[0] not in RUNS_HERE:
            continue
        if arguments[0] == "run":
            if arguments[1:] != ["--grid", "quick"]:
                continue  # another grid, a cluster or a GPU: parsed above only
            arguments = [*arguments, "--no-progress", *QUICK_RUN]
        if arguments[:2] == ["data", "prepare"]:
            continue  # builds every cache: minutes, and --download reaches the network
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks", *arguments],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"{command} -> exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
        ran.append(arguments[0])
    assert {"methods", "settings", "list", "run", "report", "claims"} <= set(ran)
