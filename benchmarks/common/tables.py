"""The suite's one table formatter: GitHub markdown for reports, aligned plain text for the terminal.

Written out rather than taken from pandas: a dozen lines, and pandas' markdown writer needs a further
package (tabulate) for what these do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def escape(text: str) -> str:
    """A cell's text, safe inside a markdown table row."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(escape(str(h)) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(escape(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of {column: value} as left-aligned columns under a header and a rule; '' for no rows."""
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
