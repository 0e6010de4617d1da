"""Episode sampling: determinism, disjoint support/query, class draws; sinusoid tasks; task_source."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchmarks.data import DataError, EpisodeSampler, SinusoidTasks, SplitData, task_source
from benchmarks.data.seeding import stable_seed
from benchmarks.runs.config import resolve


def synthetic_split(
    split: str = "train", counts: tuple[int, ...] = (20, 21, 22, 23, 24, 25, 20, 30, 20, 20)
) -> SplitData:
    """Image i holds the value i % 251 everywhere, shuffled over classes, so gathers can be checked."""
    labels = torch.tensor([c for c, n in enumerate(counts) for _ in range(n)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = (torch.arange(len(labels)) % 251).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    names = [f"class{c}" for c in range(len(counts))]
    return SplitData("synthetic", split, images, labels, names, {"dataset": "synthetic", "split": split})


def test_shapes_labels_and_pixels():
    data = synthetic_split()
    sampler = EpisodeSampler(data, n_way=5, k_shot=2, n_query=3)
    batch = sampler.tasks(seed=0, index=0, n_tasks=4)
    assert batch.support_x.shape == (4, 10, 1, 4, 4) and batch.query_x.shape == (4, 15, 1, 4, 4)
    assert batch.support_y.tolist() == [[0, 0, 1, 1, 2, 2, 3, 3, 4, 4]] * 4
    assert batch.query_y.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]] * 4
    assert batch.support_x.dtype == torch.float32
    idx = sampler.episode_indices(0, 0, 4)
    expected = data.images[idx].float() / 255
    assert torch.equal(batch.support_x, expected[:, :, :2].reshape(4, 10, 1, 4, 4))
    assert torch.equal(batch.query_x, expected[:, :, 2:].reshape(4, 15, 1, 4, 4))


def test_classes_distinct_support_query_disjoint_and_labels_consistent():
    data = synthetic_split()
    sampler = EpisodeSampler(data, n_way=5, k_shot=5, n_query=15)
    idx = sampler.episode_indices(seed=3, index=7, n_tasks=64)
    for task in idx:
        classes = data.labels[task]  # [N, K + q]
        assert (classes == classes[:, :1]).all(), "every image of a label comes from one class"
        assert len(set(classes[:, 0].tolist())) == 5, "classes drawn without replacement"
        assert len(set(task.flatten().tolist())) == task.numel(), "no image twice: support and query disjoint"


def test_same_seed_and_index_give_the_same_batch_and_others_differ():
    sampler = EpisodeSampler(synthetic_split(), n_way=5, k_shot=1, n_query=15)
    a, b = sampler.tasks(1, 5, 8), sampler.tasks(1, 5, 8)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors(), b.tensors(), strict=True))
    reference = sampler.episode_indices(1, 5, 8)
    assert not torch.equal(reference, sampler.episode_indices(1, 6, 8))
    assert not torch.equal(reference, sampler.episode_indices(2, 5, 8))
    other_split = EpisodeSampler(synthetic_split("val"), n_way=5, k_shot=1, n_query=15)
    assert not torch.equal(reference, other_split.episode_indices(1, 5, 8))
    fresh = EpisodeSampler(synthetic_split(), n_way=5, k_shot=1, n_query=15)  # no hidden state between samplers
    assert torch.equal(reference, fresh.episode_indices(1, 5, 8))


def test_episodes_are_pinned():
    """The episodes of stored results must stay reproducible: the seed hash (sha256, not Python's salted
    hash) and the draws are frozen here. A change to either is a change of every test episode."""
    assert stable_seed(0, "omniglot", "test", 0) == 262424600847431377
    indices = EpisodeSampler(synthetic_split(), 5, 1, 2).episode_indices(4, 9, 2).tolist()
    assert indices == [
        [[143, 26, 112], [90, 210, 0], [172, 21, 23], [224, 171, 222], [97, 140, 215]],
        [[159, 152, 28], [90, 210, 0], [39, 132, 26], [207, 53, 138], [57, 134, 117]],
    ]


def test_every_class_and_image_gets_drawn_evenly():
    data = synthetic_split(counts=(20,) * 10)
    sampler = EpisodeSampler(data, n_way=5, k_shot=1, n_query=1)
    idx = sampler.episode_indices(0, 0, 4000)  # 4000 tasks x 5 classes of 10: each class in half the tasks
    class_freq = torch.bincount(data.labels[idx[:, :, 0]].flatten(), minlength=10) / 4000
    assert torch.allclose(class_freq, torch.full((10,), 0.5), atol=0.04)
    support_freq = torch.bincount(idx[:, :, 0].flatten(), minlength=200).float()
    assert support_freq.min() > 0 and support_freq.max() < 3 * support_freq.mean()


def test_uneven_classes_never_draw_past_their_images():
    data = synthetic_split(counts=(3, 40, 3, 40, 3, 40))
    sampler = EpisodeSampler(data, n_way=6, k_shot=1, n_query=2)
    idx = sampler.episode_indices(0, 0, 200)
    for task in idx:
        assert len(set(task.flatten().tolist())) == 18
        assert (data.labels[task] == data.labels[task][:, :1]).all()


def test_too_few_classes_or_images_are_errors():
    data = synthetic_split()
    with pytest.raises(DataError, match="11-way tasks need 11 classes, the split has 10"):
        EpisodeSampler(data, n_way=11, k_shot=1, n_query=1)
    with pytest.raises(DataError, match="fewer than k_shot \\+ n_query = 26"):
        EpisodeSampler(data, n_way=5, k_shot=11, n_query=15)


def test_sinusoid_tasks():
    source = SinusoidTasks(k_shot=10, n_query=5, split="train")
    batch = source.tasks(seed=0, index=3, n_tasks=25)
    assert batch.support_x.shape == (25, 10, 1) and batch.query_y.shape == (25, 5, 1)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    assert x.abs().max() <= 5 and y.abs().max() <= 5
    # every task is one sinusoid A sin(x - phase) with A in [0.1, 5], phase in [0, pi]: fit it by least squares
    basis = torch.cat([torch.sin(x), torch.cos(x)], dim=2).double()  # A sin(x - p) = A cos p sin x - A sin p cos x
    coef = torch.linalg.lstsq(basis, y.double()).solution.squeeze(-1)
    amplitude = coef.norm(dim=1)
    phase = torch.atan2(-coef[:, 1], coef[:, 0])
    assert torch.allclose(basis @ coef.unsqueeze(-1), y.double(), atol=1e-4)
    assert (amplitude > 0.1 - 1e-4).all() and (amplitude < 5 + 1e-4).all()
    assert (phase > -1e-4).all() and (phase < math.pi + 1e-4).all()
    again = source.tasks(seed=0, index=3, n_tasks=25)
    assert torch.equal(again.support_x, batch.support_x)
    other = SinusoidTasks(10, 5, "test").tasks(seed=0, index=3, n_tasks=25)
    assert not torch.equal(other.support_x, batch.support_x)
    assert source.provenance["dataset"] == "sinusoid" and source.provenance["generated"] is True


def test_task_source_follows_the_config(tmp_path: Path):
    from support.datasets import make_mini

    root = make_mini(tmp_path / "data")
    config = resolve({"dataset": "mini-imagenet", "n_way": 2, "k_shot": 1, "query_train": 2, "query_test": 3})
    train = task_source(config, "train", root, tmp_path / "cache", "cpu", progress=False)
    val = task_source(config, "val", root, tmp_path / "cache", "cpu", progress=False)
    assert isinstance(train, EpisodeSampler) and (train.n_way, train.k_shot, train.n_query) == (2, 1, 2)
    assert val.n_query == 3 and val.provenance["split"] == "val" and val.provenance["cache"] == "built"
    assert train.tasks(0, 0, 2).query_x.shape == (2, 4, 3, 84, 84)
    sinusoid = task_source(resolve({"dataset": "sinusoid"}), "test", root, tmp_path / "cache", "cpu")
    assert isinstance(sinusoid, SinusoidTasks) and (sinusoid.k_shot, sinusoid.n_query) == (10, 10)


def test_an_episode_drawing_one_image_twice_is_refused():
    """The sampler checks every task's support and query indices are distinct: here two positions of a
    class's images are made to point at one image, as a repeated file would."""
    data = synthetic_split(counts=(4, 4, 4))
    sampler = EpisodeSampler(data, n_way=3, k_shot=1, n_query=3)
    sampler._order = sampler._order.clone()
    sampler._order[1] = sampler._order[0]  # class 0's second image is its first
    with pytest.raises(DataError, match="draws one image twice \\(support and query not disjoint\\)"):
        sampler.episode_indices(0, 0, 4)
