"""The method registry: each named method is an inner loop x an outer loop (+ regularizer), and any
other pairing is reachable from config (compose.inner, compose.outer, regularizer.mu/gamma,
first_order). spec/METHODS.md defines what each piece computes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amfs import CompositeRegularizer, CosineWeightedOuter, KernelInner
from baselines import GradientInner, MeanOuter
from benchmarks.data.datasets import dataset_info


@dataclass(frozen=True)
class MethodSpec:
    name: str
    inner: str  # gradient | kernel
    outer: str  # mean | cosine
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)


# AMFS's regularizer strengths are not given by the summary: an assumption, listed in reports.
AMFS_REGULARIZER = {"regularizer.mu": 0.1, "regularizer.gamma": 0.01}

METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec("maml", "gradient", "mean", "MAML, second order (Finn et al. 2017)", {"first_order": False}),
        MethodSpec("fomaml", "gradient", "mean", "first-order MAML: inner gradients detached", {"first_order": True}),
        MethodSpec("i-amfs", "kernel", "mean", "closed-form RBF kernel ridge inner loop"),
        MethodSpec("o-amfs", "gradient", "cosine", "MAML inner loop, cosine-weighted task gradients"),
        MethodSpec("amfs", "kernel", "cosine", "kernel inner loop + cosine weighting + regularizer", AMFS_REGULARIZER),
    ]
}


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def composition(config: dict[str, Any]) -> tuple[str, str]:
    """(inner, outer) loop names of a run: compose.* when set, else the named method's own."""
    spec = method_spec(config["method"])
    return config.get("compose.inner") or spec.inner, config.get("compose.outer") or spec.outer


def n_outputs(config: dict[str, Any]) -> int:
    return dataset_info(config["dataset"]).n_outputs(config["n_way"])


def task_kind(config: dict[str, Any]) -> str:
    return dataset_info(config["dataset"]).task


def head_init(config: dict[str, Any]) -> str:
    """How the gradient inner loop's head is drawn (baselines.maml.HEAD_INITS): config head.init, where
    'reference' is the draw of Finn et al.'s code under the dataset's protocol."""
    choice = config["head.init"]
    return dataset_info(config["dataset"]).reference_head_init if choice == "reference" else choice


def build_inner(config: dict[str, Any]) -> GradientInner | KernelInner:
    kind = composition(config)[0]
    if kind == "gradient":
        return GradientInner(
            n_outputs=n_outputs(config),
            task=task_kind(config),
            steps_train=config["inner.steps_train"],
            steps_test=config["inner.steps_test"],
            step_size=config["inner.step_size"],
            first_order=config["first_order"],
            bn_mode=config["bn_mode"],
            head_init=head_init(config),
        )
    return KernelInner(
        n_outputs=n_outputs(config),
        task=task_kind(config),
        first_order=config["first_order"],
        bn_mode=config["bn_mode"],
        sigma_init=config["kernel.sigma_init"],
        lambda_init=config["kernel.lambda_init"],
        scale_init=config["kernel.scale_init"],
        max_jitter_retries=config["kernel.max_jitter_retries"],
    )


def build_outer(config: dict[str, Any]) -> MeanOuter | CosineWeightedOuter:
    kind = composition(config)[1]
    return MeanOuter() if kind == "mean" else CosineWeightedOuter()


def build_regularizer(config: dict[str, Any]) -> CompositeRegularizer | None:
    if config["regularizer.mu"] == 0 and config["regularizer.gamma"] == 0:
        return None
    return CompositeRegularizer(
        mu=config["regularizer.mu"],
        gamma=config["regularizer.gamma"],
        mu_sign=config["regularizer.mu_sign"],
        gamma_sign=config["regularizer.gamma_sign"],
    )


def describe_methods() -> list[dict[str, str]]:
    """One row per named method for `python -m benchmarks methods`."""
    rows = []
    for spec in METHODS.values():
        reg = "on" if spec.defaults.get("regularizer.mu", 0) or spec.defaults.get("regularizer.gamma", 0) else "off"
        order = "first" if spec.defaults.get("first_order") else "second" if spec.inner == "gradient" else "exact"
        defaults = ", ".join(f"{k}={v}" for k, v in spec.defaults.items()) or "-"
        rows.append(
            {
                "method": spec.name,
                "inner loop": spec.inner,
                "outer loop": spec.outer,
                "regularizer": reg,
                "order": order,
                "defaults": defaults,
                "summary": spec.summary,
            }
        )
    return rows
