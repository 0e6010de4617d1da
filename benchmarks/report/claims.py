"""Verdicts on the claims of the paper (docs/protocol.md, "Claims") and a harness check, computed from
the runs of one grid. Each claim's rule is stated in its RULES entry (report/verdicts.py), which the
README prints, and implemented by the function that evaluates it: report/level_claims.py (1a, 1b, H),
report/cost_claim.py (3), report/accuracy_claims.py (2, 4, 5a-c, 6a, 6b).
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.report.accuracy_claims import REGULARIZER_PARTS, claim_2, claim_4, claim_5, claim_6a, claim_6b
from benchmarks.report.cost_claim import claim_3
from benchmarks.report.level_claims import harness_check, level_claim
from benchmarks.report.runs import RunSet
from benchmarks.report.verdicts import ClaimResult


def evaluate_claims(runs: RunSet) -> list[ClaimResult]:
    """Every claim's verdict, in the order of docs/protocol.md, then the harness check."""
    steps: list[Callable[[], ClaimResult]] = [
        lambda: level_claim(runs, "1a", "amfs"),
        lambda: level_claim(runs, "1b", "maml"),
        lambda: claim_2(runs),
        lambda: claim_3(runs),
        lambda: claim_4(runs),
        *[lambda c=c, v=v, w=w: claim_5(runs, c, v, w) for c, v, w in REGULARIZER_PARTS],
        lambda: claim_6a(runs),
        lambda: claim_6b(runs),
        lambda: harness_check(runs),
    ]
    return [step() for step in steps]
