"""Small-cell suppression for every human-readable output.

Health-data disclosure rules (e.g. CMS cell-size suppression policy) forbid showing counts
from 1 to 10.  Every table, report and terminal view formats counts through
:func:`mask_count`; machine-readable JSON may hold exact counts only when the caller asks
for them explicitly (``exact_counts=True``) for internal reproducibility checks.
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
        if n != f"<{minimum}":
            raise ValueError(f"a count is a number or '<{minimum}', got {n!r}")
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


def mask_counts(value: Any, *, keys: frozenset[str] = COUNT_KEYS) -> Any:
    """A copy of a JSON-like value with every integer under a count key masked (see :func:`masked_or_exact`).

    >>> mask_counts({"n": 4, "estimate": 4, "attrition": [{"n_excluded": 9, "n_after": 120}]})
    {'n': '<11', 'estimate': 4, 'attrition': [{'n_excluded': '<11', 'n_after': 120}]}
    """
    if isinstance(value, dict):
        return {k: (masked_or_exact(v) if k in keys and isinstance(v, int) else mask_counts(v, keys=keys))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_counts(v, keys=keys) for v in value]
    return value
