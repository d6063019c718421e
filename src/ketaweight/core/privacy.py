"""Small-cell suppression for every human-readable output, with complementary suppression.

Health-data disclosure rules (e.g. CMS cell-size suppression policy) forbid showing counts
from 1 to 10.  Every table, report and terminal view formats counts through
:func:`mask_count`; machine-readable JSON may hold exact counts only when the caller asks
for them explicitly (``exact_counts=True``) for internal reproducibility checks.

Masking one cell is not enough when the others give it away: an attrition step's ``n_excluded``
is ``n_before − n_after``, the treated are the analysed minus the untreated, a share outside
support times n is the count outside.  :func:`mask_counts` therefore also suppresses the
complementary cells (written ``"suppressed"``): in an attrition chain, the step next to a masked
exclusion has its exclusion and the count between them hidden, so only their sum is known; the
other arm of a masked arm; the share beside a masked count.
"""

from __future__ import annotations

import math
from typing import Any

MIN_CELL_COUNT = 11
"""Smallest count that may be shown; counts 1..10 are written as "<11"."""


def mask_count(n: int | float | str | None, *, minimum: int = MIN_CELL_COUNT) -> str:
    """Format a count for display: ``"<11"`` for 1..10, ``"0"`` for zero, thousands separators otherwise.

    Zero is shown because it discloses nothing about an individual.  ``None`` or NaN
    (unknown) is shown as an em dash; a count already masked in a results file (``"<11"``) stays so.

    >>> [mask_count(n) for n in (0, 7, 11, 12345, None, "<11")]
    ['0', '<11', '11', '12,345', '—', '<11']
    """
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "—"
    if isinstance(n, str):
        if n not in (f"<{minimum}", SUPPRESSED):
            raise ValueError(f"a count is a number, '<{minimum}' or '{SUPPRESSED}', got {n!r}")
        return n
    count = int(n)
    if count < 0:
        raise ValueError(f"a count cannot be negative, got {n}")
    if 0 < count < minimum:
        return f"<{minimum}"
    return f"{count:,}"


def masked_or_exact(n: int, *, minimum: int = MIN_CELL_COUNT) -> int | str:
    """For JSON meant for people: the exact count when >= minimum or 0, else the string "<11".

    >>> masked_or_exact(3), masked_or_exact(0), masked_or_exact(40)
    ('<11', 0, 40)
    """
    count = int(n)
    return count if count == 0 or count >= minimum else f"<{minimum}"


COUNT_KEYS = frozenset(
    {"n", "n_analysed", "n_complete", "n_observed_outcome", "n_treated", "n_control", "n_before", "n_excluded",
     "n_after", "n_outside_support", "n_used", "n_fit"}
)
"""Keys whose values count people in results files; :func:`mask_counts` masks them below 11."""


SUPPRESSED = "suppressed"
"""A count hidden because, with the counts beside it, it would reveal a masked one."""

ARM_PAIRS = (("n_treated", "n_control"),)
"""Counts in one dict that add up to a total shown beside them: mask one, suppress the other."""
SHARE_OF = {"n_outside_support": "share_outside_support"}
"""A count and the share of n it is: a masked count takes its share with it."""
PARTITION_KEY = "subgroups"
"""A list of results whose ``n`` partition a total shown beside them (effects by level of a modifier)."""


