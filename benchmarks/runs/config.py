"""Run configuration: one flat dict of dotted keys, resolved in layers.

    DEFAULTS < protocol of the dataset (PROTOCOL.md, Finn et al. 2017) < method defaults
             < grid values < command-line --set overrides

Every key has a default here, so the set of valid keys is exactly DEFAULTS; an unknown key is an
error that lists the valid ones. Types follow the defaults (an int key given 2.5 is an error).
"""

from __future__ import annotations

import difflib
from typing import Any

from benchmarks.data.datasets import CLASSIFICATION, DATASETS, UnknownDataset, dataset_info

DEFAULTS: dict[str, Any] = {
    # what is run
    "method": "maml",
    "dataset": "omniglot",
    "seed": 0,
    "n_way": 5,
    "k_shot": 1,
    "query_train": 15,
    "query_test": 15,
    # meta-training
    "meta_batch": 32,
    "iterations": 60000,
    "meta_lr": 1e-3,
    "val_every": 500,
    "val_episodes": 100,
    "test_episodes": 1000,
    "checkpoint_every": 100,
    "strategy": "auto",  # auto | loop | vmap | batched | graph (vmap in a CUDA graph) | graph-batched | graph-loop
    # fp32 | tf32 (TensorFloat-32 matrix units for convolutions and matmuls on CUDA) | bf16 (the backbone
    # in bfloat16 under autocast; heads, kernels, solves and losses in float32)
    "precision": "fp32",
    # backbone (kind, channels and image size follow the dataset)
    "backbone.filters": 64,
    "backbone.pooling": "strided",
    "backbone.conv": "auto",  # auto | cudnn | unfold | shifted | cudnn-nhwc | nhwc-centred (backbones.CONV_IMPLS)
    # composition: "" means the method's own
    "compose.inner": "",
    "compose.outer": "",
    # shared by both inner loops
    "first_order": False,
    "bn_mode": "transductive",
    # gradient inner loop (MAML)
    # the linear head's initial weight (bias zero): reference = as Finn et al.'s code draws it for the dataset's
    # protocol (Omniglot N(0, 1), mini-ImageNet Xavier, sinusoid truncated normal with std 0.01;
    # data.datasets.REFERENCE_HEAD_INITS); xavier = Xavier-uniform on every dataset; zero = all zero
    "head.init": "reference",
    "inner.steps_train": 1,
    "inner.steps_test": 3,
    "inner.step_size": 0.4,
    # kernel inner loop (I-AMFS)
    "kernel.sigma_init": "median",
    "kernel.lambda_init": 1.0,
    "kernel.scale_init": 10.0,
    "kernel.max_jitter_retries": 6,
    # composite regularizer (mu = gamma = 0: off)
    "regularizer.mu": 0.0,
    "regularizer.gamma": 0.0,
    "regularizer.mu_sign": 1.0,
    "regularizer.gamma_sign": 1.0,
    # bookkeeping
    "reduced": False,  # True for grids that shorten the protocol (quick): shown in reports
}

# Finn et al. 2017, Appendix A.1 (PROTOCOL.md), keyed by dataset and, where it matters, n_way/k_shot.
_IMAGE_PROTOCOL = {
    "inner.steps_train": 5,
    "inner.steps_test": 10,
    "inner.step_size": 0.01,
    "backbone.filters": 32,
    "backbone.pooling": "max",
    "meta_batch": 4,
}


# strategies that batch tasks with torch.func.vmap, where autocast (precision bf16) is not reliably applied
VMAP_STRATEGIES = ("vmap", "graph")
# The values a key may take. Spelled out here, not imported, so that reading a config needs no torch;
# tests/learner/test_registry.py keeps strategy and backbone.conv equal to the sets the code implements.
CHOICES = {
    "strategy": ("auto", "loop", "vmap", "batched", "graph", "graph-batched", "graph-loop"),
    "precision": ("fp32", "tf32", "bf16"),
    "backbone.conv": ("auto", "cudnn", "unfold", "shifted", "cudnn-nhwc", "nhwc-centred"),
    "bn_mode": ("transductive", "inductive"),
    "backbone.pooling": ("strided", "max"),
    "compose.inner": ("", "gradient", "kernel"),
    "compose.outer": ("", "mean", "cosine"),
    "kernel.sigma_init": ("median", "sqrt_d"),
    "head.init": ("reference", "xavier", "zero"),
}
# The value a setting had in records made before it existed (their config lacks the key): the
# default of the code that made them.
BEFORE_SETTING: dict[str, Any] = {"head.init": "xavier"}


