"""A real single-node SLURM cluster (tests/support/slurm_cluster.py): how SLURM 22.05 and submitit
behave on it. The findings these tests pin down are written up in tests/support/SLURM_NOTES.md.

The tests skip, with the reason, where a cluster cannot be started (not root, no apt, daemons that
do not come up); with AMFS_REQUIRE_SLURM=1 (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.slurm_cluster import (
    CRED_EXPIRE_S,
    SlurmCluster,
    SlurmClusterError,
    cannot_start_reason,
    cluster_processes,
    slurm_cluster,
)

pytestmark = pytest.mark.slurm

TESTS_DIR = Path(__file__).resolve().parents[1]  # tests/: what a job needs on PYTHONPATH for `support`


def _unavailable(reason: str) -> None:
    if os.environ.get("AMFS_REQUIRE_SLURM") == "1":
        pytest.fail(f"AMFS_REQUIRE_SLURM=1 but no SLURM cluster: {reason}", pytrace=False)
    pytest.skip(f"no SLURM cluster: {reason}")


def _require_cluster() -> None:
    reason = cannot_start_reason()
    if reason:
        _unavailable(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One cluster for the module's tests (started in ~0.2 s once the packages are installed)."""
    _require_cluster()
    with contextlib.ExitStack() as stack:
        try:
            c = stack.enter_context(slurm_cluster(tmp_path_factory.mktemp("slurm")))
        except SlurmClusterError as e:
            _unavailable(str(e))
        yield c


@pytest.fixture
def jobdir(cluster: SlurmCluster, request: pytest.FixtureRequest) -> Path:
    """A directory for one test's job scripts and outputs."""
    d = cluster.workdir / "jobs" / re.sub(r"\W", "_", request.node.name)
    d.mkdir(parents=True)
    return d


def _wait_until(check: Callable[[], object], timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        if got := check():
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(poll)


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return path


def _pgrep(pattern: str) -> list[str]:
    """`pgrep -af PATTERN` lines (pid and command line), or the same from /proc without procps."""
    if shutil.which("pgrep"):
        out = subprocess.run(["pgrep", "-af", re.escape(pattern)], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if str(os.getpid()) != line.split()[0]]
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if pattern in cmdline:
                    found.append(f"{entry.name} {cmdline}")
    return found


# --------------------------------------------------------------------------------------------------
# plain SLURM


def test_cluster_is_one_idle_node_with_this_machines_cpus(cluster: SlurmCluster):
    assert os.environ["SLURM_CONF"] == str(cluster.conf)
    sinfo = cluster.run(["sinfo", "-h", "-o", "%P|%a|%D|%T|%c|%m"]).stdout.split()
    assert sinfo == [f"{cluster.partition}*|up|1|idle|{cluster.cpus}|{cluster.real_memory_mb}"]
    assert cluster.startup_s < 30


def test_sbatch_wrap_runs_and_writes_its_output(cluster: SlurmCluster, jobdir: Path):
    job = cluster.sbatch("-o", str(jobdir / "out-%j.txt"), "--wrap", "echo hello from $SLURM_JOB_ID")
    assert cluster.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}) == ["COMPLETED"]
    assert _text(jobdir / f"out-{job}.txt") == f"hello from {job}\n"
    assert cluster.show_job(job)["ExitCode"] == "0:0"


def test_job_array_runs_every_task(cluster: SlurmCluster, jobdir: Path):
    job = cluster.sbatch("--array=0-2", "-o", str(jobdir / "task-%a.txt"), "--wrap", "echo $SLURM_ARRAY_TASK_ID")
    assert cluster.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}) == ["COMPLETED"] * 3
    assert [_text(jobdir / f"task-{i}.txt") for i in range(3)] == ["0\n", "1\n", "2\n"]


