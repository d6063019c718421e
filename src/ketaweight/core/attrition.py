"""One attrition record for every filter in ketaweight: cohort eligibility, the table analysis's
missing-data rules, the mediation restriction and FAERS deduplication (OHDSI CohortMethod style:
every exclusion is an explicit, counted step with a reason)."""

from __future__ import annotations

from dataclasses import dataclass

from ketaweight.core.privacy import mask_count
from ketaweight.core.protocol import Count, Result
from ketaweight.core.summary import Summary


@dataclass(frozen=True)
class AttritionStep(Result):
    """One filter: what it did, why, and the counts (people, rows or reports) before and after."""

    step: str
    reason: str
    n_before: Count
    n_excluded: Count
    n_after: Count

    @classmethod
    def between(cls, step: str, reason: str, n_before: int, n_after: int) -> AttritionStep:
        """The step that took ``n_before`` down to ``n_after``.

        >>> AttritionStep.between("age", "age 18+ years at time zero", 1000, 940)
        AttritionStep(step='age', reason='age 18+ years at time zero', n_before=1000, n_excluded=60, n_after=940)
        """
        return cls(step, reason, int(n_before), int(n_before) - int(n_after), int(n_after))

    @staticmethod
    def table(steps: tuple[AttritionStep, ...] | list[AttritionStep], title: str = "Attrition") -> Summary:
        """The steps as one table (counts under 11 masked)."""
        return Summary(title, ("step", "reason", "before", "excluded", "after"),
                       tuple((s.step, s.reason, mask_count(s.n_before), mask_count(s.n_excluded), mask_count(s.n_after))
                             for s in steps))
