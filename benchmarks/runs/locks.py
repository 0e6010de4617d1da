"""Run locks: a run is claimed by exactly one process before it trains.

The lock of a run is `results/<grid>/running/<run_id>.lock`, a JSON file that names its holder:
host, pid, the process's start time (from /proc/<pid>/stat, so that a reused pid is told apart),
the machine's boot id, the SLURM job and restart count when under SLURM, the digest of the run's
config, and a heartbeat timestamp that a thread of the holder refreshes every HEARTBEAT_S seconds.

Claiming is atomic: the complete lock is written to a temporary file and hard-linked to its name,
which fails when the name exists (O_CREAT|O_EXCL semantics that also hold on NFS), so a reader never
sees a half-written lock and two processes never both create it. A lock that exists is either live
(never stolen) or stale, and a stale one is taken over:

- same host and boot: stale when its pid is gone or now belongs to another process (start times
  differ);
- same host name, another boot id: stale (the machine restarted since);
- the same SLURM job at a later restart (a requeued job, possibly on another node): stale;
- another host: stale when SLURM says its job is no longer queued or running (where squeue answers),
  or when its heartbeat is older than STALE_AFTER_S.

Every check-and-replace (claim, takeover, heartbeat, release) runs under an flock on the store's
`running/.guard`, so two processes that find the same stale lock cannot both take it over: the
second one, once the first releases the guard, finds a live lock. flock is released by the kernel
when its holder dies, so the guard itself never goes stale. On a filesystem without flock the guard
is skipped with a warning; creation stays exclusive (link), takeover is then best effort.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.runs.store import ResultsStore

#: Seconds between two heartbeats of a live lock.
HEARTBEAT_S = 30.0
#: A lock of another host whose heartbeat is older than this is stale: 20 missed heartbeats, so a
#: slow shared filesystem or a stalled node does not lose its run, and a dead host's run waits at
#: most ten minutes before another host resumes it.
STALE_AFTER_S = 600.0
#: SLURM job states in which the job's processes may still be alive (squeue's %T).
SLURM_ALIVE_STATES = {"RUNNING", "PENDING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "RESIZING"}


class LockBusy(Exception):
    """The run is claimed by a live process."""

    def __init__(self, holder: Holder, same_config: bool, why: str):
        self.holder = holder
        self.same_config = same_config
        self.why = why
        super().__init__(f"claimed by {holder.describe()} ({why})")


def lock_path(store: ResultsStore, run_id: str) -> Path:
    return store.running_path(run_id)


def config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or
    None when there is no such process (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()  # the name (field 2) may hold spaces
    state, start = fields[0], int(fields[19])
    return None if state in (b"Z", b"X") else start


def slurm_job() -> tuple[str | None, int | None]:
    """(job id, restart count) of this process's SLURM job: "<array job>_<task>" for an array task."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None, None
    job = env["SLURM_JOB_ID"]
    if "SLURM_ARRAY_JOB_ID" in env and "SLURM_ARRAY_TASK_ID" in env:
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return job, int(env.get("SLURM_RESTART_COUNT", "0") or 0)


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the process that holds it."""

    token: str
    key: str
    config: str  # config_digest of the run's config
    host: str
    pid: int
    start: int | None  # process_start(pid) when it claimed the run
    boot: str | None
    job: str | None
    restart: int | None
    created: float
    heartbeat: float
    iteration: int | None = None  # training progress at the last heartbeat

    def describe(self) -> str:
        where = f"pid {self.pid} on {self.host}"
        if self.job:
            where += f", SLURM job {self.job}"
        return where

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Holder:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def read_holder(path: Path) -> Holder | None:
    """The holder named by a lock file; None when there is no lock. A lock file is written whole
    before it gets its name, so an unreadable one was not written by this code: it counts as a
    holder that is certainly dead."""
    try:
        data = json.loads(path.read_text())
        return Holder.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return Holder("unreadable", "?", "?", "?", -1, None, None, None, None, 0.0, 0.0)


def liveness(holder: Holder, now: float | None = None) -> tuple[bool, str]:
    """(alive, why) for the holder of a lock, by the rules in the module's docstring."""
    now = time.time() if now is None else now
    if holder.token == "unreadable":
        return False, "unreadable lock file"
    job, restart = slurm_job()
    if holder.job and holder.job == job and (holder.restart or 0) < (restart or 0):
        return False, f"left by run {holder.restart} of SLURM job {job}, now at run {restart}"
    if holder.host == socket.gethostname():
        if holder.boot and boot_id() and holder.boot != boot_id():
            return False, "its machine has restarted since"
        start = process_start(holder.pid)
        if start is None:
            return False, f"pid {holder.pid} has exited"
        if holder.start is not None and start != holder.start:
            return False, f"pid {holder.pid} now belongs to another process"
        return True, f"pid {holder.pid} is running"
    if holder.job:
        state = slurm_job_state(holder.job)
        if state is not None and state not in SLURM_ALIVE_STATES:
            return False, f"SLURM job {holder.job} is {state}"
    age = now - holder.heartbeat
    if age > STALE_AFTER_S:
        return False, f"no heartbeat for {age:.0f} s (stale after {STALE_AFTER_S:.0f} s)"
    return True, f"heartbeat {age:.0f} s ago"


