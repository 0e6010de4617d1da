"""The one table of dataset facts: what every other layer needs to know about a dataset (its task
kind, input shape, backbone, published protocol, split assumption, display name and loader).

Adding a dataset is one loader module (plan / describe its files, see data/omniglot.py) plus one
row here. Nothing else in the suite compares dataset names.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType

from benchmarks.data import cub, fc100, mini_imagenet, omniglot
from benchmarks.data.sinusoid import SinusoidTasks

CLASSIFICATION = "classification"
REGRESSION = "regression"
CLASS, REGR = CLASSIFICATION, REGRESSION  # short, for the table
# no published MAML protocol of its own: mini-ImageNet's hyper-parameters
MINI_HPARAMS = "protocol-image-datasets-mini-hparams"
# How Finn et al.'s reference code draws MAML's linear head (a name of baselines.maml.HEAD_INITS), by the
# protocol (their data source) a dataset uses: cbfinn/maml, maml.py, MAML.construct_conv_weights (w5:
# tf.random_normal unless the data source is miniimagenet, then tf.contrib.layers.xavier_initializer) and
# MAML.construct_fc_weights (sinusoid: tf.truncated_normal, stddev 0.01). Biases are zero in all three.
REFERENCE_HEAD_INITS = {"omniglot": "normal", "mini-imagenet": "xavier", "sinusoid": "truncated-normal"}


@dataclass(frozen=True)
class Dataset:
    name: str  # the config value (`dataset = "..."`)
    display: str  # in reports
    task: str  # classification (N-way, accuracy) | regression (MSE)
    backbone: str  # conv4 | mlp
    channels: int  # input channels (1 for the sinusoid's scalar input)
    image_size: int | None  # input height = width; None for non-images
    protocol: str  # whose published MAML hyper-parameters it uses (runs.config.PROTOCOLS)
    assumptions: tuple[str, ...]  # assumption ids of its split, generation or borrowed protocol (runs.assumptions)
    origin: (
        ModuleType | type
    )  # the loader module of its files (data/omniglot.py ...), or the class generating its tasks

    @property
    def loader(self) -> ModuleType | None:
        return self.origin if isinstance(self.origin, ModuleType) else None

    @property
    def generator(self) -> type | None:
        return None if isinstance(self.origin, ModuleType) else self.origin

    @property
    def source(self) -> ModuleType:
        """The module that says where the data comes from (its INFO: sources, layout, splits)."""
        return self.loader or sys.modules[self.origin.__module__]

    @property
    def reference_head_init(self) -> str:
        """How Finn et al.'s code draws MAML's head under this dataset's protocol (config head.init = reference)."""
        return REFERENCE_HEAD_INITS[self.protocol]

    @property
    def higher_is_better(self) -> bool:
        """Accuracy is maximised, MSE minimised."""
        return self.task == CLASSIFICATION

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == CLASSIFICATION else "mse"

    def n_outputs(self, n_way: int) -> int:
        """Outputs of a method's head: one per class, or one regression output."""
        return n_way if self.task == CLASSIFICATION else 1

    def setting_name(self, n_way: int, k_shot: int) -> str:
        """'5w1s' for N-way K-shot classification, '10shot' for K-shot regression."""
        return f"{n_way}w{k_shot}s" if self.task == CLASSIFICATION else f"{k_shot}shot"


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset("omniglot", "Omniglot", CLASS, "conv4", 1, 28, "omniglot", ("omniglot-split",), omniglot),
        Dataset("mini-imagenet", "mini-ImageNet", CLASS, "conv4", 3, 84, "mini-imagenet", (), mini_imagenet),
        Dataset("cub", "CUB", CLASS, "conv4", 3, 84, "mini-imagenet", ("cub-split", MINI_HPARAMS), cub),
        Dataset("fc100", "FC100", CLASS, "conv4", 3, 32, "mini-imagenet", ("fc100-split", MINI_HPARAMS), fc100),
        Dataset("sinusoid", "Sinusoid", REGR, "mlp", 1, None, "sinusoid", ("sinusoid-protocol",), SinusoidTasks),
    ]
}
# datasets read from files (a loader each), in table order
FILE_DATASETS = tuple(name for name, d in DATASETS.items() if d.loader is not None)


class UnknownDataset(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def dataset_info(name: str) -> Dataset:
    """The row of a dataset; UnknownDataset (a KeyError) naming the valid ones."""
    if name not in DATASETS:
        raise UnknownDataset(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]
