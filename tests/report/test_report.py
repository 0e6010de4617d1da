"""The report: a pure, deterministic function of the store, with every figure drawn when its data exists."""

from __future__ import annotations

import shutil

import pytest

from benchmarks.report import commands
from benchmarks.report.published import PUBLISHED
from support.records import make_record, realistic_records, write_records

SMALL = [
    make_record(method, "omniglot", "5w1s", seed, effect=effect, reduced=True)
    for method, effect in (("maml", 0.0), ("amfs", 0.05))
    for seed in (0, 1)
]


def test_report_is_byte_identical_across_runs_and_folders(tmp_path):
    results = tmp_path / "results"
    write_records(results, "quick", SMALL)
    assert commands.report("quick", results, tmp_path / "a") == 0
    assert commands.report("quick", results, tmp_path / "b") == 0
    copied = tmp_path / "elsewhere" / "store"
    shutil.copytree(results, copied)
    assert commands.report("quick", copied, tmp_path / "c") == 0
    files = sorted(p.name for p in (tmp_path / "a" / "quick").iterdir())
    assert "README.md" in files and any(name.endswith(".png") for name in files)
    for name in files:
        first = (tmp_path / "a" / "quick" / name).read_bytes()
        assert first == (tmp_path / "b" / "quick" / name).read_bytes(), name
        assert first == (tmp_path / "c" / "quick" / name).read_bytes(), name


def test_small_report_shows_flags_and_skips_absent_figures(tmp_path):
    results = tmp_path / "results"
    write_records(results, "quick", SMALL)
    commands.report("quick", results, tmp_path / "reports")
    text = (tmp_path / "reports" / "quick" / "README.md").read_text()
    assert "| MAML | default |" in text and "| AMFS | default |" in text
    assert "98.7 ± 0.4 (Finn et al. 2017, Table 1)" in text  # published beside ours
    assert "| † |" in text  # reduced-iteration flag on the rows
    assert "regularizer ablation: no AMFS reg-none" in text
    assert "meta-batch sizes: no MAML / O-AMFS meta-batch-n runs" in text
    assert "not comparable: reduced iterations" in text  # harness check on reduced runs
    for png in (tmp_path / "reports" / "quick").glob("*.png"):
        assert b"Software" not in png.read_bytes()  # no matplotlib version stamped into the bytes


def test_realistic_report_draws_every_figure(tmp_path):
    results = tmp_path / "results"
    write_records(results, "paper", realistic_records(seeds=(0, 1), episodes=40))
    reports = tmp_path / "reports"
    (reports / "paper").mkdir(parents=True)
    (reports / "paper" / "validation-cub-5w1s.png").write_bytes(b"old")  # a figure this report no longer draws
    (reports / "paper" / "notes.png").write_bytes(b"mine")  # not a name the report draws: left alone
    assert commands.report("paper", results, reports) == 0
    out = reports / "paper"
    assert (out / "notes.png").read_bytes() == b"mine"
    (out / "notes.png").unlink()
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [
        "cost-cuda.png",
        "meta-batch-omniglot-5w1s.png",
        "paired-vs-maml-accuracy.png",
        "paired-vs-maml-mse.png",
        "regularizer-omniglot-5w1s.png",
        "validation-mini-imagenet-5w1s.png",
        "validation-omniglot-20w1s.png",
        "validation-omniglot-5w1s.png",
        "validation-sinusoid-10shot.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in out.glob("*.png"))
    text = (out / "README.md").read_text()
    for name in names:
        assert f"]({name})" in text
    for heading in ("## Claims", "### Verdict rules", "## Results", "### Sinusoid 10shot", "## Assumptions in force"):
        assert heading in text
    assert "test MSE ± 95% CI" in text  # the sinusoid table is in MSE
    assert "| ‡ |" in text  # partial-data flag on mini-ImageNet rows
    assert "mini-ImageNet train: 22400 of 38400 images" in text
    assert "not run: data absent: cub images" in text
    assert "| `kernel-sigma-median` | sigma is initialised" in text
    assert "| NVIDIA H100 80GB HBM3 (cuda) | 2.14.1 | 3.11.2 | vmap | 0123456789ab |" in text


def test_report_fails_on_malformed_record(tmp_path, capsys):
    store = write_records(tmp_path / "results", "quick", SMALL)
    store.record_path("broken").write_text("[]")
    assert commands.report("quick", tmp_path / "results", tmp_path / "reports") == commands.EXIT_INVARIANT
    assert "broken.json" in capsys.readouterr().err
    assert not (tmp_path / "reports" / "quick" / "README.md").exists()


def test_report_of_a_grid_without_finished_runs_says_so(tmp_path):
    failed = make_record("maml", "omniglot", "5w1s", 0, status="failed", reason="not run: data absent")
    write_records(tmp_path / "results", "quick", [failed])
    assert commands.report("quick", tmp_path / "results", tmp_path / "reports") == 0
    text = (tmp_path / "reports" / "quick" / "README.md").read_text()
    assert "No finished runs in this grid." in text and "Runs: 0 finished, 1 did not finish" in text


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda p: f"{p.method}-{p.dataset}-{p.setting}")
def test_every_published_value_names_its_source(entry):
    assert entry.source and (entry.mean is not None or entry.text)
    assert entry.source in entry.display()


