"""Stopping a training run cleanly: at a deadline (run --budget) or on a signal (SLURM's
preemption and time-limit signals, a TERM). The trainer polls `poll()` at the end of every
meta-iteration, the only point where its state is consistent; there it saves a checkpoint and, for a
stop, raises Interrupted. Signal handlers only set flags: a checkpoint taken inside a handler could
catch the trainer between the parameter update and the iteration count, and resume one step off.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass


class Interrupted(Exception):
    """Training stopped at an iteration boundary with its checkpoint saved (deadline, preemption):
    the run is resumable, not failed."""


@dataclass(frozen=True)
class Request:
    """What the trainer must do at this iteration boundary: save a checkpoint, and stop or go on."""

    stop: bool
    reason: str


class StopControl:
    """The stop and checkpoint requests of this process: a deadline, and flags set by signals."""

    def __init__(self) -> None:
        self.deadline: float | None = None  # time.time() at which to stop
        self.stop_reason: str | None = None
        self.checkpoint_reason: str | None = None
        self.signals: list[int] = []  # signals received, in order

    def poll(self) -> Request | None:
        if self.stop_reason is not None:
            return Request(True, self.stop_reason)
        if self.deadline is not None and time.time() >= self.deadline:
            return Request(True, "budget deadline")
        if self.checkpoint_reason is not None:
            reason, self.checkpoint_reason = self.checkpoint_reason, None
            return Request(False, reason)
        return None

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def stop_on(self, signum: int) -> None:
        """Install a handler: `signum` asks the run to checkpoint and stop."""

        def handler(received: int, frame) -> None:
            self.signals.append(received)
            self.request_stop(f"signal {signal.Signals(received).name}")

        signal.signal(signum, handler)

    def checkpoint_on(self, signum: int) -> None:
        """Install a handler: `signum` asks for a checkpoint at the next iteration, training goes on."""

        def handler(received: int, frame) -> None:
            self.signals.append(received)
            self.checkpoint_reason = f"signal {signal.Signals(received).name}"

        signal.signal(signum, handler)


#: This process's requests (signal handlers are per process, as is the training).
CONTROL = StopControl()
