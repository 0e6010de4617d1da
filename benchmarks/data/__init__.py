"""The data path: official files -> loader (validates the layout) -> cache (uint8 tensors per split)
-> device-resident split -> episode sampler seeded by (seed, split, index)."""

from benchmarks.data.episodes import EpisodeSampler
from benchmarks.data.errors import DataError, DataMissing
from benchmarks.data.registry import DATASETS_INFO, load_split, plan_split, task_source
from benchmarks.data.sinusoid import SinusoidTasks
from benchmarks.data.split_data import SPLITS, SplitData

__all__ = [
    "DATASETS_INFO",
    "SPLITS",
    "DataError",
    "DataMissing",
    "EpisodeSampler",
    "SinusoidTasks",
    "SplitData",
    "load_split",
    "plan_split",
    "task_source",
]
