"""Several runs at once on one device (`run --workers N`), and the local scheduling loop.

With one worker the runs execute in this process, one after the other; with N > 1, in N worker
processes (spawned, so that CUDA initialises in each), each taking one run at a time over its own
pipe. Every run claims its lock itself (runner.run_one), so two commands, or a command and SLURM
jobs, can share a results folder. The loop:

- starts the next run on a free worker (in order, or as the budget chooses: runs/budget.py);
- shows the runs in flight (a progress bar on a terminal, else one line per start and finish);
- when a worker process dies (killed, out of memory), starts a new one and retries its run once:
  the dead worker's lock is stale, so the retry takes it over and resumes from the checkpoint;
- runs that another process holds ("busy") are looked at again when everything else is done: if
  their holder has died meanwhile they are taken over and resumed, else they are left to it;
- TERM or Ctrl-C asks every run in flight to checkpoint and stop at its next iteration (a second
  Ctrl-C stops at once).

CPU threads per worker: `--threads`, else 1 on the CPU (several single-threaded runs use the cores
better than threads contending for them: reports/perf/NOTES.md), and on CUDA the machine's cores
shared among the workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from tqdm import tqdm

from benchmarks.runs.budget import Budget
from benchmarks.runs.context import RunContext
from benchmarks.runs.grids import RunSpec
from benchmarks.runs.interrupt import CONTROL
from benchmarks.runs.locks import lock_status
from benchmarks.runs.runner import UNPLANNED, run_one
from benchmarks.runs.store import ResultsStore, StoreError

#: Default workers on a GPU: 4 until the throughput measurement (python -m benchmarks.perf.workers,
#: runs per hour at N = 1, 2, 4, 8) is made on one. Four Omniglot or mini-ImageNet runs take about
#: 6-8 GiB of an 80+ GiB device (peak 1.6 GiB per Omniglot 5w1s run on an H200, reports/omniglot-short;
#: 2.1 GiB for mini-ImageNet 5w5s, reports/perf/h100/memory), and a single run leaves the GPU idle
#: while it samples episodes, evaluates and launches small kernels.
CUDA_DEFAULT_WORKERS = 4
#: How many times a run whose worker process died is retried in the same command.
RETRIES_AFTER_WORKER_DEATH = 1


def default_workers(device_type: str) -> int:
    return CUDA_DEFAULT_WORKERS if device_type == "cuda" else 1


def worker_threads(context: RunContext, device_type: str, workers: int) -> int | None:
    """CPU threads of each run: --threads, else 1 on the CPU, else the cores shared on CUDA."""
    if context.threads:
        return context.threads
    if device_type == "cpu":
        return 1
    if workers == 1:
        return None  # PyTorch's choice, as a single run always had
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


@dataclass
class Outcome:
    spec: RunSpec
    status: str  # done | failed | interrupted | busy | conflict | elsewhere | pending | crashed
    seconds: float = 0.0


class Progress:
    """The runs in flight: a bar with their keys on a terminal, else a line per start and finish."""

    def __init__(self, total: int, enabled: bool, workers: int):
        self.total = total
        self.finished = 0
        self.workers = workers
        self.in_flight: list[str] = []
        self.bar = None
        if enabled and sys.stdout.isatty():
            self.bar = tqdm(total=total, desc="runs", unit="run", dynamic_ncols=True)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def _postfix(self) -> None:
        if self.bar is not None:
            shown = ", ".join(k for k in self.in_flight[:3]) + (" ..." if len(self.in_flight) > 3 else "")
            self.bar.set_postfix_str(f"in flight: {shown}" if shown else "", refresh=True)

    def started(self, spec: RunSpec, where: str) -> None:
        self.in_flight.append(spec.key)
        if self.bar is None and self.workers > 1:
            self._line(f"  start       {spec.key}  [{where}; {len(self.in_flight)} in flight]")
        self._postfix()

    def ended(self, outcome: Outcome, final: bool = True) -> None:
        if outcome.spec.key in self.in_flight:
            self.in_flight.remove(outcome.spec.key)
        if final:
            self.finished += 1
            if self.bar is not None:
                self.bar.update(1)
        flight = f"; {len(self.in_flight)} in flight" if self.workers > 1 else ""
        count = f"[{self.finished}/{self.total}{flight}]"
        self._line(f"  {outcome.status:<11} {outcome.spec.key}  {outcome.seconds:.1f} s  {count}")
        self._postfix()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------------
# where runs execute


class _InProcess:
    """One run at a time in this process."""

    def __init__(self, context: RunContext):
        self.context = context
        self.capacity = 1
        self._done: list[tuple[RunSpec, str, float]] = []

    def idle(self) -> int:
        return 0 if self._done else 1  # collect what ended before starting the next

    def busy(self) -> int:
        return 0

    def start(self, spec: RunSpec, planned: str | None) -> str:
        t0 = time.monotonic()
        status = run_one(spec, self.context, planned)
        self._done.append((spec, status, time.monotonic() - t0))
        return "this process"

    def collect(self, timeout: float) -> list[tuple[RunSpec, str, float, bool]]:
        done, self._done = self._done, []
        return [(spec, status, seconds, False) for spec, status, seconds in done]

    def stop(self) -> None:
        CONTROL.request_stop("interrupted by a signal")

    def close(self, kill: bool = False) -> None:
        pass


def _worker_main(conn: Connection, context: RunContext) -> None:
    """A worker process: run what the parent sends until it sends None."""
    CONTROL.stop_on(signal.SIGTERM)  # the parent forwards TERM and Ctrl-C as TERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        spec, planned = message
        t0 = time.monotonic()
        try:
            status = run_one(spec, context, planned)
        except Exception:  # the run's own failures are records; this is a harness error: say so, go on
            traceback.print_exc()
            status = "crashed"
        conn.send((spec.run_id, status, time.monotonic() - t0))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    index: int
    spec: RunSpec | None = None
    started: float = 0.0


class _Pool:
    """N worker processes, started as they are needed."""

    def __init__(self, context: RunContext, workers: int):
        self.context = context
        self.capacity = workers
        self.mp = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self._next_index = 0

    def _spawn(self) -> _Worker:
        parent, child = self.mp.Pipe()
        self._next_index += 1
        process = self.mp.Process(
            target=_worker_main, args=(child, self.context), name=f"amfs-worker-{self._next_index}", daemon=True
        )
        process.start()
        child.close()
        worker = _Worker(process, parent, self._next_index)
        self.workers.append(worker)
        return worker

    def idle(self) -> int:
        return self.capacity - self.busy()

    def busy(self) -> int:
        return sum(1 for w in self.workers if w.spec is not None)

    def start(self, spec: RunSpec, planned: str | None) -> str:
        worker = next((w for w in self.workers if w.spec is None), None) or self._spawn()
        worker.spec, worker.started = spec, time.monotonic()
        worker.conn.send((spec, planned))
        return f"worker {worker.index}, pid {worker.process.pid}"

    def collect(self, timeout: float) -> list[tuple[RunSpec, str, float, bool]]:
        """Runs that ended: (spec, status, seconds, worker died)."""
        busy = [w for w in self.workers if w.spec is not None]
        if not busy:
            return []
        wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=timeout)
        ended = []
        for w in busy:
            assert w.spec is not None
            if w.conn.poll():
                try:
                    _, status, seconds = w.conn.recv()
                    ended.append((w.spec, status, seconds, False))
                    w.spec = None
                    continue
                except (EOFError, OSError):
                    pass
            if w.process.exitcode is not None:
                code = w.process.exitcode
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                print(f"[worker died] {w.spec.key}: worker {w.index} (pid {w.process.pid}) ended by {how}", flush=True)
                ended.append((w.spec, "crashed", time.monotonic() - w.started, True))
                w.spec = None
                w.conn.close()
                self.workers.remove(w)
        return ended

    def stop(self) -> None:
        for w in self.workers:
            if w.spec is not None and w.process.exitcode is None:
                os.kill(w.process.pid, signal.SIGTERM)

    def close(self, kill: bool = False) -> None:
        for w in self.workers:
            if kill and w.process.exitcode is None:
                w.process.kill()
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in self.workers:
            w.process.join(timeout=30)
            if w.process.exitcode is None:
                w.process.kill()
                w.process.join()
            w.conn.close()
        self.workers = []


# --------------------------------------------------------------------------------------------------
# the loop


def run_specs(
    specs: list[RunSpec],
    context: RunContext,
    workers: int,
    planned: dict[str, str | None] | None = None,
    budget: Budget | None = None,
) -> list[Outcome]:
    """Run `specs` (in order, or as `budget` chooses) on `workers` workers; one Outcome per spec, in
    the order of `specs` ("pending" for runs never started)."""
    from benchmarks.device.environment import resolve_device

    planned = planned or {}
    device_type = resolve_device(context.device).type
    context = dataclasses.replace(
        context,
        threads=worker_threads(context, device_type, workers),
        progress=context.progress and workers == 1,
        deadline=budget.trainer_deadline if budget is not None else context.deadline,
    )
    where = _InProcess(context) if workers == 1 else _Pool(context, workers)
    progress = Progress(len(specs), context.progress or (workers > 1 and sys.stdout.isatty()), workers)
    outcomes: dict[str, Outcome] = {}
    pending = list(specs)
    deferred: list[RunSpec] = []  # busy elsewhere: looked at again at the end
    retried: set[str] = set()
    looked_again: set[str] = set()
    stopping = [False]

    def on_signal(signum: int, frame) -> None:
        if stopping[0]:
            raise KeyboardInterrupt
        stopping[0] = True
        print(f"\n{signal.Signals(signum).name}: the runs in flight checkpoint and stop (again to stop at once)")
        where.stop()

    restore = _install({signal.SIGINT: on_signal, signal.SIGTERM: on_signal})
    try:
        while True:
            while not stopping[0] and pending and where.idle() > 0:
                index = _choose(pending, budget, context)
                if index is None:
                    break
                spec = pending.pop(index)
                if workers == 1:
                    progress.started(spec, "this process")  # start() returns when the run has ended
                    where.start(spec, planned.get(spec.run_id, UNPLANNED))
                else:
                    progress.started(spec, where.start(spec, planned.get(spec.run_id, UNPLANNED)))
            ended = where.collect(timeout=1.0)
            for spec, status, seconds, died in ended:
                if died and spec.run_id not in retried and not stopping[0]:
                    retried.add(spec.run_id)
                    pending.insert(0, spec)  # resumes from its checkpoint, taking over the stale lock
                    progress.ended(Outcome(spec, "crashed", seconds), final=False)
                    continue
                if status == "busy" and spec.run_id not in looked_again:
                    deferred.append(spec)
                outcomes[spec.run_id] = Outcome(spec, status, seconds)
                progress.ended(outcomes[spec.run_id])
            if where.busy() or (pending and not stopping[0] and _choose(pending, budget, context) is not None):
                continue
            # Nothing in flight and nothing more to start: look once more at runs held elsewhere.
            again = [s for s in deferred if _claimable(s, context)]
            deferred = []
            if again and not stopping[0] and (budget is None or budget.left() > 0):
                for spec in again:
                    looked_again.add(spec.run_id)
                    outcomes.pop(spec.run_id, None)
                    progress.finished -= 1
                pending = again + pending
                continue
            break
    except BaseException:
        where.close(kill=True)
        raise
    finally:
        restore()
        where.close()
        progress.close()
    return [outcomes.get(s.run_id, Outcome(s, "pending")) for s in specs]


def _choose(pending: list[RunSpec], budget: Budget | None, context: RunContext) -> int | None:
    if budget is None:
        return 0 if pending else None
    return budget.choose(pending, context.results)


def _claimable(spec: RunSpec, context: RunContext) -> bool:
    """Whether a run that was busy elsewhere is now free to take (its holder finished or died)."""
    store = ResultsStore(context.results, spec.grid)
    if lock_status(store, spec.run_id, spec.config) is not None:
        return False
    try:
        return store.read_record(spec.run_id) is None
    except StoreError:
        return True  # an unreadable record: the claim decides (runner.claim replaces it)


def _install(handlers: dict[int, Callable]) -> Callable[[], None]:
    """Install signal handlers (main thread only); returns what restores the previous ones."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {signum: signal.getsignal(signum) for signum in handlers}
    for signum, handler in handlers.items():
        signal.signal(signum, handler)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        CONTROL.stop_reason = None

    return restore
