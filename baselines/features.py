"""Support and query features under either batch-norm mode, for the closed-form controls (ridge,
prototypes): transductive passes each set alone; inductive passes both together with the support
rows' statistics, so a query's features do not depend on the other queries."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Params = dict[str, Tensor]
FeatureFn = Callable[..., Tensor]


def support_and_query_features(
    features: FeatureFn, params: Params, support_x: Tensor, query_x: Tensor, rows: int, bn_mode: str
) -> tuple[Tensor, Tensor]:
    """(support features, query features); `rows`: the dimension of the examples (1 with a task dimension)."""
    n = support_x.shape[rows]
    if bn_mode == "transductive":
        return features(params, support_x, None), features(params, query_x, None)
    both = features(params, torch.cat([support_x, query_x], dim=rows), n)
    return both.narrow(rows, 0, n), both.narrow(rows, n, query_x.shape[rows])
