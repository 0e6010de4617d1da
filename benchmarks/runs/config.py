"""Run configuration: one flat dict of dotted keys, resolved in layers.

    DEFAULTS < protocol of the dataset (docs/protocol.md, Finn et al. 2017) < method defaults
             < grid values < command-line --set overrides

Every key has a default here, so the set of valid keys is exactly DEFAULTS; an unknown key is an
error that lists the valid ones. Types follow the defaults (an int key given 2.5 is an error).
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from benchmarks.data.datasets import CLASSIFICATION, DATASETS, UnknownDataset, dataset_info
from benchmarks.learner.registry import (
    METHODS,
    composition,
    inner_loop_settings,
    inner_loops,
    method_spec,
    outer_loops,
)

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
    "backbone.conv": "auto",  # auto | device.convolutions.CONV_IMPLS
    # composition: "" means the method's own
    "compose.inner": "",
    "compose.outer": "",
    # shared by every inner loop
    "first_order": False,
    "bn_mode": "transductive",
    # the gradient inner loop's linear head (bias zero): reference = as Finn et al.'s code draws it for the
    # dataset's protocol (Omniglot N(0, 1), mini-ImageNet Xavier, sinusoid truncated normal with std 0.01;
    # data.datasets.REFERENCE_HEAD_INITS); xavier = Xavier-uniform on every dataset; zero = all zero
    "head.init": "reference",
    # each inner loop's own settings, <prefix>.<field>, with its dataclass field's default (learner.registry;
    # `python -m benchmarks settings` lists them): inner.* the gradient inner loop (MAML), kernel.* the
    # kernel inner loop (I-AMFS), whose lambda_init, scale_init and max_jitter_retries the ridge head shares
    **inner_loop_settings(),
    # composite regularizer (mu = gamma = 0: off)
    "regularizer.mu": 0.0,
    "regularizer.gamma": 0.0,
    "regularizer.mu_sign": 1.0,
    "regularizer.gamma_sign": 1.0,
    # bookkeeping
    "reduced": False,  # True for grids that shorten the protocol (quick): shown in reports
}

# What each setting means (`python -m benchmarks settings`); tests/runs/test_config.py keeps it complete.
HELP: dict[str, str] = {
    "method": "a named method (`python -m benchmarks methods`); a grid lists its methods, so --set cannot change it",
    "dataset": "the dataset (data/datasets.py); it brings its published protocol",
    "seed": "training seed and test-episode seed; a grid lists its seeds, so --set cannot change it",
    "n_way": "classes per task",
    "k_shot": "support examples per class",
    "query_train": "query examples per class in meta-training tasks",
    "query_test": "query examples per class in validation and test tasks",
    "meta_batch": "tasks per meta-iteration",
    "iterations": "meta-iterations of training",
    "meta_lr": "Adam's learning rate for the meta-parameters",
    "val_every": "validate every this many meta-iterations (and at the end); the best checkpoint is tested",
    "val_episodes": "validation episodes per validation",
    "test_episodes": "fixed test episodes of the final evaluation",
    "checkpoint_every": "save training state every this many meta-iterations (resume after an interruption)",
    "strategy": "how the tasks of a meta-batch execute (time only, never the numbers beyond rounding)",
    "precision": "fp32 (full float32), tf32 (TensorFloat-32 on CUDA), bf16 (backbone in bfloat16)",
    "backbone.filters": "Conv-4 filters per layer",
    "backbone.pooling": "strided convolutions (Omniglot) or 2x2 max-pooling (image datasets)",
    "backbone.conv": "convolution formulation and memory layout (time only)",
    "compose.inner": "inner loop instead of the method's own (empty: the method's)",
    "compose.outer": "outer loop instead of the method's own (empty: the method's)",
    "first_order": "first-order meta-gradient (inner gradients or the solve's support features detached)",
    "bn_mode": "batch-norm statistics: of the current batch (transductive) or of the support set (inductive)",
    "head.init": "gradient inner loop: how the linear head is drawn (reference: as Finn et al.'s code, per dataset)",
    "inner.steps_train": "gradient inner loop: steps in meta-training",
    "inner.steps_test": "gradient inner loop: steps at validation and test",
    "inner.step_size": "gradient inner loop: step size",
    "kernel.sigma_init": "kernel inner loop: sigma from the first meta-batch's median distance, or sqrt(d)",
    "kernel.lambda_init": "kernel inner loop: initial ridge lambda",
    "kernel.scale_init": "kernel inner loop: initial logit scale s",
    "kernel.max_jitter_retries": "kernel inner loop: Cholesky retries with growing jitter before the run fails",
    "regularizer.mu": "strength of the gradient-norm term (0: off)",
    "regularizer.gamma": "strength of the information term (0: off)",
    "regularizer.mu_sign": "+1 adds the gradient-norm term, -1 subtracts it (the paper's printed sign)",
    "regularizer.gamma_sign": "+1 adds the information term, -1 subtracts it",
    "reduced": "the grid shortens the protocol: results are marked and not compared with published levels",
}

# Finn et al. 2017, Appendix A.1 (docs/protocol.md), keyed by dataset and, where it matters, n_way/k_shot.
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
# The values a key may take. strategy and backbone.conv are spelled out here, not imported from the
# device and backbone code; tests/learner/test_registry.py keeps them equal to the sets the code
# implements. compose.inner / compose.outer are the registry's loop names (`choices`).
CHOICES = {
    "strategy": ("auto", "loop", "vmap", "batched", "graph", "graph-batched", "graph-loop"),
    "precision": ("fp32", "tf32", "bf16"),
    "backbone.conv": ("auto", "cudnn", "unfold", "shifted", "cudnn-nhwc", "nhwc-centred"),
    "bn_mode": ("transductive", "inductive"),
    "backbone.pooling": ("strided", "max"),
    "compose.inner": ("", *inner_loops()),
    "compose.outer": ("", *outer_loops()),
    "kernel.sigma_init": ("median", "sqrt_d"),
    "head.init": ("reference", "xavier", "zero"),
}
# The value a setting had in records made before it existed (their config lacks the key): the
# default of the code that made them.
BEFORE_SETTING: dict[str, Any] = {"head.init": "xavier"}


def choices() -> dict[str, tuple[str, ...]]:
    """CHOICES with the loop names of the registry as it stands (a method registered at run time counts)."""
    return {**CHOICES, "compose.inner": ("", *inner_loops()), "compose.outer": ("", *outer_loops())}


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


# Keys a grid itself enumerates: an override would be silently replaced by each run's own value.
GRID_KEYS = {
    "method": "a grid runs the methods it lists; choose among them with --only (e.g. --only '*/maml/*')",
    "seed": "a grid runs the seeds it lists; choose among them with --only (e.g. --only '*/seed0')",
}


def parse_assignments(assignments: list[str], where: str = "--set") -> dict[str, Any]:
    """['key=value', ...] from the command line -> {key: typed value}. Keys a grid enumerates itself
    (method, seed) are refused with the way to choose them."""
    out: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"{where}: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        check_keys({key: None}, where)
        if key in GRID_KEYS:
            raise ConfigError(f"{where}: {key} cannot be overridden: {GRID_KEYS[key]}")
        out[key] = coerce(key, value.strip(), where)
    return out


def resolve(values: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Full config from DEFAULTS, the dataset protocol, the method's defaults and explicit values."""
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


