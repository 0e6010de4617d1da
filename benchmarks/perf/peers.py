"""The learn2learn side of `python -m benchmarks perf`: its MAML and FO-MAML timed on a backbone of
the same architecture, shapes and initial weights as ours, with the standard clone/adapt loop, and
its meta-gradient compared with ours on the same meta-batch.

The backbone is a plain nn.Module equivalent of benchmarks.learner.backbones.Conv4 + linear head: 3x3
convolutions without bias, nn.BatchNorm2d(track_running_stats=False) (batch statistics, as our
'transductive' mode), ReLU, then 2x2 max-pool or stride 2, and the same head. Our initial
parameters are copied into it, so both sides start identical.
"""

from __future__ import annotations

import contextlib
import io
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common.stats import MedianCI, median_ci
from benchmarks.data.tasks import TaskBatch
from benchmarks.perf.numerics import flat_gradient, relative_error
from benchmarks.perf.ours import float64_gradient, gradient_agreement, prepare_run, release_gradients, timing_row
from benchmarks.perf.settings import PerfSetting
from benchmarks.perf.strategies import strategy_scope
from benchmarks.perf.timing import PeakMemory, summarize, tensor_memory_mib, time_calls

# Second- and first-order meta-gradients of both libraries must agree to this relative error (float32).
PEER_RTOL = 1e-4
PEER_METHODS = {"maml": False, "fomaml": True}  # our method name -> learn2learn first_order
PEER_STRATEGY = "clone/adapt loop"
PEER_LABELS = {"maml": "MAML (2nd order)", "fomaml": "FO-MAML"}  # as the reports name them


