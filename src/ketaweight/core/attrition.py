"""One attrition record for every filter in ketaweight: cohort eligibility, the table analysis's
missing-data rules, the mediation restriction and FAERS deduplication (OHDSI CohortMethod style:
every exclusion is an explicit, counted step with a reason)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AttritionStep:
    """One filter: what it did, why, and the counts (people, rows or reports) before and after."""

    step: str
    reason: str
    n_before: int
    n_excluded: int
    n_after: int

    @classmethod
    def between(cls, step: str, reason: str, n_before: int, n_after: int) -> AttritionStep:
        """The step that took ``n_before`` down to ``n_after``."""
        return cls(step, reason, int(n_before), int(n_before) - int(n_after), int(n_after))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the results file."""
        return {"step": self.step, "reason": self.reason, "n_before": self.n_before,
                "n_excluded": self.n_excluded, "n_after": self.n_after}
