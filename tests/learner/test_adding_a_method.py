"""Adding a method is its inner loop's file plus one row of the registry (docs/adding-a-method.md).

The inner loop below stands for the new file; the one `monkeypatch.setitem(METHODS, ...)` stands for
the registry row. Nothing else is touched, and the method resolves from config, takes its own
settings from <config_prefix>.<field>, assembles through runs.build, trains, is refused on datasets it
does not support, records its assumption ids, appears in `methods` and the report labels, and its
inner loop is reachable from compose.inner.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from baselines import MeanOuter
from benchmarks.cli import main
from benchmarks.data.tasks import TaskBatch
from benchmarks.learner.registry import METHODS, MethodSpec, build_inner, describe_methods
from benchmarks.report.labels import method_name, method_order
from benchmarks.runs.assumptions import ASSUMPTIONS, assumptions_in_force
from benchmarks.runs.build import assemble
from benchmarks.runs.config import ConfigError, resolve
from benchmarks.runs.grids import load_grid


@dataclass(frozen=True)
class CosinePrototypeInner:
    """Logits s * cos(query feature, class-mean support feature): a small inner loop of the registry's
    shape with one own setting (scale_init, read from kernel.scale_init) and no batched path."""

    n_outputs: int
    task: str = "classification"
    first_order: bool = False
    bn_mode: str = "transductive"
    scale_init: float = 10.0
    name: str = field(default="cosine-prototypes", init=False)
    config_prefix: ClassVar[str] = "kernel"
    task_kinds: ClassVar[tuple[str, ...]] = ("classification",)
    order: ClassVar[str] = "exact"
    batched_on_cuda: ClassVar[bool] = False
    assumptions: ClassVar[tuple[tuple[str, dict[str, object]], ...]] = (("cosine-prototypes-scale", {}),)

    def init_parameters(self, feature_dim: int, generator: torch.Generator) -> dict[str, Tensor]:
        return {"cosproto.log_scale": torch.tensor(math.log(self.scale_init))}

    def query_outputs(self, features, params, support_x, support_y, query_x, training):  # noqa: ANN001, ANN201
        f_s, f_q = features(params, support_x, None), features(params, query_x, None)
        members = (support_y.unsqueeze(-1) == torch.arange(self.n_outputs)).to(f_s.dtype)
        prototypes = members.T @ f_s / members.sum(0).unsqueeze(-1)
        cosines = F.normalize(f_q, dim=-1) @ F.normalize(prototypes, dim=-1).T
        return params["cosproto.log_scale"].exp() * cosines, {}


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> str:
    """The one registry row (and, for its assumption rule, the catalogue text of its new id)."""
    spec = MethodSpec("cosproto", "Cosine prototypes", CosinePrototypeInner, MeanOuter, "cosine to class means")
    monkeypatch.setitem(METHODS, "cosproto", spec)
    monkeypatch.setitem(ASSUMPTIONS, "cosine-prototypes-scale", "Cosine prototypes: logits s * cos, s learned.")
    return "cosproto"


def _config(**values: object) -> dict:
    small = {"dataset": "omniglot", "n_way": 3, "k_shot": 1, "meta_batch": 2, "backbone.filters": 4}
    return resolve({"method": "cosproto", **small, **values})


def test_a_registered_method_resolves_assembles_and_trains(registered: str):
    config = _config(**{"kernel.scale_init": 3.0})
    assembly = assemble(config, torch.device("cpu"))
    inner = assembly.learner.inner
    assert isinstance(inner, CosinePrototypeInner) and inner.scale_init == 3.0 and inner.n_outputs == 3
    assert assembly.params["cosproto.log_scale"].item() == pytest.approx(math.log(3.0))
    g = torch.Generator().manual_seed(0)
    support_y, query_y = torch.arange(3).repeat(2, 1), torch.arange(3).repeat_interleave(2).repeat(2, 1)
    support_x, query_x = torch.rand(2, 3, 1, 28, 28, generator=g), torch.rand(2, 6, 1, 28, 28, generator=g)
    batch = TaskBatch(support_x, support_y, query_x, query_y)
    before = {k: v.detach().clone() for k, v in assembly.params.items()}
    result = assembly.meta_update()(batch)
    assert torch.isfinite(result.task_losses).all()
    assert all(not torch.equal(before[k], v) for k, v in assembly.params.items())  # Adam moved every one


def test_a_registered_method_is_everywhere_a_method_shows(registered: str):
    row = next(r for r in describe_methods() if r["method"] == "cosproto")
    assert (row["inner loop"], row["outer loop"], row["tasks"]) == ("cosine-prototypes", "mean", "classification")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["methods"]) == 0
    assert "cosproto" in out.getvalue() and "compose.inner=gradient|kernel|ridge|prototypes|cosine-prototypes" in (
        out.getvalue()
    )
    assert method_name("cosproto") == "Cosine prototypes"
    assert method_order("cosproto") > method_order("protonet") > method_order("amfs")
    assert "cosine-prototypes-scale" in assumptions_in_force(_config())
    composed = resolve({"method": "maml", "dataset": "omniglot", "compose.inner": "cosine-prototypes"})
    assert isinstance(build_inner(composed), CosinePrototypeInner)


def test_a_registered_method_is_refused_where_it_does_not_apply(registered: str, tmp_path: Path):
    with pytest.raises(ConfigError, match="method 'cosproto' supports classification only"):
        resolve({"method": "cosproto", "dataset": "sinusoid"})
    grid = tmp_path / "g.toml"
    grid.write_text('methods = ["cosproto"]\n[[setting]]\ndataset = "omniglot"\n[[setting]]\ndataset = "sinusoid"\n')
    with pytest.raises(ConfigError, match=r"g\.toml \(sinusoid, cosproto, default\).*classification only"):
        load_grid(str(grid))
    grid.write_text('methods = ["cosproto", "maml"]\n[[setting]]\ndataset = "omniglot"\n')
    assert [r.method for r in load_grid(str(grid)).runs] == ["cosproto", "maml"]
