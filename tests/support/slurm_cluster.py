"""A real, throwaway, single-node SLURM cluster for tests: munged + slurmctld + slurmd on this machine.

Debian 12's packages (``slurm-wlm`` 22.05 and ``munge``) provide the daemons; nothing global is
configured or started: each cluster gets

- its own slurm.conf, state directory and logs under the caller's ``workdir``;
- its own munged, on a private socket with a private key, in a short-lived runtime directory under
  /tmp (UNIX socket paths must stay under 108 bytes, and munged wants every directory above its
  socket to be world-searchable, which pytest's 0700 temporary directories are not);
- free TCP ports on 127.0.0.1 for slurmctld and slurmd, so two clusters (two engineers' test runs)
  can coexist on one machine, next to a system SLURM if there is one.

Clients find the cluster through ``SLURM_CONF``: :func:`slurm_cluster` sets it in ``os.environ``
while the cluster is up (and restores the old value after), so ``sbatch``/``squeue``/``scontrol``
started by submitit in a subprocess, and the jobs themselves (sbatch exports the submitter's
environment), talk to this cluster. ``SlurmCluster.env`` has the same variables for callers that
pass an explicit environment.

The daemons run as root (``SlurmUser=root``, ``SlurmdUser=root``): starting a cluster needs root,
which CI and the development machines have. Typical use::

    reason = cannot_start_reason()          # installs the packages when missing (apt-get)
    if reason is None:
        with slurm_cluster(tmp_path) as cluster:
            job = cluster.sbatch("--wrap", "true")
            cluster.wait_state(job, {"COMPLETED"})

Leaving the ``with`` block cancels every job, stops the daemons and kills whatever is left of the
jobs (slurmstepd and its children), so nothing lingers; a start that fails halfway does the same
and raises :class:`SlurmClusterError` with the tails of the daemons' logs.
See SLURM_NOTES.md beside this file for what the cluster taught us about SLURM and submitit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
#: Programs the cluster needs; all come from PACKAGES (sinfo, sbatch, ... from slurm-client).
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
PARTITION = "debug"
#: Seconds a requeued job waits before it may start again (``AuthInfo=cred_expire``; SLURM's default is
#: 120). It is also the lifetime of a job-step credential, so it cannot be tiny on a busy machine.
CRED_EXPIRE_S = 10
#: Names of the environment variable that marks the daemons (and so slurmstepd) of one cluster.
MARKER_VAR = "AMFS_SLURM_CLUSTER_ID"


class SlurmClusterError(RuntimeError):
    """The cluster could not be started (the message says why, with the daemons' log tails)."""


# --------------------------------------------------------------------------------------------------
# prerequisites


def missing_programs() -> list[str]:
    """The programs of PROGRAMS that are not on PATH (or in /usr/sbin, where Debian puts the daemons)."""
    return [p for p in PROGRAMS if _which(p) is None]


def install_packages(timeout: float = 600.0) -> None:
    """``apt-get install -y slurm-wlm munge`` when any program is missing; a no-op otherwise.

    Quiet (the output is kept for the error message only), non-interactive, without recommended
    packages (which would pull in ~40 plugin and -dev packages). Runs ``apt-get update`` first only
    when the package is unknown to apt (a fresh machine with empty lists). Raises RuntimeError on
    failure or after ``timeout`` seconds in all. Installing does not configure or start anything that
    this module uses (Debian's postinst scripts may start a system munged, which does no harm).
    """
    if not missing_programs():
        return
    if shutil.which("apt-get") is None:
        raise RuntimeError("apt-get is not available to install " + " ".join(PACKAGES))
    deadline = time.monotonic() + timeout
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
    lock = ["-o", f"DPkg::Lock::Timeout={int(timeout)}"]  # wait for another apt/dpkg rather than fail
    install = ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *PACKAGES]

    def attempt(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"installing {' '.join(PACKAGES)} took over {timeout:.0f} s")
        try:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=left, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{' '.join(cmd)} took over {timeout:.0f} s") from e

    done = attempt(install)
    if done.returncode != 0:
        update = attempt(["apt-get", *lock, "update", "-q"])
        if update.returncode != 0:
            raise RuntimeError("apt-get update failed:\n" + _tail(update.stdout + update.stderr))
        done = attempt(install)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(install)} failed:\n" + _tail(done.stdout + done.stderr))
    if missing := missing_programs():
        raise RuntimeError(f"installed {' '.join(PACKAGES)} but still missing: {', '.join(missing)}")


