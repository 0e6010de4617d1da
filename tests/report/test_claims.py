"""Claim verdicts on constructed stores whose outcome is known, and the claims command's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import commands
from benchmarks.report.claims import evaluate_claims
from benchmarks.report.runs import load_runs
from benchmarks.report.verdicts import INCONCLUSIVE, NOT_COMPARABLE, NOT_RUN, REFUTED, SUPPORTED
from support.records import GRADIENT_COST, KERNEL_COST, make_record, write_records

GRID = "quick"


def verdicts(tmp_path: Path, records: list[dict], grid: str = GRID) -> dict:
    write_records(tmp_path / "results", grid, records)
    return {c.cid: c for c in evaluate_claims(load_runs(tmp_path / "results", grid))}


def pair(method_effects: dict[str, float], dataset: str = "omniglot", setting: str = "5w1s", seeds=(0, 1), **kw):
    return [
        make_record(m, dataset, setting, seed, effect=effect, **kw)
        for m, effect in method_effects.items()
        for seed in seeds
    ]


# --- claim 2 --------------------------------------------------------------------------------------
def test_claim_2_supported_when_amfs_beats_maml_everywhere(tmp_path):
    records = pair({"maml": 0.0, "amfs": 0.08}) + pair({"maml": 0.0, "amfs": 0.08}, setting="20w1s")
    for dataset in ("mini-imagenet", "cub", "fc100"):
        records += pair({"maml": 0.0, "amfs": 0.08}, dataset=dataset)
    claim = verdicts(tmp_path, records)["2"]
    assert claim.verdict == SUPPORTED
    assert len(claim.details) == 5


def test_claim_2_is_inconclusive_while_a_dataset_of_the_claim_is_not_run(tmp_path):
    records = pair({"maml": 0.0, "amfs": 0.08}) + pair({"maml": 0.0, "amfs": 0.08}, setting="20w1s")
    claim = verdicts(tmp_path, records)["2"]
    assert claim.verdict == INCONCLUSIVE
    assert len(claim.details) == 2
    assert "CUB" in claim.reason and "run the paper grid" in claim.reason  # datasets not run are named


def test_claim_2_refuted_when_one_setting_is_worse(tmp_path):
    records = pair({"maml": 0.0, "amfs": 0.08}) + pair({"maml": 0.0, "amfs": -0.08}, setting="20w1s")
    claim = verdicts(tmp_path, records)["2"]
    assert claim.verdict == REFUTED
    assert "Omniglot 20w1s" in claim.reason


def test_claim_2_inconclusive_when_the_methods_tie(tmp_path):
    maml = [make_record("maml", "omniglot", "5w1s", s) for s in (0, 1)]
    same = [dict(r, method="amfs", run_id=r["run_id"] + "-amfs", key=r["key"] + "-amfs") for r in maml]
    claim = verdicts(tmp_path, maml + same)["2"]
    assert claim.verdict == INCONCLUSIVE
    assert claim.details[0][1].startswith("+0.00 [+0.00, +0.00]")


def test_claims_not_run_with_the_failure_reason(tmp_path):
    reason = "not run: data absent: mini-ImageNet train split has 350 of 600 images per class"
    records = [make_record(m, "mini-imagenet", "5w1s", 0, status="failed", reason=reason) for m in ("maml", "amfs")]
    claims = verdicts(tmp_path, records)
    assert claims["1a"].verdict == NOT_RUN and claims["1a"].reason == reason
    assert claims["2"].verdict == NOT_RUN and reason in claims["2"].reason
    assert claims["H"].verdict == NOT_RUN


def test_empty_grid_is_not_run_everywhere_and_points_to_the_paper_grid(tmp_path):
    claims = verdicts(tmp_path, [])
    assert {c.verdict for c in claims.values()} == {NOT_RUN}
    assert claims["1a"].reason == "no mini-ImageNet 5w1s AMFS runs in grid quick: run the paper grid"


def test_sinusoid_never_enters_a_classification_claim(tmp_path):
    records = pair({"maml": 0.0, "amfs": -0.2, "i-amfs": 0.0, "o-amfs": 0.0}, dataset="sinusoid", setting="10shot")
    claims = verdicts(tmp_path, records)
    assert claims["2"].verdict == NOT_RUN
    assert claims["3"].verdict == NOT_RUN
    assert claims["6a"].verdict == NOT_RUN


# --- claim 1 and the harness check ------------------------------------------------------------------
def test_claim_1_refuted_supported_and_not_comparable(tmp_path):
    low = pair({"amfs": -0.1, "maml": -0.15}, dataset="mini-imagenet", grid="paper")
    claims = verdicts(tmp_path / "low", low, grid="paper")
    assert claims["1a"].verdict == REFUTED and claims["1b"].verdict == REFUTED
    assert "above our CI upper bound" in claims["1a"].reason
    assert claims["1a"].difference.startswith("AMFS − MAML +")

    perfect = [make_record("amfs", "mini-imagenet", "5w1s", s, values=[1.0] * 50, grid="paper") for s in (0, 1)]
    assert verdicts(tmp_path / "perfect", perfect, grid="paper")["1a"].verdict == SUPPORTED

    reduced = pair({"amfs": 0.0}, dataset="mini-imagenet", reduced=True)
    claim = verdicts(tmp_path / "reduced", reduced)["1a"]
    assert claim.verdict == NOT_COMPARABLE and "reduced iterations" in claim.reason


def test_harness_check_against_finn(tmp_path):
    # per-episode accuracies averaging 98.7% (Finn's Omniglot 5w1s) are consistent; 90% is not
    consistent = [make_record("maml", "omniglot", "5w1s", s, values=[0.98, 0.994] * 30) for s in (0, 1)]
    assert verdicts(tmp_path / "a", consistent)["H"].verdict == SUPPORTED
    inconsistent = [make_record("maml", "omniglot", "5w1s", s, values=[0.9] * 60) for s in (0, 1)]
    claim = verdicts(tmp_path / "b", inconsistent)["H"]
    assert claim.verdict == REFUTED and "Omniglot 5w1s" in claim.reason
    reduced = [make_record("maml", "omniglot", "5w1s", s, values=[0.9] * 60, reduced=True) for s in (0, 1)]
    claim = verdicts(tmp_path / "c", reduced)["H"]
    assert claim.verdict == NOT_COMPARABLE and claim.reason.startswith("not comparable: reduced iterations")


# --- claim 3 --------------------------------------------------------------------------------------
def test_claim_3_compares_costs_on_the_same_device(tmp_path):
    cheap = pair({"maml": 0.0}, timing=GRADIENT_COST) + pair({"amfs": 0.0, "i-amfs": 0.0}, timing=KERNEL_COST)
    claim = verdicts(tmp_path / "a", cheap)["3"]
    assert claim.verdict == SUPPORTED
    assert any(row[0] == "I-AMFS / MAML" and row[3] == "×0.40" for row in claim.details)

    costly = pair({"maml": 0.0}, timing=KERNEL_COST) + pair({"amfs": 0.0}, timing=GRADIENT_COST)
    assert verdicts(tmp_path / "b", costly)["3"].verdict == REFUTED

    other_device = pair({"maml": 0.0}, timing=GRADIENT_COST) + pair(
        {"amfs": 0.0}, timing=KERNEL_COST, device=("cpu", "x86_64")
    )
    assert verdicts(tmp_path / "c", other_device)["3"].verdict == NOT_RUN


def test_claim_3_is_not_supported_by_a_measure_that_was_not_taken(tmp_path):
    """Peak memory is not measured on the CPU: cheaper time and adaptation alone leave the claim
    inconclusive, and the reason names the missing measure."""
    no_memory = {k: v for k, v in KERNEL_COST.items() if k != "peak_memory_mb"}
    maml = {k: v for k, v in GRADIENT_COST.items() if k != "peak_memory_mb"}
    records = pair({"maml": 0.0}, timing=maml) + pair({"amfs": 0.0, "i-amfs": 0.0}, timing=no_memory)
    claim = verdicts(tmp_path, records)["3"]
    assert claim.verdict == INCONCLUSIVE
    assert "not measured: I-AMFS peak memory, AMFS peak memory" in claim.reason


def test_claim_3_inconclusive_when_one_measure_is_mixed(tmp_path):
    mixed = dict(KERNEL_COST, peak_memory_mb=600.0)  # faster, but more memory than MAML's 500 MB
    records = pair({"maml": 0.0}, timing=GRADIENT_COST) + pair({"amfs": 0.0}, seeds=(0,), timing=mixed)
    records += pair({"amfs": 0.0}, seeds=(1,), timing=KERNEL_COST)
    assert verdicts(tmp_path, records)["3"].verdict == INCONCLUSIVE


# --- claim 4 --------------------------------------------------------------------------------------
def test_claim_4_supported_when_maml_drops_more(tmp_path):
    records = pair({"maml": 0.0, "amfs": 0.0}) + [
        make_record("maml", "omniglot", "5w1s", s, variant="first-order", effect=-0.1) for s in (0, 1)
    ]
    records += [make_record("amfs", "omniglot", "5w1s", s, variant="first-order", effect=0.0) for s in (0, 1)]
    claim = verdicts(tmp_path, records)["4"]
    assert claim.verdict == SUPPORTED
    assert claim.details[0][1] == "MAML first-order"


def test_claim_4_refuted_and_falls_back_to_fomaml(tmp_path):
    records = pair({"maml": 0.0, "amfs": 0.0, "fomaml": 0.0})
    records += [make_record("amfs", "omniglot", "5w1s", s, variant="first-order", effect=-0.1) for s in (0, 1)]
    claim = verdicts(tmp_path, records)["4"]
    assert claim.verdict == REFUTED
    assert claim.details[0][1] == "FO-MAML"


# --- claim 5 --------------------------------------------------------------------------------------
def test_claim_5_each_term(tmp_path):
    records = pair({"amfs": 0.08})
    records += [make_record("amfs", "omniglot", "5w1s", s, variant="reg-none") for s in (0, 1)]
    records += [make_record("amfs", "omniglot", "5w1s", s, variant="reg-mu-only", effect=0.16) for s in (0, 1)]
    claims = verdicts(tmp_path, records)
    assert claims["5a"].verdict == SUPPORTED  # both terms beat none
    assert claims["5c"].verdict == REFUTED  # adding the information term to mu-only hurts
    assert claims["5b"].verdict == NOT_RUN and "reg-gamma-only" in claims["5b"].reason


# --- claim 6 --------------------------------------------------------------------------------------
def meta_batch_records(gain_per_doubling: float, base: float = 0.05) -> list[dict]:
    records = []
    for k, size in enumerate((2, 4, 8, 16)):
        for seed in (0, 1):
            variant = f"meta-batch-{size}"
            records.append(make_record("maml", "omniglot", "5w1s", seed, variant=variant, meta_batch=size))
            effect = base + gain_per_doubling * k
            records.append(
                make_record("o-amfs", "omniglot", "5w1s", seed, variant=variant, meta_batch=size, effect=effect)
            )
    return records


def test_claim_6_trend_supported_and_refuted(tmp_path):
    growing = verdicts(tmp_path / "a", meta_batch_records(0.05))
    assert growing["6a"].verdict == SUPPORTED
    assert growing["6b"].verdict == SUPPORTED
    assert growing["6b"].details[0][1] == "2, 4, 8, 16"
    shrinking = verdicts(tmp_path / "b", meta_batch_records(-0.05, base=0.2))
    assert shrinking["6b"].verdict == REFUTED


def test_claim_6b_needs_two_meta_batch_sizes(tmp_path):
    claims = verdicts(tmp_path, pair({"maml": 0.0, "o-amfs": 0.1}))
    assert claims["6a"].verdict == SUPPORTED  # the default variants at their own meta-batch size
    assert claims["6b"].verdict == NOT_RUN and "run the ablations grid" in claims["6b"].reason


# --- the claims command -------------------------------------------------------------------------
def test_claims_command_exit_codes(tmp_path, capsys):
    results = tmp_path / "results"
    write_records(results, GRID, pair({"maml": 0.0, "amfs": -0.1}))
    assert commands.claims(GRID, results, strict=False) == 0
    out = capsys.readouterr().out
    assert "| 2 |" in out and "**refuted**" in out
    assert out.strip().splitlines()[-1].startswith(f"claims of grid {GRID} from 4 finished runs: ")
    assert commands.claims(GRID, results, strict=True) == commands.EXIT_REFUTED


def test_claims_command_fails_on_malformed_record(tmp_path, capsys):
    results = tmp_path / "results"
    store = write_records(results, GRID, pair({"maml": 0.0, "amfs": 0.1}))
    store.record_path("broken").write_text("{not json")
    assert commands.claims(GRID, results, strict=False) == commands.EXIT_INVARIANT
    assert "broken.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda r: r["test"].pop("per_episode"), "per_episode"),
        (lambda r: r.pop("test"), "without a 'test' section"),
        (lambda r: r["test"].update(episodes=999), "test.episodes is 999"),
        (lambda r: r["test"].update(metric="mse"), "expected 'accuracy'"),
        (lambda r: r["test"]["per_episode"].__setitem__(0, 1.5), "in [0, 1]"),
        (lambda r: r.update(status="running"), "neither 'done' nor 'failed'"),
        (lambda r: r.pop("seed"), "lacks seed"),
    ],
)
def test_claims_command_fails_on_broken_invariants(tmp_path, capsys, corrupt, message):
    results = tmp_path / "results"
    store = write_records(results, GRID, pair({"maml": 0.0, "amfs": 0.1}))
    path = sorted(store.runs_dir.glob("*.json"))[0]
    record = json.loads(path.read_text())
    corrupt(record)
    path.write_text(json.dumps(record))
    assert commands.claims(GRID, results, strict=False) == commands.EXIT_INVARIANT
    err = capsys.readouterr().err
    assert message in err and path.name in err


def test_claims_command_fails_on_paired_length_mismatch(tmp_path, capsys):
    records = [
        make_record("maml", "omniglot", "5w1s", 0, episodes=60),
        make_record("amfs", "omniglot", "5w1s", 0, episodes=50),
    ]
    write_records(tmp_path / "results", GRID, records)
    assert commands.claims(GRID, tmp_path / "results", strict=False) == commands.EXIT_INVARIANT
    err = capsys.readouterr().err
    assert "hold 60 and 50 test episodes" in err or "hold 50 and 60 test episodes" in err


def test_claims_command_fails_on_duplicate_runs(tmp_path, capsys):
    record = make_record("maml", "omniglot", "5w1s", 0)
    twin = dict(record, run_id="twin")
    write_records(tmp_path / "results", GRID, [record, twin])
    assert commands.claims(GRID, tmp_path / "results", strict=False) == commands.EXIT_INVARIANT
    assert "two finished runs" in capsys.readouterr().err


def test_claims_command_fails_on_paired_episode_seed_mismatch(tmp_path, capsys):
    other = make_record("amfs", "omniglot", "5w1s", 0)
    other["test"]["episode_seed"] = 99
    write_records(tmp_path / "results", GRID, [make_record("maml", "omniglot", "5w1s", 0), other])
    assert commands.claims(GRID, tmp_path / "results", strict=False) == commands.EXIT_INVARIANT
    assert "episode seeds" in capsys.readouterr().err
