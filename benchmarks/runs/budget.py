"""Running under a time budget (`run --budget MINUTES`, `campaign --budget MINUTES`).

Each run's remaining time is estimated, in this order of preference:

1. records: finished runs in the results folder (any grid) of the same cost family (COST_KEYS: dataset,
   way, shot, meta-batch, method, order, inner steps, strategy, precision, ...) on a device of the
   same name: the slowest of their seconds per iteration (validation included) and their test
   adaptation time. Failing that, records of the same dataset, setting and method, scaled by the
   meta-batch ratio;
2. perf: reports/perf/**/perf.json rows of the same method and setting measured on a device of the
   same name (the row of the execution the run would use, else the slowest), scaled by meta-batch;
3. fallback, deliberately pessimistic: FALLBACK_S_PER_ITERATION seconds per meta-iteration and
   FALLBACK_S_PER_EPISODE per validation or test episode, by device and backbone.

Every estimate adds STARTUP_S (imports, data, CUDA graph capture) and counts only the iterations
left after the run's checkpoint. Scheduling, each time a worker is free:

- a run interrupted earlier (it has a checkpoint) resumes first, if it can make checkpointed
  progress before the deadline (startup plus one checkpoint interval fits);
- else the first run, in the grid's (or campaign's) order, whose whole estimate fits what is left;
- else the first run that can make checkpointed progress: a run longer than any slot completes
  over several slots;
- else nothing starts, and the command ends once the runs in flight have stopped.

Runs in flight stop at the deadline minus a reserve (`Budget.reserve_s`): the trainer checks the
deadline after every meta-iteration, saves a checkpoint and stops, and the run is "interrupted",
not failed. A run past its last iteration (testing) is not cut: it overruns by its test time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.data.datasets import dataset_info
from benchmarks.runs.grids import RunSpec
from benchmarks.runs.store import ResultsStore

PERF_DIR = Path(__file__).resolve().parents[2] / "reports" / "perf"
#: Settings that change the cost of a meta-iteration or an adaptation.
COST_KEYS = (
    "dataset",
    "n_way",
    "k_shot",
    "query_train",
    "query_test",
    "meta_batch",
    "method",
    "first_order",
    "inner.steps_train",
    "inner.steps_test",
    "bn_mode",
    "compose.inner",
    "compose.outer",
    "backbone.filters",
    "backbone.pooling",
    "strategy",
    "precision",
)
#: Seconds per run before its first iteration, by (device type, backbone): data loading (none for the
#: sinusoid's MLP), model assembly, CUDA context and graph capture; pessimistic.
STARTUP_S = {("cuda", "conv4"): 60.0, ("cuda", "mlp"): 10.0, ("cpu", "conv4"): 15.0, ("cpu", "mlp"): 1.0}
#: Pessimistic seconds per meta-iteration without a measurement, by (device type, backbone): about
#: 5x the slowest measured setting on each (reports/perf: mini-ImageNet MAML 40 ms on an H100; the
#: quick grid's Omniglot runs on 2 CPU cores).
FALLBACK_S_PER_ITERATION = {("cuda", "conv4"): 0.25, ("cuda", "mlp"): 0.02, ("cpu", "conv4"): 3.0, ("cpu", "mlp"): 0.05}
#: Pessimistic seconds per validation or test episode (adaptation and evaluation) without a measurement.
FALLBACK_S_PER_EPISODE = {("cuda", "conv4"): 0.02, ("cuda", "mlp"): 0.005, ("cpu", "conv4"): 0.3, ("cpu", "mlp"): 0.01}


@dataclass(frozen=True)
class Estimate:
    """A run's estimated remaining time and where the numbers come from."""

    seconds: float
    startup_s: float
    per_iteration_s: float  # seconds per meta-iteration, validation included where measured so
    iterations_left: int
    checkpoint_every: int
    basis: str  # "records (n)", "perf (file)", "fallback"

    def progress_chunk(self) -> float:
        """Seconds to start and reach the next checkpoint: the least time worth starting for."""
        return self.startup_s + min(self.iterations_left, self.checkpoint_every) * self.per_iteration_s


