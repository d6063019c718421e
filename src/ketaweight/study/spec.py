"""The study spec: the protocol of the target trial that the observational data emulate.

A study is a TOML file (``studies/ketamine-weight.toml``) validated here with every problem
named by file and key.  Times are in days relative to time zero (the first depression
assessment), and the outcome is a change from the baseline value of a measurement kind.

Protocol elements (Hernán & Robins 2016, target-trial emulation):

* eligibility — age, a baseline measurement of each required kind in the look-back window,
  a minimum baseline depression score, no ketamine before time zero (new users);
* treatment strategies — start a course of at least ``min_sessions`` sessions within
  ``grace_days`` of time zero, versus no ketamine in that window;
* time zero — the first rating of ``time_zero.kind`` (the assessment);
* outcome — change of ``outcome.kind`` from baseline to the measurement nearest
  ``horizon_days`` within ± ``window_days`` (in the kind's canonical unit and in %);
* baseline covariates from the catalogue in :data:`ketaweight.study.catalogue.COVARIATES`;
* censoring — no outcome measurement in the window; its model may also use post-baseline
  covariates measured before any censoring (``censoring.covariates``);
* estimand — ATE or ATT; estimators and variance.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ketaweight.core.errors import InputError, Location
from ketaweight.core.tomlfile import read_toml, validation_problems
from ketaweight.core.schema import DRUGS, MEASUREMENT_KINDS, ROUTES
from ketaweight.core.vocabulary import (DEFAULT_METHODS, METHODS, BootstrapInterval, CalibrationInteractions, Learner,
                                        Method, PropensityCalibration, TrimRule)
from ketaweight.study.catalogue import COVARIATES, MECHANISM_COLUMNS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MAX_DAYS = 3650
"""Longest window or horizon a study may name, in days (ten years): beyond it no record follows a patient,
and a huge value (1e9 days) would overflow the dates computed from it."""


class StudyInfo(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                      description="short identifier, used as the results file's name: letters, digits, '.', '_', '-' "
                                  "(no folders), at most 64 characters, e.g. ketamine-weight")
    title: str = Field(description="the question, in words")
    description: str = Field("", description="the target trial in a paragraph (shown in the report)")


class Eligibility(_Section):
    min_age: float = Field(18.0, description="years at time zero")
    max_age: float | None = Field(None, description="years at time zero")
    baseline_window_days: int = Field(30, ge=0, le=MAX_DAYS, description="look-back for baseline measurements, days before time zero (inclusive; at most 3,650)")
    require_baseline: tuple[str, ...] = Field(("weight",), description="measurement kinds that must have a baseline value")
    min_baseline_madrs: float | None = Field(None, description="minimum baseline MADRS (depression of at least this severity)")
    washout_days: int = Field(365, ge=0, le=MAX_DAYS, description="no ketamine/esketamine in this many days before time zero (new users; at most 3,650)")


class TimeZero(_Section):
    kind: str = Field("madrs", description="time zero = the first measurement of this kind (the assessment)")


class TreatmentStrategies(_Section):
    drugs: tuple[str, ...] = Field(DRUGS, description="ingredients that count as treatment")
    min_sessions: int = Field(1, ge=1, description="sessions within the grace period for 'start a course'")
    grace_days: int = Field(14, ge=0, le=MAX_DAYS, description="the course must start within this many days after time zero (at most 3,650)")
    routes: tuple[str, ...] | None = Field(None, description="restrict to these routes (None = any)")


class Outcome(_Section):
    kind: str = Field("weight", description="measurement kind whose change from baseline is the outcome")
    horizon_days: int = Field(84, gt=0, le=MAX_DAYS, description="days after time zero (at most 3,650: ten years)")
    window_days: int = Field(14, ge=0, le=MAX_DAYS, description="nearest measurement within ± this many days of the horizon (at most 3,650)")


class Covariates(_Section):
    baseline: tuple[str, ...] = Field(description="confounders, from the cohort covariate catalogue")
    categorical: tuple[str, ...] = Field((), description="baseline covariates entered as level indicators")
    squared: tuple[str, ...] = Field((), description="numeric baseline covariates that also enter squared")


class Censoring(_Section):
    covariates: tuple[str, ...] | None = Field(None, description="censoring-model covariates (default: baseline covariates)")


class Analysis(_Section):
    estimand: Literal["ATE", "ATT", "ATO"] = Field("ATE", description="ATE (everyone), ATT (the treated) or ATO "
                                                   "(overlap-weighted: the patients who could have gone either way; "
                                                   "IPW and the doubly robust estimators only)")
    methods: tuple[Method, ...] = Field(DEFAULT_METHODS, description="estimators run side by side, in this order "
                                                                     f"(any of {', '.join(METHODS)})")
    learner: Learner = Field("linear", description="nuisance models of the doubly robust estimators (AIPW, TMLE): linear "
                                                   "(logistic and linear-by-arm GLMs on the design), stacked (a super "
                                                   "learner of a penalised GLM and the GLM with gradient-boosted trees) "
                                                   "or augmented (the stacked learner whose GLMs also get the leaves of "
                                                   "shallow boosted trees fitted to both the treatment and the outcome: "
                                                   "for confounding through thresholds and interactions; "
                                                   "docs/causal.md, docs/validation.md)")
    propensity_calibration: PropensityCalibration = Field(
        "none", description="recalibrate the doubly robust estimators' cross-fitted propensity: none, or logistic "
                            "(a logistic regression of the treatment on its logit; with learner = \"augmented\" it "
                            "narrows the CIs, most at a few hundred patients, but gives bias back where the "
                            "confounding is nonlinear and makes the CIs too narrow where the plain SE is already "
                            "right: docs/validation.md)")
    crossfit_repeats: int = Field(1, ge=1, le=50, description="independent cross-fitting splits of the doubly robust "
                                                              "estimators; the median is reported")
    trimming: TrimRule = Field("none", description="common-support trimming before every estimator: none, "
                                                   "common-support, crump (Crump et al. 2009's optimal rule) or fixed "
                                                   "(propensity in [trimming_alpha, 1 - trimming_alpha]); the estimand "
                                                   "becomes the effect in the trimmed population, stated in the results")
    trimming_alpha: float = Field(0.1, gt=0, lt=0.5, description="the propensity bound of trimming = \"fixed\"")
    truncate_by_arm: float | None = Field(None, gt=50, le=100, description="IPW: cap each weighted arm's weights at "
                                                                           "its own upper percentile (e.g. 99); the "
                                                                           "share of weight removed is reported")
    variance: Literal["sandwich", "bootstrap"] = Field("sandwich", description="sandwich (influence function) or a "
                                                                             "bootstrap that refits every model")
    n_bootstrap: int = Field(1000, ge=50, description="bootstrap replicates when variance = bootstrap")
    seed: int = Field(0, description="seeds bootstrap and cross-fitting: the same data, spec and seed give the same numbers")
    on_failure: Literal["warn", "raise"] = Field("warn", description="a failed diagnostic (balance, overlap, weights) "
                                                                     "warns, or stops the run with an error")
    negative_control_kind: str | None = Field(None, description="measurement kind used as a negative-control outcome")
    negative_control_method: Method = Field("aipw", description="estimator run on the negative-control outcome")


class MediationSection(_Section):
    """Mediation (``ketaweight mechanisms``): ordered pathways of post-baseline mediator columns."""

    pathways: dict[str, tuple[str, ...]] = Field(
        {"mood": ("madrs_change", "activity_energy_7d_change"), "appetite": ("intake_7d_change",),
         "metabolism": ("expenditure_net_7d_change",)},
        description="pathway name → mediator columns in causal order; pathways in causal order (mood first: mood "
                    "moves intake and expenditure too).  Defaults use the weekly wearable/app records; a pathway "
                    "whose mediators were never recorded is left out (its effect joins the direct remainder)")
    intermediate: tuple[str, ...] = Field(("sessions_to_horizon", "cumulative_mg_per_kg"),
                                          description="treatment-affected confounders of the mediators (course intensity "
                                                      "moves both mood and intake)")
    intermediate_in_outcome: bool | Literal["auto"] = Field(
        "auto", description="the intermediate confounders also enter the outcome model: course intensity acting on weight "
                            "other than through the measured mediators (e.g. through what noisy records miss) then joins "
                            "the direct remainder instead of being credited to a correlated mediator such as mood.  "
                            "\"auto\": true, except when a validation substudy calibrates every consumer-grade mediator "
                            "of the analysed pathways: the energy-balance mediators are then research-grade, course "
                            "intensity acts through them, and the drug's thermogenesis (a fixed amount per session) "
                            "is a function of the sessions the outcome model would otherwise hold fixed; see "
                            "docs/mechanisms.md")
    extra_covariates: tuple[str, ...] = Field(
        ("baseline_energy_intake", "baseline_activity", "baseline_appetite", "holiday_days_to_horizon"),
        description="confounders of mediators and outcome added to the study's baseline covariates: baseline values "
                    "of the mediators, and the holiday-season days up to the horizon")
    exclude_if: tuple[str, ...] = Field(
        ("diet_programme", "exercise_programme", "holiday_days_baseline_week"),
        description="columns; patients with a nonzero value in any of them are left out of the mediation: the "
                    "mediators are changes from the baseline week, which must be a steady state — a weight "
                    "programme in progress or holiday eating makes it a moving baseline, confounding mediators "
                    "with the outcome in a way no additive adjustment removes")
    censor_covariates: tuple[str, ...] = Field(("madrs_week2",), description="extra predictors of complete mediators/outcome")
    validation: dict[str, str] = Field(
        {"intake_7d_change": "intake_7d_ref_change", "expenditure_net_7d_change": "expenditure_net_7d_ref_change",
         "activity_energy_7d_change": "activity_energy_7d_ref_change"},
        description="consumer-grade mediator → its reference-method column from a research-grade validation substudy "
                    "(weighed intake, doubly labelled water on a random 5-10% of patients).  Where the substudy was "
                    "recorded, the mediator is regression-calibrated on it; where not, the results say that the "
                    "pathway cannot be attributed from consumer-grade records")
    calibration_covariates: tuple[str, ...] = Field(
        ("baseline_energy_intake_7d", "baseline_energy_expenditure_7d"),
        description="extra predictors of the calibration models (the consumer records' baseline week, from which every "
                    "change is taken)")
    energy_balance: dict[str, float] = Field(
        {"intake_7d_change": 0.76, "expenditure_net_7d_change": -1.0, "activity_energy_7d_change": -1.0},
        description="the energy mediators of the energy-balance outcome model: mediator → kcal/d of energy stored per "
                    "unit of the mediator (intake 0.76: the thermic effect of feeding, 10 %, and adaptive "
                    "thermogenesis, 14 %, take the rest (Hall 2011); non-activity and activity expenditure −1)")
    outcome_model: Literal["auto", "energy-balance", "free"] = Field(
        "auto", description="\"energy-balance\": the energy mediators share one kcal-to-kg coefficient in the outcome "
                            "model (a kcal is a kcal) and the other mediators (MADRS) act on weight only through them, "
                            "so the small metabolism pathway, whose mediator barely varies apart from the sessions, "
                            "borrows the precision of appetite's and activity's; it needs well-measured energy "
                            "mediators (with attenuated consumer-grade intake it pulls every pathway towards 0).  "
                            "\"free\": a coefficient per mediator.  \"auto\": energy-balance when a validation "
                            "substudy calibrates every consumer-grade mediator (as intermediate_in_outcome), else free; "
                            "see docs/mechanisms.md")
    calibration_interactions: CalibrationInteractions = Field(
        "records", description="which calibration predictors also enter multiplied by the treatment, as the outcome "
                               "model's treatment × mediator terms need when consumer records err differently by arm "
                               "(under-reporting that scales with the drug's intake change): \"records\" the mediators "
                               "and calibration covariates, \"all\" every predictor (one model per arm), \"none\" one "
                               "pooled model.  With a 10 % substudy, pooled put appetite 8-14 % over its truth and per "
                               "arm cost metabolism its coverage; see docs/validation.md")
    interval: BootstrapInterval = Field(
        "normal", description="mediation CIs from the bootstrap: \"normal\" estimate ± z × bootstrap SE, or "
                              "\"percentile\" (with a calibrated substudy the replicates sit a third of an SE to one side "
                              "of the estimate, which puts percentile intervals off-centre; see docs/validation.md)")
    n_bootstrap: int = Field(1000, ge=50, description="mediation bootstrap replicates")


class DoseResponseSection(_Section):
    """Dose-response curves among the treated (``ketaweight mechanisms``)."""

    exposures: tuple[str, ...] = Field(("cumulative_mg_per_kg", "sessions_to_horizon", "sessions_per_week", "course_length_days"),
                                       description="dose columns (mg/kg, sessions, sessions/week, days)")
    by_route: bool = Field(True, description="also the cumulative mg/kg curve with the first session's route as a factor")
    degree: int = Field(2, ge=1, le=3, description="polynomial degree of the dose")


class HeterogeneitySection(_Section):
    """Subgroups and per-patient effects (``ketaweight mechanisms``)."""

    modifiers: tuple[str, ...] = Field(("female", "bmi_class", "severity"), description="prespecified baseline modifiers")
    versions: tuple[str, ...] = Field(("first_route",), description="treatment versions compared with no treatment")
    loss_threshold_kg: float = Field(-1.0, description="per-patient effects below this count as 'loses more than'")
    search: bool = Field(True, description="also search every baseline covariate of the catalogue for effect modification "
                                           "(AIPW pseudo-outcome projections, Holm-adjusted) and estimate the subgroup "
                                           "effects of those found")
    search_alpha: float = Field(0.05, gt=0, lt=1, description="a searched modifier is found when its Holm-adjusted "
                                                              "p-value is below this")
    search_top: int = Field(3, ge=0, le=10, description="subgroup effects are estimated for at most this many found modifiers")
    learner: Learner | None = Field(None, description="nuisance models of the DR-learner (default: [analysis] learner)")


class Mechanisms(_Section):
    mediation: MediationSection = MediationSection()
    dose_response: DoseResponseSection = DoseResponseSection()
    heterogeneity: HeterogeneitySection = HeterogeneitySection()


class NetworkSection(_Section):
    """Negative and positive controls for empirical calibration, and how sites are pooled (``ketaweight network``)."""

    negative_controls: tuple[str, ...] = Field(
        (), description="measurement kinds, or glob patterns such as 'control_*', that the treatment cannot change "
                        "but that share the confounding; the change of each from baseline to the outcome horizon is "
                        "estimated like the outcome and converted to outcome-equivalents")
    positive_control_effects: tuple[float, ...] = Field(
        (-0.5, -1.0, -2.0), description="true effects injected into every negative control among the treated (outcome "
                                        "units, e.g. kg-equivalents), proportional to baseline weight, so the error "
                                        "model can be fitted across effect sizes; () for none")
    min_controls: int = Field(10, ge=2, description="fewer usable negative controls than this give a calibration warning")
    pooling: Literal["reml", "dl", "pm", "fixed"] = Field("reml", description="τ² estimator of the random-effects pooling")
    hartung_knapp: bool = Field(True, description="Hartung–Knapp SE (t on k − 1 df) for the pooled estimate and the "
                                                  "pooled controls (IntHout et al. 2014: with few sites)")
    hartung_knapp_floor: bool = Field(False, description="never let the Hartung–Knapp SE fall below the inverse-variance "
                                                         "SE (Knapp & Hartung 2003; Röver, Knapp & Friede 2015): more "
                                                         "conservative; plain Hartung–Knapp is exact (t on k − 1 df) when "
                                                         "the sites share one effect")
    prior_sd_mu: float = Field(5.0, gt=0, description="SD of the normal prior on the pooled effect (outcome units) "
                                                      "in the Bayesian pooling")
    prior_sd_tau: float = Field(1.0, gt=0, description="SD of the half-normal prior on the between-site SD "
                                                       "(outcome units) in the Bayesian pooling")


class Study(_Section):
    study: StudyInfo
    eligibility: Eligibility = Eligibility()
    time_zero: TimeZero = TimeZero()
    treatment: TreatmentStrategies = TreatmentStrategies()
    outcome: Outcome = Outcome()
    covariates: Covariates
    censoring: Censoring = Censoring()
    analysis: Analysis = Analysis()
    mechanisms: Mechanisms = Mechanisms()
    network: NetworkSection = NetworkSection()

    @model_validator(mode="after")
    def _check_names(self) -> "Study":
        problems = []
        kinds = [self.time_zero.kind, self.outcome.kind, *self.eligibility.require_baseline]
        if self.analysis.negative_control_kind:
            kinds.append(self.analysis.negative_control_kind)
        problems += [f"unknown measurement kind {k!r} (known: {', '.join(MEASUREMENT_KINDS)})" for k in kinds if k not in MEASUREMENT_KINDS]
        problems += [f"unknown drug {d!r} (known: {', '.join(DRUGS)})" for d in self.treatment.drugs if d not in DRUGS]
        problems += [f"unknown route {r!r} (known: {', '.join(ROUTES)})" for r in (self.treatment.routes or ()) if r not in ROUTES]
        names = [*self.covariates.baseline, *(self.censoring.covariates or ())]
        problems += [f"unknown covariate {c!r} (known: {', '.join(COVARIATES)})" for c in names if c not in COVARIATES]
        post = [c for c in self.covariates.baseline if COVARIATES.get(c) and COVARIATES[c].post_baseline]
        problems += [f"covariate {c!r} is measured after time zero; use it only in [censoring] covariates" for c in post]
        for group in ("categorical", "squared"):
            stray = [c for c in getattr(self.covariates, group) if c not in self.covariates.baseline]
            problems += [f"covariates.{group} lists {c!r}, which is not in covariates.baseline" for c in stray]
        m = self.mechanisms
        named = [*(c for cols in m.mediation.pathways.values() for c in cols), *m.mediation.intermediate, *m.mediation.exclude_if,
                 *m.mediation.validation, *m.mediation.validation.values(), *m.mediation.calibration_covariates,
                 *m.mediation.extra_covariates, *m.mediation.censor_covariates, *m.dose_response.exposures,
                 *m.heterogeneity.modifiers, *m.heterogeneity.versions]
        mediators = {c for cols in m.mediation.pathways.values() for c in cols}
        problems += [f"mechanisms.mediation.energy_balance names {c!r}, which is not a mediator of the pathways"
                     for c in m.mediation.energy_balance if c not in mediators]
        problems += [f"mechanisms: unknown column {c!r} (known: {', '.join([*COVARIATES, *MECHANISM_COLUMNS])})"
                     for c in named if c not in COVARIATES and c not in MECHANISM_COLUMNS]
        problems += [f"network.negative_controls: unknown measurement kind {k!r} (known: {', '.join(MEASUREMENT_KINDS)}; "
                     "or a pattern such as 'control_*')"
                     for k in self.network.negative_controls if not any(ch in k for ch in "*?[") and k not in MEASUREMENT_KINDS]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def with_analysis(self, **settings: Any) -> Study:
        """This study with ``[analysis]`` settings changed (validated like a study file), e.g.
        ``with_analysis(learner="stacked", trimming="crump")`` — what ``analyze --study`` options do."""
        raw = self.model_dump()
        raw["analysis"].update(settings)
        return Study.model_validate(raw)

    def with_mediation(self, **settings: Any) -> Study:
        """This study with ``[mechanisms.mediation]`` settings changed (validated like a study file),
        e.g. ``with_mediation(intermediate_in_outcome=False)``."""
        raw = self.model_dump()
        raw["mechanisms"]["mediation"].update(settings)
        return Study.model_validate(raw)


def builtin_studies() -> list[str]:
    """Names of the study specs shipped with ketaweight (``studies/*.toml``)."""
    return sorted(p.name.removesuffix(".toml") for p in resources.files("ketaweight.study.studies").iterdir()
                  if p.name.endswith(".toml"))


RENAMED_KEYS: dict[str, str] = {
    "calibration_by_arm": 'use calibration_interactions = "all" for true, "none" for false (the default is now "records")',
}
"""Keys of earlier study files, by name, and what replaced them (said instead of "unknown key")."""


def load_study(path: str | Path) -> Study:
    """Read and validate a study TOML (a path, or the name of a shipped study such as
    ``ketamine-weight``); raises :class:`InputError` naming the file and keys."""
    p = Path(path)
    if not p.exists() and p.suffix != ".toml" and str(path) in builtin_studies():
        p = Path(str(resources.files("ketaweight.study.studies") / f"{path}.toml"))
    if not p.exists():
        raise InputError([(Location(str(p)), f"study file not found (shipped studies: {', '.join(builtin_studies())})")])
    raw, text = read_toml(p)
    try:
        return Study.model_validate(raw)
    except ValidationError as exc:
        raise InputError(validation_problems(exc, str(p), text, unknown_key="unknown key (the study reference, "
                                             "docs/study-reference.md, lists every key)", renamed=RENAMED_KEYS)) from exc
