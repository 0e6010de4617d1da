"""What a SLURM job asks for, from the options alone (no cluster needed): defaults that fit the
request, site options passed through, nothing sent that the options do not ask for."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.cli import build_parser, executor_options, run_context
from benchmarks.runs.config import ConfigError
from benchmarks.runs.context import RunContext
from benchmarks.runs.slurm import SlurmOptions, never_starts, parse_sbatch_options, slurm_parameters

CONTEXT = RunContext(Path("data"), Path("cache"), Path("results"))


def test_defaults_ask_for_one_cpu_no_gpu_and_nothing_the_site_did_not_ask_for():
    params, job = slurm_parameters(SlurmOptions(), CONTEXT, "quick")
    assert params == {"timeout_min": 240, "name": "amfs-quick", "cpus_per_task": 1, "slurm_array_parallelism": 16}
    assert job.device == "cpu" and job.threads == 1 and not job.progress and job.results.is_absolute()


def test_cuda_asks_for_a_gpu_and_threads_set_the_cpus():
    params, job = slurm_parameters(SlurmOptions(), RunContext(Path("d"), Path("c"), Path("r"), "cuda", 6), "paper")
    assert params["gpus_per_node"] == 1 and params["cpus_per_task"] == 6 and job.threads == 6
    with pytest.raises(ConfigError, match="--device cuda with --gpus 0"):
        slurm_parameters(SlurmOptions(gpus=0), RunContext(Path("d"), Path("c"), Path("r"), "cuda"), "paper")


def test_every_resource_is_an_option_and_site_options_pass_through():
    args = build_parser().parse_args(
        ["run", "--executor", "slurm", "--partition", "p", "--cpus-per-task", "3", "--mem", "8G", "--gpus", "2"]
        + ["--time", "30", "--array-parallelism", "4", "--sbatch-option", "account=a", "--sbatch-option", "qos=q"]
        + ["--sbatch-option", "constraint=h100|a100"]
    )
    params, job = slurm_parameters(executor_options(args).slurm, run_context(args), "g")
    assert params == {
        "timeout_min": 30,
        "name": "amfs-g",
        "cpus_per_task": 3,
        "slurm_array_parallelism": 4,
        "slurm_partition": "p",
        "gpus_per_node": 2,
        "slurm_mem": "8G",
        "slurm_additional_parameters": {"account": "a", "qos": "q", "constraint": "h100|a100"},
    }
    assert job.device == "cuda"  # --device auto with GPUs asked for


def test_sbatch_options_are_checked():
    assert parse_sbatch_options(["--exclusive=user", "mail_type=END"]) == (("exclusive", "user"), ("mail-type", "END"))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_sbatch_options(["account"])
    with pytest.raises(ConfigError, match="use --cpus-per-task"):
        parse_sbatch_options(["cpus-per-task=4"])
    args = build_parser().parse_args(["run", "--executor", "slurm", "--workers", "2"])
    with pytest.raises(ConfigError, match="apply to the local executor"):
        executor_options(args)


def test_pending_reasons_that_never_clear():
    assert "exceeds what the partition's nodes have" in never_starts("PartitionConfig")
    assert never_starts("AssocMaxCpuPerJobLimit") and never_starts("QOSMaxGRESPerJob")
    for waiting in ("Priority", "Resources", "BeginTime", "JobArrayTaskLimit", "Dependency", "None"):
        assert never_starts(waiting) is None
