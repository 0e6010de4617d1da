"""docs/guarantees.md names the tests that check each promise: every one of them must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`([a-z_/]+\.py)::(\w+)`")


def test_every_test_named_in_the_guarantees_exists():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    references = REFERENCE.findall(text)
    assert len(references) > 40
    missing = []
    for file, name in references:
        path = ROOT / "tests" / file
        functions = (
            {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
            if path.is_file()
            else set()
        )
        if name not in functions or not name.startswith("test_"):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/guarantees.md names tests that do not exist: {missing}"