def test_more_cpus_than_the_node_has_is_accepted_and_pends_for_ever_with_reason_partitionconfig(
    cluster: SlurmCluster, jobdir: Path
):
    # sbatch accepts it (EnforcePartLimits=NO, SLURM's default): nothing fails, the job just never starts
    job = cluster.sbatch("-c", str(cluster.cpus + 1), "-o", str(jobdir / "never.txt"), "--wrap", "true")
    try:
        reason = _wait_until(
            lambda: cluster.squeue("-h", "-j", job, "-o", "%T|%r").strip() == "PENDING|PartitionConfig",
            timeout=10,
            what="squeue -o %T|%r to say PENDING|PartitionConfig",
        )
        assert reason
        record = cluster.show_job(job)
        assert (record["JobState"], record["Reason"]) == ("PENDING", "PartitionConfig")
        time.sleep(2)  # several scheduling passes (sched_interval=1) later: still waiting, same reason
        assert cluster.squeue("-h", "-j", job, "-o", "%T|%r").strip() == "PENDING|PartitionConfig"
    finally:
        cluster.run(["scancel", job])
    assert not (jobdir / "never.txt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus-per-node=1"], "Invalid generic resource (gres) specification"),
        (["--gres=gpu:1"], "Invalid generic resource (gres) specification"),
        (["--mem=99999999"], "Requested node configuration is not available"),
        (["-p", "nope"], "Invalid partition name specified"),
    ],
)
def test_requests_the_node_cannot_meet_are_rejected_by_sbatch(cluster: SlurmCluster, args: list[str], message: str):
    done = cluster.run(["sbatch", "--parsable", "-o", "/dev/null", *args, "--wrap", "true"], check=False)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stdout == ""


def test_scontrol_requeue_runs_a_running_job_again_with_its_restart_count(cluster: SlurmCluster, jobdir: Path):
    out = jobdir / "out.txt"
    script = _script(jobdir / "job.sh", 'echo "run restart=${SLURM_RESTART_COUNT:-0}"\nsleep 60\n')
    # --open-mode=append keeps the first run's output (sbatch truncates on each start by default)
    job = cluster.sbatch("-o", str(out), "--open-mode=append", str(script))
    _wait_until(lambda: "restart=0" in _text(out), timeout=15, what="first run")
    t0 = time.monotonic()
    cluster.run(["scontrol", "requeue", job])
    record = _wait_until(
        lambda: (r := cluster.show_job(job)).get("JobState") == "PENDING" and r,
        timeout=10,
        what="the requeued job to be pending",
    )
    assert record["Reason"] == "BeginTime"  # held for cred_expire + 1 s before it may start again
    assert record["Restarts"] == "1"
    _wait_until(lambda: "restart=1" in _text(out), timeout=CRED_EXPIRE_S + 15, what="second run")
    waited = time.monotonic() - t0
    assert CRED_EXPIRE_S <= waited < CRED_EXPIRE_S + 10
    assert "DUE TO JOB REQUEUE" in _text(out)
    assert _text(out).count("run restart=") == 2
    cluster.run(["scancel", job])


def test_batch_script_sees_usr2_and_term_sent_with_scancel_batch(cluster: SlurmCluster, jobdir: Path):
    out = jobdir / "out.txt"
    script = _script(
        jobdir / "job.sh",
        "trap 'echo got USR2' USR2\ntrap 'echo got TERM; exit 0' TERM\necho ready\n"
        "for i in $(seq 600); do sleep 0.1; done\necho not signalled\n",
    )
    job = cluster.sbatch("-o", str(out), str(script))
    _wait_until(lambda: "ready" in _text(out), timeout=15, what="the job to start")
    cluster.run(["scancel", "--signal=USR2", "--batch", job])
    _wait_until(lambda: "got USR2" in _text(out), timeout=5, what="USR2 to arrive")
    assert cluster.job_states(job) == ["RUNNING"]  # a signal is not a cancellation
    cluster.run(["scancel", "--signal=TERM", "--batch", job])
    # the script exits 0 from its TERM trap: the job COMPLETED, although slurmstepd writes
    # "*** JOB N ON node CANCELLED AT ... ***" into its output when it relays a SIGTERM
    assert cluster.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=10) == ["COMPLETED"]
    lines = _text(out).splitlines()
    assert [line for line in lines if not line.startswith("slurmstepd")] == ["ready", "got USR2", "got TERM"]
    assert any(f"*** JOB {job} ON {cluster.node} CANCELLED AT" in line for line in lines)


