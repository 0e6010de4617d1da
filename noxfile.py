"""Sessions: tests, lint, benchmark, report, claims, evidence, perf, env.

All sessions share one environment (.nox/amfs-bench): PyTorch is several GB, so it is installed
once and reused; it is refreshed only when pyproject.toml or the torch pin changes.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
ROOT = Path(__file__).parent
ENV = ROOT / ".nox" / "amfs-bench"
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _python(session: nox.Session, extras: str = "test,dev,cluster") -> str:
    """The shared environment's interpreter, created and installed on first use."""
    python = ENV / "bin" / "python"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(ENV), external=True)
    wanted = hashlib.sha256(((ROOT / "pyproject.toml").read_text() + " ".join(TORCH) + extras).encode()).hexdigest()
    stamp = ENV / ".installed"
    if not stamp.exists() or stamp.read_text() != wanted:
        session.run(str(python), "-m", "pip", "install", "-q", "--upgrade", "pip", external=True)
        session.run(str(python), "-m", "pip", "install", "-q", *TORCH, external=True)
        session.run(str(python), "-m", "pip", "install", "-q", "-e", f".[{extras}]", external=True)
        stamp.write_text(wanted)
    return str(python)


@nox.session(venv_backend="none")
def env(session: nox.Session) -> None:
    """Create (or refresh) the shared environment and say how to use it from a shell."""
    python = _python(session)
    session.log(f"environment ready: activate it with `. {Path(python).parent.relative_to(ROOT)}/activate`")


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Unit, integration and end-to-end tests (CPU). Pass pytest arguments after --."""
    session.run(_python(session), "-m", "pytest", "-q", *session.posargs, external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    python = _python(session)
    session.run(python, "-m", "ruff", "check", ".", external=True)
    session.run(python, "-m", "ruff", "format", "--check", ".", external=True)


@nox.session(venv_backend="none")
def benchmark(session: nox.Session) -> None:
    """Run a grid (default: quick). Arguments after -- go to `python -m benchmarks run`."""
    args = session.posargs or []
    if not any(a == "--grid" or a.startswith("--grid=") for a in args):
        args = ["--grid", "quick", *args]
    session.run(_python(session), "-m", "benchmarks", "run", *args, external=True)


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Regenerate reports/<grid>/ from stored results (default grid: quick)."""
    args = session.posargs or ["--grid", "quick"]
    session.run(_python(session), "-m", "benchmarks", "report", *args, external=True)


@nox.session(venv_backend="none")
def evidence(session: nox.Session) -> None:
    """Write reports/README.md, the claims ledger, from every committed store; `-- --check` checks it
    and every committed grid report against their records instead."""
    session.run(_python(session), "-m", "benchmarks", "evidence", *session.posargs, external=True)


@nox.session(venv_backend="none")
def claims(session: nox.Session) -> None:
    """Print the claims table with verdicts (default grid: quick)."""
    args = session.posargs or ["--grid", "quick"]
    session.run(_python(session), "-m", "benchmarks", "claims", *args, external=True)


@nox.session(venv_backend="none")
def perf(session: nox.Session) -> None:
    """Install learn2learn if absent, then time every method against it on this machine; writes
    results/perf/ (`-- --reports reports` replaces the committed reports/perf/)."""
    python = _python(session)
    session.run(python, "-m", "benchmarks.perf.install_peer", external=True)
    session.run(python, "-m", "benchmarks", "perf", *session.posargs, external=True)