def import_learn2learn() -> tuple[ModuleType | None, str]:
    """(the learn2learn module, its version) or (None, why it is missing). Its import prints a
    deprecation notice of one of its dependencies (gym), which is kept out of the perf output."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import learn2learn
    except Exception as e:  # any import failure means the same thing here: no peer rows
        return None, f"not installed ({type(e).__name__}: {e})"
    return learn2learn, str(learn2learn.__version__)


class TorchConv4(nn.Module):
    """Conv-4 + linear head as an ordinary nn.Module (what learn2learn wraps)."""

    def __init__(self, in_channels: int, filters: int, pooling: str, feature_dim: int, n_outputs: int):
        super().__init__()
        stride = 2 if pooling == "strided" else 1
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(4):
            layers += [
                nn.Conv2d(channels, filters, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(filters, track_running_stats=False),
                nn.ReLU(),
            ]
            if pooling == "max":
                layers.append(nn.MaxPool2d(2))
            channels = filters
        self.features = nn.Sequential(*layers)
        self.pooling = pooling
        self.head = nn.Linear(feature_dim, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)
        h = h.mean(dim=(2, 3)) if self.pooling == "strided" else h.flatten(1)
        return self.head(h)

    def our_names(self) -> dict[str, str]:
        """Module parameter name -> the name of the same parameter in our parameter dict."""
        names = {"head.weight": "head.weight", "head.bias": "head.bias"}
        convs = [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        norms = [i for i, m in enumerate(self.features) if isinstance(m, nn.BatchNorm2d)]
        for block, (c, n) in enumerate(zip(convs, norms, strict=True)):
            names[f"features.{c}.weight"] = f"backbone.convs.{block}"
            names[f"features.{n}.weight"] = f"backbone.norms.{2 * block}"
            names[f"features.{n}.bias"] = f"backbone.norms.{2 * block + 1}"
        return names

    @classmethod
    def from_params(cls, params: dict[str, Tensor], in_channels: int, filters: int, pooling: str) -> TorchConv4:
        """The module holding a copy of our MAML parameters (backbone.* and head.*)."""
        n_outputs, feature_dim = params["head.weight"].shape
        model = cls(in_channels, filters, pooling, feature_dim, n_outputs).to(params["head.weight"].device)
        with torch.no_grad():
            for name, ours in model.our_names().items():
                model.get_parameter(name).copy_(params[ours])
        return model


def _l2l_meta_step(maml: nn.Module, batch: TaskBatch, steps: int) -> None:
    """learn2learn's standard meta-training loop body: per task clone, adapt on the support loss,
    backward the query loss (divided by T, so .grad holds the mean over tasks)."""
    tasks = batch.n_tasks
    for i in range(tasks):
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(F.cross_entropy(learner(batch.support_x[i]), batch.support_y[i]))
        (F.cross_entropy(learner(batch.query_x[i]), batch.query_y[i]) / tasks).backward()


def _l2l_test_adaptation(maml: nn.Module, task: TaskBatch, steps: int) -> Tensor:
    """Test-time adaptation of one episode: first-order steps (nothing is differentiated at test),
    then query accuracy."""
    learner = maml.clone(first_order=True)
    for _ in range(steps):
        learner.adapt(F.cross_entropy(learner(task.support_x[0]), task.support_y[0]), first_order=True)
    with torch.no_grad():
        return (learner(task.query_x[0]).argmax(-1) == task.query_y[0]).float().mean()


def build_peer(
    l2l: ModuleType,
    setting: PerfSetting,
    method: str,
    batch: TaskBatch,
    device: torch.device,
    seed: int,
    with_gradient: bool = True,
):
    """learn2learn's MAML (first_order per PEER_METHODS) around a TorchConv4 holding our initial
    parameters of `method`, our config, and (with_gradient) our 'loop' meta-gradient there."""
    ours = prepare_run(setting, method, "loop", batch, device, seed, with_gradient)
    config = ours.config
    model = TorchConv4.from_params(
        {k: v.detach() for k, v in ours.params.items()},
        setting.channels,
        config["backbone.filters"],
        config["backbone.pooling"],
    )
    maml = l2l.algorithms.MAML(model, lr=config["inner.step_size"], first_order=PEER_METHODS[method])
    return maml, model, config, ours.initial_gradient


def peer_meta_gradient(maml: nn.Module, model: TorchConv4, batch: TaskBatch, steps: int) -> Tensor:
    """learn2learn's meta-gradient of one meta-batch, flattened in our parameter order."""
    maml.zero_grad(set_to_none=True)
    _l2l_meta_step(maml, batch, steps)
    grads = {ours: model.get_parameter(name).grad for name, ours in model.our_names().items()}
    maml.zero_grad(set_to_none=True)
    return flat_gradient(grads)


def cross_check(
    l2l: ModuleType, setting: PerfSetting, batch: TaskBatch, device: torch.device, seed: int = 0
) -> list[dict[str, Any]]:
    """learn2learn's MAML and FO-MAML meta-gradients against ours, same inputs and weights, with the
    tolerance of perf_ours.gradient_agreement (float64 reference). `vs_other_order` is the error
    against our gradient of the other order: far above the tolerance when the check can tell second
    from first order at all."""
    gradients = {}
    for method in PEER_METHODS:
        maml, model, config, ours = build_peer(l2l, setting, method, batch, device, seed)
        theirs = peer_meta_gradient(maml, model, batch, config["inner.steps_train"])
        gradients[method] = (theirs, ours, float64_gradient(setting, method, batch, device, seed))
    checks = []
    for method, (theirs, ours, exact) in gradients.items():
        other = next(m for m in PEER_METHODS if m != method)
        checks.append(
            {
                "setting": setting.key,
                "method": method,
                **gradient_agreement(theirs, ours, exact, PEER_RTOL),
                "vs_other_order": relative_error(theirs, gradients[other][1]),
            }
        )
    return checks


def peer_step(l2l: ModuleType, setting: PerfSetting, method: str, batch: TaskBatch, device: torch.device, seed: int):
    """learn2learn's meta-iteration (meta-gradient + Adam step) as one call, its MAML wrapper and
    our config of `method`."""
    maml, _, config, _ = build_peer(l2l, setting, method, batch, device, seed, with_gradient=False)
    optimizer = torch.optim.Adam(maml.parameters(), lr=config["meta_lr"])
    steps = config["inner.steps_train"]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        _l2l_meta_step(maml, batch, steps)
        optimizer.step()

    return step, maml, config


