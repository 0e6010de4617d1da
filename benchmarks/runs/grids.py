"""Grids: TOML files under benchmarks/configs/ that expand to run specs
(setting x method x variant x seed), each with a fully resolved config.

    description = "..."
    methods = ["maml", ...]            # methods that run the default variant
    seeds = [0, 1]
    [defaults]                         # settings for every run
    [[setting]]                        # one dataset setting (a table in the report)
    dataset = "omniglot"  n_way = 5  k_shot = 1  ...
    [[variant]]                        # ablation variants, each for some methods
    name = "reg-none"  methods = ["amfs"]  set = { "regularizer.mu" = 0.0 }

A variant whose resolved config equals a run already listed (e.g. meta-batch 4 on mini-ImageNet
1-shot, whose protocol meta-batch is 4, or head.init = "xavier" where the reference head is Xavier's)
is not run twice: the earlier run stands for it.

Layers, later wins: config.DEFAULTS < dataset protocol < method defaults < grid defaults < setting
< variant < command-line --set.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common.files import is_plain_name
from benchmarks.data.datasets import dataset_info
from benchmarks.learner.registry import METHODS, head_init, method_spec
from benchmarks.runs.config import ConfigError, check_keys, resolve

CONFIG_DIR = Path(__file__).parents[1] / "configs"
GRID_KEYS = {"description", "methods", "seeds", "defaults", "setting", "variant"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid."""

    key: str  # dataset/setting/method/variant/seedN
    grid: str
    method: str
    dataset: str
    setting: str
    variant: str
    seed: int
    config: dict[str, Any] = field(hash=False)
    overrides: dict[str, Any] = field(hash=False)  # the variant's values

    @property
    def run_id(self) -> str:
        return self.key.replace("/", "__")


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    runs: list[RunSpec]
    source: Path


def setting_name(config: dict[str, Any]) -> str:
    return dataset_info(config["dataset"]).setting_name(config["n_way"], config["k_shot"])


def check_grid_name(name: str) -> str:
    """name, if it is a plain grid name (letters, digits, '-', '_', '.' not leading); else a ConfigError.
    A grid's name is a folder under the results and reports folders, so it must stay one folder."""
    if not is_plain_name(name):
        raise ConfigError(
            f"grid name {name!r} is not a plain name (letters, digits, '-', '_' and '.', not starting with '.'); "
            "name a grid of benchmarks/configs, or, for `run` only, pass a .toml path"
        )
    return name


def grid_path(name: str) -> Path:
    """A named grid (benchmarks/configs/NAME.toml) or a path to a TOML file."""
    candidate = Path(name)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise ConfigError(f"grid file {candidate} does not exist")
        return candidate
    check_grid_name(name)
    path = CONFIG_DIR / f"{name}.toml"
    if not path.exists():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise ConfigError(f"unknown grid {name!r}; named grids: {', '.join(names)} (or pass a .toml path)")
    return path


def _methods(value: Any, where: str) -> list[str]:
    """A grid's list of method names, each known to the registry; else a ConfigError saying which is not."""
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ConfigError(f"{where} must be a list of method names, got {value!r}")
    for m in value:
        try:
            method_spec(m)
        except KeyError as e:
            raise ConfigError(f"{where}: {e.args[0]}") from e
    return value


def load_grid(name: str, overrides: dict[str, Any] | None = None, only: str | None = None) -> Grid:
    """Expand a grid into run specs. `overrides` (from --set) apply to every run; `only` is a glob
    over run keys."""
    path = grid_path(name)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from e
    unknown = set(raw) - GRID_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown grid field(s) {sorted(unknown)}; valid: {sorted(GRID_KEYS)}")
    grid_name = path.stem
    if not is_plain_name(grid_name):
        raise ConfigError(f"{path}: the file name makes the grid name {grid_name!r}, not a plain name; rename it")
    methods = _methods(raw.get("methods", list(METHODS)), f"{path}: methods")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: [defaults] must be a table, got {defaults!r}")
    check_keys(defaults, f"{path} [defaults]")
    overrides = overrides or {}
    runs: list[RunSpec] = []
    seen: set[str] = set()  # resolved configs already listed
    for i, setting in enumerate(raw.get("setting", [])):
        if not isinstance(setting, dict):
            raise ConfigError(f"{path}: each [[setting]] must be a table, got {setting!r}")
        check_keys(setting, f"{path} [[setting]] #{i + 1}")
        variants = [("default", methods, {})]
        for j, v in enumerate(raw.get("variant", [])):
            where = f"{path} [[variant]] #{j + 1}"
            if not isinstance(v, dict) or "name" not in v or "set" not in v or not isinstance(v["set"], dict):
                raise ConfigError(f"{where}: a variant needs `name` and a table `set`")
            if not isinstance(v["name"], str) or not is_plain_name(v["name"]):
                raise ConfigError(f"{where}: variant name {v['name']!r} is not a plain name (letters, digits, -, _)")
            check_keys(v["set"], where)
            variants.append((v["name"], _methods(v.get("methods", methods), f"{where}: methods"), v["set"]))
        for variant, variant_methods, values in variants:
            for method in variant_methods:
                for seed in seeds:
                    explicit = {**defaults, **setting, **values, **overrides, "method": method, "seed": seed}
                    where = f"{path} ({setting.get('dataset', '?')}, {method}, {variant})"
                    config = resolve(explicit, where)
                    # head.init 'reference' as the draw it names, so that xavier where the reference is Xavier
                    # (mini-ImageNet's protocol) is recognised as the same computation
                    identity = json.dumps({**config, "head.init": head_init(config)}, sort_keys=True)
                    if identity in seen:
                        # A variant that equals another run (meta-batch 4 where the protocol's is 4, head.init
                        # xavier where the reference is Xavier) would repeat its computation; that run stands
                        # for both.
                        continue
                    seen.add(identity)
                    setting_id = setting_name(config)
                    key = f"{config['dataset']}/{setting_id}/{method}/{variant}/seed{seed}"
                    runs.append(
                        RunSpec(key, grid_name, method, config["dataset"], setting_id, variant, seed, config, values)
                    )
    if only:
        matched = [r for r in runs if fnmatch.fnmatch(r.key, only) or only in r.key]
        if not matched:
            examples = ", ".join(r.key for r in runs[:3])
            raise ConfigError(f"--only {only!r} matches no run of grid {grid_name}; its run keys look like {examples}")
        runs = matched
    keys = [r.key for r in runs]
    if len(keys) != len(set(keys)):
        raise ConfigError(f"{path}: two runs share a key; give variants distinct names")
    return Grid(grid_name, raw.get("description", ""), runs, path)
