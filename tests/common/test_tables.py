"""The one table formatter: markdown for reports, aligned text for the terminal."""

from __future__ import annotations

from benchmarks.common.tables import markdown, text


def test_markdown_escapes_pipes_and_newlines_in_cells():
    table = markdown(["a", "b|c"], [["1", "x|y"], [2, "two\nlines"]])
    assert table.splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 | x\\|y |", "| 2 | two lines |"]


def test_text_aligns_columns_under_a_rule_and_is_empty_without_rows():
    rows = [{"name": "maml", "inner": "gradient"}, {"name": "protonet", "inner": "-"}]
    assert text(rows).splitlines() == [
        "name      inner",
        "--------  --------",
        "maml      gradient",
        "protonet  -",
    ]
    assert text([]) == ""