_CHECKPOINTS: dict[Path, tuple[int, int]] = {}  # path -> (mtime, iteration): each file is read once


def checkpoint_iteration(path: Path) -> int:
    """Iterations a checkpoint holds (0 when there is none or it cannot be read as plain data)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return 0
    cached = _CHECKPOINTS.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        iteration = int(payload["state"]["iteration"])
    except Exception:  # a checkpoint this reader does not understand: count the run as not started
        iteration = 0
    _CHECKPOINTS[path] = (mtime, iteration)
    return iteration


def _family(config: dict[str, Any]) -> tuple:
    return tuple(config.get(k) for k in COST_KEYS)


def _setting(config: dict[str, Any]) -> tuple:
    return (config.get("dataset"), config.get("n_way"), config.get("k_shot"), config.get("method"))


class Estimator:
    """Estimates from the records in a results folder and the perf measurements, for one device."""

    def __init__(self, results: Path, device: torch.device, perf_dir: Path = PERF_DIR):
        from benchmarks.device.environment import device_name

        self.results = Path(results)
        self.device = device
        self.device_name = device_name(device)
        self.perf_dir = perf_dir
        self._records: dict[Path, tuple[int, dict[str, Any] | None]] = {}
        self._perf: list[dict[str, Any]] | None = None

    # --- sources ----------------------------------------------------------------------------------
    def _timings(self) -> list[dict[str, Any]]:
        """(config, s/iteration, s/test episode) of every finished record on this device; files
        are parsed once and again only when they change."""
        out = []
        for path in sorted(self.results.glob("*/runs/*.json")):
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            cached = self._records.get(path)
            if cached is None or cached[0] != mtime:
                cached = (mtime, self._timing(path))
                self._records[path] = cached
            if cached[1] is not None:
                out.append(cached[1])
        return out

    def _timing(self, path: Path) -> dict[str, Any] | None:
        try:
            record = json.loads(path.read_text())
            if record.get("status") != "done" or record["environment"]["device_name"] != self.device_name:
                return None
            timing, iterations = record["timing"], record["training"]["iterations_done"]
            if not iterations or not timing.get("train_seconds"):
                return None
            return {
                "config": record["config"],
                "per_iteration_s": timing["train_seconds"] / iterations,
                "per_episode_s": (timing.get("adaptation_ms_per_episode") or 0.0) / 1000,
            }
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _perf_rows(self) -> list[dict[str, Any]]:
        if self._perf is None:
            self._perf = []
            for path in sorted(self.perf_dir.rglob("perf.json")) if self.perf_dir.exists() else []:
                try:
                    perf = json.loads(path.read_text())
                    if perf["environment"].get("device_name") != self.device_name:
                        continue
                    settings = {s["key"]: s for s in perf["settings"]}
                    for row in perf["rows"]:
                        setting = settings.get(row.get("setting"))
                        if setting is None or row.get("implementation", "amfs-bench") != "amfs-bench":
                            continue
                        if not (row.get("ms") or {}).get("median"):
                            continue
                        self._perf.append({"row": row, "setting": setting, "file": path})
                except (OSError, ValueError, KeyError, TypeError):
                    continue
        return self._perf

    # --- the estimate -----------------------------------------------------------------------------
    def estimate(self, spec: RunSpec, checkpoint: Path | None = None) -> Estimate:
        config = spec.config
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        backbone = dataset_info(config["dataset"]).backbone
        done = checkpoint_iteration(checkpoint) if checkpoint is not None else 0
        left = max(0, config["iterations"] - done)
        validations = left // config["val_every"]
        startup = STARTUP_S[(kind, backbone)]

        def make(per_it: float, per_episode: float, val_included: bool, basis: str) -> Estimate:
            evaluation = config["test_episodes"] * per_episode
            if not val_included:
                evaluation += validations * config["val_episodes"] * per_episode
            seconds = startup + left * per_it + evaluation
            return Estimate(seconds, startup, per_it, left, config["checkpoint_every"], basis)

        timings = self._timings()
        exact = [t for t in timings if _family(t["config"]) == _family(config)]
        if exact:
            per_it = max(t["per_iteration_s"] for t in exact)
            per_episode = max(t["per_episode_s"] for t in exact)
            return make(per_it, per_episode, True, f"records ({len(exact)})")
        near = [t for t in timings if _setting(t["config"]) == _setting(config)]
        if near:
            per_it = max(t["per_iteration_s"] * config["meta_batch"] / t["config"]["meta_batch"] for t in near)
            per_episode = max(t["per_episode_s"] for t in near)
            return make(per_it, per_episode, True, f"records of other settings ({len(near)}), scaled")
        rows = [
            p
            for p in self._perf_rows()
            if p["row"].get("method") == config["method"]
            and (p["setting"]["dataset"], p["setting"]["n_way"], p["setting"]["k_shot"])
            == (config["dataset"], config["n_way"], config["k_shot"])
        ]
        if rows:
            wanted = self._execution(config)
            matching = [p for p in rows if wanted is not None and p["row"].get("execution") == wanted]
            chosen = max(matching or rows, key=lambda p: p["row"]["ms"]["median"])
            scale = config["meta_batch"] / chosen["setting"]["meta_batch"]
            per_it = chosen["row"]["ms"]["median"] / 1000 * scale
            per_episode = ((chosen["row"].get("adapt_ms") or {}).get("median") or 0.0) / 1000
            where = chosen["file"].parent.name
            return make(per_it, per_episode, False, f"perf ({where})")
        per_it = FALLBACK_S_PER_ITERATION[(kind, backbone)]
        return make(per_it, FALLBACK_S_PER_EPISODE[(kind, backbone)], False, "fallback")

    def _execution(self, config: dict[str, Any]) -> dict[str, Any] | None:
        from benchmarks.runs.build import execution_for

        try:
            return execution_for(config, self.device)[0].as_dict()
        except Exception:  # the estimate does without it
            return None


class Budget:
    """A deadline, and which pending run to start next (see the module's docstring)."""

    def __init__(self, minutes: float, estimator: Estimator, now: float | None = None):
        if minutes <= 0:
            raise ValueError(f"--budget must be a positive number of minutes, not {minutes}")
        self.minutes = minutes
        self.start = time.time() if now is None else now
        self.end = self.start + minutes * 60
        # Time kept back at the end for the runs in flight to save their checkpoints and exit.
        self.reserve_s = min(60.0, max(0.5, 0.05 * minutes * 60))
        self.estimator = estimator
        self._estimates: dict[str, Estimate] = {}

    @property
    def trainer_deadline(self) -> float:
        return self.end - self.reserve_s

    def left(self, now: float | None = None) -> float:
        return self.trainer_deadline - (time.time() if now is None else now)

    def estimate(self, spec: RunSpec, results: Path) -> Estimate:
        store = ResultsStore(results, spec.grid)
        estimate = self.estimator.estimate(spec, store.checkpoint_path(spec.run_id))
        self._estimates[spec.run_id] = estimate
        return estimate

    def choose(self, pending: list[RunSpec], results: Path, now: float | None = None) -> int | None:
        """The index in `pending` of the run to start now, or None."""
        left = self.left(now)
        if left <= 0 or not pending:
            return None
        estimates = [self.estimate(spec, results) for spec in pending]
        resumable = [i for i, e in enumerate(estimates) if e.iterations_left < pending[i].config["iterations"]]
        for i in resumable:
            if estimates[i].progress_chunk() <= left:
                return i
        for i, e in enumerate(estimates):
            if e.seconds <= left:
                return i
        for i, e in enumerate(estimates):
            if e.progress_chunk() <= left:
                return i
        return None

    def summary(self, specs: list[RunSpec], results: Path) -> str:
        """One line: the total estimate of `specs` and its bases."""
        estimates = [self.estimate(spec, results) for spec in specs]
        bases: dict[str, int] = {}
        for e in estimates:
            name = e.basis.split(" (")[0]
            bases[name] = bases.get(name, 0) + 1
        total = sum(e.seconds for e in estimates) / 60
        how = ", ".join(f"{n} from {b}" for b, n in bases.items())
        return f"budget {self.minutes:g} min; the {len(specs)} runs to do are estimated at {total:.1f} min ({how})"
