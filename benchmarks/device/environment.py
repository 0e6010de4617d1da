"""What a result needs to be reproduced: device, library versions, git revision."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import torch

from benchmarks.device.heap import heap_policy

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def device_error(name: str) -> str | None:
    """Why `--device name` cannot run here, with the fix, in one line; None when it can."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"--device {name!r} is not a device: use cpu, cuda (or cuda:N) or auto"
    if device.type not in ("cpu", "cuda"):
        return f"--device {name!r}: the suite runs on cpu or cuda; use cpu, cuda or auto"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"--device {name}: PyTorch sees no CUDA device here; use --device cpu (or auto)"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"--device {name}: only {count} CUDA device(s) here; use cuda:0 .. cuda:{count - 1}"
    return None


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu. Asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but PyTorch sees no CUDA device; use --device cpu")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def git_revision() -> tuple[str, bool]:
    """(commit, dirty) of the project checkout, or ("unknown", False) outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return rev, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


SOURCE_PACKAGES = ("amfs", "baselines", "benchmarks")


def source_fingerprint() -> str:
    """sha256 over the project's own code and grid files (path and bytes, sorted by path): names
    the code that produced a result even where the git metadata is missing or not the checkout's."""
    h = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*")):
            if path.suffix in (".py", ".toml") and path.is_file():
                h.update(f"{path.relative_to(PROJECT_ROOT).as_posix()}\n".encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def environment(device: torch.device) -> dict[str, Any]:
    rev, dirty = git_revision()
    import numpy
    import torchvision

    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "threads": torch.get_num_threads(),
        "heap": heap_policy(),
        "git_revision": rev,
        "git_dirty": dirty,
        "source_sha256": source_fingerprint(),
    }
