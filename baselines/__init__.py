"""Baselines: the MAML gradient inner loop (second or first order), the mean outer loop, and two
controls: a linear ridge head (R2-D2 / MetaOptNet-RR) and prototypes (ProtoNet)."""

from baselines.maml import GradientInner
from baselines.mean_outer import MeanOuter
from baselines.protonet import PrototypeInner
from baselines.ridge import RidgeInner

__all__ = ["GradientInner", "MeanOuter", "PrototypeInner", "RidgeInner"]
