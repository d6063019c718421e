"""The one interface of every estimator: keyword-only settings, data in ``fit()``, a frozen result.

As in scikit-learn, constructing an estimator does no work and no validation; ``fit()``
validates every setting against one declared table and reports all problems at once.  The
variance method is a setting, stored in the result and described there in words.

Bootstrap (on request): rows are resampled with replacement ``n_bootstrap`` times; every
replicate refits every nuisance model.  Replicate r draws from
``numpy.random.default_rng(SeedSequence(seed).spawn(n_bootstrap)[r])``, so the replicates
do not depend on how many workers ran them, nor where: with ``scheduler`` set the replicates run
on a Dask cluster (:func:`ketaweight.core.replicates.run_replicates`) and give the same numbers to
the last digit.  SE = SD of the replicate estimates; the CI is
the percentile interval (Efron & Tibshirani 1993).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from ketaweight.causal.data import AnalysisData, as_analysis_data
from ketaweight.causal.diagnostics import WarningLog, diagnose
from ketaweight.causal.result import CausalResult
from ketaweight.causal.evalue import evalue_difference
from ketaweight.causal.spec import AnalysisSpec, OnFailure, Thresholds
from ketaweight.causal.weights import FittedModel, ModelFacts
from ketaweight.core.errors import InputError, Location
from ketaweight.core.replicates import run_replicates, spawn_seeds

Variance = Literal["sandwich", "fixed-weights", "model", "bootstrap"]


@dataclass(frozen=True)
class Fitted:
    """What an estimator's ``_fit`` hands back to the common machinery.

    ``estimate`` (outcome units); ``se`` (NaN when only the point was asked for);
    ``variance_text`` the analytic variance in words; ``propensity`` e(L) per row for the
    overlap summary; ``models`` the nuisance fits to report; ``balance_weights`` the
    treatment weights for the weighted SMDs; ``used_weights`` the weights the estimator
    averages with (None if none).
    """

    estimate: float
    se: float
    variance_text: str
    propensity: np.ndarray
    models: Sequence[FittedModel | ModelFacts]
    balance_weights: np.ndarray
    used_weights: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def n_workers(n_jobs: int) -> int:
    """Worker count: ``-1`` means every core, otherwise at least one."""
    return max(1, os.cpu_count() or 1) if n_jobs == -1 else max(1, n_jobs)


@dataclass(frozen=True, kw_only=True)
class Estimator(ABC):
    """Base of every estimator.

    Settings (all keyword-only):

    variance:
        ``"sandwich"`` (influence function / stacked estimating equations; default),
        ``"bootstrap"``, and per estimator ``"fixed-weights"`` or ``"model"``.
    ci_level:
        Confidence level of the interval, in (0, 1).
    n_bootstrap:
        Bootstrap replicates when ``variance="bootstrap"``.
    seed:
        Seeds the bootstrap and cross-fitting folds; results are reproducible from
        (data, spec, seed).
    n_jobs:
        Worker threads for the bootstrap; ``-1`` uses every core.
    scheduler:
        Where bootstrap replicates run: ``None`` (this process, ``n_jobs`` threads), ``"local:N"``
        (a Dask LocalCluster of N processes) or a Dask scheduler address (docs/scale.md).  Not a
        statistical setting: the results are the same wherever they ran, and it is not recorded.
    thresholds:
        Diagnostic thresholds (:class:`~ketaweight.causal.spec.Thresholds`).
    on_failure:
        ``"warn"`` (default) or ``"raise"``: a failed diagnostic raises
        :class:`~ketaweight.core.errors.NumericalError` instead of warning.
    """

    method: ClassVar[str]
    variances: ClassVar[tuple[str, ...]] = ("sandwich", "bootstrap")
    adjusted: ClassVar[bool] = True
    estimands: ClassVar[tuple[str, ...]] = ("ATE", "ATT", "ATO")

    variance: Variance = "sandwich"
    ci_level: float = 0.95
    n_bootstrap: int = 1000
    seed: int = 0
    n_jobs: int = -1
    scheduler: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    on_failure: OnFailure = "warn"

    # -- validation -----------------------------------------------------------------------
    def _problems(self) -> list[str]:
        """Every invalid setting, as messages (subclasses extend)."""
        out = []
        if self.variance not in self.variances:
            out.append(f"variance={self.variance!r} is not one of {list(self.variances)} for {self.method}")
        if not (isinstance(self.ci_level, float) and 0 < self.ci_level < 1):
            out.append(f"ci_level={self.ci_level!r} must be a float in (0, 1), e.g. 0.95")
        if not (isinstance(self.n_bootstrap, int) and self.n_bootstrap >= 2):
            out.append(f"n_bootstrap={self.n_bootstrap!r} must be an integer >= 2")
        if not (isinstance(self.n_jobs, int) and (self.n_jobs == -1 or self.n_jobs >= 1)):
            out.append(f"n_jobs={self.n_jobs!r} must be -1 (all cores) or a positive integer")
        if self.on_failure not in ("warn", "raise"):
            out.append(f"on_failure={self.on_failure!r} must be 'warn' or 'raise'")
        return out

    def _validate(self, data: AnalysisData) -> None:
        problems = self._problems()
        if data.spec.estimand not in self.estimands:
            problems.append(f"estimand {data.spec.estimand!r} is not supported by {self.method}; "
                            f"choose one of {list(self.estimands)}")
        if problems:
            raise ValueError(f"{type(self).__name__}: " + "; ".join(problems))
        n1 = int(data.a[data.observed].sum())
        n0 = int(data.n_observed - n1)
        if n1 < 1 or n0 < 1:
            raise InputError(
                [
                    (
                        Location("table", column=data.spec.treatment),
                        f"needs at least one treated and one untreated row with an observed outcome; "
                        f"found {n1} treated and {n0} untreated after {len(data.attrition)} attrition step(s)",
                    )
                ]
            )

    def settings(self) -> dict[str, Any]:
        """The settings as a plain dict (learners by class name)."""
        out: dict[str, Any] = {"method": self.method}
        for f in fields(self):
            if f.name == "scheduler":  # where replicates ran changes no number (module docstring)
                continue
            value = getattr(self, f.name)
            if isinstance(value, Thresholds):
                value = asdict(value)
            elif hasattr(value, "get_params"):
                value = type(value).__name__
            out[f.name] = value
        return out

    # -- fitting --------------------------------------------------------------------------
    def fit(self, table: pd.DataFrame | AnalysisData, spec: AnalysisSpec | None = None) -> CausalResult:
        """Estimate the effect on ``table`` as ``spec`` says; returns a frozen :class:`CausalResult`.

        ``table`` may also be an :class:`AnalysisData` already prepared (``spec`` then ignored),
        which is how :func:`~ketaweight.causal.runner.run_estimators` avoids re-preparing.
        """
        data = as_analysis_data(table, spec, "fit")
        self._validate(data)
        log = WarningLog(self.on_failure)
        fitted = self._fit(data, log, analytic=self.variance != "bootstrap")
        diagnostics = diagnose(
            data,
            fitted.propensity,
            fitted.models,
            fitted.balance_weights,
            fitted.used_weights,
            self.thresholds,
            log,
            adjusted=self.adjusted,
        )
        diagnostics["adjusted"] = self.adjusted
        diagnostics.update(fitted.extra)
        z = stats.norm.ppf(0.5 + self.ci_level / 2)
        if self.variance == "bootstrap":
            reps = self._bootstrap(data)
            ok = reps[np.isfinite(reps)]
            se = float(np.std(ok, ddof=1)) if ok.size > 1 else float("nan")
            alpha = 1 - self.ci_level
            lo, hi = (np.quantile(ok, [alpha / 2, 1 - alpha / 2]) if ok.size else (math.nan, math.nan))
            variance_text = (
                f"nonparametric bootstrap, {self.n_bootstrap} replicates (seed {self.seed}), every nuisance "
                f"model refitted per replicate; SE = SD of replicates, CI = percentile interval"
            )
            diagnostics["bootstrap"] = {
                "replicates": self.n_bootstrap,
                "failed": int(reps.size - ok.size),
                "seed": self.seed,
            }
        else:
            se = fitted.se
            lo, hi = fitted.estimate - z * se, fitted.estimate + z * se
            variance_text = fitted.variance_text
        spec_ = data.spec
        return CausalResult(
            treatment=spec_.treatment,
            outcome=spec_.outcome,
            estimand=spec_.estimand,
            method=self.method,
            estimate=float(fitted.estimate),
            se=float(se),
            ci_low=float(lo),
            ci_high=float(hi),
            n=data.n,
            variance=variance_text,
            diagnostics=diagnostics,
            warnings=tuple(log.messages),
            ci_level=self.ci_level,
            sensitivity=evalue_difference(float(fitted.estimate), float(lo), float(hi), data.outcome_sd),
            settings={"estimator": self.settings(), "spec": spec_.to_dict()},
        )

    @abstractmethod
    def _fit(self, data: AnalysisData, log: WarningLog, *, analytic: bool) -> Fitted:
        """Point estimate, and when ``analytic`` its analytic SE, plus diagnostic inputs."""

    def _point(self, data: AnalysisData) -> float:
        """The point estimate alone, as a bootstrap replicate needs it (estimators whose
        diagnostics cost extra model fits override this to skip them)."""
        return self._fit(data, WarningLog("warn", silent=True), analytic=False).estimate

    # -- bootstrap ------------------------------------------------------------------------
    def _bootstrap(self, data: AnalysisData) -> np.ndarray:
        """Replicate estimates (NaN where a replicate could not be estimated)."""
        with threadpool_limits(limits=1):
            reps = run_replicates(_bootstrap_point, spawn_seeds(self.seed, self.n_bootstrap), shared=(self, data),
                                  scheduler=self.scheduler, workers=n_workers(self.n_jobs), pool="threads",
                                  name=f"bootstrap-{self.method}")
        return np.asarray(reps, dtype=float)


def _bootstrap_point(shared: tuple[Estimator, AnalysisData], r: int, seed: np.random.SeedSequence) -> float:
    """Bootstrap replicate ``r``: the point estimate on ``n`` rows drawn with replacement by ``seed``."""
    estimator, data = shared
    rows = np.random.default_rng(seed).integers(0, data.n, data.n)
    try:
        with threadpool_limits(limits=1):  # also on a Dask worker: one BLAS thread per replicate
            return float(estimator._point(data.subset(rows)))
    except (InputError, ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        return float("nan")
