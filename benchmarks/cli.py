"""Command line: `python -m benchmarks <command>` (also installed as `amfs-bench`).

Each command's work lives in its own module; this file only parses arguments and dispatches.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from benchmarks.runs.context import cache_dir, data_root


def progress_bars(disabled: bool) -> bool:
    """Progress bars only on a terminal: in a log file their escape codes are noise."""
    return not disabled and sys.stderr.isatty()


def _print_table(rows: list[dict[str, str]]) -> None:
    from benchmarks.common.tables import text

    print(text(rows))


def cmd_methods(args: argparse.Namespace) -> int:
    from benchmarks.learner.registry import describe_methods, inner_loops, outer_loops

    _print_table(describe_methods())
    pairing = f"compose.inner={'|'.join(inner_loops())} compose.outer={'|'.join(outer_loops())}"
    print(f"\nAny other pairing from config: --set {pairing}")
    print("  first_order=true  regularizer.mu=0.1  regularizer.gamma=0.01  (see `python -m benchmarks settings`)")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from benchmarks.runs.config import describe_settings, protocol_rows

    _print_table(describe_settings())
    print("\nPer dataset, its published protocol replaces these defaults (a method's own defaults, a grid and")
    print("--set come after, in that order):\n")
    _print_table(protocol_rows())
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from benchmarks.data import commands

    if args.data_command == "check":
        return commands.check(data_root(args.data_root), cache_dir(args.cache_dir))
    if args.data_command == "prepare":
        return commands.prepare(data_root(args.data_root), cache_dir(args.cache_dir), args.dataset, args.download)
    from benchmarks.perf import data_speed

    return data_speed.speed(data_root(args.data_root), cache_dir(args.cache_dir), args.device)


def run_context(args: argparse.Namespace):
    """The one RunContext of a `run` command: paths, device, threads, progress."""
    from benchmarks.runs.context import RunContext

    return RunContext(
        data_root=data_root(args.data_root),
        cache_dir=cache_dir(args.cache_dir),
        results=Path(args.results),
        device=args.device,
        threads=args.threads,
        progress=progress_bars(args.no_progress),
    )


def executor_options(args: argparse.Namespace):
    """The ExecutorOptions of a `run` or `campaign` command."""
    from benchmarks.runs.config import ConfigError
    from benchmarks.runs.executors import ExecutorOptions
    from benchmarks.runs.slurm import SlurmOptions, parse_sbatch_options

    if args.executor != "local" and (args.workers or args.budget is not None):
        raise ConfigError(f"--workers and --budget apply to the local executor, not --executor {args.executor}")

    slurm = SlurmOptions(
        partition=args.partition,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        gpus=args.gpus,
        time_min=args.time,
        array_parallelism=args.array_parallelism,
        sbatch=parse_sbatch_options(args.sbatch_option),
    )
    return ExecutorOptions(
        kind=args.executor, workers=args.workers, budget_min=args.budget, slurm=slurm, wait=args.wait
    )


def cmd_run(args: argparse.Namespace) -> int:
    from benchmarks.runs import commands
    from benchmarks.runs.config import ConfigError

    try:
        options = executor_options(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return commands.run_grid(args.grid, args.set, args.only, run_context(args), options)


def cmd_campaign(args: argparse.Namespace) -> int:
    from benchmarks.runs import campaign
    from benchmarks.runs.config import ConfigError

    if args.list:
        return campaign.list_campaign(args.campaign, Path(args.results))
    try:
        options = executor_options(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return campaign.run_campaign(args.campaign, run_context(args), options)


def cmd_list(args: argparse.Namespace) -> int:
    from benchmarks.runs import commands

    return commands.list_runs(args.grid, args.set, args.only, Path(args.results))


def cmd_report(args: argparse.Namespace) -> int:
    from benchmarks.report import commands

    return commands.report(args.grid, Path(args.results), Path(args.reports), args.force)


def cmd_claims(args: argparse.Namespace) -> int:
    from benchmarks.report import commands

    return commands.claims(args.grid, Path(args.results), args.strict)


def cmd_evidence(args: argparse.Namespace) -> int:
    from benchmarks.report import verify

    return verify.evidence([Path(p) for p in args.results], Path(args.reports), args.check)


def cmd_perf(args: argparse.Namespace) -> int:
    from benchmarks.perf import command

    return command.perf_command(args)


def add_execution_options(p: argparse.ArgumentParser) -> None:
    """Where runs read and write, and how they execute: shared by `run` and `campaign`."""
    p.add_argument("--data-root", help="datasets folder (default: $AMFS_DATA_ROOT or ./data)")
    p.add_argument("--cache-dir", help="preprocessed caches (default: $AMFS_CACHE_DIR or ./cache)")
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--executor", default="local", choices=["local", "submitit-local", "slurm"])
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads per run (default: 1 on the CPU; on CUDA the cores shared by the workers)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="local: runs at once on the device, each in its own process (default: 1 on the CPU, 4 on CUDA)",
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="MINUTES",
        help="local: start only runs that fit, checkpoint the runs in flight before the deadline and stop; "
        "the same command resumes (exit 0 unless a run failed)",
    )
    slurm = p.add_argument_group("SLURM (--executor slurm)")
    slurm.add_argument("--partition", help="partition (default: the cluster's default)")
    slurm.add_argument("--cpus-per-task", type=int, help="CPUs per job (default: --threads, else 1)")
    slurm.add_argument("--mem", help="memory per job in SLURM's syntax, e.g. 16G (default: the cluster's)")
    slurm.add_argument("--gpus", type=int, help="GPUs per job (default: 1 with --device cuda, else none)")
    slurm.add_argument("--time", type=int, default=240, help="time limit per job, minutes (default: 240)")
    slurm.add_argument("--array-parallelism", type=int, default=16, help="jobs running at once (default: 16)")
    slurm.add_argument(
        "--sbatch-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, repeatable: account=..., qos=..., constraint=...",
    )
    slurm.add_argument("--wait", action="store_true", help="wait for the jobs (gives up on a job that cannot start)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amfs-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("methods", help="list the methods: inner loop, outer loop, regularizer, defaults")
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("settings", help="list every config setting with its default")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("data", help="check, prepare or time the datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    for name, text in [
        ("check", "table of each dataset: found / partial / missing"),
        ("prepare", "build caches"),
        ("speed", "time episode sampling"),
    ]:
        q = data_sub.add_parser(name, help=text)
        q.add_argument("--data-root", help="folder holding the datasets (default: $AMFS_DATA_ROOT or ./data)")
        q.add_argument("--cache-dir", help="preprocessed caches (default: $AMFS_CACHE_DIR or ./cache)")
        if name == "prepare":
            q.add_argument("--dataset", help="only this dataset (default: every one found)")
            q.add_argument("--download", action="store_true", help="download Omniglot's official zips if absent")
        if name == "speed":
            q.add_argument("--device", default="cpu")
        q.set_defaults(func=cmd_data)

    p = sub.add_parser("run", help="run a grid of benchmark runs")
    p.add_argument("--grid", default="quick", help="named grid under benchmarks/configs, or a TOML path")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override any setting")
    p.add_argument("--only", help="only runs whose key matches this glob pattern")
    add_execution_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("campaign", help="run an ordered list of grid slices, highest value first, under a budget")
    p.add_argument(
        "--campaign",
        default="evidence",
        help="named campaign under benchmarks/configs/campaigns (default: evidence) or a TOML path",
    )
    p.add_argument("--list", action="store_true", help="show the slices, the claims they serve and their status")
    add_execution_options(p)
    p.set_defaults(func=cmd_campaign)

    p = sub.add_parser("list", help="every run key of a grid with its status")
    p.add_argument("--grid", default="quick")
    p.add_argument("--results", default="results")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--only")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("report", help="write reports/<grid>/README.md and figures from stored results")
    p.add_argument("--grid", default="quick", help="grid name (the folder under --results and --reports)")
    p.add_argument("--results", default="results")
    p.add_argument("--reports", default="reports")
    p.add_argument(
        "--force", action="store_true", help="replace a report built from more finished runs than the results hold"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("claims", help="print the claims table with verdicts")
    p.add_argument("--grid", default="quick", help="grid name (the folder under --results)")
    p.add_argument("--results", default="results")
    p.add_argument("--strict", action="store_true", help="exit non-zero when a paper claim is refuted")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("evidence", help="write reports/README.md, the claims ledger over every committed run")
    p.add_argument("--results", action="append", default=[], help="another results folder to read (repeatable)")
    p.add_argument("--reports", default="reports")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming each file when the ledger or a committed grid report differs from "
        "its records",
    )
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser("perf", help="time every method against learn2learn; writes reports/perf/")
    p.add_argument("--device", default="auto")
    p.add_argument("--peers", default="learn2learn", help="comma-separated peers, or 'none'")
    p.add_argument(
        "--reports",
        default="results",
        help="writes <REPORTS>/perf/ (default: results, not committed); --reports reports replaces the committed one",
    )
    p.add_argument("--repeats", type=int, help="timed meta-iterations per row (default: 20 on CUDA, 5 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed meta-iterations first (default: 3 on CUDA, 1 on CPU)")
    p.add_argument("--settings", help="comma-separated setting keys (default: all), e.g. omniglot-5w1s")
    p.add_argument("--methods", help="comma-separated methods (default: all)")
    p.add_argument(
        "--meta-batch",
        help="tasks per meta-iteration: 'protocol' (each setting's own: 32 Omniglot, 4 and 2 mini-ImageNet) or a "
        "number for every setting (default: the protocol's on a GPU, 4, 1 and 1 on the CPU)",
    )
    p.add_argument(
        "--strategies",
        help="comma-separated task-batching strategies (default: all on the device); a strategy may carry "
        "execution modifiers: +tf32 (TensorFloat-32), +unfold (im2col convolutions), +shifted (shifted-view "
        "convolutions), +bench (cuDNN autotuner), +nhwc (the batched strategy's grouped convolutions in NHWC), "
        "+nhwc-all (every layer of the batched strategy's large passes in NHWC), e.g. graph+tf32",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: keep the settings already in <reports>/perf/perf.json (measured by the "
        "same code, environment and options) and measure only the others",
    )
    p.add_argument("--from-json", help="rewrite README.md and the plot beside this perf.json without measuring")
    p.add_argument("--threads", type=int, help="PyTorch CPU threads (default on CPU: 1)")
    p.set_defaults(func=cmd_perf)
    return parser


def _device_refusal(args: argparse.Namespace) -> str | None:
    """Why the command's --device cannot run here, before any work starts; None when it can."""
    if getattr(args, "device", None) is None:
        return None
    from benchmarks.device.environment import device_error

    return device_error(args.device)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `list | head`: a closed pipe ends the process quietly, as it does any command-line tool
    if hasattr(signal, "SIGPIPE") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    refusal = _device_refusal(args)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
