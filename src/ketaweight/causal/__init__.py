"""The causal engine: estimators of a point-treatment effect on a plain analysis table.

Give it a table with a 0/1 treatment column, an outcome column and covariates
(:class:`AnalysisSpec`), choose estimators, and get frozen results with diagnostics and
sensitivity analyses.  Hernán & Robins' NHEFS example (quitting smoking → weight change, kg):

>>> from causaldata import nhefs
>>> from ketaweight.causal import AnalysisSpec, run_estimators
>>> spec = AnalysisSpec(treatment="qsmk", outcome="wt82_71", missing_outcome="censor",
...                     covariates=("sex", "race", "age", "education", "smokeintensity", "smokeyrs",
...                                 "exercise", "active", "wt71"),
...                     categorical=("education", "exercise", "active"),
...                     squared=("age", "smokeintensity", "smokeyrs", "wt71"))
>>> results = run_estimators(nhefs.load_pandas().data, spec)
>>> [(r.method, round(r.estimate, 1)) for r in results]  # the book: crude 2.5, IPW with censoring weights 3.5
[('crude', 2.5), ('standardization', 3.4), ('ipw', 3.5), ('aipw', 3.4), ('g-estimation', 3.4)]

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
from ketaweight.causal.runner import default_estimators, run_estimators
from ketaweight.causal.evalue import evalue_difference, evalue_rr
from ketaweight.causal.sensitivity import NegativeControl, negative_control
from ketaweight.causal.spec import AnalysisSpec, Thresholds
from ketaweight.causal.standardization import Standardization
from ketaweight.causal.positivity import Trimming, trim
from ketaweight.causal.tmle import TMLE

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
    "TMLE",
    "Trimming",
    "summarise",
    "Thresholds",
    "evalue_difference",
    "evalue_rr",
    "negative_control",
    "default_estimators",
    "prepare",
    "run_estimators",
    "trim",
]
