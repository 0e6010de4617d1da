"""One split of one dataset, in memory: what every loader produces and the episode sampler consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

SPLITS = ("train", "val", "test")


@dataclass
class SplitData:
    """Images as uint8 [N, C, H, W] at the protocol size, labels int64 [N] in 0..n_classes-1.

    `provenance` is JSON-serialisable and travels into every result record, so a reader can tell
    which files (and how many of them) a number was computed from.
    """

    dataset: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 [{self.images.shape[0]}], got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> torch.Tensor:
        """Images per class, [n_classes]."""
        return torch.bincount(self.labels, minlength=self.n_classes)
