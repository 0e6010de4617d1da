"""Run locks with real concurrent processes: a run is trained by one process only, a second process
with other settings is refused, stale locks (dead or reused pid, another boot, a silent host) are
taken over by exactly one process, live ones never; kill -9 of a command or of a worker leaves a run
that the survivor resumes to the numbers of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.runs import locks
from benchmarks.runs.grids import load_grid
from benchmarks.runs.locks import Holder, LockBusy, RunLock, liveness, lock_path, process_start, read_holder
from benchmarks.runs.store import ResultsStore

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
from test_runner import comparable, records, write_grid  # noqa: E402

LONG = "sinusoid/5shot/maml/default/seed0"  # the run that is interrupted; first in the grid
SHORT = "sinusoid/5shot/fomaml/short/seed0"
SHORT_RUN = '\n[[variant]]\nname = "short"\nmethods = ["fomaml"]\nset = { iterations = 400 }\n'


def command(grid: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks", "run", "--grid", str(grid), "--results", str(results)] + [
        "--no-progress",
        "--threads",
        "1",
        *extra,
    ]


def start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := check():
            return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended first:\n{proc.stdout.read()}")
        time.sleep(0.02)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


def trained(output: str) -> set[str]:
    """The runs a `run` command trained to the end (its `done` lines)."""
    return {line.split()[1] for line in output.splitlines() if line.startswith("  done ")}


def holder(**changes) -> Holder:
    now = time.time()
    base = {
        "token": "t",
        "key": "k",
        "config": "c",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start": process_start(os.getpid()),
        "boot": locks.boot_id(),
        "job": None,
        "restart": None,
        "created": now,
        "heartbeat": now,
    }
    return Holder(**{**base, **changes})


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def pair_grid(folder: Path) -> Path:
    return write_grid(folder, name="pair", methods=("maml",), iterations=600, checkpoint_every=20, extra=SHORT_RUN)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[str, dict]:
    """The two-run grid's records from an uninterrupted run in this process."""
    folder = tmp_path_factory.mktemp("straight")
    grid = pair_grid(folder)
    assert main(["run", "--grid", str(grid), "--results", str(folder / "r"), "--no-progress", "--threads", "1"]) == 0
    return records(folder / "r", "pair")


# --------------------------------------------------------------------------------------------------
# the lock itself


def test_a_claim_is_exclusive_until_released(tmp_path):
    store = ResultsStore(tmp_path, "g")
    lock = RunLock.acquire(store, "k", "run", {"a": 1})
    written = json.loads(lock_path(store, "run").read_text())
    assert (written["pid"], written["host"]) == (os.getpid(), socket.gethostname())
    assert written["start"] == process_start(os.getpid()) and written["boot"] == locks.boot_id()
    with pytest.raises(LockBusy, match="pid .* is running") as busy:
        RunLock.acquire(store, "k", "run", {"a": 1})
    assert busy.value.same_config
    with pytest.raises(LockBusy) as other:
        RunLock.acquire(store, "k", "run", {"a": 2})
    assert not other.value.same_config
    before = lock.holder.heartbeat
    time.sleep(0.01)
    assert lock.refresh() and read_holder(lock_path(store, "run")).heartbeat > before
    lock.release()
    assert not lock_path(store, "run").exists()
    RunLock.acquire(store, "k", "run", {"a": 2}).release()


@pytest.mark.parametrize(
    ("changes", "alive", "why"),
    [
        ({}, True, "is running"),
        ({"pid": "dead"}, False, "has exited"),
        ({"start": -1}, False, "now belongs to another process"),  # a reused pid: another start time
        ({"boot": "another-boot"}, False, "restarted"),
        ({"host": "elsewhere", "heartbeat": time.time() - locks.STALE_AFTER_S - 5}, False, "no heartbeat"),
        ({"host": "elsewhere", "heartbeat": time.time() - 60}, True, "heartbeat"),
        ({"token": "unreadable"}, False, "unreadable"),
    ],
)
def test_liveness_of_a_lock(changes, alive, why):
    if changes.get("pid") == "dead":
        changes = {**changes, "pid": dead_pid()}
    got, reason = liveness(holder(**changes))
    assert got == alive and why in reason


def test_a_requeued_slurm_job_takes_over_the_lock_of_its_earlier_run(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    # the first run of job 7, on another node, with a fresh heartbeat: stale for the job's second run
    assert liveness(holder(host="node2", job="7", restart=0))[0] is False
    assert liveness(holder(host="node2", job="7", restart=1))[0] is True


TAKEOVER = """
import sys, time
from pathlib import Path
from benchmarks.runs.locks import LockBusy, RunLock
from benchmarks.runs.store import ResultsStore
go = float(sys.argv[2])
while time.time() < go:
    pass
try:
    lock = RunLock.acquire(ResultsStore(Path(sys.argv[1]), "g"), "k", "run", {"a": 1})
except LockBusy as e:
    print("busy", e)
else:
    print("won", lock.took_over)
    time.sleep(2)  # hold it while the others try
    lock.release()
"""


def test_only_one_of_several_processes_takes_over_a_stale_lock(tmp_path):
    store = ResultsStore(tmp_path, "g")
    path = lock_path(store, "run")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(holder(pid=dead_pid(), token="old").to_json()))
    go = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKEOVER, str(tmp_path), str(go)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    won = [o for o in outputs if o.startswith("won")]
    assert len(won) == 1, outputs
    assert "has exited" in won[0]  # it says whose stale lock it took over
    assert all(o.startswith("busy") and "is running" in o for o in outputs if o not in won)
    assert not path.exists()


