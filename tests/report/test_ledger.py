"""The claims ledger (reports/README.md): a pure function of every store's records, the tier each
claim rests on, refusal to write from nothing, --check, and the commands it prints."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.learner.registry import METHODS
from benchmarks.report.claims import evaluate_claims
from benchmarks.report.evidence import Evidence, EvidenceError, find_stores
from benchmarks.report.fidelity import (
    CACHE_ONLY,
    CHECKSUM,
    EXCLUDED,
    FULL,
    PARTIAL,
    REDUCED,
    fidelity,
    fits,
    signature,
)
from benchmarks.report.ledger import render_ledger
from benchmarks.report.runs import load_runs, parse_run
from benchmarks.report.settle import NEEDS, grid_runs, run_commands
from benchmarks.report.verdicts import NOT_RUN, REFUTED, RULES, SUPPORTED, VERDICTS
from benchmarks.runs.config import parse_assignments
from support.records import make_record, realistic_records, write_records

REPO = Path(__file__).resolve().parents[2]
CACHE_NOTE = "cache only: source files absent under the data root, cache not checked against them"


def store(reports: Path, grid: str, records: list[dict]) -> None:
    """Records as committed: reports/<grid>/results/<grid>/runs/."""
    write_records(reports / grid / "results", grid, [{**r, "grid": grid} for r in records])


def pair(grid: str, effect: float, seeds=(0, 1), methods=("maml", "o-amfs"), **kw) -> list[dict]:
    return [
        make_record(m, "omniglot", "5w1s", s, grid=grid, effect=effect if m != "maml" else 0.0, episodes=80, **kw)
        for m in methods
        for s in seeds
    ]


def cache_only(record: dict) -> dict:
    record["data"]["test"]["cache"] = CACHE_NOTE
    return record


def ledger(reports: Path, *extra: Path) -> Evidence:
    return Evidence(find_stores(reports, list(extra)))


def claim(evidence: Evidence, cid: str):
    return next(c for c in evidence.claims if c.result.cid == cid)


# --- fidelity -----------------------------------------------------------------------------------
def run_of(record: dict):
    return parse_run(record, Path("x.json"), record["grid"])


def test_fidelity_is_the_lowest_level_that_applies():
    full = make_record("maml", "omniglot", "5w1s", 0)
    assert fidelity(run_of(full)) == FULL
    assert fidelity(run_of(make_record("maml", "omniglot", "5w1s", 0, reduced=True))) == REDUCED
    fewer = make_record("maml", "omniglot", "5w1s", 0)
    fewer["training"]["iterations_done"] = 2000  # not declared reduced, but below the protocol's 60,000
    assert fidelity(run_of(fewer)) == REDUCED
    assert fidelity(run_of(make_record("maml", "mini-imagenet", "5w1s", 0, reduced=True, partial=True))) == PARTIAL
    assert fidelity(run_of(cache_only(make_record("maml", "omniglot", "5w1s", 0, partial=True)))) == CACHE_ONLY
    bad = make_record("maml", "omniglot", "5w1s", 0)
    bad["data"]["train"]["checksum"] = {"images_background": "mismatch (md5 00, expected 68)", "x": "ok"}
    assert fidelity(run_of(cache_only(bad))) == CHECKSUM


def test_method_defining_keys_are_not_protocol():
    # every key a method sets by default tells methods apart: it must not split their protocol
    assert {key for spec in METHODS.values() for key in spec.defaults} <= EXCLUDED


# --- tiers --------------------------------------------------------------------------------------
def test_full_protocol_outranks_reduced(tmp_path):
    reports = tmp_path / "reports"
    store(reports, "full", pair("full", +0.05))
    store(reports, "short", pair("short", -0.05, reduced=True))
    evidence = ledger(reports)
    c = claim(evidence, "6a")
    assert c.result.verdict == SUPPORTED and c.level == FULL
    assert [i.run.record["grid"] for t in c.tiers for i in t.chosen] == ["full"] * 4
    # without the full store the reduced tier decides, the other way
    shutil.rmtree(reports / "full")
    c = claim(ledger(reports), "6a")
    assert c.result.verdict == REFUTED and c.level == REDUCED


@pytest.mark.parametrize("lower", ["reduced", "cache only"])
def test_runs_of_different_fidelity_are_never_paired(tmp_path, lower):
    reports = tmp_path / "reports"
    store(reports, "a", pair("a", 0.05, methods=("maml",)))
    other = pair("b", 0.05, methods=("o-amfs",), reduced=lower == "reduced")
    store(reports, "b", [cache_only(r) for r in other] if lower == "cache only" else other)
    evidence = ledger(reports)
    assert claim(evidence, "6a").result.verdict == NOT_RUN
    assert len(evidence.tiers[("omniglot", "5w1s")]) == 2


def test_runs_of_different_protocols_are_never_paired(tmp_path):
    reports = tmp_path / "reports"
    store(reports, "a", pair("a", 0.05, methods=("maml",), meta_batch=4))
    store(reports, "b", pair("b", 0.05, methods=("o-amfs",), meta_batch=8))
    assert claim(ledger(reports), "6a").result.verdict == NOT_RUN


def test_a_variant_joins_the_protocol_of_the_defaults_it_varies(tmp_path):
    reports = tmp_path / "reports"
    records = pair("a", 0.02, meta_batch=4)
    for size in (2, 8):
        for m, effect in (("maml", 0.0), ("o-amfs", 0.01 * size)):
            records += [
                make_record(
                    m,
                    "omniglot",
                    "5w1s",
                    s,
                    grid="a",
                    variant=f"meta-batch-{size}",
                    effect=effect,
                    episodes=80,
                    meta_batch=size,
                    overrides={"meta_batch": size},
                )
                for s in (0, 1)
            ]
    store(reports, "a", records)
    evidence = ledger(reports)
    assert len(evidence.tiers[("omniglot", "5w1s")]) == 1
    assert claim(evidence, "6b").result.verdict != NOT_RUN


def test_replicates_in_two_stores_count_once(tmp_path):
    reports = tmp_path / "reports"
    store(reports, "a", pair("a", 0.03))
    store(reports, "b", pair("b", 0.03, methods=("maml",)))
    evidence = ledger(reports)
    (tier,) = evidence.tiers[("omniglot", "5w1s")]
    assert len(tier.chosen) == 4 and len(tier.set_aside) == 2
    assert {i.run.record["grid"] for i in tier.chosen} == {"a"}  # the store with more default runs


def test_one_store_gives_the_verdicts_of_its_grid_report(tmp_path):
    reports = tmp_path / "reports"
    store(reports, "paper", realistic_records(seeds=(0, 1), episodes=60))
    ours = {c.result.cid: (c.result.verdict, c.result.ours) for c in ledger(reports).claims}
    grid = {c.cid: (c.verdict, c.ours) for c in evaluate_claims(load_runs(reports / "paper" / "results", "paper"))}
    assert ours == grid


# --- the page -----------------------------------------------------------------------------------
def test_same_records_same_bytes_whatever_the_order_of_the_stores(tmp_path):
    reports = tmp_path / "reports"
    store(reports, "paper", realistic_records(seeds=(0,), episodes=40))
    a, b = tmp_path / "a", tmp_path / "b"
    write_records(a, "extra-a", [{**r, "grid": "extra-a"} for r in pair("x", 0.02, reduced=True)])
    write_records(b, "extra-b", [{**r, "grid": "extra-b"} for r in pair("x", 0.02, seeds=(2,))])
    assert main(["evidence", "--reports", str(reports), "--results", str(a), "--results", str(b)]) == 0
    first = (reports / "README.md").read_bytes()
    assert main(["evidence", "--reports", str(reports), "--results", str(b), "--results", str(a)]) == 0
    assert (reports / "README.md").read_bytes() == first
    assert str(tmp_path) not in first.decode()


def test_every_claim_has_a_verdict_and_what_settles_it(tmp_path):
    reports = tmp_path / "reports"
    store(reports, "short", pair("short", 0.02, reduced=True))
    evidence = ledger(reports)
    page = render_ledger(evidence)
    assert [c.result.cid for c in evidence.claims] == list(RULES)
    for c in evidence.claims:
        section = page.split(f"### Claim {c.result.cid}\n", 1)[1].split("\n### ", 1)[0]
        assert c.result.verdict in VERDICTS and f"**{c.result.verdict}**" in section
        if c.level != FULL:  # nothing is at the full protocol here: each has its command
            assert f"python -m benchmarks run --grid {NEEDS[c.result.cid].grid} --only" in section


def test_empty_or_unreadable_stores_write_nothing(tmp_path, capsys):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "README.md").write_text("a good page\n")
    assert main(["evidence", "--reports", str(reports)]) == 2
    assert "no finished run records" in capsys.readouterr().err
    store(reports, "a", pair("a", 0.01))
    broken = next((reports / "a" / "results" / "a" / "runs").glob("*.json"))
    broken.write_text("{not json")
    assert main(["evidence", "--reports", str(reports)]) == 2
    err = capsys.readouterr().err
    assert broken.name in err and "not written" in err
    assert (reports / "README.md").read_text() == "a good page\n"
    broken.unlink()
    with pytest.raises(EvidenceError, match="no <grid>/runs/"):
        find_stores(reports, [tmp_path / "empty-results"])


def test_check_names_the_stale_ledger_and_writes_nothing(tmp_path, capsys):
    reports = tmp_path / "reports"
    store(reports, "a", pair("a", 0.01))
    assert main(["evidence", "--reports", str(reports), "--check"]) == 1
    assert f"{reports / 'README.md'}: missing" in capsys.readouterr().err
    assert not (reports / "README.md").exists()
    assert main(["evidence", "--reports", str(reports)]) == 0
    assert main(["evidence", "--reports", str(reports), "--check"]) == 1  # the grid report of store a is missing
    assert f"{reports / 'a' / 'README.md'}: missing" in capsys.readouterr().err
    assert main(["report", "--grid", "a", "--results", str(reports / "a" / "results"), "--reports", str(reports)]) == 0
    assert main(["evidence", "--reports", str(reports), "--check"]) == 0
    page = reports / "README.md"
    page.write_text(page.read_text().replace("supported", "refuted"))
    edited = page.read_bytes()
    assert main(["evidence", "--reports", str(reports), "--check"]) == 1
    assert f"{page}: differs" in capsys.readouterr().err
    assert page.read_bytes() == edited


# --- commands -----------------------------------------------------------------------------------
def test_commands_run_exactly_the_wanted_runs_of_any_grid():
    for grid, wanted in [
        ("ablations", lambda s: s.method == "maml" and s.variant != "bn-inductive" and s.seed < 2),
        ("paper", lambda s: s.dataset == "cub" or (s.method == "amfs" and s.setting == "5w5s")),
        ("quick", lambda s: s.dataset == "sinusoid"),
    ]:
        commands = run_commands(grid, wanted)
        selected = set()
        for cmd in commands:
            only = re.search(r"--only '?([^' ]+)'?", cmd)[1]
            selected |= {s.key for s in grid_runs(grid, None, only)}
        assert selected == {s.key for s in grid_runs(grid) if wanted(s)}
        assert len(commands) < len(selected)  # globs, not one command per run


def test_reduced_commands_reproduce_the_committed_protocol(tmp_path):
    """The --set of a reduced command gives the grid's runs the protocol of omniglot-short's records."""
    shutil.copytree(REPO / "reports" / "omniglot-short" / "results", tmp_path / "reports" / "short" / "results")
    evidence = Evidence(find_stores(tmp_path / "reports"))
    page = render_ledger(evidence)
    cmd = next(line for line in page.splitlines() if "--grid ablations --only" in line and "--set" in line)
    only = re.search(r"--only '?([^' ]+)'?", cmd)[1]
    overrides = parse_assignments(cmd.split("--set ", 1)[1].split())
    (tier,) = evidence.tiers[("omniglot", "5w1s")]
    specs = grid_runs("ablations", overrides, only)
    assert specs and all(fits(signature(s.config, s.overrides), tier.protocol) for s in specs)


# --- CI: committed grid reports follow from their committed records ------------------------------
@pytest.fixture(scope="module")
def committed_copy(tmp_path_factory) -> Path:
    """reports/omniglot-short (README, figures, records) and the ledger, copied."""
    reports = tmp_path_factory.mktemp("committed") / "reports"
    shutil.copytree(REPO / "reports" / "omniglot-short", reports / "omniglot-short")
    assert main(["evidence", "--reports", str(reports)]) == 0
    return reports


@pytest.mark.parametrize("edit", ["README.md", "paired-vs-maml-accuracy.png", "stale.png", "delete README.md"])
def test_check_fails_naming_an_edited_committed_report(committed_copy, tmp_path, capsys, edit):
    reports = tmp_path / "reports"
    shutil.copytree(committed_copy, reports)
    assert main(["evidence", "--reports", str(reports), "--check"]) == 0, capsys.readouterr().err
    target = reports / "omniglot-short" / edit.removeprefix("delete ")
    if edit.startswith("delete"):
        target.unlink()
    elif edit == "stale.png":
        target.write_bytes(b"a figure no record gives")
    elif edit.endswith(".png"):
        target.write_bytes(target.read_bytes()[:-1] + b"\0")
    else:
        target.write_text(target.read_text().replace("supported", "refuted", 1))
    capsys.readouterr()
    assert main(["evidence", "--reports", str(reports), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{target}:" in err and "--grid omniglot-short" in err
    assert err.count("\n") == 2  # that file, then the summary line
