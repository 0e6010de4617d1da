"""Stopping a training run cleanly: at a deadline (run --budget) or on a signal (TERM from SLURM's
cancellation, requeue, preemption or time limit; USR2, SLURM's warning before the time limit).
The trainer polls `poll()` at the end of every meta-iteration, the only point where its state is
consistent; there it saves a checkpoint and raises Interrupted. Signal handlers only set a flag: a
checkpoint taken inside a handler could catch the trainer between the parameter update and the
iteration count, and resume one step off.
"""

from __future__ import annotations

import signal
import time


class Interrupted(Exception):
    """Training stopped at an iteration boundary with its checkpoint saved (deadline, signal): the
    run is resumable, not failed."""


class StopControl:
    """This process's reasons to stop: a deadline, and a flag set by signals."""

    def __init__(self) -> None:
        self.deadline: float | None = None  # time.time() at which to stop
        self.stop_reason: str | None = None

    def poll(self) -> str | None:
        """Why training must checkpoint and stop now, or None."""
        if self.stop_reason is not None:
            return self.stop_reason
        if self.deadline is not None and time.time() >= self.deadline:
            return "budget deadline"
        return None

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def stop_on(self, signum: int) -> None:
        """Install a handler: `signum` asks the run to checkpoint and stop at its next iteration."""

        def handler(received: int, frame) -> None:
            self.request_stop(f"signal {signal.Signals(received).name}")

        signal.signal(signum, handler)


#: This process's requests (signal handlers are per process, as is the training).
CONTROL = StopControl()