def describe_settings() -> list[dict[str, str]]:
    """One row per setting for `python -m benchmarks settings`: type, default, valid values, meaning."""
    from benchmarks.learner.registry import METHODS  # the registry imports the algorithms (and torch)

    named = {**CHOICES, "method": tuple(METHODS), "dataset": tuple(DATASETS)}
    rows = []
    for key, default in DEFAULTS.items():
        valid = " | ".join(repr(v) for v in named[key]) if key in named else ""
        rows.append(
            {
                "setting": key,
                "type": type(default).__name__,
                "default": repr(default),
                "valid": valid,
                "meaning": HELP[key],
            }
        )
    return rows


def protocol_rows() -> list[dict[str, str]]:
    """The settings each dataset's published protocol sets (they replace the defaults above), for
    `python -m benchmarks settings`: one row per dataset and, where it matters, way and shot."""
    cases = [("omniglot", 5, 1), ("omniglot", 20, 1)] + [(d, 5, k) for d in DATASETS if d != "omniglot" for k in (1, 5)]
    seen: dict[str, dict[str, Any]] = {}
    rows = []
    for dataset, n_way, k_shot in cases:
        values = protocol_defaults(dataset, n_way, k_shot)
        label = dataset_info(dataset).setting_name(values.get("n_way", n_way), values.get("k_shot", k_shot))
        if seen.get(dataset) == values:
            continue
        seen[dataset] = values
        rows.append(
            {"dataset": dataset, "setting": label, "protocol": ", ".join(f"{k}={v}" for k, v in values.items())}
        )
    return rows


