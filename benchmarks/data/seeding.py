"""Episode seeds: a stable hash of (seed, dataset, split, index), the same in every process and on every
machine (Python's hash() is salted per process, so it cannot be used)."""

from __future__ import annotations

import hashlib

import torch


def stable_seed(seed: int, dataset: str, split: str, index: int) -> int:
    """A 63-bit seed from the first 8 bytes of sha256 over the four values."""
    digest = hashlib.sha256(f"{int(seed)}|{dataset}|{split}|{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def episode_generator(seed: int, dataset: str, split: str, index: int) -> torch.Generator:
    """A CPU generator for one meta-batch: draws on the CPU make episodes identical on every device."""
    return torch.Generator(device="cpu").manual_seed(stable_seed(seed, dataset, split, index))