def slurm_job_state(job: str) -> str | None:
    """squeue's state of a job ("GONE" when squeue no longer knows it), or None when squeue cannot
    tell (not installed, no controller)."""
    if shutil.which("squeue") is None:
        return None
    try:
        done = subprocess.run(
            ["squeue", "-h", "--states=all", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return "GONE" if "Invalid job id" in done.stderr else None
    states = done.stdout.split()
    return states[0] if states else "GONE"


_NO_FLOCK_WARNED: list[bool] = [False]


@contextlib.contextmanager
def _guard(folder: Path) -> Iterator[None]:
    """An exclusive flock on folder/.guard for one check-and-replace."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".guard", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if not _NO_FLOCK_WARNED[0]:
                print(
                    f"warning: no flock on {folder} ({e}); takeover of stale run locks is best effort", file=sys.stderr
                )
                _NO_FLOCK_WARNED[0] = True
        yield
    finally:
        os.close(fd)  # releases the flock


def _write_new(path: Path, holder: Holder) -> bool:
    """Create `path` holding `holder`, only if it does not exist; False when it does."""
    tmp = path.with_name(f".{path.name}.{holder.token}.tmp")
    with open(tmp, "w") as f:
        json.dump(holder.to_json(), f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _replace(path: Path, holder: Holder) -> None:
    tmp = path.with_name(f".{path.name}.{holder.token}.tmp")
    with open(tmp, "w") as f:
        json.dump(holder.to_json(), f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunLock:
    """A claimed run: refreshed by a heartbeat thread until released."""

    def __init__(self, path: Path, holder: Holder, took_over: str | None):
        self.path = path
        self.holder = holder
        self.took_over = took_over  # why the previous lock was stale, when this claim replaced one
        self.lost = False
        self.progress: Callable[[], int | None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(cls, store: ResultsStore, key: str, run_id: str, config: dict[str, Any]) -> RunLock:
        """Claim a run, taking over a stale lock; LockBusy when a live process holds it."""
        path = lock_path(store, run_id)
        job, restart = slurm_job()
        now = time.time()
        me = Holder(
            token=secrets.token_hex(8),
            key=key,
            config=config_digest(config),
            host=socket.gethostname(),
            pid=os.getpid(),
            start=process_start(os.getpid()),
            boot=boot_id(),
            job=job,
            restart=restart,
            created=now,
            heartbeat=now,
        )
        took_over = None
        with _guard(path.parent):
            for _ in range(3):  # a lock may vanish (released) between the link and the read
                if _write_new(path, me):
                    lock = cls(path, me, took_over)
                    lock._start_heartbeat()
                    return lock
                holder = read_holder(path)
                if holder is None:
                    continue
                alive, why = liveness(holder)
                if alive:
                    raise LockBusy(holder, holder.config == me.config, why)
                took_over = f"took over the lock of {holder.describe()}: {why}"
                path.unlink(missing_ok=True)
        raise LockBusy(read_holder(path) or me, True, "the lock changed hands repeatedly")

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"lock-{self.holder.key}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.refresh()

    def refresh(self) -> bool:
        """Rewrite the heartbeat (and progress); False, and `lost`, when the lock is no longer ours."""
        with contextlib.suppress(OSError), _guard(self.path.parent):
            current = read_holder(self.path)
            if current is None or current.token != self.holder.token:
                self.lost = True
                return False
            iteration = None
            if self.progress is not None:
                with contextlib.suppress(Exception):
                    iteration = self.progress()
            self.holder = Holder(**{**self.holder.to_json(), "heartbeat": time.time(), "iteration": iteration})
            _replace(self.path, self.holder)
            return True
        return not self.lost

    def verify(self) -> bool:
        """Whether the lock file still names this holder (checked before writing the record)."""
        current = read_holder(self.path)
        if current is None or current.token != self.holder.token:
            self.lost = True
        return not self.lost

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError), _guard(self.path.parent):
            current = read_holder(self.path)
            if current is not None and current.token == self.holder.token:
                self.path.unlink(missing_ok=True)


def lock_status(store: ResultsStore, run_id: str, config: dict[str, Any]) -> tuple[str, str] | None:
    """("running" | "conflict", detail) when a live process holds the run, else None (no lock, or a
    stale one, which the next claim takes over)."""
    holder = read_holder(lock_path(store, run_id))
    if holder is None:
        return None
    alive, why = liveness(holder)
    if not alive:
        return None
    if holder.config != config_digest(config):
        return "conflict", f"{holder.describe()} is running it with a different config ({why})"
    progress = "" if holder.iteration is None else f", iteration {holder.iteration}"
    return "running", f"{holder.describe()}{progress} ({why})"


def stale_lock(store: ResultsStore, run_id: str) -> str | None:
    """Why the run's lock is stale, or None when there is none or it is live."""
    holder = read_holder(lock_path(store, run_id))
    if holder is None:
        return None
    alive, why = liveness(holder)
    return None if alive else f"{holder.describe()}: {why}"


def record_fingerprint(store: ResultsStore, run_id: str) -> str | None:
    """sha256 of the run's record file, or None when it has none: what a planner saw, so that a
    worker retries a failed run only if no other process has written its record since."""
    try:
        return hashlib.sha256(store.record_path(run_id).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