# (key, lower bound, whether the bound itself is allowed): numeric settings outside these ranges are refused
RANGES: tuple[tuple[str, float, bool], ...] = (
    ("meta_batch", 1, True),
    ("iterations", 1, True),
    ("test_episodes", 1, True),
    ("val_every", 1, True),
    ("val_episodes", 1, True),
    ("checkpoint_every", 1, True),
    ("k_shot", 1, True),
    ("query_train", 1, True),
    ("query_test", 1, True),
    ("seed", 0, True),
    ("backbone.filters", 1, True),
    ("inner.steps_train", 0, True),
    ("inner.steps_test", 0, True),
    ("kernel.max_jitter_retries", 0, True),
    ("meta_lr", 0.0, False),
    ("inner.step_size", 0.0, False),
    ("kernel.lambda_init", 0.0, False),
    ("kernel.scale_init", 0.0, False),
    ("regularizer.mu", 0.0, True),
    ("regularizer.gamma", 0.0, True),
)
SIGNS = ("regularizer.mu_sign", "regularizer.gamma_sign")


def validate(config: dict[str, Any], where: str) -> None:
    """Value checks that types alone do not catch: finite numbers, ranges, signs, choices."""
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
    for key, bound, inclusive in RANGES:
        value = config[key]
        if value < bound or (value == bound and not inclusive):
            relation = ">=" if inclusive else ">"
            raise ConfigError(f"{where}: {key} must be {relation} {bound:g}, got {value!r}")
    for key in SIGNS:
        if config[key] not in (1.0, -1.0):
            raise ConfigError(f"{where}: {key} must be +1 or -1, got {config[key]!r}")
    if dataset_info(config["dataset"]).task == CLASSIFICATION and config["n_way"] < 2:
        raise ConfigError(f"{where}: n_way must be >= 2 for classification, got {config['n_way']}")
    for key, valid in choices().items():
        if config[key] not in valid:
            raise ConfigError(f"{where}: {key} must be one of {valid}, got {config[key]!r}")
    inner = composition(config)[0]
    task = dataset_info(config["dataset"]).task
    supported = inner_loops()[inner].task_kinds
    if task not in supported:
        what = f"inner loop {inner!r} (compose.inner)" if config["compose.inner"] else f"method {config['method']!r}"
        fits = [m for m, spec in METHODS.items() if task in spec.inner_loop.task_kinds]
        raise ConfigError(
            f"{where}: {what} supports {' and '.join(supported)} only, but dataset {config['dataset']!r} is "
            f"{task}; use a {' or '.join(supported)} dataset, or a method for {task}: {', '.join(fits)}"
        )
    if config["precision"] == "bf16" and config["strategy"] in VMAP_STRATEGIES:
        raise ConfigError(
            f"{where}: precision bf16 needs strategy auto, loop, batched, graph-batched or graph-loop, got "
            f"{config['strategy']!r}: under torch.func.vmap autocast leaves some convolutions in float32 (PyTorch 2.14)"
        )
