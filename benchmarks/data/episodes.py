"""N-way K-shot episodes from a device-resident split.

The whole split's uint8 images are moved to the device once; an episode is then one index tensor
drawn on the CPU (so it is the same on every device) and one gather on the device. Classes are drawn
without replacement within a task, and each class's K support and q query images are distinct, so
support and query never share an image. Labels 0..N-1 follow the order in which the classes were
drawn; support and query are ordered class-major ([class 0 x K, class 1 x K, ...]).
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.data.errors import DataError
from benchmarks.data.seeding import episode_generator
from benchmarks.data.split_data import SplitData
from benchmarks.data.tasks import TaskBatch


class EpisodeSampler:
    """Meta-batches of N-way K-shot tasks with q queries per class over one split."""

    def __init__(self, data: SplitData, n_way: int, k_shot: int, n_query: int, device: torch.device | str = "cpu"):
        if n_way < 2 or k_shot < 1 or n_query < 1:
            raise ValueError(f"need n_way >= 2, k_shot >= 1, n_query >= 1; got {n_way}, {k_shot}, {n_query}")
        if n_way > data.n_classes:
            raise DataError(
                f"{data.dataset} {data.split}: {n_way}-way tasks need {n_way} classes, the split has {data.n_classes}"
            )
        counts = data.class_counts()
        per_task = k_shot + n_query
        small = torch.nonzero(counts < per_task).flatten().tolist()
        if small:
            examples = ", ".join(f"{data.class_names[i]!r} ({int(counts[i])})" for i in small[:5])
            where = data.provenance.get("split_file") or data.provenance.get("source") or "the split"
            raise DataError(
                f"{data.dataset} {data.split} ({where}): {len(small)} classes have fewer than k_shot + n_query = "
                f"{per_task} images, e.g. {examples}; lower k_shot or the number of queries, or complete the split"
            )
        self.data = data
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.device = torch.device(device)
        # order[offsets[c] + j] is the j-th image of class c, in the split's own order
        self._order = torch.argsort(data.labels, stable=True)
        self._counts = counts
        self._offsets = torch.cumsum(counts, 0) - counts
        self._max_count = int(counts.max())
        self._uniform = bool((counts == self._max_count).all())
        self.images = data.images.to(self.device)
        # uint8 -> float through a table of the 256 values v / 255 computed on the CPU: CUDA divides by a scalar
        # via its reciprocal, which differs from v / 255 in the last bit for some v, so dividing on the device
        # would make episodes depend on the device
        self._to_float = (torch.arange(256, dtype=torch.float32) / 255.0).to(self.device)
        self._support_y = torch.arange(n_way, device=self.device).repeat_interleave(k_shot)
        self._query_y = torch.arange(n_way, device=self.device).repeat_interleave(n_query)

    def episode_indices(self, seed: int, index: int, n_tasks: int) -> torch.Tensor:
        """Indices into the split's images, int64 [T, N, K + q] on the CPU: [..., :K] support, [..., K:] query."""
        g = episode_generator(seed, self.data.dataset, self.data.split, index)
        n_classes = self.data.n_classes
        # the N largest of i.i.d. uniform keys are a uniformly random N-subset in random order (topk is O(n),
        # a full permutation per task is not needed)
        classes = torch.rand(n_tasks, n_classes, generator=g).topk(self.n_way, dim=1).indices
        keys = torch.rand(n_tasks, self.n_way, self._max_count, generator=g)
        if not self._uniform:
            absent = torch.arange(self._max_count) >= self._counts[classes].unsqueeze(-1)
            keys.masked_fill_(absent, -1.0)
        within = keys.topk(self.k_shot + self.n_query, dim=2).indices
        indices = self._order[self._offsets[classes].unsqueeze(-1) + within]
        self._check_disjoint(indices, seed, index)
        return indices

    def _check_disjoint(self, indices: torch.Tensor, seed: int, index: int) -> None:
        """Every image of a task (support and query, all classes) is a different image of the split: a
        query that is also a support image would be answered by memory, not by adaptation. Holds by
        construction; checked because a wrong number here would otherwise go unnoticed (one sort of
        T x N(K + q) indices on the CPU)."""
        flat = indices.flatten(1).sort(dim=1).values
        repeated = (flat[:, 1:] == flat[:, :-1]).any(dim=1)
        if bool(repeated.any()):
            task = int(torch.nonzero(repeated)[0])
            raise DataError(
                f"{self.data.dataset} {self.data.split}: task {task} of meta-batch {index} (seed {seed}) draws one "
                "image twice (support and query not disjoint); the episode sampler is broken, its numbers are not valid"
            )

    def tasks(self, seed: int, index: int, n_tasks: int) -> TaskBatch:
        """Meta-batch `index` of `n_tasks` tasks, images float in [0, 1] on the sampler's device.

        The draws depend on n_tasks too (all tasks of a batch are drawn at once), so fixed test episodes
        need a fixed n_tasks per index."""
        idx = self.episode_indices(seed, index, n_tasks).to(self.device, non_blocking=True)
        x = self._to_float[self.images[idx].long()]  # [T, N, K + q, C, H, W], values v / 255
        t, n, k = n_tasks, self.n_way, self.k_shot
        image_shape = x.shape[3:]
        support_x = x[:, :, :k].reshape(t, n * k, *image_shape)
        query_x = x[:, :, k:].reshape(t, n * self.n_query, *image_shape)
        return TaskBatch(support_x, self._support_y.repeat(t, 1), query_x, self._query_y.repeat(t, 1))

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.data.provenance)
