"""Does torch.compile make a meta-iteration faster? The batched strategy's backbone passes, compiled
with TorchInductor, against the same strategy run eagerly, at the shapes of `python -m benchmarks perf`.

    python -m benchmarks.perf.compile_bench [--device cuda] [--settings omniglot-5w1s]
        [--methods maml,fomaml,i-amfs] [--strategy batched+nhwc-all] [--rounds 9] [--out FILE]

A pass that is differentiated twice (second-order MAML's support passes in training: the backbone's
`differentiated_twice` argument) stays eager: AOTAutograd cannot differentiate its own backward
(PyTorch 2.14: "torch.compile with aot_autograd does not currently support double backward"). Every
other backbone pass (the query pass, every pass of FO-MAML and of the kernel inner loop, test-time
adaptation) runs compiled, one specialisation per input shape.

Per method, one line each for the training step and the test-time adaptation of one episode: the
median milliseconds of the eager and the compiled call, timed in alternating rounds (the machine's
load then touches both alike), the median per-round ratio eager/compiled, the first compiled call's
time (compilation included), and the relative difference of the compiled meta-gradient from the
eager one at the same initial parameters (float32 rounding moves it; the perf floor says how far).
The same difference in float64, from the loop's initial parameters (as perf's float64 check), says
whether the compiled passes compute the same function: within perf_numerics.SAME_FUNCTION_RTOL they do.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import IO

import torch

from benchmarks.data.tasks import TaskBatch
from benchmarks.device.environment import device_name, git_revision, resolve_device
from benchmarks.device.heap import retain_freed_memory
from benchmarks.perf.numerics import SAME_FUNCTION_RTOL, flat_gradient, relative_error
from benchmarks.perf.ours import (
    PreparedRun,
    float64_gradient,
    float64_meta_gradient,
    initial_parameters,
    prepare_run,
    release_gradients,
)
from benchmarks.perf.settings import default_settings, select_settings, synthetic_batch
from benchmarks.perf.timing import time_calls


def compile_backbone(run: PreparedRun) -> None:
    """Route the run's batched backbone passes through torch.compile, except those differentiated twice."""
    module = run.learner.backbone
    compiled = torch.compile(module.forward_tasks, dynamic=False)

    def forward_tasks(params, x, stats_rows=None, differentiated_twice=False):
        if differentiated_twice:
            return type(module).forward_tasks(module, params, x, stats_rows, True)
        return compiled(params, x, stats_rows)

    module.forward_tasks = forward_tasks


def timed(call: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call, as perf clocks it."""
    return time_calls(call, device, repeats=1, warmup=0)[0]


def compare(name: str, eager: Callable, compiled: Callable, device: torch.device, rounds: int) -> str:
    """Eager and compiled in alternating rounds after one warm-up call each (the compiled one's
    includes the compilation of any shape not compiled before)."""
    timed(eager, device)
    first = timed(compiled, device)
    samples: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(rounds):
        samples["eager"].append(timed(eager, device))
        samples["compiled"].append(timed(compiled, device))
    ratio = statistics.median(e / c for e, c in zip(samples["eager"], samples["compiled"], strict=True))
    e, c = statistics.median(samples["eager"]), statistics.median(samples["compiled"])
    times = f"eager {e:.1f} ms, compiled {c:.1f} ms, eager/compiled {ratio:.2f}x"
    return f"{name} {times}, first compiled call {first:.0f} ms"


def float64_difference(setting, method: str, strategy: str, batch: TaskBatch, device: torch.device) -> str:
    """The compiled meta-gradient against the eager one of the same strategy, both in float64 from
    the loop's initial parameters: 'same function' within SAME_FUNCTION_RTOL."""
    start = initial_parameters(setting, method, batch, device, 0)
    eager = float64_gradient(setting, method, batch, device, 0, strategy, params=start)
    run = prepare_run(setting, method, strategy, batch, device, 0, with_gradient=False)
    release_gradients(run.params)
    compile_backbone(run)
    compiled = float64_meta_gradient(run, start, batch)
    difference = relative_error(compiled, eager)
    verdict = "same function" if difference <= SAME_FUNCTION_RTOL else "DIFFERENT FUNCTION"
    return f"float64 meta-gradient rel. difference {difference:.1e} ({verdict} within {SAME_FUNCTION_RTOL:.0e})"


def measure(setting, method: str, strategy: str, device: torch.device, rounds: int) -> list[str]:
    torch._dynamo.reset()  # every module compiles afresh: no recompile limit carried over
    config = setting.config(method)
    batch = synthetic_batch(setting, config["meta_batch"], config["query_train"], 0, device)
    episode = synthetic_batch(setting, 1, config["query_test"], 1, device)
    eager = prepare_run(setting, method, strategy, batch, device, 0)
    compiled = prepare_run(setting, method, strategy, batch, device, 0, with_gradient=False)
    compile_backbone(compiled)
    try:
        start = time.perf_counter()
        gradient = flat_gradient(compiled.learner.meta_gradients(compiled.params, batch).gradients)
        compile_s = time.perf_counter() - start
        assert eager.initial_gradient is not None
        difference = relative_error(gradient, eager.initial_gradient)
        label = f"{setting.key} {method} [{strategy}]"
        lines = [
            compare(f"{label} step:", eager.step, compiled.step, device, rounds)
            + f", first meta-gradient {compile_s:.1f} s (compilation), meta-gradient rel. difference {difference:.1e}"
            + f"; {float64_difference(setting, method, strategy, batch, device)}",
            compare(
                f"{label} adaptation:",
                lambda: eager.learner.evaluate(eager.params, episode),
                lambda: compiled.learner.evaluate(compiled.params, episode),
                device,
                rounds,
            ),
        ]
    finally:
        release_gradients(eager.params)
        release_gradients(compiled.params)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--settings", default="omniglot-5w1s", help="comma-separated perf settings")
    parser.add_argument("--methods", default="maml,fomaml,i-amfs")
    parser.add_argument("--strategy", help="default: batched+nhwc on CUDA, batched+nhwc-all on the CPU")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu":  # as perf measures the CPU: one thread, freed memory kept for reuse
        torch.set_num_threads(1)
        retain_freed_memory()
    strategy = args.strategy or ("batched+nhwc" if device.type == "cuda" else "batched+nhwc-all")
    # one specialisation per pass shape and grad mode: support, query and test-time passes
    torch._dynamo.config.recompile_limit = 64
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    revision, dirty = git_revision()
    header = (
        f"device {device} ({device_name(device)}), torch {torch.__version__}, git {revision}"
        + (" with uncommitted changes" if dirty else "")
        + f", {args.rounds} rounds"
    )
    out = open(args.out, "w") if args.out else None  # noqa: SIM115 (written line by line, below)
    try:
        # every line is kept as soon as it is measured: a run stopped by a time limit keeps the finished ones
        emit(header, out)
        for setting in select_settings(default_settings(device), args.settings):
            for method in args.methods.split(","):
                try:
                    lines = measure(setting, method, strategy, device, args.rounds)
                except Exception as e:  # one method that cannot be compiled must not lose the others
                    lines = [f"{setting.key} {method} [{strategy}]: failed: {type(e).__name__}: {str(e)[:300]}"]
                for line in lines:
                    emit(line, out)
    finally:
        if out is not None:
            out.close()


def emit(line: str, out: IO[str] | None) -> None:
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


if __name__ == "__main__":
    main()
