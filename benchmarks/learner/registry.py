"""The method registry: each named method is an inner loop x an outer loop (+ regularizer), and any
other pairing is reachable from config (compose.inner, compose.outer, regularizer.mu/gamma,
first_order). docs/methods.md defines what each piece computes; docs/adding-a-method.md how to add one.

METHODS is the one table a method is added to: a row names the method, its display name, its inner
and outer loop classes, its default settings and the assumption ids it brings. The inner and outer
loop tables (`inner_loops`, `outer_loops`: the compose.inner / compose.outer values) are the loop
classes of its rows, by their `name`, so adding a method is its loop's file plus one row here.

What the harness needs of an inner-loop class (a frozen dataclass; baselines/maml.py is an example):
- fields: the shared `n_outputs`, `task`, `first_order`, `bn_mode` (and `head_init`, where a loop
  has a head), filled by name from the run, and
  its own fields, filled from the config keys `<config_prefix>.<field>` whose defaults are the
  fields' defaults (runs.config.DEFAULTS takes them from here);
- class attributes `name` (the compose.inner value), `config_prefix`, `task_kinds` (the dataset
  tasks it supports; runs.config refuses the others), `order` (second | exact: what
  `methods` shows without first_order), `batched_on_cuda` (the `auto` strategy on CUDA) and
  `assumptions` (rules, below);
- `init_parameters(feature_dim, generator)` and `query_outputs(features, params, support_x, support_y,
  query_x, training) -> (outputs, diagnostics)`; optionally `query_outputs_tasks` (strategy
  'batched') and `data_dependent_init` (runs.build.Assembly.initialise_from_data).
An outer-loop class: `name`, `needs_per_task_gradients`, `combine`, `assumptions`.

An assumption rule is (id, conditions): the id (a key of runs.assumptions.ASSUMPTIONS) is in force
when every condition {name: value} holds: for a loop's rules the names are its dataclass fields
(task, first_order, sigma_init ...), for a method's the facts `task`, `first_order` and `regularized`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from amfs import CompositeRegularizer, CosineWeightedOuter, KernelInner
from baselines import GradientInner, MeanOuter, PrototypeInner, RidgeInner
from benchmarks.data.datasets import dataset_info

AssumptionRule = tuple[str, dict[str, object]]
# inner-loop fields the harness fills from the run, where a loop has them (the others come from
# <config_prefix>.<field>): head_init is config head.init resolved for the dataset (head_init below)
SHARED_INNER_FIELDS = ("n_outputs", "task", "first_order", "bn_mode", "head_init")


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the config value (`method = "..."`)
    display: str  # in reports
    inner_loop: type  # an inner-loop class (module docstring)
    outer_loop: type  # an outer-loop class
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)  # settings over the dataset protocol
    assumptions: tuple[AssumptionRule, ...] = ()  # ids the method itself brings, beyond its loops'

    @property
    def inner(self) -> str:
        return self.inner_loop.name

    @property
    def outer(self) -> str:
        return self.outer_loop.name


# AMFS's regularizer strengths are not given by the summary: an assumption, listed in reports.
AMFS_REGULARIZER = {"regularizer.mu": 0.1, "regularizer.gamma": 0.01}
AMFS_ASSUMPTIONS: tuple[AssumptionRule, ...] = (("regularizer-amfs-strengths", {"regularized": True}),)

METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec(
            "maml", "MAML", GradientInner, MeanOuter, "MAML, second order (Finn et al. 2017)", {"first_order": False}
        ),
        MethodSpec(
            "fomaml",
            "FO-MAML",
            GradientInner,
            MeanOuter,
            "first-order MAML: inner gradients detached",
            {"first_order": True},
        ),
        MethodSpec("i-amfs", "I-AMFS", KernelInner, MeanOuter, "closed-form RBF kernel ridge inner loop"),
        MethodSpec(
            "o-amfs", "O-AMFS", GradientInner, CosineWeightedOuter, "MAML inner loop, cosine-weighted task gradients"
        ),
        MethodSpec(
            "amfs",
            "AMFS",
            KernelInner,
            CosineWeightedOuter,
            "kernel inner loop + cosine weighting + regularizer",
            AMFS_REGULARIZER,
            AMFS_ASSUMPTIONS,
        ),
        MethodSpec(
            "ridge", "Ridge (R2-D2)", RidgeInner, MeanOuter, "control: I-AMFS's closed form, linear kernel (R2-D2)"
        ),
        MethodSpec(
            "protonet", "ProtoNet", PrototypeInner, MeanOuter, "control: class-mean prototypes (Snell et al. 2017)"
        ),
    ]
}


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def _loop_table(classes: Iterable[type], what: str) -> dict[str, type]:
    table: dict[str, type] = {}
    for cls in classes:
        if table.setdefault(cls.name, cls) is not cls:
            raise ValueError(f"two {what} loop classes are named {cls.name!r}: {table[cls.name]} and {cls}")
    return table


def inner_loops() -> dict[str, type]:
    """compose.inner value -> inner-loop class: the inner loops of the named methods, in table order."""
    return _loop_table((m.inner_loop for m in METHODS.values()), "inner")


def outer_loops() -> dict[str, type]:
    """compose.outer value -> outer-loop class: the outer loops of the named methods, in table order."""
    return _loop_table((m.outer_loop for m in METHODS.values()), "outer")


def _own_fields(cls: type) -> list[Any]:
    return [f for f in fields(cls) if f.init and f.name not in SHARED_INNER_FIELDS]


def inner_loop_settings() -> dict[str, Any]:
    """The config keys of every inner loop's own fields, `<config_prefix>.<field>`, with the fields'
    defaults (runs.config.DEFAULTS). Two loops may share a key (the ridge head reads I-AMFS's
    kernel.lambda_init) only with the same default."""
    settings: dict[str, Any] = {}
    for cls in inner_loops().values():
        for f in _own_fields(cls):
            key = f"{cls.config_prefix}.{f.name}"
            if f.default is MISSING:
                raise ValueError(f"{cls.__name__}.{f.name} needs a default: it is the default of setting {key}")
            if settings.setdefault(key, f.default) != f.default:
                raise ValueError(
                    f"setting {key}: {cls.__name__} has default {f.default!r}, another loop {settings[key]!r}"
                )
    return settings


def composition(config: dict[str, Any]) -> tuple[str, str]:
    """(inner, outer) loop names of a run: compose.* when set, else the named method's own."""
    spec = method_spec(config["method"])
    return config.get("compose.inner") or spec.inner, config.get("compose.outer") or spec.outer