def measure_peer(
    l2l: ModuleType,
    setting: PerfSetting,
    method: str,
    batch: TaskBatch,
    eval_task: TaskBatch,
    device: torch.device,
    repeats: int,
    warmup: int,
    seed: int = 0,
) -> dict[str, Any]:
    """One learn2learn row: ms per meta-iteration (meta-gradient + Adam step), adaptation ms per
    test episode, peak memory."""
    with PeakMemory(device) as memory:  # setup included, as for our rows
        step, maml, config = peer_step(l2l, setting, method, batch, device, seed)
        samples = time_calls(step, device, repeats, warmup)
    adapt = time_calls(
        lambda: _l2l_test_adaptation(maml, eval_task, config["inner.steps_test"]), device, repeats, warmup
    )
    tensors = tensor_memory_mib(step, device)
    return timing_row(setting, "learn2learn", method, PEER_STRATEGY, None, samples, adapt, memory.mib, tensors)


def paired_comparisons(
    l2l: ModuleType,
    setting: PerfSetting,
    method: str,
    strategies: list[str],
    batch: TaskBatch,
    device: torch.device,
    repeats: int,
    warmup: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Our `method` under each of `strategies` against learn2learn's, timed in alternation on the same
    meta-batch: every round times each strategy followed by learn2learn (ours 1, theirs, ours 2,
    theirs, ...). The speed-up of a strategy is the median over its pairs of theirs / ours: load from
    other work on a shared machine that comes and goes then slows both sides of a pair alike, where
    separately timed rows can catch different moments, and the rounds sample every strategy over the
    same minutes, so which one is fastest is not decided by when each was timed."""
    theirs, _, _ = peer_step(l2l, setting, method, batch, device, seed)
    runs = []
    try:
        for strategy in strategies:
            with strategy_scope(strategy):
                runs.append(prepare_run(setting, method, strategy, batch, device, seed, with_gradient=False))
        ours_ms: list[list[float]] = [[] for _ in runs]
        theirs_ms: list[list[float]] = [[] for _ in runs]
        for round_index in range(warmup + repeats):
            for i, (strategy, run) in enumerate(zip(strategies, runs, strict=True)):
                with strategy_scope(strategy):
                    ours_call = time_calls(run.step, device, 1, 0)
                peer_call = time_calls(theirs, device, 1, 0)
                if round_index >= warmup:
                    ours_ms[i] += ours_call
                    theirs_ms[i] += peer_call
    finally:
        for run in runs:
            release_gradients(run.params)
    return [
        {
            "setting": setting.key,
            "method": method,
            "strategy": strategy,
            "ours_ms": summarize(ours),
            "peer_ms": summarize(peer),
            "speedup": summarize(_speedups(peer, ours)),
            "ours_samples": ours,
            "peer_samples": peer,
        }
        for strategy, ours, peer in zip(strategies, ours_ms, theirs_ms, strict=True)
    ]


def _speedups(peer_ms: list[float], ours_ms: list[float]) -> list[float]:
    return [t / o for t, o in zip(peer_ms, ours_ms, strict=True)]


def speedup_interval(pair: dict[str, Any]) -> MedianCI | None:
    """95% distribution-free interval of a paired comparison's median speed-up, from its per-pair
    ratios (stats.median_ci); None with too few pairs for one."""
    return median_ci(_speedups(pair["peer_samples"], pair["ours_samples"]))


def missing_peer_row(setting: PerfSetting, method: str, status: str) -> dict[str, Any]:
    """A learn2learn row without numbers, saying why (e.g. not installed)."""
    return timing_row(setting, "learn2learn", method, PEER_STRATEGY, status=status)
