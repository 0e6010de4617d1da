"""Baselines: the MAML gradient inner loop (second or first order) and the mean outer loop."""

from baselines.maml import GradientInner
from baselines.mean_outer import MeanOuter

__all__ = ["GradientInner", "MeanOuter"]
