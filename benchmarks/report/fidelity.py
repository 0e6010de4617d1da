"""How close a run is to the full protocol (its fidelity), and which runs share a protocol.

Fidelity levels, highest first; a run's fidelity is the lowest level that applies to it:
- full protocol: none of the below;
- reduced iterations: config `reduced` true, or fewer meta-iterations than the protocol's;
- partial data: a data split the run used is marked partial in its provenance;
- cache only: a split was served from the preprocessed cache without its source files;
- checksum mismatch: a source archive's checksum differs from the published one.

A protocol is a run's config apart from what tells methods and variants apart: two runs share a
protocol when their configs agree on every key but the seed, the method-defining keys, the keys
their variants set, execution choices and bookkeeping (`EXCLUDED`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from benchmarks.report.runs import Run
from benchmarks.runs.config import BEFORE_SETTING, DEFAULTS, protocol_defaults


@dataclass(frozen=True)
class Level:
    rank: int  # higher is closer to the full protocol
    name: str
    when: str
    raise_by: str


FULL = Level(4, "full protocol", "none of the levels below applies", "–")
REDUCED = Level(
    3,
    "reduced iterations",
    "config `reduced` is true, or the run did fewer meta-iterations than the protocol's (60,000; sinusoid 70,000)",
    "the full-protocol command (the grid without `--set iterations=...`)",
)
PARTIAL = Level(
    2,
    "partial data",
    "a split the run used is marked `partial` in the record's data provenance (`data.<split>.partial`)",
    "rerun with the complete dataset under `--data-root` (`python -m benchmarks data check` lists what is missing)",
)
CACHE_ONLY = Level(
    1,
    "cache only",
    "a split was served from the preprocessed cache without its source files (`data.<split>.cache` starts with "
    '"cache only"): the cache was not checked against the data',
    "rerun with the dataset's source files under `--data-root`",
)
CHECKSUM = Level(
    0,
    "checksum mismatch",
    "a source archive's checksum differs from the published one (`data.<split>.checksum`, e.g. Omniglot's zip md5)",
    "replace the archive by the official one (`python -m benchmarks data prepare --download`) and rerun",
)
LEVELS = (FULL, REDUCED, PARTIAL, CACHE_ONLY, CHECKSUM)
BY_RANK = {level.rank: level for level in LEVELS}

# Keys that do not define a protocol: what a run is (seed), what tells methods apart (their
# compositions and registry defaults: first order for FO-MAML, the regularizer for AMFS), how it was
# executed (the same computation on another strategy or convolution), and bookkeeping that the
# fidelity level already accounts for. A run's own variant keys (record `overrides`) are dropped too.
EXCLUDED = frozenset(
    {
        "seed",
        "method",
        "compose.inner",
        "compose.outer",
        "first_order",
        "regularizer.mu",
        "regularizer.gamma",
        "regularizer.mu_sign",
        "regularizer.gamma_sign",
        "strategy",
        "backbone.conv",
        "checkpoint_every",
        "reduced",
    }
)

Signature = frozenset[tuple[str, str]]


def protocol_iterations(run: Run) -> int:
    """The meta-iterations of the published protocol for the run's dataset setting."""
    config = run.config
    n_way, k_shot = config.get("n_way", DEFAULTS["n_way"]), config.get("k_shot", DEFAULTS["k_shot"])
    try:
        return int(protocol_defaults(run.dataset, n_way, k_shot).get("iterations", DEFAULTS["iterations"]))
    except ValueError:
        return int(DEFAULTS["iterations"])


def iterations_of(run: Run) -> int | None:
    """Meta-iterations the run did: the fewer of its config's and its training record's."""
    values = [v for v in (run.config.get("iterations"), run.iterations_done) if isinstance(v, int)]
    return min(values) if values else None


def _splits(run: Run) -> list[dict[str, Any]]:
    data = run.record.get("data")
    if not isinstance(data, dict):
        return []
    return [split for _, split in sorted(data.items()) if isinstance(split, dict)]


def _checksums(split: dict[str, Any]) -> list[str]:
    value = split.get("checksum")
    if isinstance(value, dict):
        return [str(v) for _, v in sorted(value.items())]
    return [str(value)] if value is not None else []


def applicable(run: Run) -> list[Level]:
    """Every level below the full protocol that applies to the run, highest first."""
    found = []
    iterations = iterations_of(run)
    if run.reduced or (iterations is not None and iterations < protocol_iterations(run)):
        found.append(REDUCED)
    if run.partial_splits:
        found.append(PARTIAL)
    if any(str(split.get("cache", "")).startswith("cache only") for split in _splits(run)):
        found.append(CACHE_ONLY)
    if any(text.startswith("mismatch") for split in _splits(run) for text in _checksums(split)):
        found.append(CHECKSUM)
    return found


def fidelity(run: Run) -> Level:
    """The run's lowest applicable level."""
    return min(applicable(run), key=lambda level: level.rank, default=FULL)


def signature(config: dict[str, Any], overrides: dict[str, Any] | None) -> Signature:
    """The protocol part of a config: every key not EXCLUDED and not set by the run's variant. A
    setting the config lacks (a record made before it existed) has the value it had then."""
    own = set(overrides or {})
    full = {**BEFORE_SETTING, **config}
    return frozenset(
        (key, json.dumps(value, sort_keys=True)) for key, value in full.items() if key not in EXCLUDED | own
    )


def run_signature(run: Run) -> Signature:
    overrides = run.record.get("overrides")
    return signature(run.config, overrides if isinstance(overrides, dict) else None)


def fits(part: Signature, protocol: Signature) -> bool:
    """A run fits a protocol when every key it defines is in the protocol with the same value: a
    variant run (its own keys dropped) fits the protocol of the default runs it varies."""
    return part <= protocol


def protocol_id(dataset: str, setting: str, protocol: Signature) -> str:
    """A short stable name of a protocol: dataset-setting-<6 hex digits of its hash>."""
    text = json.dumps(sorted(protocol))
    return f"{dataset}-{setting}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def value_of(protocol: Signature, key: str) -> Any:
    for k, v in protocol:
        if k == key:
            return json.loads(v)
    return None
