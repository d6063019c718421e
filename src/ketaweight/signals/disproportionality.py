"""Frequentist disproportionality for drug–event 2×2 tables: PRR, ROR, IC (vectorised).

For one drug–event pair, counted in unique reports::

                    event    not event
    drug              a          b
    not drug          c          d          N = a + b + c + d,  E = (a + b)(a + c) / N

* PRR = [a/(a+b)] / [c/(c+d)], 95% CI exp(log PRR ± 1.96·√(1/a − 1/(a+b) + 1/c − 1/(c+d)))
  (Evans, Waller & Davis 2001).  Yates-corrected χ² = N(|ad − bc| − N/2)² /
  [(a+b)(c+d)(a+c)(b+d)].  Evans signal: PRR ≥ 2, χ² ≥ 4 and a ≥ 3.
* ROR = ad/(bc), 95% CI exp(log ROR ± 1.96·√(1/a + 1/b + 1/c + 1/d)) (Woolf; van Puijenbroek
  et al. 2002).  Signal: lower limit > 1.
* IC = log2((a + 0.5)/(E + 0.5)) with the exact interval from the Gamma(a + 0.5, rate E + 0.5)
  posterior (Norén, Hopstadius & Bate 2013): IC025 = log2(G⁻¹(0.025)/(E+0.5)).  Signal: IC025 > 0.

A ratio whose table has a zero where it divides or takes a log is *undefined*, returned as
NaN, unless the caller asks for the Haldane–Anscombe correction (+0.5 to all four cells of
such tables, as vigipy does by default); the result records which cells were corrected.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import special, stats

__all__ = ["two_by_two", "prr", "ror", "information_component", "yates_chi2", "expected_count"]


def _arrays(*xs):
    out = [np.atleast_1d(np.asarray(x, dtype=float)) for x in xs]
    out = [np.array(x) for x in np.broadcast_arrays(*out)]
    for x in out:
        if np.any(x < 0) or not np.all(np.isfinite(x)):
            raise ValueError("2×2 counts must be finite and ≥ 0")
    return out


def two_by_two(n_pair, n_drug, n_event, n_total):
    """(a, b, c, d) from the pair count and the margins (all in unique reports).

    Raises ``ValueError`` if the margins are inconsistent (a negative cell)."""
    a, r, c_, N = _arrays(n_pair, n_drug, n_event, n_total)
    b = r - a
    c = c_ - a
    d = N - r - c_ + a
    if np.any(b < 0) or np.any(c < 0) or np.any(d < 0):
        raise ValueError("inconsistent margins: a cell of the 2×2 table would be negative")
    return a, b, c, d


def expected_count(a, b, c, d):
    """E = (a + b)(a + c)/N, the count expected if drug and event were independent."""
    a, b, c, d = _arrays(a, b, c, d)
    n = a + b + c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, (a + b) * (a + c) / n, np.nan)


def _check_level(ci_level: float) -> float:
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1), e.g. 0.95; got {ci_level}")
    return ci_level


def _z(ci_level: float) -> float:
    return float(stats.norm.ppf(0.5 + _check_level(ci_level) / 2))


def _haldane(a, b, c, d, zero_mask, correct: bool):
    if not correct:
        return a, b, c, d, np.zeros_like(a, dtype=bool)
    adj = np.where(zero_mask, 0.5, 0.0)
    return a + adj, b + adj, c + adj, d + adj, zero_mask


def _log_scale_result(est, se_log, z: float, undefined, corrected) -> dict:
    """Estimate with its Wald CI on the log scale; NaN where the ratio is undefined (a zero
    cell without the Haldane correction).  Shared by PRR and ROR."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.exp(np.log(est) - z * se_log)
        hi = np.exp(np.log(est) + z * se_log)
    for x in (est, se_log, lo, hi):
        x[undefined] = np.nan
    return {"estimate": est, "se_log": se_log, "ci_low": lo, "ci_high": hi, "haldane": corrected}


def prr(a, b, c, d, *, ci_level: float = 0.95, haldane: bool = False):
    """PRR, its ``ci_level`` CI, and whether the Haldane correction was applied, per table."""
    a, b, c, d = _arrays(a, b, c, d)
    zero = (a == 0) | (c == 0) | (a + b == 0) | (c + d == 0)
    a2, b2, c2, d2, corrected = _haldane(a, b, c, d, zero, haldane)
    z = _z(ci_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = (a2 / (a2 + b2)) / (c2 / (c2 + d2))
        se = np.sqrt(1 / a2 - 1 / (a2 + b2) + 1 / c2 - 1 / (c2 + d2))
    return _log_scale_result(est, se, z, zero & ~corrected, corrected)


def ror(a, b, c, d, *, ci_level: float = 0.95, haldane: bool = False):
    """ROR, its ``ci_level`` CI (Woolf), and whether the Haldane correction was applied."""
    a, b, c, d = _arrays(a, b, c, d)
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    a2, b2, c2, d2, corrected = _haldane(a, b, c, d, zero, haldane)
    z = _z(ci_level)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = (a2 * d2) / (b2 * c2)
        se = np.sqrt(1 / a2 + 1 / b2 + 1 / c2 + 1 / d2)
    return _log_scale_result(est, se, z, zero & ~corrected, corrected)


def yates_chi2(a, b, c, d):
    """Pearson χ² with Yates' continuity correction (1 df); NaN when a margin is zero."""
    a, b, c, d = _arrays(a, b, c, d)
    n = a + b + c + d
    num = n * np.maximum(np.abs(a * d - b * c) - n / 2, 0.0) ** 2
    den = (a + b) * (c + d) * (a + c) * (b + d)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def information_component(a, expected, *, ci_level: float = 0.95):
    """IC = log2((a+0.5)/(E+0.5)) with the exact gamma credibility interval (Norén 2013)."""
    a, e = _arrays(a, expected)
    alpha = 1 - _check_level(ci_level)
    shape = a + 0.5
    rate = e + 0.5
    est = np.log2(shape / rate)
    if shape.size >= 100_000:
        # the two limits are independent and scipy's ufuncs release the GIL: one thread each
        with ThreadPoolExecutor(max_workers=2) as pool:
            q_lo = pool.submit(special.gammaincinv, shape, alpha / 2)
            q_hi = pool.submit(special.gammaincinv, shape, 1 - alpha / 2)
            g_lo, g_hi = q_lo.result(), q_hi.result()
    else:
        g_lo, g_hi = special.gammaincinv(shape, alpha / 2), special.gammaincinv(shape, 1 - alpha / 2)
    return {"estimate": est, "ci_low": np.log2(g_lo / rate), "ci_high": np.log2(g_hi / rate)}