def _omniglot_protocol(n_way: int, k_shot: int) -> dict[str, Any]:
    if n_way >= 20:
        return {"inner.steps_train": 5, "inner.steps_test": 5, "inner.step_size": 0.1, "meta_batch": 16}
    return {"inner.steps_train": 1, "inner.steps_test": 3, "inner.step_size": 0.4, "meta_batch": 32}


def _mini_imagenet_protocol(n_way: int, k_shot: int) -> dict[str, Any]:
    return {**_IMAGE_PROTOCOL, "meta_batch": 4 if k_shot == 1 else 2}


def _sinusoid_protocol(n_way: int, k_shot: int) -> dict[str, Any]:
    # Finn et al. 2017 section 5.1: K-shot regression, one step of size 0.01 (10 at test), 25 tasks.
    return {
        "n_way": 0,
        "k_shot": 10,
        "query_train": 10,
        "query_test": 10,
        "inner.steps_train": 1,
        "inner.steps_test": 10,
        "inner.step_size": 0.01,
        "meta_batch": 25,
        "iterations": 70000,
    }


# Finn et al. 2017's published hyper-parameters, by the dataset they were published for; a dataset row
# (data.datasets) names the one it uses.
PROTOCOLS = {
    "omniglot": _omniglot_protocol,
    "mini-imagenet": _mini_imagenet_protocol,
    "sinusoid": _sinusoid_protocol,
}


def protocol_defaults(dataset: str, n_way: int, k_shot: int) -> dict[str, Any]:
    """The published MAML hyper-parameters for a dataset setting."""
    try:
        return PROTOCOLS[dataset_info(dataset).protocol](n_way, k_shot)
    except UnknownDataset as e:
        raise ConfigError(str(e)) from e


class ConfigError(ValueError):
    """A bad key or value in a run configuration."""


def check_keys(values: dict[str, Any], where: str) -> None:
    """Reject unknown keys, naming the closest valid ones and listing all."""
    for key in values:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(key, DEFAULTS, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}. Valid settings: {', '.join(sorted(DEFAULTS))}")


def coerce(key: str, value: Any, where: str) -> Any:
    """A value converted to the type of the key's default, or a ConfigError."""
    default = DEFAULTS[key]
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str) and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {key} must be a {type(default).__name__}, got {value!r}")


def parse_assignments(assignments: list[str], where: str = "--set") -> dict[str, Any]:
    """['key=value', ...] from the command line -> {key: typed value}."""
    out: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"{where}: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        check_keys({key: None}, where)
        out[key] = coerce(key, value.strip(), where)
    return out


def resolve(values: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Full config from DEFAULTS, the dataset protocol, the method's defaults and explicit values."""
    from benchmarks.learner.registry import method_spec  # the registry imports the algorithms (and torch)

    check_keys(values, where)
    explicit = {k: coerce(k, v, where) for k, v in values.items()}
    dataset = explicit.get("dataset", DEFAULTS["dataset"])
    if dataset not in DATASETS:
        raise ConfigError(f"{where}: unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    n_way = explicit.get("n_way", DEFAULTS["n_way"])
    k_shot = explicit.get("k_shot", DEFAULTS["k_shot"])
    method = explicit.get("method", DEFAULTS["method"])
    try:
        method_defaults = method_spec(method).defaults
    except KeyError as e:
        raise ConfigError(f"{where}: {e.args[0]}") from e
    config = {**DEFAULTS, **protocol_defaults(dataset, n_way, k_shot), **method_defaults, **explicit}
    validate(config, where)
    return config


def validate(config: dict[str, Any], where: str) -> None:
    """Value checks that types alone do not catch."""
    positive = ["meta_batch", "iterations", "test_episodes", "val_every", "val_episodes", "checkpoint_every", "k_shot"]
    for key in positive:
        if config[key] < 1:
            raise ConfigError(f"{where}: {key} must be >= 1, got {config[key]}")
    if dataset_info(config["dataset"]).task == CLASSIFICATION and config["n_way"] < 2:
        raise ConfigError(f"{where}: n_way must be >= 2 for classification, got {config['n_way']}")
    if config["meta_lr"] <= 0:
        raise ConfigError(f"{where}: meta_lr must be > 0")
    for key, valid in CHOICES.items():
        if config[key] not in valid:
            raise ConfigError(f"{where}: {key} must be one of {valid}, got {config[key]!r}")
    if config["precision"] == "bf16" and config["strategy"] in VMAP_STRATEGIES:
        raise ConfigError(
            f"{where}: precision bf16 needs strategy auto, loop, batched, graph-batched or graph-loop, got "
            f"{config['strategy']!r}: under torch.func.vmap autocast leaves some convolutions in float32 (PyTorch 2.14)"
        )
