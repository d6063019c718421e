"""The causal engine: estimators of a point-treatment effect on a plain analysis table.

Give it a table with a 0/1 treatment column, an outcome column and covariates
(:class:`AnalysisSpec`), choose estimators, and get frozen results with diagnostics and
sensitivity analyses::

    from ketaweight.causal import AnalysisSpec, IPW, run_estimators
    spec = AnalysisSpec(treatment="qsmk", outcome="wt82_71", covariates=("sex", "age"))
    results = run_estimators(table, spec)

See ``docs/causal.md`` for the methods and ``docs/results-schema.md`` for the JSON form.
"""

from ketaweight.causal.aipw import AIPW
from ketaweight.causal.base import Estimator
from ketaweight.causal.crude import Crude
from ketaweight.causal.data import AnalysisData, prepare
from ketaweight.core.attrition import AttritionStep
from ketaweight.causal.gestimation import GEstimation
from ketaweight.causal.ipw import IPW
from ketaweight.causal.result import CausalResult, summarise
from ketaweight.causal.evalue import evalue_difference, evalue_rr
from ketaweight.causal.sensitivity import NegativeControl, negative_control
from ketaweight.causal.spec import AnalysisSpec, Thresholds
from ketaweight.causal.standardization import Standardization

__all__ = [
    "AIPW",
    "IPW",
    "AnalysisData",
    "AnalysisSpec",
    "AttritionStep",
    "CausalResult",
    "Crude",
    "Estimator",
    "GEstimation",
    "NegativeControl",
    "Standardization",
    "summarise",
    "Thresholds",
    "evalue_difference",
    "evalue_rr",
    "negative_control",
    "prepare",
]
