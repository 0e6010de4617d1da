"""A perf setting small enough for the tests: every method times and checks in well under a second."""

from __future__ import annotations

from benchmarks.perf.settings import PerfSetting


def tiny_setting(steps: int = 1) -> PerfSetting:
    """2 tasks of 3-way 1-shot 12x12 images, 2 queries per class, a 4-filter Conv-4."""
    values = {
        "dataset": "omniglot",
        "n_way": 3,
        "k_shot": 1,
        "meta_batch": 2,
        "query_train": 2,
        "query_test": 2,
        "backbone.filters": 4,
        "inner.steps_train": steps,
    }
    return PerfSetting("tiny", values, 1, 12)