def test_cli_dispatches_claims(tmp_path, capsys):
    from benchmarks.cli import main

    write_records(tmp_path / "results", "quick", SMALL)
    assert main(["claims", "--grid", "quick", "--results", str(tmp_path / "results")]) == 0
    assert "| H | Harness check" in capsys.readouterr().out


def test_environment_names_the_code_of_each_run(tmp_path):
    """Runs of different code are told apart by their source fingerprint; older records say it is absent."""
    records = [make_record(m, "omniglot", "5w1s", 0) for m in ("maml", "amfs")]
    records[0]["environment"]["source_sha256"] = "ab" * 32
    write_records(tmp_path / "results", "quick", records)
    commands.report("quick", tmp_path / "results", tmp_path / "reports")
    environment = (tmp_path / "reports" / "quick" / "README.md").read_text().split("## Environment")[1]
    assert "| code sha256 |" in environment
    assert "| " + "ab" * 6 + " | 1 |" in environment and "| not recorded | 1 |" in environment


def test_a_variant_is_compared_with_its_own_default_and_timed_as_itself(tmp_path):
    """A precision variant (as in grid omniglot-tf32): its row carries the paired difference against
    the same method's default variant, equal to the per-episode mean difference, and its own timing."""
    fast = {"meta_iteration_ms_median": 7.0, "adaptation_ms_per_episode": 1.0, "peak_memory_mb": 100.0}
    slow = {"meta_iteration_ms_median": 18.0, "adaptation_ms_per_episode": 1.0, "peak_memory_mb": 100.0}
    records = [
        make_record("amfs", "omniglot", "5w1s", 0, effect=0.05, timing=slow, values=[0.6, 0.8, 1.0, 0.8]),
        make_record("amfs", "omniglot", "5w1s", 0, variant="tf32", timing=fast, values=[0.4, 0.8, 1.0, 0.8]),
    ]
    results = tmp_path / "results"
    write_records(results, "quick", records)
    assert commands.report("quick", results, tmp_path / "reports") == 0
    text = (tmp_path / "reports" / "quick" / "README.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| method | variant |"))
    assert "Δ vs its default variant (pp, paired 95% CI)" in header
    column = header.split("|").index(" Δ vs its default variant (pp, paired 95% CI) ")
    tf32_row = next(line for line in text.splitlines() if line.startswith("| AMFS | tf32 |"))
    default_row = next(line for line in text.splitlines() if line.startswith("| AMFS | default |"))
    assert tf32_row.split("|")[column].strip().startswith("-5.00 ")  # mean of (-20, 0, 0, 0) pp
    assert default_row.split("|")[column].strip() == "–"
    assert "| AMFS | tf32 | NVIDIA H100 80GB HBM3 (cuda) | 7.00 |" in text
    assert "| AMFS | default | NVIDIA H100 80GB HBM3 (cuda) | 18.00 |" in text


def test_the_tf32_accuracy_check_judges_each_method_against_its_float32_default(tmp_path):
    """Within the tolerance (no change), outside it (every episode 10 pp lower) and undecided (a CI
    that straddles the bound); a variant that is not TF32 (here a meta-batch variant) is not listed."""
    base = [0.6, 0.8, 1.0, 0.8]
    changed = {"maml": base, "i-amfs": [v - 0.1 for v in base], "amfs": [0.4, 0.8, 1.0, 0.8]}
    records = []
    for method, values in changed.items():
        records.append(make_record(method, "omniglot", "5w1s", 0, values=base))
        tf32 = make_record(method, "omniglot", "5w1s", 0, variant="tf32", values=values)
        tf32["config"]["precision"] = "tf32"
        records.append(tf32)
    records.append(make_record("maml", "omniglot", "5w1s", 0, variant="meta-batch-2", values=base))
    results = tmp_path / "results"
    write_records(results, "quick", records)
    assert commands.report("quick", results, tmp_path / "reports") == 0
    text = (tmp_path / "reports" / "quick" / "README.md").read_text()
    section = text.split("### TF32 accuracy check")[1].split("###")[0]
    assert "| Omniglot 5w1s | MAML | tf32 | +0.00 [+0.00, +0.00] | 1 | within |" in section
    assert "| Omniglot 5w1s | I-AMFS | tf32 | -10.00 [-10.00, -10.00] | 1 | outside |" in section
    assert "| Omniglot 5w1s | AMFS | tf32 | -5.00 " in section and "undecided" in section
    assert "meta-batch-2" not in section


