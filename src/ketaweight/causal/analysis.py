"""One question answered by several estimators side by side on the same rows, with its
negative controls: the unit a ``kind = "causal"`` results file holds per outcome column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ketaweight.causal.result import CausalResult, summarise
from ketaweight.causal.sensitivity import NegativeControl
from ketaweight.core.protocol import Result
from ketaweight.core.summary import Summary


@dataclass(frozen=True)
class CausalAnalysis(Result):
    """``question`` in words, one estimate per method (in the order run), the negative controls."""

    question: str | None
    estimates: tuple[CausalResult, ...]
    negative_controls: tuple[NegativeControl, ...] = ()

    @classmethod
    def of(cls, results: Sequence[CausalResult], negative_controls: Sequence[NegativeControl] = ()) -> CausalAnalysis:
        question = (f"effect of {results[0].treatment} on {results[0].outcome} ({results[0].estimand})"
                    if results else None)
        return cls(question, tuple(results), tuple(negative_controls))

    def estimate(self, method: str) -> CausalResult | None:
        """The estimate of ``method``, or None when that estimator did not run."""
        return next((r for r in self.estimates if r.method == method), None)

    def plot(self) -> Any:
        """A forest plot of the estimates with their CIs (the crude difference in orange); a
        :class:`ketaweight.core.figures.Figure` (``.figure`` is the matplotlib figure, ``.save(path)``)."""
        from ketaweight.core import figures  # matplotlib only when a plot is asked for

        est = self.estimates
        unit = est[0].outcome if est else ""
        return figures.forest_plot([e.method for e in est], [e.estimate for e in est], [e.ci_low for e in est],
                                   [e.ci_high for e in est], unit=unit, highlight=[e.method == "crude" for e in est],
                                   alt=f"Forest plot: {self.question}, estimators side by side with their CIs")

    def summary(self) -> Summary:
        s = summarise(self.estimates)
        return Summary(s.title, s.header, s.rows, (*s.notes, *(nc.interpretation for nc in self.negative_controls)))
