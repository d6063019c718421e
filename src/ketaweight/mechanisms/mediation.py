"""Mediation through several ordered mediators: interventional effects by g-computation.

The article names three mechanisms by which ketamine could move weight: appetite suppression,
altered metabolism, and improved mood → more activity.  Each *pathway* is a group of measured
mediators (e.g. mood: MADRS change, then activity change), measured after time zero and before
the outcome.  Mediators are ordered (pathways in the order given, mediators within a pathway in
order); each may depend on the treatment, the baseline confounders L and every earlier mediator.

**Models** (linear, fitted by weighted least squares on the rows with the outcome and every
mediator observed):

    Z_q = γ_q'(1, L, A, Z_1, …, Z_{q−1}),   M_k = δ_k'(1, L, A, Z, M_1, …, M_{k−1}) + ε_k,
    Y = β'(1, L, A, [Z], M, A·M) + ε,

or, with an **energy balance** (``energy_balance``: factors s_k in kcal/d of stored energy per unit
of mediator k, e.g. intake 0.76, non-activity and activity expenditure −1),

    Y = β'(1, L, A, [Z]) + θ·E + θ_A·A·E,   E = Σ_k s_k·M_k,

one kcal-to-kg coefficient θ for every energy mediator (a kcal is a kcal: Hall's model turns stored
energy into weight whatever its source), and no outcome coefficient for the other mediators (e.g.
the MADRS change), which act on weight only through the energy mediators after them.  The factor
0.76 for intake is what Hall et al. (2011, *Lancet* 378:826) leave of an intake change once the
thermic effect of feeding (10 %) and adaptive thermogenesis (14 %) have taken theirs.  It ties a
small pathway whose mediator barely varies apart from course intensity (the drug's thermogenesis)
to the coefficient the large ones estimate precisely; it needs the energy mediators measured well
(research-grade or calibrated on a substudy): with attenuated consumer-grade intake, θ is pulled
towards 0 for every pathway at once.

with Z the declared intermediate confounders (treatment-affected common causes of mediators, e.g.
the number of sessions, which moves both mood and intake), set at each pathway's level in that
pathway's mediator models (a fresh draw of Z per pathway, independent of earlier pathways'
mediators); Z enters the outcome model (at the outcome's treatment level) only when declared to
act on the outcome other than through the mediators (``intermediate_in_outcome``).

**Estimands** (interventional effects; VanderWeele, Vansteelandt & Robins 2014, *Epidemiology*
25:300; Vansteelandt & Daniel 2017, *Epidemiology* 28:258).  Write Ψ(a_Y; a_1, …, a_J) for the
mean outcome when the treatment is set to a_Y in the outcome model and pathway j's mediators are
drawn from their distribution given L (and earlier mediators) with the treatment set to a_j.
Then, for pathways j = 1..J,

* total effect      TE  = Ψ(1; 1, …, 1) − Ψ(0; 0, …, 0)
* via pathway j     IE_j = Ψ(1; 1, …, 1) − Ψ(1; 1, …, a_j = 0, …, 1)
* direct remainder  DE  = Ψ(1; 0, …, 0) − Ψ(0; 0, …, 0)
* interaction       TE − DE − Σ_j IE_j

IE_j is "course minus course with pathway j's mediators shifted to their no-course
distribution": the same contrast as the simulator's pathway truth ("course minus course with
that pathway switched off"), with downstream mediators of later pathways responding (so mood →
intake counts as mood).  Because every model is linear in the mediators, the Monte-Carlo
integral of g-computation over mediator draws equals the plug-in of conditional means, which is
computed exactly (no simulation noise): Ψ is the outcome model evaluated at the mean of L and the
propagated mediator means.  With these models Ψ is affine in (a_1, …, a_J), so the interaction
term is 0 by construction; it is reported so that the decomposition is visibly complete.

**Variance**: nonparametric bootstrap refitting every model (and the censoring model) per
replicate, seeded as the engine's bootstrap; all models of a replicate come from one weighted
Gram matrix of [L, A, Z, M, A·M, Y], so a replicate at n = 100,000 costs milliseconds.  The CI is
normal-theory by default (estimate ± z·bootstrap SE), ``interval="percentile"`` the percentile
interval: with a calibrated substudy the bootstrap replicates sit 0.3–0.4 SE to one side of the
estimate (the calibration refitted on resampled substudy rows), which puts percentile intervals
off-centre while the bootstrap SE matches the estimates' spread (docs/validation.md).

**Missing mediators or outcome**: rows lacking any are weighted by inverse probability of being
complete, P(complete | A, L, censoring covariates), logistic (Robins, Rotnitzky & Zhao 1994);
the standardisation averages L over every analysed row.

The identifying assumptions are written into every result (:data:`ASSUMPTIONS`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from ketaweight.causal.design import build_design, numeric_by_value
from ketaweight.mechanisms.calibration import Calibration
from ketaweight.mechanisms.effects import INTERVAL_TEXT, bootstrap_replicates, bootstrap_summary
from ketaweight.causal.glm import fit_logistic, solve_spd, weighted_gram
from ketaweight.causal.result import CausalResult
from ketaweight.core.protocol import InMemory, Result
from ketaweight.core.summary import Summary
from ketaweight.core.errors import ConvergenceWarning, InputError, KetaweightWarning, Location
from ketaweight.core.vocabulary import BootstrapInterval, CalibrationInteractions

ENERGY_BALANCE_ASSUMPTION = (
    "Energy-balance outcome model: weight changes only through the energy mediators' balance E = Σ s_k·M_k, with "
    "one kcal-to-kg coefficient for all of them (the factors s_k say how much of each unit is stored, e.g. intake "
    "0.76 after the thermic effect and adaptive thermogenesis); other mediators act only through them.  Energy "
    "changes that differ in timing within the follow-up count alike (a summary mediator cannot tell them apart).")
"""Added to :data:`ASSUMPTIONS` in results of an energy-balance outcome model."""

CALIBRATION_TEXT = {"none": "one pooled model, ", "records": "the consumer records also times the treatment, ",
                    "all": "one model per treatment arm, "}
"""How the calibration models treat the arms, as the result's diagnostics say it."""