def test_signal_before_the_time_limit_reaches_the_batch_script_within_about_30_s(cluster: SlurmCluster, jobdir: Path):
    """--signal=B:USR2@58 with a 1-minute limit: due after 2 s, but slurmctld checks time limits only
    every 30 s (measured: 29-30 s). submitit's --signal=USR2@90 (no B:) goes to the srun step instead."""
    out = jobdir / "out.txt"
    script = _script(
        jobdir / "job.sh",
        "trap 'echo got USR2 after $SECONDS s' USR2\necho ready\nfor i in $(seq 900); do sleep 0.1; done\n",
    )
    job = cluster.sbatch("-o", str(out), "-t", "1", "--signal=B:USR2@58", str(script))
    try:
        _wait_until(lambda: "ready" in _text(out), timeout=15, what="the job to start")
        t0 = time.monotonic()
        _wait_until(lambda: "got USR2" in _text(out), timeout=40, what="USR2 before the time limit", poll=0.5)
        assert time.monotonic() - t0 < 40
    finally:
        cluster.run(["scancel", job])


# --------------------------------------------------------------------------------------------------
# submitit against the cluster


@pytest.fixture
def submitit_executor(cluster: SlurmCluster, jobdir: Path, monkeypatch: pytest.MonkeyPatch):
    """An AutoExecutor on the cluster's partition, 1 CPU, no GPUs; the jobs can import `support`."""
    submitit = pytest.importorskip("submitit")
    # the job unpickles support.slurm_jobs: sbatch exports this environment to it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    executor = submitit.AutoExecutor(folder=jobdir / "submitit", cluster="slurm")
    executor.update_parameters(timeout_min=2, cpus_per_task=1, slurm_partition=cluster.partition, name="amfs-test")
    return executor


def test_submitit_job_array_returns_results_but_without_sacct_its_state_stays_unknown(
    submitit_executor, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
):
    from support import slurm_jobs

    caplog.set_level(logging.WARNING, logger="submitit")
    jobs = submitit_executor.map_array(slurm_jobs.square, [1, 2, 3])
    assert [j.job_id.split("_")[1] for j in jobs] == ["0", "1", "2"]
    assert [j.result() for j in jobs] == [1, 4, 9]
    assert all(j.done() for j in jobs)  # from the result pickles
    assert {j.state for j in jobs} == {"UNKNOWN"}  # submitit asks sacct, which has nothing to say
    assert "Bypassing sacct error" in caplog.text
    assert "Slurm accounting storage is disabled" in capfd.readouterr().err  # sacct's own stderr


def test_submitit_job_runs_under_sys_executable_with_the_requested_cpus(submitit_executor):
    from support import slurm_jobs

    facts = submitit_executor.submit(slurm_jobs.job_facts).result()
    assert facts["python"] == sys.executable
    assert facts["SUBMITIT_EXECUTOR"] == "slurm"
    assert facts["SLURM_CPUS_PER_TASK"] == "1"
    assert facts["SLURM_RESTART_COUNT"] is None


def test_submitit_with_a_squeue_watcher_sees_states_and_a_job_that_cannot_start(
    submitit_executor, cluster: SlurmCluster
):
    from support import slurm_jobs
    from support.squeue_watcher import use_squeue

    with use_squeue():
        job = submitit_executor.submit(slurm_jobs.square, 4)
        assert job.result() == 16
        # done() is true from the result pickle before any squeue call; the state needs a poll
        _wait_until(lambda: job.get_info(mode="force").get("State") == "COMPLETED", timeout=10, what="COMPLETED")
        assert job.state == "COMPLETED"
        submitit_executor.update_parameters(cpus_per_task=cluster.cpus + 1)
        stuck = submitit_executor.submit(slurm_jobs.square, 5)
        time.sleep(1.5)
        assert not stuck.done(force_check=True)  # job.result() would wait for ever: look at the reason
        assert stuck.state == "PENDING"
        assert cluster.squeue("-h", "-j", stuck.job_id, "-o", "%r").strip() == "PartitionConfig"
        stuck.cancel()
        _wait_until(lambda: stuck.done(force_check=True), timeout=10, what="the cancelled job to be done")
        assert stuck.state == "CANCELLED"


