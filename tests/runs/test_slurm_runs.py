"""The SLURM executor on a real single-node cluster (tests/support/slurm_cluster.py): the README's
cluster commands (a job array whose records equal a local run's, `list` following the jobs, --wait),
requeue and preemption resuming from a checkpoint to the numbers of an uninterrupted run, jobs
killed outright leaving resumable runs, failures recorded while the grid goes on, and --wait giving
up with SLURM's reason. Skipped with the reason where no cluster can be started; failed instead
under AMFS_REQUIRE_SLURM=1 (CI)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.cli import build_parser, executor_options, main, run_context
from benchmarks.runs.locks import lock_path, read_holder
from benchmarks.runs.slurm import queued_path, slurm_parameters
from benchmarks.runs.store import ResultsStore
from support.slurm_cluster import SlurmCluster, SlurmClusterError, cannot_start_reason, slurm_cluster

sys.path.insert(0, str(Path(__file__).parent))
from test_runner import comparable, records, write_grid  # noqa: E402

pytestmark = pytest.mark.slurm

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"


def _unavailable(reason: str) -> None:
    if os.environ.get("AMFS_REQUIRE_SLURM") == "1":
        pytest.fail(f"AMFS_REQUIRE_SLURM=1 but no SLURM cluster: {reason}", pytrace=False)
    pytest.skip(f"no SLURM cluster: {reason}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One cluster for the module; the jobs import this checkout's `benchmarks` (PYTHONPATH, which
    sbatch exports to them)."""
    if reason := cannot_start_reason():
        _unavailable(reason)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), saved]))
    try:
        with contextlib.ExitStack() as stack:
            try:
                c = stack.enter_context(slurm_cluster(tmp_path_factory.mktemp("slurm")))
            except SlurmClusterError as e:
                _unavailable(str(e))
            print(f"cluster started in {c.startup_s:.2f} s ({c.cpus} CPUs)")
            yield c
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def wait_until(check, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        if got := check():
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(poll)


def job_logs(results: Path, grid: str) -> str:
    logs = sorted((results / grid / "jobs").glob("*.out")) + sorted((results / grid / "jobs").glob("*.err"))
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs)


def job_of(store: ResultsStore, run_id: str) -> str:
    return json.loads(queued_path(store, run_id).read_text())["job"]


def local_records(folder: Path, grid: str, *args: str) -> dict[str, dict]:
    argv = ["run", "--grid", grid, "--results", str(folder), "--no-progress", "--threads", "1", *args]
    assert main(argv) == 0
    return records(folder, Path(grid).stem)


def assert_same_numbers(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert set(got) == set(want) and got
    for key, record in got.items():
        assert record["status"] == "done", (key, record.get("reason"))
        assert comparable(record) == comparable(want[key]), key


def readme_commands() -> list[list[str]]:
    """The `python -m benchmarks` commands of the README's cluster section, as argument lists."""
    text = README.read_text()
    block = text[text.index("<!-- cluster-commands") : text.index("<!-- end cluster-commands -->")]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line.strip())[3:] for line in joined.splitlines() if line.strip().startswith("python -m")]


# --------------------------------------------------------------------------------------------------