def cannot_start_reason(install: bool = True, install_timeout: float = 600.0) -> str | None:
    """Why a cluster cannot be started here, or None when nothing stands in the way.

    Checks the platform and root, and that the programs exist, installing the packages first when
    ``install`` (see :func:`install_packages`). That the daemons actually come up is only known by
    starting them: :func:`slurm_cluster` raises :class:`SlurmClusterError`, whose message is the
    reason, when they do not.
    """
    if not Path("/proc/self/environ").exists() or os.name != "posix":
        return "a SLURM test cluster needs Linux"
    if os.geteuid() != 0:
        return "a SLURM test cluster needs root (the daemons run as SlurmUser=root)"
    if missing_programs():
        if not install:
            return "SLURM/munge programs missing: " + ", ".join(missing_programs())
        try:
            install_packages(timeout=install_timeout)
        except RuntimeError as e:
            return f"cannot install {' '.join(PACKAGES)}: {e}"
    return None


# --------------------------------------------------------------------------------------------------
# the cluster


@dataclass
class SlurmCluster:
    """A running cluster: where its files are, and helpers that call its client commands."""

    workdir: Path
    conf: Path
    node: str
    partition: str
    cpus: int
    real_memory_mb: int
    cluster_name: str
    runtime_dir: Path
    startup_s: float = 0.0
    #: Environment variables a client needs to reach this cluster (SLURM_CONF).
    env: dict[str, str] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    # --- running client commands ------------------------------------------------------------------
    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """os.environ with this cluster's variables (and ``extra``): the environment for a client."""
        return {**os.environ, **self.env, **(extra or {})}

    def run(
        self, args: Sequence[str], *, check: bool = True, timeout: float = 30.0, **kwargs
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with this cluster's environment, in ``workdir`` unless ``cwd`` says otherwise
        (a job's default working directory, and where ``slurm-%j.out`` lands, is sbatch's); text
        output captured. With ``check``, a non-zero exit raises CalledProcessError (its ``stderr``
        holds SLURM's message)."""
        env = self.environ(kwargs.pop("env", None))
        kwargs["cwd"] = kwargs.get("cwd") or self.workdir
        return subprocess.run(
            list(args), env=env, capture_output=True, text=True, timeout=timeout, check=check,
            stdin=subprocess.DEVNULL, **kwargs,
        )  # fmt: skip

    def sbatch(self, *args: str, cwd: Path | str | None = None) -> str:
        """``sbatch --parsable ARGS``; returns the job id (for an array, the array's job id)."""
        out = self.run(["sbatch", "--parsable", *args], cwd=cwd).stdout.strip()
        return out.split(";")[0]

    def squeue(self, *args: str) -> str:
        """``squeue ARGS``'s output."""
        return self.run(["squeue", *args]).stdout

    def show_jobs(self, job_id: str) -> list[dict[str, str]]:
        """``scontrol show job -o JOB`` parsed: one dict per record (an array has one per task);
        [] when slurmctld no longer knows the job (its record is purged MinJobAge after it ends)."""
        done = self.run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                return []
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        return [parse_scontrol_record(line) for line in done.stdout.splitlines() if line.strip()]

    def show_job(self, job_id: str) -> dict[str, str]:
        """The first record of :meth:`show_jobs` (the job itself), or {} when unknown."""
        jobs = self.show_jobs(job_id)
        return jobs[0] if jobs else {}

    def job_states(self, job_id: str) -> list[str]:
        """JobState of each record of the job (e.g. ['PENDING'], or one per array task)."""
        return [j.get("JobState", "") for j in self.show_jobs(job_id)]

    def wait_state(self, job_id: str, states: Iterable[str], timeout: float = 20.0, poll: float = 0.2) -> list[str]:
        """Poll until every record of the job is in one of ``states``; returns their states.

        Raises TimeoutError with the last `scontrol show job` records otherwise."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.show_jobs(job_id)
            got = [j.get("JobState", "") for j in jobs]
            if got and all(s in wanted for s in got):
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not in {sorted(wanted)} after {timeout:.0f} s: {jobs}")
            time.sleep(poll)

    def cancel_all(self, wait: float = 5.0) -> None:
        """scancel every job the cluster knows; wait up to ``wait`` s for them to leave the queue."""
        ids = self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=10).stdout.split()
        if ids:
            self.run(["scancel", *ids], check=False, timeout=10)
        deadline = time.monotonic() + wait
        while ids and time.monotonic() < deadline:
            if not self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=10).stdout.split():
                return
            time.sleep(0.2)

    def log(self, daemon: str) -> Path:
        """The log of 'slurmctld', 'slurmd' (SLURM's log files, ``log/NAME.log``) or 'munged' (which
        logs to its stderr in the foreground: ``log/munged.out``; every daemon's stdout and stderr
        go to ``log/NAME.out``)."""
        path = self.workdir / "log" / f"{daemon}.log"
        return path if path.exists() else path.with_suffix(".out")

    def log_tails(self, lines: int = 15) -> str:
        """The last ``lines`` lines of each daemon's logs (for error messages)."""
        parts = []
        for path in sorted((self.workdir / "log").glob("*")):
            text = path.read_text(errors="replace") if path.is_file() else ""
            if text.strip():
                parts.append(f"--- {path.name}\n{_tail(text, lines)}")
        return "\n".join(parts)

    def daemon_pids(self) -> dict[str, int]:
        """The pids of the daemons that are still running."""
        return {name: p.pid for name, p in self._procs.items() if p.poll() is None}


def parse_scontrol_record(line: str) -> dict[str, str]:
    """'JobId=3 JobName=wrap UserId=root(0) ... Command=(null)' -> {'JobId': '3', ...}. A value runs up
    to the next ' Key=' so that values with spaces (Reason=..., paths) stay whole."""
    return {m.group(1): m.group(2) for m in re.finditer(r"(\w[\w:/.\-]*)=(.*?)(?= \w[\w:/.\-]*=|$)", line.strip())}


@contextlib.contextmanager
def slurm_cluster(
    workdir: Path,
    *,
    startup_timeout: float = 60.0,
    set_environ: bool = True,
    cred_expire_s: int = CRED_EXPIRE_S,
    overrides: Mapping[str, str | None] | None = None,
) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd for a one-node cluster; yield it; stop everything on exit.

    ``workdir`` (created if needed) receives slurm.conf, the controller's state (wiped at start:
    every cluster starts empty, job ids from 1) and the daemons' logs under ``log/``. The node is
    named after ``hostname -s`` with this machine's CPUs and memory, in one default partition
    (PARTITION). Returns once ``sinfo`` shows the node idle; raises SlurmClusterError (after
    stopping whatever had started) when that does not happen within ``startup_timeout`` s.

    With ``set_environ``, os.environ['SLURM_CONF'] points at this cluster while it is up, so that
    subprocesses (submitit's sbatch/squeue/scontrol, and the jobs) use it; the previous value is
    restored on exit. ``overrides`` replace settings of slurm.conf ({'KillWait': '10'}; None
    removes one; a key that is not there is appended).
    """
    reason = cannot_start_reason(install=False)
    if reason:
        raise SlurmClusterError(reason)
    workdir = Path(workdir).resolve()
    cluster = _prepare(workdir, cred_expire_s, overrides or {})
    saved = os.environ.get("SLURM_CONF")
    try:
        _start(cluster, startup_timeout)
        if set_environ:
            os.environ.update(cluster.env)
        yield cluster
    finally:
        if set_environ:
            if saved is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved
        _stop(cluster)


#: Clusters started and not yet stopped: stopped at interpreter exit if a caller never left its block.
_LIVE: list[SlurmCluster] = []


@atexit.register
def _stop_all() -> None:
    for cluster in list(_LIVE):
        _stop(cluster)


def _prepare(workdir: Path, cred_expire_s: int, overrides: Mapping[str, str | None]) -> SlurmCluster:
    """Directories, munge key, ports and slurm.conf; starts nothing."""
    for sub in ("log", "state"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    tmp_root = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    runtime = Path(tempfile.mkdtemp(prefix="amfs-slurm-", dir=tmp_root))
    runtime.chmod(0o755)  # munged: every directory above its socket must be searchable by all
    (runtime / "spool").mkdir()
    key = runtime / "munge.key"
    key.write_bytes(secrets.token_bytes(128))
    key.chmod(0o400)  # munged refuses a key that others can read

    node = _node_name()
    cpus, memory = _node_resources()
    name = "amfs" + secrets.token_hex(4)  # unique: SLURM_CLUSTER_NAME tells this cluster's jobs apart
    ctld_port, slurmd_port = _free_ports(2)
    conf = workdir / "slurm.conf"
    conf.write_text(
        render_slurm_conf(
            cluster_name=name,
            node=node,
            cpus=cpus,
            real_memory_mb=memory,
            slurmctld_port=ctld_port,
            slurmd_port=slurmd_port,
            state_dir=workdir / "state",
            log_dir=workdir / "log",
            runtime_dir=runtime,
            cred_expire_s=cred_expire_s,
            overrides=overrides,
        )
    )
    cluster = SlurmCluster(
        workdir=workdir,
        conf=conf,
        node=node,
        partition=PARTITION,
        cpus=cpus,
        real_memory_mb=memory,
        cluster_name=name,
        runtime_dir=runtime,
        env={"SLURM_CONF": str(conf)},
    )
    _LIVE.append(cluster)
    return cluster


def render_slurm_conf(
    *,
    cluster_name: str,
    node: str,
    cpus: int,
    real_memory_mb: int,
    slurmctld_port: int,
    slurmd_port: int,
    state_dir: Path,
    log_dir: Path,
    runtime_dir: Path,
    cred_expire_s: int = CRED_EXPIRE_S,
    overrides: Mapping[str, str | None] | None = None,
) -> str:
    """The slurm.conf of a one-node cluster (see SLURM_NOTES.md for why each setting is there)."""
    text = f"""\
# Throwaway single-node test cluster (tests/support/slurm_cluster.py); SLURM 22.05.
ClusterName={cluster_name}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={slurmctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# private munged; cred_expire is also how long a requeued job waits before it may start again
AuthInfo=socket={runtime_dir}/munge.socket,cred_expire={cred_expire_s}
StateSaveLocation={state_dir}
SlurmdSpoolDir={runtime_dir}/spool
SlurmctldPidFile={runtime_dir}/slurmctld.pid
SlurmdPidFile={runtime_dir}/slurmd.pid
SlurmctldLogFile={log_dir}/slurmctld.log
SlurmdLogFile={log_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups, no accounting: nothing to set up beyond this file
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
# one job per CPU (not per node, as select/linear would do); memory is not a consumable resource
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# no 3 s batch delay, a scheduling pass every second: a job starts ~1 s after sbatch (defaults: ~3 s)
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1,sched_min_interval=0
# a node that comes back is usable at once; finished jobs stay visible to squeue/scontrol for 5 min
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
SlurmdTimeout=60
SlurmctldTimeout=60
NodeName={node} NodeHostname={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    return apply_overrides(text, overrides or {})


def apply_overrides(conf: str, overrides: Mapping[str, str | None]) -> str:
    """Replace (or, for None, drop) each ``Key=...`` line of ``conf`` named in ``overrides``; keys
    that have no line are appended. Keys compare case-insensitively, as SLURM's do."""
    wanted = {k.lower(): (k, v) for k, v in overrides.items()}
    lines = []
    for line in conf.splitlines():
        key = line.split("=", 1)[0].strip().lower() if "=" in line and not line.startswith("#") else None
        if key in wanted:
            name, value = wanted.pop(key)
            if value is not None:
                lines.append(f"{name}={value}")
        else:
            lines.append(line)
    lines += [f"{name}={value}" for name, value in wanted.values() if value is not None]
    return "\n".join(lines) + "\n"


def _start(cluster: SlurmCluster, timeout: float) -> None:
    """Start the three daemons and wait for the node to be idle; SlurmClusterError otherwise."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    runtime, conf = cluster.runtime_dir, str(cluster.conf)
    daemon_env = {**os.environ, **cluster.env, MARKER_VAR: cluster.cluster_name}
    socket_path = runtime / "munge.socket"
    _spawn(
        cluster,
        "munged",
        [
            _which("munged"), "--foreground", f"--socket={socket_path}", f"--key-file={runtime / 'munge.key'}",
            f"--pid-file={runtime / 'munged.pid'}", f"--seed-file={runtime / 'munged.seed'}", "--num-threads=2",
        ],
        daemon_env,
    )  # fmt: skip
    _wait_for(cluster, deadline, "munged's socket", socket_path.exists)
    _spawn(cluster, "slurmctld", [_which("slurmctld"), "-D", "-f", conf], daemon_env)
    _wait_for(cluster, deadline, "slurmctld to answer", lambda: _answers(cluster, ["scontrol", "ping"], "UP"))
    _spawn(cluster, "slurmd", [_which("slurmd"), "-D", "-f", conf, "-N", cluster.node], daemon_env)

    def node_idle() -> bool:
        state = cluster.run(["sinfo", "-h", "-N", "-n", cluster.node, "-o", "%T"], check=False, timeout=10)
        s = state.stdout.strip()
        if s.startswith(("drain", "down", "fail", "inval")):
            why = cluster.run(["sinfo", "-h", "-N", "-n", cluster.node, "-o", "%T %E"], check=False).stdout
            raise SlurmClusterError(f"node {cluster.node} is {why.strip()}")
        return s == "idle"

    _wait_for(cluster, deadline, f"node {cluster.node} to be idle", node_idle)
    cluster.startup_s = time.monotonic() - t0


def _spawn(cluster: SlurmCluster, name: str, argv: list[str], env: dict[str, str]) -> None:
    out = open(cluster.workdir / "log" / f"{name}.out", "ab")  # noqa: SIM115 (closed with the process)
    try:
        cluster._procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent, cwd=cluster.workdir,
        )  # fmt: skip
    finally:
        out.close()


def _wait_for(cluster: SlurmCluster, deadline: float, what: str, ready) -> None:
    """Poll ``ready()`` until true; SlurmClusterError if a daemon exited or the deadline passed."""
    delay = 0.05
    while True:
        if ready():
            return
        dead = {n: p.returncode for n, p in cluster._procs.items() if p.poll() is not None}
        if dead:
            raise SlurmClusterError(f"while waiting for {what}, exited: {dead}\n{cluster.log_tails()}")
        if time.monotonic() > deadline:
            raise SlurmClusterError(f"timed out waiting for {what}\n{cluster.log_tails()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _answers(cluster: SlurmCluster, args: list[str], needle: str) -> bool:
    try:
        return needle in cluster.run(args, check=False, timeout=10).stdout
    except subprocess.TimeoutExpired:
        return False


def _stop(cluster: SlurmCluster) -> None:
    """Cancel the jobs, stop the daemons, kill what is left of the jobs, remove the runtime dir.
    Safe to call more than once and on a half-started cluster."""
    ctld = cluster._procs.get("slurmctld")
    if ctld is not None and ctld.poll() is None:
        with contextlib.suppress(Exception):
            cluster.cancel_all(wait=3.0)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster._procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    kill_leftovers(cluster.cluster_name)
    shutil.rmtree(cluster.runtime_dir, ignore_errors=True)
    if cluster in _LIVE:
        _LIVE.remove(cluster)


def cluster_processes(cluster_name: str) -> list[int]:
    """Pids of the processes that belong to the cluster: those whose environment carries its marker
    (the daemons, and slurmstepd which inherits slurmd's environment) or its SLURM_CLUSTER_NAME (every
    job), and their descendants; never this process or its ancestors."""
    marks = (f"{MARKER_VAR}={cluster_name}".encode(), f"SLURM_CLUSTER_NAME={cluster_name}".encode())
    parents: dict[int, int] = {}
    marked: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            parents[pid] = int(stat[stat.rindex(b")") + 2 :].split()[1])
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if any(m in environ for m in marks):
            marked.add(pid)
    mine, p = set(), os.getpid()
    while p > 0 and p not in mine:
        mine.add(p)
        p = parents.get(p, 0)
    found = set(marked)
    grew = True
    while grew:  # descendants of marked processes (a job that scrubbed its environment)
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found - mine)


def kill_leftovers(cluster_name: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process of :func:`cluster_processes`; returns the pids that were killed."""
    pids = cluster_processes(cluster_name)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# small helpers


def _which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _node_name() -> str:
    """``hostname -s`` when it is a plain name SLURM accepts (and slurmctld recognises as its own
    host), else 'localhost'."""
    short = socket.gethostname().split(".")[0]
    return short if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", short or "") else "localhost"


def _node_resources() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) as slurmd sees the machine (``slurmd -C``), else from os/proc.

    Never more than the machine has: a node configured above its hardware is drained by slurmctld."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with open("/proc/meminfo") as f:
        kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal:")))
    memory = kb // 1024
    with contextlib.suppress(OSError, subprocess.SubprocessError, StopIteration, ValueError):
        seen = subprocess.run([_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=20).stdout
        fields = parse_scontrol_record(next(line for line in seen.splitlines() if line.startswith("NodeName=")))
        cpus = min(cpus, int(fields["CPUs"]))
        memory = min(memory, int(fields["RealMemory"]))
    return max(cpus, 1), max(memory, 1)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 now (the OS's ephemeral ones)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies (prctl
    PR_SET_PDEATHSIG), so daemons do not outlive a test run that is killed."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