ASSUMPTIONS = (
    "No unmeasured confounding of treatment and outcome given the baseline covariates L.",
    "No unmeasured confounding of treatment and each mediator given L.",
    "No unmeasured confounding of each mediator and the outcome given treatment, L and earlier mediators "
    "(post-treatment confounders are allowed only if measured: earlier mediators, or intermediate confounders "
    "declared to act on the outcome).",
    "No unmeasured confounding between mediators given treatment, L, the intermediate confounders (course intensity) "
    "and earlier mediators.",
    "Positivity: every treatment level possible at every L.",
    "Correct models: linear mediator and outcome models (the outcome model allows treatment × mediator interaction).",
    "The pathway order is causal: later mediators may respond to earlier ones, never the reverse.",
    "Measured mediators capture their pathway without error: what a pathway does through something unmeasured, or "
    "what noisy records (e.g. consumer-grade intake logs) fail to capture, appears in the direct remainder.",
    "Mediators are changes from a steady-state baseline: patients whose baseline is moving (e.g. a weight programme in "
    "progress, holiday eating) are excluded by the restriction.",
    "Missing mediators/outcome are missing at random given treatment, L and the censoring covariates.",
    "Interventional effects: contrasts of shifting a mediator's distribution, not of fixing each person's mediator "
    "(no cross-world assumption needed; they equal natural effects only without intermediate confounding).",
)
"""The identifying assumptions, written into every mediation result."""


class MediationWarning(KetaweightWarning):
    """A mediation result needs care (failed bootstrap replicates, few complete rows)."""


@dataclass(frozen=True)
class Pathway:
    """A named pathway and its mediator columns in causal order (units of the columns)."""

    name: str
    mediators: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mediators", tuple(self.mediators))
        if not self.mediators:
            raise ValueError(f"pathway {self.name!r} has no mediators; leave it out instead")