def inner_loop_class(config: dict[str, Any]) -> type:
    return inner_loops()[composition(config)[0]]


def n_outputs(config: dict[str, Any]) -> int:
    return dataset_info(config["dataset"]).n_outputs(config["n_way"])


def task_kind(config: dict[str, Any]) -> str:
    return dataset_info(config["dataset"]).task


def head_init(config: dict[str, Any]) -> str:
    """How the gradient inner loop's head is drawn (baselines.maml.HEAD_INITS): config head.init, where
    'reference' is the draw of Finn et al.'s code under the dataset's protocol."""
    choice = config["head.init"]
    return dataset_info(config["dataset"]).reference_head_init if choice == "reference" else choice


def build_inner(config: dict[str, Any]) -> Any:
    """The run's inner loop: shared fields from the run, its own from <config_prefix>.<field>."""
    cls = inner_loop_class(config)
    shared = {
        "n_outputs": n_outputs(config),
        "task": task_kind(config),
        "first_order": config["first_order"],
        "bn_mode": config["bn_mode"],
        "head_init": head_init(config),
    }
    values = {f.name: shared[f.name] for f in fields(cls) if f.init and f.name in shared}
    values.update({f.name: config[f"{cls.config_prefix}.{f.name}"] for f in _own_fields(cls)})
    return cls(**values)


def build_outer(config: dict[str, Any]) -> Any:
    return outer_loops()[composition(config)[1]]()


def build_regularizer(config: dict[str, Any]) -> CompositeRegularizer | None:
    if config["regularizer.mu"] == 0 and config["regularizer.gamma"] == 0:
        return None
    return CompositeRegularizer(
        mu=config["regularizer.mu"],
        gamma=config["regularizer.gamma"],
        mu_sign=config["regularizer.mu_sign"],
        gamma_sign=config["regularizer.gamma_sign"],
    )


def rules_in_force(rules: Iterable[AssumptionRule], facts: Mapping[str, object]) -> list[str]:
    """The ids of the rules whose every condition holds in `facts`."""
    return [key for key, conditions in rules if all(facts.get(k, MISSING) == v for k, v in conditions.items())]


def loop_facts(loop: Any) -> dict[str, object]:
    """A built loop's dataclass fields, the names its assumption rules test."""
    return {f.name: getattr(loop, f.name) for f in fields(loop)}


def describe_methods() -> list[dict[str, str]]:
    """One row per named method for `python -m benchmarks methods`."""
    rows = []
    for spec in METHODS.values():
        reg = "on" if spec.defaults.get("regularizer.mu", 0) or spec.defaults.get("regularizer.gamma", 0) else "off"
        order = "first" if spec.defaults.get("first_order") else spec.inner_loop.order
        defaults = ", ".join(f"{k}={v}" for k, v in spec.defaults.items()) or "-"
        rows.append(
            {
                "method": spec.name,
                "inner loop": spec.inner,
                "outer loop": spec.outer,
                "regularizer": reg,
                "order": order,
                "tasks": "/".join(spec.inner_loop.task_kinds),
                "defaults": defaults,
                "summary": spec.summary,
            }
        )
    return rows