def test_submitit_sending_gpus_to_a_cluster_without_gpus_fails_at_submission(submitit_executor):
    from submitit.core.utils import FailedJobError

    from support import slurm_jobs

    submitit_executor.update_parameters(gpus_per_node=1)
    with pytest.raises(FailedJobError, match=re.escape("Invalid generic resource (gres) specification")):
        submitit_executor.submit(slurm_jobs.square, 2)


def test_submitit_preemption_checkpoints_requeues_and_resumes(submitit_executor, jobdir: Path):
    """job._interrupt() sends what a preemption sends (SIGTERM, then USR2, to the srun step): submitit
    ignores TERM, calls checkpoint() on USR2, runs `scontrol requeue` and exits; the job runs again
    cred_expire + 1 s later with SLURM_RESTART_COUNT=1 and the checkpointed object."""
    from support import slurm_jobs

    job = submitit_executor.submit(slurm_jobs.Resumable(str(jobdir), wait_s=60))
    _wait_until(lambda: (jobdir / "runs").exists(), timeout=20, what="the first run")
    time.sleep(0.5)  # the run has installed submitit's handlers before it writes `runs`; margin
    job._interrupt()
    assert job.result() == {"restart_count": 1, "checkpoints": 1, "runs": ["0", "1"]}
    log = job.stdout() + (job.stderr() or "")
    assert "Bypassing signal SIGTERM" in log
    assert "Caught signal SIGUSR2" in log
    assert f"Requeued job {job.job_id}" in log


# --------------------------------------------------------------------------------------------------
# start-up and teardown


def test_clusters_start_twice_in_a_row_and_leave_no_process(tmp_path: Path):
    _require_cluster()
    before = os.environ.get("SLURM_CONF")
    for attempt in range(2):
        workdir = tmp_path / f"c{attempt}"
        with slurm_cluster(workdir) as c:
            assert os.environ["SLURM_CONF"] == str(c.conf)
            job = c.sbatch("-o", "/dev/null", "--wrap", "sleep 300")  # left running on purpose
            c.wait_state(job, {"RUNNING"})
            # slurmctld and slurmd name slurm.conf, munged its socket, the job's shell its spooled script
            running = {Path(line.split()[1]).name for line in _pgrep(str(workdir)) + _pgrep(str(c.runtime_dir))}
            assert {"munged", "slurmctld", "slurmd"} <= running
            assert cluster_processes(c.cluster_name)  # daemons, slurmstepd, the job's shell and sleep
            runtime = c.runtime_dir
        assert os.environ.get("SLURM_CONF") == before
        assert _pgrep(str(workdir)) == []
        assert _pgrep(str(runtime)) == []
        assert cluster_processes(c.cluster_name) == []
        assert not runtime.exists()


def test_a_start_that_fails_halfway_raises_with_the_logs_and_leaves_no_process(tmp_path: Path):
    _require_cluster()
    with (
        pytest.raises(SlurmClusterError, match="slurmctld") as failed,
        slurm_cluster(tmp_path, overrides={"SelectType": "select/nonexistent"}),
    ):
        pytest.fail("the cluster started")
    assert "munged" in str(failed.value)  # it had started: the message has its log
    assert _pgrep(str(tmp_path)) == []
    assert "SLURM_CONF" not in os.environ or os.environ["SLURM_CONF"] != str(tmp_path / "slurm.conf")
