"""How the report writes and draws a value with its interval (columns ``<m>``, ``<m>_ci_low``, ``<m>_ci_high``).

An interval is written ``value [low, high]`` (within-run intervals and the
combination over seeds are asymmetric in general); a value without an
interval as the value alone; a missing value as ``missing``. A value over
seeds (``ci_method`` ``... over n seeds ...``) is written to the decimals that
give its interval's larger half-width two significant digits
(:func:`decimals_for`): a half-width from a few seeds is not known better.
A table written before (``Student t interval of the mean``) keeps ``± h``.
"""

from __future__ import annotations

import math


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def number(v: float, digits: int = 4) -> str:
    return f"{v:.{digits}g}"


def interval_of(row, col: str) -> tuple[float | None, float | None]:
    """(low, high) of a column in a table row (a dict or a pandas row); None where absent."""
    return _num(row.get(f"{col}_ci_low", None)), _num(row.get(f"{col}_ci_high", None))


def symmetric(row) -> bool:
    """Whether a table row's intervals are symmetric t intervals (written ``± h``), from its ``ci_method``."""
    return "Student t interval of the mean" in str(row.get("ci_method", "") or "")


def over_seeds(row) -> bool:
    """Whether a table row's values combine several seeds, from its ``ci_method``."""
    text = str(row.get("ci_method", "") or "")
    return ("random-effects" in text or (" over " in text and " seeds" in text)) and not symmetric(row)


def decimals_for(value, low, high, digits: int = 2) -> int | None:
    """Decimals that give the larger half-width of ``[low, high]`` around ``value`` ``digits`` significant digits."""
    v, lo, hi = _num(value), _num(low), _num(high)
    if v is None or lo is None or hi is None:
        return None
    half = max(v - lo, hi - v)
    if not half > 0:
        return None
    return max(0, digits - 1 - math.floor(math.log10(half)))


def with_interval(value, low, high, digits: int = 4, scale: float = 1.0, fixed: int | None = None,
                  missing: str = "missing", pm: str = "±", symmetric: bool = False) -> str:  # fmt: skip
    """``value [low, high]``, or ``value ± h`` for a ``symmetric`` (t) interval, or ``value`` (no interval);
    ``scale`` multiplies all three (100: percent); ``fixed`` writes that many decimals instead of ``digits``
    significant ones."""
    v = _num(value)
    if v is None:
        return missing
    lo, hi = _num(low), _num(high)

    def fmt(x: float) -> str:
        return f"{x * scale:.{fixed}f}" if fixed is not None else number(x * scale, digits)

    if lo is None or hi is None:
        return fmt(v)
    if symmetric:
        return f"{fmt(v)} {pm} {fmt((hi - lo) / 2)}"
    return f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]"


def cell(row, col: str, **kwargs) -> str:
    """A table cell: the row's value of ``col`` with its interval columns, if it has them."""
    low, high = interval_of(row, col)
    if over_seeds(row) and "fixed" not in kwargs and kwargs.get("scale", 1.0) == 1.0:
        kwargs["fixed"] = decimals_for(row.get(col, None), low, high)
    return with_interval(row.get(col, None), low, high, symmetric=symmetric(row), **kwargs)


def error_bars(df, col: str):
    """``[2, len(df)]`` distances below and above each value for ``errorbar(yerr=...)`` (0 without an interval)."""
    import numpy as np
    import pandas as pd

    vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    out = np.zeros((2, len(df)))
    if f"{col}_ci_low" in df.columns and f"{col}_ci_high" in df.columns:
        lo = pd.to_numeric(df[f"{col}_ci_low"], errors="coerce").to_numpy(dtype=float)
        hi = pd.to_numeric(df[f"{col}_ci_high"], errors="coerce").to_numpy(dtype=float)
        out[0] = np.where(np.isnan(lo), 0.0, np.clip(vals - lo, 0.0, None))
        out[1] = np.where(np.isnan(hi), 0.0, np.clip(hi - vals, 0.0, None))
    return np.nan_to_num(out)


def has_intervals(df, col: str) -> bool:
    return f"{col}_ci_low" in df.columns and df[f"{col}_ci_low"].notna().any()