# --------------------------------------------------------------------------------------------------
# commands on one results folder


def test_a_live_run_with_other_settings_is_a_conflict_not_replaced(tmp_path, capsys):
    grid = write_grid(tmp_path, methods=("maml",), iterations=5)
    store = ResultsStore(tmp_path / "r", "tiny")
    (spec,) = load_grid(str(grid), {"meta_lr": 0.01}).runs
    lock = RunLock.acquire(store, spec.key, spec.run_id, spec.config)  # a live run of meta_lr=0.01
    try:
        assert main(["run", "--grid", str(grid), "--results", str(tmp_path / "r"), "--no-progress"]) == 2
        assert "running with a different config" in capsys.readouterr().err
        main(["list", "--grid", str(grid), "--results", str(tmp_path / "r")])
        assert "conflict" in capsys.readouterr().out
        main(["list", "--grid", str(grid), "--results", str(tmp_path / "r"), "--set", "meta_lr=0.01"])
        assert f"running      pid {os.getpid()}" in capsys.readouterr().out
    finally:
        lock.release()
    assert store.read_record(spec.run_id) is None


def test_two_commands_on_one_folder_train_each_run_once(tmp_path):
    grid = write_grid(tmp_path, methods=("maml", "fomaml", "i-amfs", "o-amfs", "amfs"), iterations=150)
    a = start(command(grid, tmp_path / "r"), tmp_path)
    b = start(command(grid, tmp_path / "r"), tmp_path)
    out_a, out_b = a.communicate(timeout=300)[0], b.communicate(timeout=300)[0]
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    stored = records(tmp_path / "r", "tiny")
    assert len(stored) == 5 and all(r["status"] == "done" for r in stored.values())
    assert trained(out_a).isdisjoint(trained(out_b)), out_a + out_b
    assert trained(out_a) | trained(out_b) == set(stored)


def test_kill_9_of_a_command_and_the_other_command_resumes_its_run(tmp_path, straight):
    grid = pair_grid(tmp_path)
    store = ResultsStore(tmp_path / "r", "pair")
    long_id, short_id = LONG.replace("/", "__"), SHORT.replace("/", "__")
    first = start(command(grid, tmp_path / "r", "--only", LONG), tmp_path)
    try:
        wait_until(lambda: store.checkpoint_path(long_id).exists(), 120, "a checkpoint of the long run", first)
        second = start(command(grid, tmp_path / "r"), tmp_path)
        wait_until(lambda: lock_path(store, short_id).exists(), 120, "the second command's claim", second)
        assert read_holder(lock_path(store, long_id)).pid == first.pid
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    assert store.read_record(long_id) is None
    out = second.communicate(timeout=300)[0]
    assert second.returncode == 0, out
    assert f"[busy] {LONG}" in out, out  # claimed by the first command when the second started
    assert "[resume] " + LONG in out and "has exited" in out  # taken over once the first was dead
    assert trained(out) == {LONG, SHORT}
    resumed = store.read_record(long_id)
    assert resumed["faults"]["resumed_from_iteration"][0] > 0
    assert not lock_path(store, long_id).exists() and not store.checkpoint_path(long_id).exists()
    for key, record in records(tmp_path / "r", "pair").items():
        assert comparable(record) == comparable(straight[key]), key


def test_kill_9_of_a_worker_and_its_run_resumes_on_another(tmp_path, straight):
    grid = pair_grid(tmp_path)
    store = ResultsStore(tmp_path / "r", "pair")
    long_id = LONG.replace("/", "__")
    proc = start(command(grid, tmp_path / "r", "--workers", "2"), tmp_path)
    wait_until(lambda: store.checkpoint_path(long_id).exists(), 120, "a checkpoint of the long run", proc)
    worker = read_holder(lock_path(store, long_id)).pid
    assert worker != proc.pid
    os.kill(worker, signal.SIGKILL)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert f"[worker died] {LONG}" in out and "SIGKILL" in out
    assert "[resume] " + LONG in out
    resumed = store.read_record(long_id)
    assert resumed["faults"]["resumed_from_iteration"][0] > 0
    for key, record in records(tmp_path / "r", "pair").items():
        assert comparable(record) == comparable(straight[key]), key