def test_the_readme_cluster_commands_run_a_job_array_that_list_follows(
    cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    submit, follow, submit_and_wait, paper = readme_commands()
    env = {**os.environ}
    monkeypatch.chdir(tmp_path)  # `list` runs in this process (a poll takes milliseconds), where the README runs it

    def cli(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "benchmarks", *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    done = cli(submit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"jobs: (\d+)_0, \1_1;", done.stdout), done.stdout  # one array, one task per run
    seen: dict[str, set[str]] = {}
    store = ResultsStore(tmp_path / "results", "smoke")

    def all_done() -> bool:
        capsys.readouterr()
        assert main(follow) == 0
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sinusoid/")]
        for line in lines:
            key, status = line.split()[:2]
            seen.setdefault(key, set()).add(status)
        return len(lines) == 2 and all(line.split()[1] == "done" for line in lines)

    try:
        wait_until(all_done, 120, "`list` to show both runs done", poll=0.05)
    except TimeoutError:
        pytest.fail(f"{seen}\n{job_logs(tmp_path / 'results', 'smoke')}")
    statuses = set().union(*seen.values())
    assert "queued" in statuses, seen  # submitted, its job pending or starting (squeue's state)
    assert "running" in statuses, seen  # a job holds the run's lock and trains
    assert not list((store.root / "queued").glob("*.json"))  # each job removed its marker

    waited = cli(submit_and_wait)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "finished: 2 done" in waited.stdout

    local = local_records(tmp_path / "local", "smoke")
    assert_same_numbers(records(tmp_path / "results", "smoke"), local)
    assert_same_numbers(records(tmp_path / "results-wait", "smoke"), local)

    # the paper command parses, and its resources reach sbatch as written
    args = build_parser().parse_args(paper)
    params, job_context = slurm_parameters(executor_options(args).slurm, run_context(args), "paper")
    assert params["gpus_per_node"] == 1 and params["cpus_per_task"] == 4 and params["slurm_mem"] == "16G"
    assert params["slurm_partition"] == "gpu" and params["slurm_array_parallelism"] == 32
    assert params["slurm_additional_parameters"] == {"account": "myproject", "qos": "normal"}
    assert job_context.device == "cuda" and job_context.threads == 4


def test_requeue_and_preemption_resume_from_the_checkpoint_to_the_numbers_of_an_uninterrupted_run(
    cluster: SlurmCluster, tmp_path: Path, capsys: pytest.CaptureFixture
):
    grid = write_grid(tmp_path, name="pre", methods=("maml", "fomaml"), iterations=600, checkpoint_every=20)
    results = tmp_path / "r"
    store = ResultsStore(results, "pre")
    ids = {"maml": "sinusoid__5shot__maml__default__seed0", "fomaml": "sinusoid__5shot__fomaml__default__seed0"}
    args = ["run", "--grid", str(grid), "--results", str(results), "--executor", "slurm", "--time", "10"]
    assert main(args) == 0
    jobs = {m: job_of(store, run_id) for m, run_id in ids.items()}
    try:
        wait_until(lambda: all(store.checkpoint_path(i).exists() for i in ids.values()), 60, "both checkpoints")
    except TimeoutError:
        pytest.fail(job_logs(results, "pre"))
    assert read_holder(lock_path(store, ids["maml"])).job == jobs["maml"]
    cluster.run(["scontrol", "requeue", jobs["maml"]])  # SLURM sends TERM, then requeues the job
    cluster.run(["scancel", "--signal=USR2", jobs["fomaml"]])  # the warning before the time limit
    try:
        wait_until(lambda: all(store.record_path(i).exists() for i in ids.values()), 90, "both records", poll=0.5)
    except TimeoutError:
        pytest.fail(job_logs(results, "pre"))
    logs = job_logs(results, "pre")
    assert "Requeued job" in logs  # submitit's USR2 handler, after the run checkpointed and stopped
    for method, run_id in ids.items():
        record = store.read_record(run_id)
        resumed = record["faults"]["resumed_from_iteration"]
        assert len(resumed) == 1 and 0 < resumed[0] < 600, (method, resumed)
        assert cluster.show_job(jobs[method])["Restarts"] == "1"
        with capsys.disabled():
            print(f"\n{record['key']}: job {jobs[method]} resumed from iteration {resumed[0]}: {resumed}")
    assert_same_numbers(records(results, "pre"), local_records(tmp_path / "local", str(grid)))


def test_a_job_killed_outright_leaves_its_run_resumable(cluster: SlurmCluster, tmp_path: Path, capsys):
    grid = write_grid(tmp_path, name="kill", methods=("maml", "fomaml"), iterations=600, checkpoint_every=20)
    results = tmp_path / "r"
    store = ResultsStore(results, "kill")
    ids = {"maml": "sinusoid__5shot__maml__default__seed0", "fomaml": "sinusoid__5shot__fomaml__default__seed0"}
    assert main(["run", "--grid", str(grid), "--results", str(results), "--executor", "slurm", "--time", "10"]) == 0
    jobs = {m: job_of(store, run_id) for m, run_id in ids.items()}
    wait_until(lambda: all(store.checkpoint_path(i).exists() for i in ids.values()), 60, "both checkpoints")
    cluster.run(["scancel", jobs["maml"]])  # TERM: the run checkpoints and stops, its lock released
    # killed outright (the OOM killer, a node lost): SIGKILL to the job's Python, no warning at all
    holder = read_holder(lock_path(store, ids["fomaml"]))
    assert holder.job == jobs["fomaml"]
    os.kill(holder.pid, signal.SIGKILL)
    wait_until(
        lambda: not cluster.squeue("-h", "-t", "RUNNING,PENDING,COMPLETING", "-o", "%i").split(), 30, "jobs to end"
    )
    assert not lock_path(store, ids["maml"]).exists()
    assert read_holder(lock_path(store, ids["fomaml"])).pid == holder.pid  # left behind, now stale
    assert all(store.read_record(i) is None for i in ids.values())
    capsys.readouterr()
    main(["list", "--grid", str(grid), "--results", str(results)])
    listing = capsys.readouterr().out
    assert "2 runs in grid kill: 2 interrupted" in listing, listing
    assert "stale lock of pid" in listing and "has exited" in listing
    assert main(["run", "--grid", str(grid), "--results", str(results), "--no-progress", "--threads", "1"]) == 0
    assert "[resume] sinusoid/5shot/fomaml/default/seed0: took over the lock" in capsys.readouterr().err
    for run_id in ids.values():
        assert store.read_record(run_id)["faults"]["resumed_from_iteration"][0] > 0
    assert_same_numbers(records(results, "kill"), local_records(tmp_path / "local", str(grid)))


def test_a_failing_job_is_recorded_failed_with_its_reason_and_the_grid_goes_on(
    cluster: SlurmCluster, tmp_path: Path, capsys
):
    extra = (
        '\n[[setting]]\ndataset = "omniglot"\nn_way = 5\nk_shot = 1\n'
        '\n[[variant]]\nname = "diverge"\nmethods = ["fomaml"]\nset = { "inner.step_size" = 1e30 }\n'
    )
    grid = write_grid(tmp_path, name="bad", methods=("fomaml",), iterations=20, extra=extra)
    results = tmp_path / "r"
    argv = ["run", "--grid", str(grid), "--results", str(results), "--executor", "slurm", "--time", "10", "--wait"]
    main([*argv, "--data-root", str(tmp_path / "no-data"), "--cache-dir", str(tmp_path / "no-cache")])
    out = capsys.readouterr().out
    stored = records(results, "bad")
    assert stored["sinusoid/5shot/fomaml/default/seed0"]["status"] == "done", job_logs(results, "bad")
    assert "non-finite" in stored["sinusoid/5shot/fomaml/diverge/seed0"]["reason"]
    assert stored["omniglot/5w1s/fomaml/default/seed0"]["reason"].startswith("not run: data absent")
    assert "finished: 1 done, 3 failed" in out and "non-finite" in out


def test_wait_gives_up_with_slurms_reason_when_a_job_cannot_start(cluster: SlurmCluster, tmp_path: Path, capsys):
    results = tmp_path / "r"
    argv = ["run", "--grid", "smoke", "--results", str(results), "--executor", "slurm", "--time", "10", "--wait"]
    t0 = time.monotonic()
    assert main([*argv, "--cpus-per-task", str(cluster.cpus + 1)]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(r"gave up: job \d+_\d cannot start: pending with reason PartitionConfig", last), last
    assert "cancelled the 2 jobs" in last and "--cpus-per-task" in last
    assert time.monotonic() - t0 < 30
    assert not cluster.squeue("-h", "-t", "PENDING,RUNNING", "-o", "%i").split()  # cancelled, not left pending

    assert main([*argv, "--gpus", "1"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("gave up: sbatch refused the jobs") and "Invalid generic resource (gres)" in last
