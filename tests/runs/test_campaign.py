"""Campaigns: slices of grids in order with their claims, `--list`, and a tiny campaign run slot after
slot under a budget of seconds to the numbers of uninterrupted runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.runs.campaign import load_campaign
from benchmarks.runs.config import ConfigError
from benchmarks.runs.grids import load_grid

sys.path.insert(0, str(Path(__file__).parent))
from test_runner import comparable, records, write_grid  # noqa: E402

CAMPAIGN = """description = "a tiny campaign"

[[slice]]
name = "first"
grid = "a.toml"
claims = ["4", "5a"]
why = "the first slice"

[[slice]]
name = "second"
grid = "b.toml"
only = ["*i-amfs*"]
set = { val_every = 25 }
claims = ["tables"]

[[slice]]
name = "again"
grid = "a.toml"
claims = ["H"]
"""


def tiny_campaign(folder: Path) -> Path:
    # maml: 1,000 iterations, longer than one 3-s slot even on a fast machine (4 ms per iteration)
    extra = '\n[[variant]]\nname = "short"\nmethods = ["fomaml"]\nset = { iterations = 200 }\n'
    write_grid(folder, name="a", methods=("maml",), iterations=1000, val_every=100, checkpoint_every=20, extra=extra)
    write_grid(folder, name="b", methods=("i-amfs", "fomaml"), iterations=100, val_every=50, checkpoint_every=20)
    path = folder / "tiny-campaign.toml"
    path.write_text(CAMPAIGN)
    return path


def test_the_evidence_campaign_orders_its_slices_and_its_grids_hold_what_the_claims_need():
    campaign = load_campaign("evidence")
    assert [s.name for s in campaign.slices][:3] == ["omniglot-ablations", "cub-mini-imagenet-reduced", "headline"]
    omniglot = campaign.slices[0]
    assert omniglot.claims == ["4", "5a", "5b", "5c", "6a", "6b"]
    keys = {r.key for r in omniglot.runs}
    for variant in ("reg-none", "reg-mu-only", "reg-gamma-only", "reg-mu-flipped", "reg-gamma-flipped", "first-order"):
        assert f"omniglot/5w1s/amfs/{variant}/seed1" in keys
    for size in (4, 8, 16):
        assert {f"omniglot/5w1s/{m}/meta-batch-{size}/seed0" for m in ("maml", "o-amfs")} <= keys
    assert {"omniglot/5w1s/fomaml/default/seed0", "omniglot/5w1s/o-amfs/default/seed1"} <= keys  # size 32
    assert all(r.config["iterations"] == 2000 and r.config["reduced"] for r in omniglot.runs)
    assert {r.config["meta_batch"] for r in omniglot.runs if r.variant == "default"} == {32}
    flipped = next(r for r in omniglot.runs if r.variant == "reg-mu-flipped")
    assert flipped.config["regularizer.mu_sign"] == -1.0 and flipped.config["regularizer.mu"] > 0
    reduced = campaign.slices[1]
    assert {(r.dataset, r.config["iterations"]) for r in reduced.runs} == {("cub", 5000), ("mini-imagenet", 5000)}
    assert len(reduced.runs) == 20
    headline = campaign.slices[2]
    assert sorted({r.method for r in headline.runs}) == ["amfs", "maml"] and headline.claims == ["1a", "1b", "H"]
    assert {(r.key.split("/")[0], r.config["iterations"]) for r in headline.runs} == {("mini-imagenet", 60000)}
    # a run is listed once, by the first slice that names it
    listed = [(r.grid, r.run_id) for s in campaign.slices for r in s.runs]
    assert (
        len(listed)
        == len(set(listed))
        == len({(r.grid, r.run_id) for r in load_grid("paper").runs})
        + sum(len(load_grid(g).runs) for g in ("evidence-omniglot", "evidence-cub-mini", "ablations"))
    )


def test_a_campaign_with_an_unknown_claim_or_field_is_refused(tmp_path):
    tiny = tiny_campaign(tmp_path)
    tiny.write_text(CAMPAIGN.replace('claims = ["tables"]', 'claims = ["7"]'))
    with pytest.raises(ConfigError, match=r"unknown claim\(s\) \['7'\]"):
        load_campaign(str(tiny))
    tiny.write_text(CAMPAIGN.replace('why = "the first slice"', 'wyh = "x"'))
    with pytest.raises(ConfigError, match="unknown field"):
        load_campaign(str(tiny))


def test_a_tiny_campaign_runs_slot_after_slot_to_the_numbers_of_uninterrupted_runs(tmp_path, capsys):
    campaign = tiny_campaign(tmp_path)
    results = tmp_path / "r"
    base = ["campaign", "--campaign", str(campaign), "--results", str(results)]
    assert main([*base, "--list"]) == 0
    listing = capsys.readouterr().out
    assert "1. first: claims 4, 5a" in listing and "grid a: 2 runs: 2 pending" in listing
    assert "2. second: claims tables" in listing and "grid b --only *i-amfs* --set val_every=25: 1 runs" in listing
    assert "3. again: claims H" in listing and "grid a: 0 runs" in listing
    lasts, first_run = [], None
    for _ in range(40):
        code = main([*base, "--no-progress", "--threads", "1", "--budget", "0.05"])
        out = capsys.readouterr().out
        assert code == 0, out
        if first_run is None:
            first_run = next(
                line.split()[1]
                for line in out.splitlines()
                if line.startswith("  interrupted") or line.startswith("  done")
            )
        lasts.append(out.strip().splitlines()[-1])
        if lasts[-1].startswith("finished within the budget"):
            break
    assert lasts[-1].startswith("finished within the budget"), lasts
    assert first_run == "sinusoid/5shot/maml/default/seed0"  # the first slice's first run
    assert main([*base, "--list"]) == 0
    assert "grid a: 2 runs: 2 done" in capsys.readouterr().out

    straight = tmp_path / "straight"
    run = ["run", "--results", str(straight), "--no-progress", "--threads", "1"]
    assert main([*run, "--grid", str(tmp_path / "a.toml")]) == 0
    assert main([*run, "--grid", str(tmp_path / "b.toml"), "--only", "*i-amfs*", "--set", "val_every=25"]) == 0
    for grid in ("a", "b"):
        got, want = records(results, grid), records(straight, grid)
        assert set(got) == set(want) and got
        for key, record in got.items():
            assert comparable(record) == comparable(want[key]), key
    assert any(r["faults"]["resumed_from_iteration"] for r in records(results, "a").values())
