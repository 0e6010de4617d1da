"""Fixed-precision number formatting (tables: common/tables.py), so that the same store always renders
to the same bytes."""

from __future__ import annotations

import math

from benchmarks.common.stats import BootstrapCI

DIGITS = {"accuracy": 2, "pp": 2, "mse": 3, "MSE": 3, "ratio": 2, "ms": 1, "MB": 0}
DASH = "–"


def number(value: float | None, digits: int, signed: bool = False) -> str:
    """value with `digits` decimals; never '-0.00'; a dash for None or nan."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = ("+" if signed else "") + text[1:]
    return text


def mean_pm(mean: float, half: float, digits: int) -> str:
    return f"{number(mean, digits)} ± {number(half, digits)}"


def interval(ci: BootstrapCI, digits: int) -> str:
    """'+1.23 [+0.45, +2.01]': a signed difference with its 95% CI."""
    return f"{number(ci.mean, digits, True)} [{number(ci.low, digits, True)}, {number(ci.high, digits, True)}]"
