"""Causal results as the JSON payload of the ``causal`` kind of the results envelope.

The payload schema is documented in ``docs/results-schema.md`` (causal part).  Counts from 1
to 10 are masked as ``"<11"`` unless ``exact_counts=True`` (``ketaweight.core.privacy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ketaweight.causal.result import CausalResult
from ketaweight.causal.sensitivity import NegativeControl
from ketaweight.core.privacy import mask_counts

def causal_payload(
    results: Sequence[CausalResult], *, negative_controls: Sequence[NegativeControl] = (), exact_counts: bool = False
) -> dict[str, Any]:
    """The ``results`` member of a causal results file."""
    payload = {
        "question": (
            f"effect of {results[0].treatment} on {results[0].outcome} ({results[0].estimand})" if results else None
        ),
        "estimates": [r.to_dict() for r in results],
        "negative_controls": [nc.to_dict() for nc in negative_controls],
        "counts": "exact" if exact_counts else "masked below 11",
    }
    return payload if exact_counts else mask_counts(payload)
