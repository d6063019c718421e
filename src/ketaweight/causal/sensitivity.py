"""Negative-control outcomes: the study's estimator re-run on an outcome the treatment cannot
affect but that shares the confounding (Lipsitch, Tchetgen Tchetgen & Cohen 2010).  E-values
are in :mod:`ketaweight.causal.evalue`."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd

from ketaweight.causal.base import Estimator
from ketaweight.causal.data import prepare
from ketaweight.causal.positivity import Trimming, trim
from ketaweight.causal.result import CausalResult
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.core.protocol import Result
from ketaweight.core.summary import Summary


@dataclass(frozen=True)
class NegativeControl(Result):
    """An estimator run on a negative-control outcome: an outcome the treatment cannot
    affect but that shares the confounding (Lipsitch, Tchetgen Tchetgen & Cohen 2010).

    A CI that excludes 0 signals residual confounding or bias in the main analysis.
    """

    outcome: str
    result: CausalResult
    covers_null: bool | None  # None: the control could not be estimated (no finite estimate and CI)
    interpretation: str

    def summary(self) -> Summary:
        """The control's estimate beside its reading."""
        s = self.result.summary()
        return Summary(f"Negative control: {self.outcome}", s.header, s.rows, (self.interpretation, *s.notes))


def negative_control(estimator: Estimator, table: pd.DataFrame, spec: AnalysisSpec, outcome: str, *,
                     trimming: Trimming | None = None) -> NegativeControl:
    """Run ``estimator`` with ``outcome`` swapped for the negative-control column ``outcome`` (on the
    population the main analysis used: ``trimming`` as there)."""
    swapped = replace(spec, outcome=outcome)
    result = (estimator.fit(table, swapped) if trimming is None
              else estimator.fit(trim(prepare(table, swapped), trimming)))
    if not all(math.isfinite(v) for v in (result.estimate, result.ci_low, result.ci_high)):
        text = (f"the {result.method} estimate on the negative control '{outcome}' could not be estimated (no finite "
                "estimate and CI: too few patients or no overlap); it says nothing about residual confounding")
        return NegativeControl(outcome, result, None, text)
    covers = bool(result.ci_low <= 0 <= result.ci_high)
    if covers:
        text = (
            f"the {result.method} estimate on the negative control '{outcome}' is {result.estimate:.3g} "
            f"({result.ci_low:.3g}, {result.ci_high:.3g}); its CI covers 0: no sign of residual confounding"
        )
    else:
        text = (
            f"the {result.method} estimate on the negative control '{outcome}' is {result.estimate:.3g} "
            f"({result.ci_low:.3g}, {result.ci_high:.3g}); its CI excludes 0: residual confounding or bias is likely"
        )
    return NegativeControl(outcome, result, covers, text)
