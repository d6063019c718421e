"""What to analyse in a table: the column roles, the estimand and the diagnostic thresholds.

An :class:`AnalysisSpec` is the plain-table counterpart of a study spec: the study/cohort
code builds one from its TOML and passes the analysis table with it, and the CLI builds one
from its options.  It is frozen and serialises to a dict for the results file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Estimand = Literal["ATE", "ATT", "ATO"]
ESTIMANDS: tuple[str, ...] = ("ATE", "ATT", "ATO")
MissingOutcome = Literal["exclude", "censor"]
OnFailure = Literal["warn", "raise"]


@dataclass(frozen=True, kw_only=True)
class AnalysisSpec:
    """Column roles for one analysis.

    Attributes
    ----------
    treatment:
        0/1 column (1 = treated, e.g. started a ketamine course; NHEFS: ``qsmk``).
    outcome:
        Numeric outcome column, in its own units (e.g. weight change in kg).
    covariates:
        Baseline confounders used by the treatment and outcome models.
    categorical:
        Covariates entered as level indicators (levels ordered by value).
    squared:
        Numeric covariates that also enter squared.
    censor:
        Optional 0/1 column, 1 = lost to follow-up (outcome unobserved).  Censored rows keep
        their covariates and are re-weighted by inverse probability of censoring weights
        (IPCW) or standardised over, depending on the estimator.
    censor_covariates:
        Covariates of the censoring model (the treatment always enters too); default: the
        same as ``covariates``.
    missing_outcome:
        What a missing outcome in a row not marked censored means: ``"exclude"`` drops the
        row with a counted attrition step; ``"censor"`` treats it as lost to follow-up.
    estimand:
        ``"ATE"`` (average effect in everyone), ``"ATT"`` (in the treated) or ``"ATO"`` (the
        overlap-weighted effect E[e(1−e)(Y¹ − Y⁰)]/E[e(1−e)]: the patients who could have gone
        either way, Li, Morgan & Zaslavsky 2018; IPW and the doubly robust estimators).
    """

    treatment: str
    outcome: str
    covariates: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    squared: tuple[str, ...] = ()
    censor: str | None = None
    censor_covariates: tuple[str, ...] | None = None
    missing_outcome: MissingOutcome = "exclude"
    estimand: Estimand = "ATE"

    def __post_init__(self) -> None:
        for name in ("covariates", "categorical", "squared", "censor_covariates"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        problems = []
        if self.estimand not in ESTIMANDS:
            problems.append(f"estimand must be one of {list(ESTIMANDS)}, got {self.estimand!r}")
        if self.missing_outcome not in ("exclude", "censor"):
            problems.append(f"missing_outcome must be 'exclude' or 'censor', got {self.missing_outcome!r}")
        roles = {self.treatment, self.outcome} | ({self.censor} if self.censor else set())
        clash = sorted(roles & set(self.covariates))
        if clash:
            problems.append(f"{clash} cannot be both a covariate and the treatment/outcome/censor column")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def censoring_covariates(self) -> tuple[str, ...]:
        """Covariates of the censoring model (``censor_covariates`` or ``covariates``)."""
        return self.covariates if self.censor_covariates is None else self.censor_covariates

    @property
    def uses_censoring(self) -> bool:
        """Whether some rows may be censored (a censor column or ``missing_outcome='censor'``)."""
        return self.censor is not None or self.missing_outcome == "censor"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the results file."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """When a diagnostic becomes a warning (or, with ``on_failure='raise'``, an error).

    ``smd``: largest acceptable |standardized mean difference| after weighting (0.1,
    Austin 2009).  ``outside_support``: largest acceptable share of rows whose propensity
    lies outside the common support [max of arm minima, min of arm maxima] (0.05).
    ``extreme_weight``: largest acceptable ratio of the maximum weight to the mean weight
    (20).  ``min_ess_share``: smallest acceptable Kish effective sample size as a share of n
    (0.1).
    """

    smd: float = 0.1
    outside_support: float = 0.05
    extreme_weight: float = 20.0
    min_ess_share: float = 0.1

    def to_dict(self) -> dict[str, float]:
        """Plain dict for the results file."""
        return asdict(self)


def as_tuple(values: Sequence[str] | str | None) -> tuple[str, ...]:
    """Normalise a comma-separated string or sequence of column names to a tuple."""
    if values is None:
        return ()
    if isinstance(values, str):
        return tuple(v.strip() for v in values.split(",") if v.strip())
    return tuple(values)