def test_a_grid_without_tf32_runs_has_no_tf32_check(tmp_path):
    results = tmp_path / "results"
    write_records(results, "quick", SMALL)
    commands.report("quick", results, tmp_path / "reports")
    assert "TF32 accuracy check" not in (tmp_path / "reports" / "quick" / "README.md").read_text()


def flagged_records() -> list[dict]:
    """MAML and AMFS on Omniglot 5w1s and 20w1s; AMFS 5w1s read a zip with the wrong md5, MAML 20w1s was
    tested on a split served from its cache alone."""
    records = [make_record(m, "omniglot", s, 0) for m in ("maml", "amfs") for s in ("5w1s", "20w1s")]
    for record in records:
        for split in ("train", "val", "test"):
            checksum = {"images_background": "ok", "images_evaluation": "ok"}
            record["data"][split].update(checksum=checksum, cache="reused")
    mismatch = "mismatch (md5 0123, expected 6b91aef0f799c5bb55b94e3f2daec811)"
    records[2]["data"]["train"]["checksum"]["images_evaluation"] = mismatch  # AMFS 5w1s
    records[1]["data"]["test"].update(
        cache="cache only: source files absent under the data root", cache_file="/cache/omniglot-test-v2.pt"
    )  # MAML 20w1s
    return records


def test_checksum_mismatch_and_cache_only_runs_are_flagged_beside_their_numbers(tmp_path):
    write_records(tmp_path / "results", "quick", flagged_records())
    assert commands.report("quick", tmp_path / "results", tmp_path / "reports") == 0
    text = (tmp_path / "reports" / "quick" / "README.md").read_text()
    assert "- § checksum mismatch (1 of 4 runs): a source file the run read does not have its published" in text
    assert "(Omniglot train (images_evaluation.zip))" in text
    assert "- ¶ cache only (1 of 4 runs): a split was served from its cache alone" in text
    assert "(Omniglot test (omniglot-test-v2.pt, content not verified))" in text
    five, twenty = (text.split(f"### Omniglot {s}")[1].split("###")[0] for s in ("5w1s", "20w1s"))
    row = {name: next(line for line in table.splitlines() if line.startswith(f"| {name} | default |"))
           for name, table in (("AMFS", five), ("MAML", twenty))}  # fmt: skip
    assert row["AMFS"].endswith("| § |") and row["MAML"].endswith("| ¶ |")
    assert next(line for line in five.splitlines() if line.startswith("| MAML | default |")).endswith("| – |")
    claims = text.split("## Claims")[1].split("## Results")[0]
    assert "§ data whose checksum did not match (train split)" in claims


def test_without_flagged_runs_the_report_says_so(tmp_path):
    write_records(tmp_path / "results", "quick", SMALL)
    commands.report("quick", tmp_path / "results", tmp_path / "reports")
    text = (tmp_path / "reports" / "quick" / "README.md").read_text()
    assert "- § checksum mismatch: no run read a source file whose published checksum did not match." in text
    assert "- ¶ cache only: every run's data was checked against its source files." in text


def test_the_report_says_which_head_initialisation_the_runs_used(tmp_path):
    """Read from the records: a gradient-inner-loop record without head.init in its config was made before
    the setting existed and used the Xavier head; one with the setting lists its head-init id."""
    old = [make_record(m, "omniglot", "5w1s", s) for m in ("maml", "amfs") for s in (0, 1)]
    for record in old:
        if record["method"] == "maml":
            record["assumptions"].append("maml-adapt-all-parameters")
    results = tmp_path / "results"
    write_records(results, "quick", old)
    commands.report("quick", results, tmp_path / "old")
    text = (tmp_path / "old" / "quick" / "README.md").read_text()
    assert "`head.init = xavier` in 2 runs (assumption [`head-init-xavier`]" in text
    assert "2 of them were recorded before the setting existed" in text
    assert "| `head-init-xavier` |" in text and text.split("| `head-init-xavier` |")[1].split("\n")[0].endswith(" 2 |")
    assert "2 finished runs were recorded before the setting `head.init` existed" in text

    new = make_record("maml", "omniglot", "5w1s", 2)
    new["config"]["head.init"] = "reference"
    new["assumptions"] += ["maml-adapt-all-parameters", "head-init-reference-omniglot"]
    write_records(results, "quick", [new])
    commands.report("quick", results, tmp_path / "both")
    text = (tmp_path / "both" / "quick" / "README.md").read_text()
    assert "`head.init = reference` in 1 run (assumption [`head-init-reference-omniglot`]" in text
    assert "`head.init = xavier` in 2 runs" in text and "2 of them were recorded before" in text
    assert "| `head-init-reference-omniglot` |" in text


def test_a_report_without_gradient_inner_loop_runs_has_no_head_note(tmp_path):
    write_records(tmp_path / "results", "quick", [make_record("amfs", "omniglot", "5w1s", 0)])
    commands.report("quick", tmp_path / "results", tmp_path / "reports")
    text = (tmp_path / "reports" / "quick" / "README.md").read_text()
    assert "Head initialisation" not in text and "head-init-" not in text
