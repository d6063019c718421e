"""Names that more than one layer must agree on, declared once.

``Method`` lists the estimators a study may name in ``[analysis] methods``; the study spec (in
``study/``) validates against it and the estimator registry (``causal.runner.ESTIMATORS``, a layer
above) must register exactly these names (checked at import and by a test), so a typo in a study
file fails at load, naming the file and key.
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["crude", "standardization", "ipw", "aipw", "tmle", "g-estimation"]
METHODS: tuple[str, ...] = get_args(Method)
"""Estimator method names, in the order results are reported."""

DEFAULT_METHODS: tuple[str, ...] = ("crude", "standardization", "ipw", "aipw", "g-estimation")
"""The estimators run when none are named (TMLE is opt-in: ``methods = [..., "tmle"]``)."""

Learner = Literal["linear", "stacked", "augmented"]
LEARNERS: tuple[str, ...] = get_args(Learner)
"""Nuisance-model choices of the doubly robust estimators (``causal.learners``; checked at import)."""

PropensityCalibration = Literal["none", "logistic"]
PROPENSITY_CALIBRATIONS: tuple[str, ...] = get_args(PropensityCalibration)
"""Whether the doubly robust estimators recalibrate the cross-fitted propensity (``causal.learners.calibrate_logit``):
no, or by a logistic regression of the treatment on its logit (Platt scaling)."""

CalibrationInteractions = Literal["none", "records", "all"]
"""Which predictors of the mediators' regression calibration also enter times the treatment
(``mechanisms.calibration``): none (one pooled model), the consumer records, or all (one model per arm)."""

BootstrapInterval = Literal["normal", "percentile"]
"""How a CI is formed from bootstrap replicates (``mechanisms.effects``): estimate ± z·SE, or their percentiles."""

TrimRule = Literal["none", "common-support", "crump", "fixed"]
TRIM_RULES: tuple[str, ...] = get_args(TrimRule)
"""Common-support trimming rules (``causal.positivity``; checked at import)."""

MEASUREMENT_DESIGNS: tuple[str, ...] = ("clinic", "research", "substudy")
"""How the simulator records mediators: as a clinic would (consumer wearables, food app for some
patients), as a research study (noise-free weekly records for everyone), or as a clinic with a
research-grade validation substudy of 10% of patients (reference-method intake and expenditure)."""

SYNTHETIC_FAERS_REPORTS = 60_000
"""Size of the demo's synthetic FAERS quarter (a real quarter has about 400,000 reports)."""

DEFAULT_CI_LEVEL = 0.95
"""Confidence level of every interval unless a caller says otherwise (``ci_level`` everywhere)."""

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = ("duckdb", "spark")
"""Where a study's rows are selected and its analysis table built (``--engine``): the DuckDB store
(default) or canonical Parquet tables on Spark SQL, from the same SQL (docs/scale.md)."""
