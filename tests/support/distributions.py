"""Distances between a sample and a distribution, for the tests of initial draws."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Cdf = Callable[[Tensor], Tensor]


def ks_distance(sample: Tensor, cdf: Cdf) -> float:
    """Kolmogorov-Smirnov distance sup |F_n(x) - F(x)| between a sample's empirical CDF and `cdf`."""
    x = sample.detach().double().flatten().sort().values
    n = x.numel()
    f = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - f).max().item(), (f - (i - 1) / n).max().item())


def ks_bound(n: int) -> float:
    """The KS distance that n draws of the distribution itself exceed with probability about 0.001."""
    return 1.95 / math.sqrt(n)


def normal_cdf(std: float = 1.0) -> Cdf:
    return lambda x: torch.special.ndtr(x / std)


def truncated_normal_cdf(std: float, sigmas: float = 2.0) -> Cdf:
    """N(0, std^2) restricted to [-sigmas * std, sigmas * std]."""
    low, high = torch.special.ndtr(torch.tensor(-sigmas)), torch.special.ndtr(torch.tensor(sigmas))
    return lambda x: ((torch.special.ndtr(x / std) - low) / (high - low)).clamp(0.0, 1.0)


def truncated_normal_std(std: float, sigmas: float = 2.0) -> float:
    """The standard deviation of N(0, std^2) restricted to [-sigmas * std, sigmas * std]."""
    density = math.exp(-(sigmas**2) / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(sigmas / math.sqrt(2))
    return std * math.sqrt(1 - 2 * sigmas * density / mass)


def uniform_cdf(bound: float) -> Cdf:
    """U(-bound, bound)."""
    return lambda x: ((x + bound) / (2 * bound)).clamp(0.0, 1.0)