@dataclass(frozen=True, kw_only=True)
class MediationSpec:
    """Column roles of a mediation analysis.

    treatment (0/1), outcome (numeric), covariates/categorical/squared (baseline confounders, as
    :class:`~ketaweight.causal.spec.AnalysisSpec`), pathways (ordered), censor_covariates (extra
    columns of the model for being complete, e.g. an early post-baseline score; default none),
    intermediate (treatment-affected confounders that are not a mechanism, e.g. the number of
    sessions or cumulative dose: they enter each mediator model at that mediator's pathway level,
    so mediator-mediator associations are free of them), intermediate_in_outcome (also enter the
    outcome model, at the outcome's treatment level; default True: course intensity acting on the
    outcome through something unmeasured, or through what noisy mediators miss, then joins the
    direct remainder instead of being credited to a mediator that follows course intensity — at
    the price that the mediators' effects are identified only from their variation beyond Z;
    set False only for well-measured mediators),
    exclude_if (restriction: rows with a nonzero value in any of these columns are left out,
    e.g. patients already in a weight programme at time zero, whose baseline week is no steady
    state; counted as an attrition step), validation (error-prone mediator → its reference-method
    column, recorded for a validation substudy only: the mediator is regression-calibrated on the
    substudy, :mod:`ketaweight.mechanisms.calibration`), calibration_covariates (extra predictors of
    the calibration models, e.g. the app's baseline week that every change is taken from),
    energy_balance (mediator → kcal/d of stored energy per unit of the mediator, e.g. intake change
    0.76, non-activity and activity expenditure change −1; empty, the default, for a free outcome
    coefficient per mediator): the outcome model becomes the energy balance — these mediators share one
    kcal-to-kg coefficient, the other mediators act only through them (module docstring),
    calibration_interactions (which calibration predictors also enter times the treatment: ``"records"``,
    the default, the mediators and calibration covariates; ``"all"`` every predictor, one model per arm;
    ``"none"`` one pooled line; what the outcome model's treatment × mediator terms need when the measurement
    error differs by arm, e.g. under-reporting that scales with the drug's intake change;
    :mod:`ketaweight.mechanisms.calibration`).
    """

    treatment: str
    outcome: str
    covariates: tuple[str, ...]
    pathways: tuple[Pathway, ...]
    categorical: tuple[str, ...] = ()
    squared: tuple[str, ...] = ()
    censor_covariates: tuple[str, ...] = ()
    intermediate: tuple[str, ...] = ()
    intermediate_in_outcome: bool = True
    exclude_if: tuple[str, ...] = ()
    validation: dict[str, str] = field(default_factory=dict)
    calibration_covariates: tuple[str, ...] = ()
    energy_balance: dict[str, float] = field(default_factory=dict)
    calibration_interactions: CalibrationInteractions = "records"

    def __post_init__(self) -> None:
        for name in ("covariates", "categorical", "squared", "censor_covariates", "pathways", "intermediate", "exclude_if",
                     "calibration_covariates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "validation", dict(self.validation))
        object.__setattr__(self, "energy_balance", {k: float(v) for k, v in self.energy_balance.items()})
        mediators = self.mediators
        problems = []
        stray = sorted(set(self.validation) - set(mediators))
        if stray:
            problems.append(f"validation names {stray}, which are not mediators of the pathways")
        stray = sorted(set(self.energy_balance) - set(mediators))
        if stray:
            problems.append(f"energy_balance names {stray}, which are not mediators of the pathways")
        if self.energy_balance and (len(self.energy_balance) < 2
                                    or not all(np.isfinite(v) and v != 0 for v in self.energy_balance.values())):
            problems.append(f"energy_balance={self.energy_balance} must give at least two mediators each a finite, "
                            "nonzero factor (kcal/d of energy balance per unit of the mediator)")
        if self.energy_balance:  # a pathway acts through its own or later mediators (which may respond to it)
            idle = [p.name for j, p in enumerate(self.pathways)
                    if not {m for later in self.pathways[j:] for m in later.mediators} & set(self.energy_balance)]
            if idle:
                problems.append(f"with an energy balance only its mediators act on the outcome, and no energy-balance "
                                f"mediator is in or after pathway(s) {idle}: they would carry 0 by construction; add "
                                "their energy mediator to energy_balance or leave energy_balance empty")
        if len(set(mediators)) != len(mediators):
            problems.append(f"a mediator is listed twice: {list(mediators)}")
        clash = sorted(set(mediators) & ({self.treatment, self.outcome} | set(self.covariates) | set(self.intermediate)))
        if clash:
            problems.append(f"{clash} cannot be both a mediator and the treatment/outcome/a covariate")
        if not self.pathways:
            problems.append("at least one pathway is needed")
        constant = sorted(set(self.exclude_if) & set(self.covariates))
        if constant:
            problems.append(f"{constant} are both restriction columns (exclude_if) and covariates: after the restriction "
                            "they are constant; leave them out of the covariates")
        reserved = sorted({p.name for p in self.pathways} & {"total", "direct", "interaction"})
        if reserved or len({p.name for p in self.pathways}) != len(self.pathways):
            problems.append(f"pathway names must be unique and not 'total', 'direct' or 'interaction': {reserved}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def mediators(self) -> tuple[str, ...]:
        """Every mediator in causal order."""
        return tuple(m for p in self.pathways for m in p.mediators)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MediationResult(Result):
    """Total, direct, per-pathway and interaction effects (each a :class:`CausalResult`, outcome
    units), the assumptions, and diagnostics (rows, models, the treatment's effect on each mediator)."""

    total: CausalResult
    direct: CausalResult
    pathways: dict[str, CausalResult]
    interaction: CausalResult
    assumptions: tuple[str, ...]
    diagnostics: dict[str, Any] = field(repr=False)
    warnings: tuple[str, ...] = ()
    row_index: InMemory = field(default=None, repr=False, compare=False)  # pd.Index: the analysed rows of the input table

    @property
    def effects(self) -> list[CausalResult]:
        """Total, direct, each pathway, interaction — in that order."""
        return [self.total, self.direct, *self.pathways.values(), self.interaction]

    def plot(self) -> Any:
        """The total, each pathway, the direct and interaction remainders as a forest plot (a Figure)."""
        from ketaweight.core import figures

        eff = self.effects
        return figures.forest_plot([r.estimand for r in eff], [r.estimate for r in eff], [r.ci_low for r in eff],
                                   [r.ci_high for r in eff], unit=eff[0].outcome,
                                   alt="Mediation: the effect carried by each pathway, with bootstrap CIs")

    def summary(self) -> Summary:
        """Effect, estimate and CI (outcome units), with the assumptions as notes."""
        rows = tuple((r.estimand, f"{r.estimate:.3f}", f"({r.ci_low:.3f}, {r.ci_high:.3f})") for r in self.effects)
        return Summary("Mediation (interventional effects)", ("effect", "estimate", "CI"), rows,
                       (*self.assumptions, *self.warnings))


@dataclass(frozen=True)
class _Arrays:
    x: np.ndarray  # design of L (intercept first, standardised), all analysed rows
    a: np.ndarray
    z: np.ndarray  # intermediate confounders (n, q)
    m: np.ndarray  # mediators (n, k), NaN where missing
    y: np.ndarray
    complete: np.ndarray
    zc: np.ndarray | None  # completeness-model design (None when every row is complete)
    mediator_pathway: np.ndarray  # pathway index of each mediator
    attrition: list[dict[str, Any]]
    row_index: pd.Index  # labels of the analysed rows in the input table
    calibration: Calibration | None = None  # regression calibration on a validation substudy


def _restriction_mask(table: pd.DataFrame, spec: MediationSpec) -> pd.Series:
    """True for the rows the restriction keeps (every ``exclude_if`` column 0 or missing)."""
    if not spec.exclude_if:
        return pd.Series(True, index=table.index)
    return ~table[list(spec.exclude_if)].apply(pd.to_numeric, errors="coerce").fillna(0).ne(0).any(axis=1)


def _arrays(table: pd.DataFrame, spec: MediationSpec) -> _Arrays:
    needed = [spec.treatment, spec.outcome, *spec.covariates, *spec.mediators, *spec.censor_covariates, *spec.intermediate,
              *spec.exclude_if, *spec.validation.values(), *spec.calibration_covariates]
    missing = sorted({c for c in needed if c not in table.columns})
    if missing:
        raise InputError([(Location("table", column=c), "column not found; check the spelling") for c in missing])
    steps = [{"step": "input", "reason": "rows in the table", "n_before": len(table), "n_excluded": 0, "n_after": len(table)}]
    if spec.exclude_if:
        flags = ~_restriction_mask(table, spec)
        steps.append({"step": "restriction", "reason": f"a nonzero value in {list(spec.exclude_if)} (excluded)",
                      "n_before": len(table), "n_excluded": int(flags.sum()), "n_after": int((~flags).sum())})
        table = table.loc[~flags]
    base = [spec.treatment, *spec.covariates, *spec.censor_covariates, *spec.intermediate]
    bad = table[base].isna().any(axis=1)
    frame = table.loc[~bad]
    steps.append({"step": "missing treatment or covariates", "reason": f"a missing value in {base} (excluded)", "n_before": len(table),
                  "n_excluded": int(bad.sum()), "n_after": len(frame)})
    a = numeric_by_value(frame[spec.treatment], spec.treatment)
    if not np.isin(a, (0.0, 1.0)).all():
        raise InputError([(Location("table", column=spec.treatment), "the treatment must be 0/1")])
    y = numeric_by_value(frame[spec.outcome], spec.outcome)
    m = np.column_stack([numeric_by_value(frame[c], c) for c in spec.mediators])
    x = build_design(frame, spec.covariates, categorical=spec.categorical, squared=spec.squared).matrix
    z = np.column_stack([numeric_by_value(frame[c], c) for c in spec.intermediate]) if spec.intermediate else np.empty((len(a), 0))
    calibration = None
    have = np.isfinite(m)
    if spec.validation:
        cols = np.array([spec.mediators.index(c) for c in spec.validation])
        reference = np.column_stack([numeric_by_value(frame[r], r) for r in spec.validation.values()])
        extra_w = (np.column_stack([numeric_by_value(frame[c], c) for c in spec.calibration_covariates])
                   if spec.calibration_covariates else np.empty((len(a), 0)))
        calibration = Calibration.build(x, a, z, m, cols, reference, extra_w,
                                        interactions=spec.calibration_interactions)
        have[:, cols] = calibration.available()
        counts = calibration.substudy_rows().sum(axis=0)
        steps.append({"step": "validation substudy", "reason": "rows with a reference-method value and every calibration "
                      "predictor, per calibrated mediator: " + ", ".join(f"{c} {int(k)}" for c, k in zip(spec.validation, counts)),
                      "n_before": len(frame), "n_excluded": 0, "n_after": len(frame)})
    complete = np.isfinite(y) & have.all(axis=1)
    steps.append({"step": "complete mediators and outcome", "reason": "incomplete rows kept for the covariate "
                  "distribution, re-weighted out of the model fits (IPW for completeness)", "n_before": len(frame),
                  "n_excluded": 0, "n_after": len(frame), "n_complete": int(complete.sum())})
    if complete.sum() < 20 or a[complete].min() == a[complete].max():
        arms = sorted({int(v) for v in a[complete]})
        raise InputError([(Location("table", column=spec.outcome),
                           f"mediation needs at least 20 rows with the outcome and every mediator observed, in both "
                           f"arms; found {int(complete.sum())} (arms {arms}); check that the mediators are recorded "
                           "before the outcome window")])
    zc = None
    if not complete.all():
        extra = build_design(frame, spec.censor_covariates).matrix[:, 1:] if spec.censor_covariates else np.empty((len(a), 0))
        zc = np.column_stack([x, a, extra])
    path_of = np.array([j for j, p in enumerate(spec.pathways) for _ in p.mediators])
    return _Arrays(x, a, z, m, y, complete, zc, path_of, steps, frame.index, calibration)


def _solve_block(gram: np.ndarray, rows: np.ndarray, target: int) -> np.ndarray:
    return solve_spd(gram[np.ix_(rows, rows)], gram[rows, target])


def _outcome_basis(p: int, q: int, k: int, interaction: bool, z_in_outcome: bool,
                   energy: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The outcome model's coefficients on [L, A, Z, M, A·M] as ``basis @ free``, and the index of the energy
    balance's coefficient θ among the free ones (None without an energy balance).

    Z's coefficients are 0 unless ``z_in_outcome``.  Without an energy balance (``energy`` all 0) every mediator
    has its own coefficient (and A·M coefficient).  With one, the outcome model is the energy balance: the
    mediators with a nonzero factor s_k (kcal/d of stored energy per unit of the mediator) enter only through
    E = Σ s_k·M_k, with one coefficient θ (kg per kcal/d; and θ_A on A·E with the interaction), and every other
    mediator (e.g. the MADRS change) acts on the outcome only through the later, energy-balance mediators."""
    n_full = p + 1 + q + k + (k if interaction else 0)
    tied = np.flatnonzero(energy)
    free = [] if len(tied) else list(range(k))
    keep = [*range(p + 1), *(range(p + 1, p + 1 + q) if z_in_outcome else ()), *(p + 1 + q + j for j in free)]
    if interaction:
        keep += [p + 1 + q + k + j for j in free]
    columns = [np.eye(n_full)[:, i] for i in keep]
    energy_column = None
    if len(tied):
        energy_column = len(columns)
        for start in [p + 1 + q, *([p + 1 + q + k] if interaction else [])]:
            column = np.zeros(n_full)
            column[start + tied] = energy[tied]
            columns.append(column)
    return np.column_stack(columns), energy_column


class _Engine:
    """All models of one (re)sample from one weighted Gram matrix of [L, A, Z, M, A·M, Y]."""

    def __init__(self, arr: _Arrays, interaction: bool, z_in_outcome: bool, energy: np.ndarray) -> None:
        self.arr = arr
        p, k, q = arr.x.shape[1], arr.m.shape[1], arr.z.shape[1]
        self.p, self.k, self.q, self.interaction = p, k, q, interaction
        self.z = self._matrix(np.where(np.isfinite(arr.m), arr.m, 0.0))
        self.ia, self.iz = p, np.arange(p + 1, p + 1 + q)
        self.im = np.arange(p + 1 + q, p + 1 + q + k)
        self.iam = np.arange(p + 1 + q + k, p + 1 + q + 2 * k) if interaction else np.arange(0)
        self.iy = self.z.shape[1] - 1
        self.outcome_basis, self.energy_column = _outcome_basis(p, q, k, interaction, z_in_outcome, energy)

    def _matrix(self, m: np.ndarray) -> np.ndarray:
        """[L, A, Z, M, (A·M), Y] with the mediator matrix ``m`` (zeros in incomplete rows)."""
        arr, c = self.arr, self.arr.complete
        mz = np.where(c[:, None], m, 0.0)
        parts = [arr.x, arr.a[:, None], arr.z, mz] + ([arr.a[:, None] * mz] if self.interaction else [])
        return np.ascontiguousarray(np.hstack(parts + [np.where(c, arr.y, 0.0)[:, None]]))

    def effects(self, counts: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """(TE, DE, IE_1..IE_J, interaction) for row weights ``counts`` (1 = the sample itself); calibrated
        mediators are recalibrated on the replicate's substudy rows."""
        arr = self.arr
        w = counts.astype(float)
        info: dict[str, Any] = {}
        matrix = self.z
        if arr.calibration is not None:
            calibrated, info["calibration"] = arr.calibration.calibrate(arr.m, w)
            matrix = self._matrix(np.where(np.isfinite(calibrated), calibrated, 0.0))
        if arr.zc is not None:
            fit = fit_logistic(arr.zc, arr.complete.astype(float), sample_weight=w, start=start)
            info["completeness_model"] = {"converged": fit.converged, "newton_steps": fit.n_iter, "coef": fit.coef}
            pc = expit(arr.zc @ fit.coef)
            w_fit = np.where(arr.complete, w / pc, 0.0)
        else:
            w_fit = w
        gram = weighted_gram(matrix, w_fit)
        xbar = (w @ arr.x) / w.sum()
        lx = np.arange(self.p)
        gammas = [_solve_block(gram, np.concatenate([lx, [self.ia], self.iz[:j]]), self.iz[j]) for j in range(self.q)]
        deltas = []
        for j in range(self.k):
            rows = np.concatenate([lx, [self.ia], self.iz, self.im[:j]])
            deltas.append(_solve_block(gram, rows, self.im[j]))
        # The outcome model's coefficients on [L, A, Z, M, A·M]: free, or tied by the basis (Z left out, energy balance).
        basis = self.outcome_basis
        regressors = gram[: self.iy, : self.iy]
        fitted = solve_spd(basis.T @ regressors @ basis, basis.T @ gram[: self.iy, self.iy])
        beta = basis @ fitted
        if self.energy_column is not None:
            info["kg_per_kcal"] = float(fitted[self.energy_column])
        n_path = int(arr.mediator_pathway.max()) + 1
        p, q, k = self.p, self.q, self.k
        b_m = beta[p + 1 + q : p + 1 + q + k]

        def z_means(a: float) -> np.ndarray:
            """Means of the intermediate confounders with the treatment set to ``a``."""
            out = np.empty(q)
            for j in range(q):
                out[j] = gammas[j][:p] @ xbar + gammas[j][p] * a + gammas[j][p + 1 :] @ out[:j]
            return out

        z_at = {0.0: z_means(0.0), 1.0: z_means(1.0)}

        def mediator_means(a_path: np.ndarray) -> np.ndarray:
            """Propagated mediator means, each with Z and its own pathway's treatment level."""
            means = np.empty(k)
            for j in range(k):
                d, a_j = deltas[j], float(a_path[arr.mediator_pathway[j]])
                means[j] = d[:p] @ xbar + d[p] * a_j + d[p + 1 : p + 1 + q] @ z_at[a_j] + d[p + 1 + q :] @ means[:j]
            return means

        def psi(a_y: float, a_path: np.ndarray) -> float:
            means = mediator_means(a_path)
            value = beta[:p] @ xbar + beta[p] * a_y + beta[p + 1 : p + 1 + q] @ z_at[a_y] + b_m @ means
            if self.interaction:
                value += a_y * (beta[p + 1 + q + k :] @ means)
            return float(value)

        ones, zeros = np.ones(n_path), np.zeros(n_path)
        top = psi(1.0, ones)
        te = top - psi(0.0, zeros)
        de = psi(1.0, zeros) - psi(0.0, zeros)
        ie = []
        for j in range(n_path):
            off = ones.copy()
            off[j] = 0.0
            ie.append(top - psi(1.0, off))
        # The treatment's whole effect on each mediator (through Z and earlier mediators too).
        info["a_paths"] = (mediator_means(ones) - mediator_means(zeros)).tolist()
        info["b_paths"] = b_m.tolist()  # mediator → outcome (untreated)
        return np.array([te, de, *ie, te - de - sum(ie)]), info


@dataclass(frozen=True, kw_only=True)
class Mediation:
    """Interventional mediation by g-computation over ordered pathways (see module docstring).

    Settings: ``n_bootstrap`` replicates (seeded by ``seed``, run on ``n_jobs`` threads),
    ``ci_level``, ``interval`` (``"normal"``: estimate ± z·bootstrap SE, the default; ``"percentile"``: the
    bootstrap's percentiles; module docstring), ``interaction`` (treatment × mediator terms in the outcome
    model, default True).
    """

    n_bootstrap: int = 1000
    seed: int = 0
    ci_level: float = 0.95
    interval: BootstrapInterval = "normal"
    n_jobs: int = -1
    interaction: bool = True

    def fit(self, table: pd.DataFrame, spec: MediationSpec) -> MediationResult:
        """Estimate every effect with bootstrap CIs; returns a frozen :class:`MediationResult`."""
        if not (isinstance(self.n_bootstrap, int) and self.n_bootstrap >= 2):
            raise ValueError(f"n_bootstrap={self.n_bootstrap!r} must be an integer >= 2")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level={self.ci_level!r} must be in (0, 1)")
        if self.interval not in INTERVAL_TEXT:
            raise ValueError(f"interval={self.interval!r} must be one of {list(INTERVAL_TEXT)}")
        arr = _arrays(table, spec)
        energy = np.array([spec.energy_balance.get(c, 0.0) for c in spec.mediators])
        engine = _Engine(arr, self.interaction, spec.intermediate_in_outcome, energy)
        n = len(arr.a)
        point, info = engine.effects(np.ones(n))
        start = info.get("completeness_model", {}).get("coef")
        raised: list[tuple[type[KetaweightWarning], str]] = []
        if "completeness_model" in info and not info["completeness_model"]["converged"]:
            raised.append((ConvergenceWarning, "the completeness model did not converge "
                                               "(threshold: relative deviance change < 1e-10)"))

        def one(rng: np.random.Generator) -> np.ndarray:
            counts = np.bincount(rng.integers(0, n, n), minlength=n)
            return engine.effects(counts, start)[0]

        reps = bootstrap_replicates(one, n_bootstrap=self.n_bootstrap, seed=self.seed, n_jobs=self.n_jobs)
        se, lo, hi, failed = bootstrap_summary(reps, point, self.ci_level, self.interval)
        if failed:
            raised.append((MediationWarning, f"{failed} of {self.n_bootstrap} bootstrap replicates failed and were "
                                             "left out (threshold: any)"))
        variance = (f"nonparametric bootstrap, {self.n_bootstrap} replicates (seed {self.seed}), every model refitted "
                    f"per replicate; SE = SD of replicates, CI = {INTERVAL_TEXT[self.interval]}")
        names = ["total", "direct", *(p.name for p in spec.pathways), "interaction"]
        labels = ["total effect", "direct remainder", *(f"via {p.name}" for p in spec.pathways), "interaction remainder"]
        results = [
            CausalResult(treatment=spec.treatment, outcome=spec.outcome, estimand=label, method="mediation-g-computation",
                         estimate=float(point[i]), se=float(se[i]), ci_low=float(lo[i]), ci_high=float(hi[i]), n=n,
                         variance=variance, diagnostics={}, ci_level=self.ci_level,
                         settings={"estimator": asdict(self), "spec": spec.to_dict()})
            for i, label in enumerate(labels)
        ]
        by_name = dict(zip(names, results))
        diagnostics = {
            "n_analysed": n, "n_complete": int(arr.complete.sum()), "attrition": arr.attrition,
            "mediators": [{"column": c, "pathway": spec.pathways[arr.mediator_pathway[j]].name,
                           "effect_of_treatment": info["a_paths"][j], "outcome_per_unit_untreated": info["b_paths"][j]}
                          for j, c in enumerate(spec.mediators)],
            "bootstrap": {"replicates": self.n_bootstrap, "failed": failed, "seed": self.seed},
            "completeness_weights": arr.zc is not None,
        }
        if spec.energy_balance:
            diagnostics["energy_balance"] = {
                "factors_kcal_per_unit": dict(spec.energy_balance), "kg_per_kcal_per_day": info["kg_per_kcal"],
                "other_mediators": [c for c in spec.mediators if c not in spec.energy_balance],
                "meaning": "outcome model Y = β'(1, L, A, [Z]) + θ·E + θ_A·A·E with E = Σ factor·mediator (kcal/d); "
                           "kg_per_kcal_per_day is θ, the untreated arm's kg of weight change per kcal/d of E"}
        if "calibration" in info:
            diagnostics["calibration"] = {
                "method": "regression calibration on the validation substudy (reference values used where recorded), "
                          + CALIBRATION_TEXT[spec.calibration_interactions]
                          + "refitted in every bootstrap replicate",
                "interactions": spec.calibration_interactions,
                "reference_columns": dict(spec.validation),
                "mediators": {spec.mediators[j]: v for j, v in info["calibration"].items()}}
        for category, msg in raised:
            warnings.warn(msg, category, stacklevel=2)
        messages = [f"{category.__name__}: {msg}" for category, msg in raised]
        return MediationResult(
            total=by_name["total"], direct=by_name["direct"],
            pathways={p.name: by_name[p.name] for p in spec.pathways}, interaction=by_name["interaction"],
            assumptions=(*ASSUMPTIONS, ENERGY_BALANCE_ASSUMPTION) if spec.energy_balance else ASSUMPTIONS,
            diagnostics=diagnostics, warnings=tuple(messages), row_index=arr.row_index,
        )