def _small(v: Any, minimum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < minimum


def _is_attrition(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(s, dict) and {"n_before", "n_excluded", "n_after"} <= s.keys() for s in value)


def _protect_attrition(steps: list[dict[str, Any]], minimum: int) -> list[dict[str, Any]]:
    """Mask small exclusions; for each, hide the neighbouring step's exclusion and the count between them."""
    out = [dict(s) for s in steps]
    for k, s in enumerate(steps):
        if not _small(s["n_excluded"], minimum):
            continue
        j = k + 1 if k + 1 < len(steps) else k - 1  # the complementary step: the next one, else the previous
        if j < 0:
            continue  # a single-step chain: its before and after are the only totals; they stay exact
        lo, hi = min(j, k), max(j, k)
        out[lo]["n_after"] = out[hi]["n_before"] = SUPPRESSED
        if not _small(steps[j]["n_excluded"], minimum) and steps[j]["n_excluded"] != 0:
            out[j]["n_excluded"] = SUPPRESSED
        elif steps[j]["n_excluded"] == 0:  # a zero next door protects nothing: hide the other neighbour as well
            out[j]["n_excluded"] = SUPPRESSED
    return out


def mask_counts(value: Any, *, keys: frozenset[str] = COUNT_KEYS, minimum: int = MIN_CELL_COUNT) -> Any:
    """A copy of a JSON-like value with every integer under a count key masked (see :func:`masked_or_exact`)
    and the complementary cells suppressed (module docstring).

    >>> mask_counts({"n": 4, "estimate": 4})
    {'n': '<11', 'estimate': 4}
    >>> mask_counts({"attrition": [{"n_before": 900, "n_excluded": 9, "n_after": 891},
    ...                            {"n_before": 891, "n_excluded": 40, "n_after": 851}]})["attrition"]
    [{'n_before': 900, 'n_excluded': '<11', 'n_after': 'suppressed'}, {'n_before': 'suppressed', 'n_excluded': 'suppressed', 'n_after': 851}]
    >>> mask_counts({"n_treated": 7, "n_control": 300, "n_outside_support": 3, "share_outside_support": 0.01})
    {'n_treated': '<11', 'n_control': 'suppressed', 'n_outside_support': '<11', 'share_outside_support': None}
    """
    if isinstance(value, list):
        if _is_attrition(value):
            value = _protect_attrition(value, minimum)
        return [mask_counts(v, keys=keys, minimum=minimum) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        if k in keys and isinstance(v, int) and not isinstance(v, bool):
            out[k] = masked_or_exact(v, minimum=minimum)
        else:
            out[k] = mask_counts(v, keys=keys, minimum=minimum)
    for a, b in ARM_PAIRS:
        if a in value and b in value:
            if _small(value[a], minimum) and not _small(value[b], minimum):
                out[b] = SUPPRESSED
            elif _small(value[b], minimum) and not _small(value[a], minimum):
                out[a] = SUPPRESSED
    for count, share in SHARE_OF.items():
        if _small(value.get(count), minimum) and share in value:
            out[share] = None
    parts = value.get(PARTITION_KEY)
    if isinstance(parts, list) and all(isinstance(x, dict) and isinstance(x.get("n"), int) for x in parts):
        small = [i for i, x in enumerate(parts) if _small(x["n"], minimum)]
        others = [i for i, x in enumerate(parts) if not _small(x["n"], minimum)]
        if len(small) == 1 and others:  # one masked level beside a shown total: hide the smallest other level too
            j = min(others, key=lambda i: parts[i]["n"])
            out[PARTITION_KEY] = [dict(x, n=SUPPRESSED) if i == j else x for i, x in enumerate(out[PARTITION_KEY])]
    return out


def disclosure_risks(value: Any, where: str = "$", *, minimum: int = MIN_CELL_COUNT) -> list[str]:
    """Places in a JSON-like document where a count from 1 to 10 is shown, or a masked one can be
    recomputed from the cells beside it (the checks :func:`mask_counts` protects against).

    >>> disclosure_risks({"n": 7})
    ['$.n: count 7 shown']
    >>> disclosure_risks([{"n_before": 900, "n_excluded": "<11", "n_after": 891}])
    ['$[0]: masked exclusion = n_before − n_after']
    """
    risks: list[str] = []
    masked = f"<{minimum}"
    if isinstance(value, list):
        if _is_attrition(value):
            for i, s in enumerate(value):
                if s["n_excluded"] == masked and isinstance(s["n_before"], int) and isinstance(s["n_after"], int):
                    risks.append(f"{where}[{i}]: masked exclusion = n_before − n_after")
        for i, v in enumerate(value):
            risks += disclosure_risks(v, f"{where}[{i}]", minimum=minimum)
        return risks
    if not isinstance(value, dict):
        return risks
    for k, v in value.items():
        if k in COUNT_KEYS and _small(v, minimum):
            risks.append(f"{where}.{k}: count {v} shown")
        else:
            risks += disclosure_risks(v, f"{where}.{k}", minimum=minimum)
    for a, b in ARM_PAIRS:
        if masked in (value.get(a), value.get(b)) and all(isinstance(value.get(x), int) for x in (a, b) if value.get(x) != masked):
            if any(isinstance(value.get(x), int) for x in (a, b)) and isinstance(value.get("n_analysed"), int):
                risks.append(f"{where}: masked arm = n_analysed − the other arm")
    for count, share in SHARE_OF.items():
        if value.get(count) == masked and isinstance(value.get(share), (int, float)):
            risks.append(f"{where}.{share}: the share reveals the masked {count}")
    parts = value.get(PARTITION_KEY)
    if isinstance(parts, list) and all(isinstance(x, dict) and "n" in x for x in parts):
        if sum(x["n"] == masked for x in parts) == 1 and all(isinstance(x["n"], int) for x in parts if x["n"] != masked):
            risks.append(f"{where}.{PARTITION_KEY}: one masked level beside the others and their total")
    return risks
