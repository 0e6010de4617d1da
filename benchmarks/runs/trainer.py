"""One run: meta-train with periodic validation and best-checkpoint selection, then test on the
fixed episodes. State is checkpointed atomically so an interrupted run resumes exactly where it
stopped: episodes are a function of (seed, split, index), so the resumed run sees the same stream
and ends with the same numbers as an uninterrupted one."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from benchmarks.common.checked import ChecksumError, load_checked, save_checked
from benchmarks.common.stats import mean_ci95
from benchmarks.data.datasets import dataset_info
from benchmarks.device.execution import Execution, apply_precision
from benchmarks.runs.build import assemble
from benchmarks.runs.grids import RunSpec
from benchmarks.runs.interrupt import Interrupted

EVAL_CHUNK = 25  # test/validation tasks evaluated per call: bounds memory, amortises overhead
CHECKPOINT_KEYS = frozenset({"config", "numerics", "params", "best_params", "optimizer", "state"})


class RunFailure(RuntimeError):
    """A run that cannot go on (non-finite loss, exhausted jitter retries); recorded as failed."""


@dataclass
class TrainState:
    """Everything a checkpoint holds besides parameters and optimiser state."""

    iteration: int = 0
    val_curve: list[dict[str, float]] = field(default_factory=list)
    train_loss_curve: list[dict[str, float]] = field(default_factory=list)
    best_iteration: int = -1
    best_metric: float | None = None
    iteration_ms: list[float] = field(default_factory=list)
    jitter_retries: int = 0
    recovered: list[str] = field(default_factory=list)
    resumed_from: list[int] = field(default_factory=list)
    train_seconds: float = 0.0
    loss_window: list[float] = field(default_factory=list)


class Trainer:
    """Trains and evaluates one RunSpec on one device."""

    def __init__(self, spec: RunSpec, sources: dict[str, Any], device: torch.device, checkpoint: Path, progress: bool):
        self.spec = spec
        self.config = spec.config
        self.sources = sources
        self.device = device
        self.checkpoint = checkpoint
        self.progress = progress
        self.dataset = dataset_info(self.config["dataset"])
        self.assembly = assemble(self.config, device)
        apply_precision(self.assembly.execution.precision)
        self.learner = self.assembly.learner
        self.params = self.assembly.params
        self.optimizer = self.assembly.optimizer
        self.update = self.assembly.meta_update()
        self.best_params = {k: v.detach().clone() for k, v in self.params.items()}
        self.state = TrainState(recovered=list(self.assembly.notes))
        # Polled at the end of every iteration (runs/interrupt.py): a reason to stop (a deadline, a
        # signal) makes the run checkpoint there, where its state is consistent, and raise Interrupted.
        self.interrupt: Callable[[], str | None] | None = None

    @property
    def execution(self) -> Execution:
        """How the run executed: the resolved execution, without a graph if capture failed."""
        return dataclasses.replace(self.assembly.execution, graph=self.update.graph)

    # --- checkpoints ----------------------------------------------------------------------
    def numerics(self) -> dict[str, Any]:
        """What changes the numbers of a run besides its config: resuming under anything else would mix two
        computations into a number neither gives. CPU thread count changes the order of reductions; on
        CUDA it does not touch the computation, so it is left out there."""
        out: dict[str, Any] = {
            "device": self.device.type,
            "torch": str(torch.__version__),
            "execution": self.assembly.execution.as_dict(),
        }
        if self.device.type == "cpu":
            out["threads"] = torch.get_num_threads()
        return out

    def save_checkpoint(self) -> None:
        """The training state as a checked file (common/checked.py: content sha256, tensors and plain values
        only, so that resuming never runs code from the results folder)."""
        payload = {
            "config": self.config,
            "numerics": self.numerics(),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "best_params": {k: v.detach().cpu() for k, v in self.best_params.items()},
            "optimizer": self.optimizer.state_dict(),
            "state": dataclasses.asdict(self.state),
        }
        save_checked(self.checkpoint, payload)

    def _restart(self, why: str) -> bool:
        self.state.recovered.append(f"checkpoint {self.checkpoint.name} not used ({why}); restarted from iteration 0")
        return False

    def try_resume(self) -> bool:
        """Load the checkpoint if there is one for this exact config and numerics.

        A checkpoint that fails its checksum, is not a checkpoint of this code, or was written under other
        numerics (threads, device type, execution, torch version) is not used: the run restarts from
        iteration 0 and its record's faults say why. A checkpoint of another config is an error (the grid
        changed under a stored run)."""
        if not self.checkpoint.exists():
            return False
        try:
            payload, _ = load_checked(self.checkpoint)
        except ChecksumError as e:
            return self._restart(str(e))
        if not isinstance(payload, dict) or not set(payload) >= CHECKPOINT_KEYS:
            return self._restart("not a checkpoint of this version")
        if payload["config"] != self.config:
            raise RunFailure(
                f"checkpoint {self.checkpoint} was written with a different config; delete it to restart this run"
            )
        now = self.numerics()
        if payload.get("numerics") != now:
            then = payload.get("numerics") or {}
            changed = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k)) or ["not recorded"]
            detail = ", ".join(f"{k}: {then.get(k)!r} then, {now.get(k)!r} now" for k in changed)
            return self._restart(f"written under other numerics ({detail})")
        try:
            state = TrainState(**payload["state"])
            for name in ("params", "best_params"):
                saved = payload[name]
                if set(saved) != set(self.params) or any(saved[k].shape != self.params[k].shape for k in saved):
                    raise ValueError(f"its {name} do not match this run's parameters")
            self.optimizer.load_state_dict(payload["optimizer"])  # checks its shapes before changing anything
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            return self._restart(f"malformed: {e}")
        with torch.no_grad():
            for k, v in payload["params"].items():
                self.params[k].copy_(v)
        self.best_params = {k: v.to(self.device) for k, v in payload["best_params"].items()}
        self.state = state
        self.state.resumed_from.append(self.state.iteration)
        return True

    # --- training -------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _step(self, batch):
        """One meta-update; returns the StepResult (loss and diagnostics) of that step."""
        step = self.update(batch)
        while self.update.notes:  # a CUDA graph that could not be captured: ran eagerly, say so
            self.state.recovered.append(self.update.notes.pop(0))
        return step

    def _train_batch(self, index: int):
        return self.sources["train"].tasks(self.config["seed"], index, self.config["meta_batch"]).to(self.device)

    def train(self) -> None:
        cfg = self.config
        total = cfg["iterations"]
        if self.state.iteration == 0:
            self.assembly.initialise_from_data(self._train_batch(0))
        bar = tqdm(
            total=total,
            initial=self.state.iteration,
            desc=self.spec.key,
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        started = time.perf_counter() - self.state.train_seconds
        batch = self._train_batch(self.state.iteration) if self.state.iteration < total else None
        while self.state.iteration < total:
            it = self.state.iteration
            self._sync()
            t0 = time.perf_counter()
            step = self._step(batch)
            # The next meta-batch is drawn while the device still works on this step (a meta-batch
            # depends only on its index, so the order of draws changes nothing); the iteration time
            # therefore includes drawing the next one.
            batch = self._train_batch(it + 1) if it + 1 < total else None
            loss = step.task_losses.mean().item()
            if bool(step.solve_failed):
                raise RunFailure(
                    f"kernel solve exhausted its jitter retries at iteration {it} (kernel.max_jitter_retries="
                    f"{cfg['kernel.max_jitter_retries']}); raise kernel.lambda_init or kernel.max_jitter_retries"
                )
            if not math.isfinite(loss):
                hint = self._divergence_hint()
                raise RunFailure(f"diverged: non-finite meta-training loss at iteration {it}; {hint}")
            self._sync()
            self.state.iteration_ms.append((time.perf_counter() - t0) * 1000)
            self.state.jitter_retries += int(step.jitter_retries)
            self.state.loss_window.append(loss)
            self.state.iteration = it + 1
            done = self.state.iteration
            if done % cfg["val_every"] == 0 or done == total:
                self.state.train_loss_curve.append(
                    {"iteration": done, "loss": statistics.fmean(self.state.loss_window)}
                )
                self.state.loss_window = []
                self.validate()
            self.state.train_seconds = time.perf_counter() - started
            # the last iteration is checkpointed too: a run whose record cannot be written (full disk) is
            # then tested again from it on the next attempt, not trained again
            if done % cfg["checkpoint_every"] == 0 or done == total:
                self.save_checkpoint()
            stop = self.interrupt() if self.interrupt is not None and done < total else None
            if stop is not None:
                self.save_checkpoint()
                bar.close()
                raise Interrupted(f"{stop}: checkpointed at iteration {done} of {total}")
            bar.update(1)
            postfix = {"loss": f"{loss:.3f}"}
            if self.state.val_curve:
                postfix["val"] = f"{self.state.val_curve[-1]['metric']:.3f}"
            bar.set_postfix(postfix, refresh=False)
        bar.close()

    def _divergence_hint(self) -> str:
        cfg = self.config
        return f"lower meta_lr ({cfg['meta_lr']:g}) or inner.step_size ({cfg['inner.step_size']:g})"

    def _evaluate_episodes(self, params: dict[str, torch.Tensor], split: str, episodes: int):
        """Per-episode metric and loss on the fixed episodes of a split, and ms per episode. A kernel solve
        that failed on any episode, or a non-finite metric, fails the run: that episode's number would be
        chance or NaN, not a result."""
        source = self.sources[split]
        metrics, losses, times = [], [], []
        failed = 0
        for start in range(0, episodes, EVAL_CHUNK):
            n = min(EVAL_CHUNK, episodes - start)
            batch = source.tasks(self.config["seed"], start // EVAL_CHUNK, n).to(self.device)
            self._sync()
            t0 = time.perf_counter()
            metric, loss, solve_failed = self.learner.evaluate_checked(params, batch)
            self._sync()
            times.append((time.perf_counter() - t0) * 1000 / n)
            metrics.append(metric.cpu())
            losses.append(loss.cpu())
            failed += int(solve_failed.sum())
        where = "validation" if split == "val" else split
        if failed:
            raise RunFailure(
                f"kernel solve failed on {failed} of {episodes} {where} episodes at iteration {self.state.iteration} "
                f"(not positive definite after kernel.max_jitter_retries={self.config['kernel.max_jitter_retries']} "
                "jitter increases): their accuracy would be chance; raise kernel.lambda_init or "
                "kernel.max_jitter_retries"
            )
        metric = torch.cat(metrics).double()
        bad = int((~torch.isfinite(metric)).sum())
        if bad:
            raise RunFailure(
                f"diverged: non-finite {where} {self.dataset.metric} on {bad} of {episodes} episodes at iteration "
                f"{self.state.iteration} (test-time adaptation: inner.steps_test={self.config['inner.steps_test']}); "
                f"{self._divergence_hint()}"
            )
        return metric, torch.cat(losses).double(), statistics.median(times)

    def validate(self) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in self.params.values()):
            raise RunFailure(
                f"diverged: non-finite parameters at iteration {self.state.iteration}; {self._divergence_hint()}"
            )
        metric, loss, _ = self._evaluate_episodes(self.params, "val", self.config["val_episodes"])
        value = metric.mean().item()
        mean_loss = loss.mean().item()
        # a finite metric with a non-finite loss (an overflowing cross-entropy) is stored as null
        finite_loss = mean_loss if math.isfinite(mean_loss) else None
        self.state.val_curve.append({"iteration": self.state.iteration, "metric": value, "loss": finite_loss})
        best = self.state.best_metric
        improved = best is None or (value > best if self.dataset.higher_is_better else value < best)
        if improved:
            self.state.best_metric = value
            self.state.best_iteration = self.state.iteration
            self.best_params = {k: v.detach().clone() for k, v in self.params.items()}

    def test(self) -> dict[str, Any]:
        cfg = self.config
        metric, _, ms = self._evaluate_episodes(self.best_params, "test", cfg["test_episodes"])
        per_episode = [float(x) for x in metric.tolist()]
        summary = mean_ci95(per_episode)
        return {
            "metric": self.dataset.metric,
            "episodes": len(per_episode),
            "per_episode": per_episode,
            "mean": summary.mean,
            "ci95": summary.ci95 if len(per_episode) > 1 else None,
            "std": summary.std if len(per_episode) > 1 else None,
            "episode_seed": cfg["seed"],
            "adaptation_ms_per_episode": ms,
        }

    def peak_memory_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return None
