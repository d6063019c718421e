"""The virtual population: baseline traits, lifestyle programmes, who starts ketamine, and
the course each patient would receive.

Confounding by indication: baseline severity, BMI, age, sex and a latent *motivation* raise
the chance of starting ketamine; motivation, BMI and severity also raise the chance of
joining a diet or exercise programme in the month before index.  Motivation is never
recorded; programme enrolment is (the ``lifestyle`` table), so adjusting for measured
baseline covariates including programme enrolment identifies the effect, while the crude
comparison is confounded.  ``confounding.unmeasured_intake_kcal_per_sd`` adds a direct path
from motivation to intake: unmeasured confounding on purpose, for sensitivity analyses.

Every patient gets a *planned* course (route, doses, adherence) whether or not they start
it, so the "course" and "no course" worlds use common random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from ketaweight.core.schema import DRUGS, ROUTES
from ketaweight.sources.simulator import nonlinear
from ketaweight.sources.simulator.pk import individual_clearance, session_auc
from ketaweight.sources.simulator.scenario import Scenario

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

REGIMENS: dict[str, tuple[str, str]] = {
    "iv": ("ketamine", "iv"),
    "im": ("ketamine", "im"),
    "esketamine": ("esketamine", "intranasal"),
    "oral": ("ketamine", "oral"),
}
"""The simulator's treatment regimens → the (drug, route) they are recorded as (``core.schema`` names).
A regimen is not a route: esketamine is its own ingredient, given by the intranasal route."""
REGIMEN_NAMES: tuple[str, ...] = tuple(REGIMENS)
if not all(d in DRUGS and r in ROUTES for d, r in REGIMENS.values()):
    raise ImportError(f"every regimen must be a canonical drug and route: {REGIMENS}")

SESSION_DAYS: dict[str, tuple[int, ...]] = {
    # IV racemic: 6 infusions over 12 days (Murrough 2013); IM on the same schedule.
    "iv": (0, 2, 4, 7, 9, 11),
    "im": (0, 2, 4, 7, 9, 11),
    # Esketamine: twice weekly weeks 1-4, weekly weeks 5-8 (Spravato label).
    "esketamine": (0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49),
    # Oral: twice weekly for 6 weeks (clinic practice).
    "oral": (0, 3, 7, 10, 14, 17, 21, 24, 28, 31, 35, 38),
}
SESSION_MINUTES = {"iv": 40.0, "im": 1.0, "esketamine": 120.0, "oral": 1.0}
"""Administration time (IV infusion 40 min) or, for esketamine, the label's 2-h monitoring."""


@dataclass(frozen=True)
class Population:
    """Baseline traits (arrays of shape (n,)); see module docstring."""

    n: int
    index_date: NDArray[np.datetime64]  # assessment date (time zero), day resolution
    index_doy: IntArray  # day of year of index, 0-based
    age: FloatArray  # years at index
    male: BoolArray
    height_m: FloatArray
    weight0_kg: FloatArray  # at simulation start (pre-index)
    pal: FloatArray
    madrs0: FloatArray  # true baseline severity
    madrs_assessed: FloatArray  # the rating at the assessment (day 0): what clinicians and patients act on
    atypical: BoolArray
    motivation: FloatArray  # latent, never written to the store
    diet: BoolArray
    diet_start: IntArray  # day relative to index
    exercise: BoolArray
    exercise_start: IntArray
    emax: FloatArray  # antidepressant Emax (0 for non-responders)
    natural_pmax: FloatArray
    clearance: FloatArray  # L/h
    treated: BoolArray  # starts ketamine (the factual world)
    propensity: FloatArray  # true probability of starting

    def slice(self, lo: int, hi: int) -> "Population":
        """Patients [lo, hi) as a new Population (views, no copies)."""
        arrays = {f: getattr(self, f)[lo:hi] for f in self.__dataclass_fields__ if f != "n"}
        return Population(n=hi - lo, **arrays)


@dataclass(frozen=True)
class Sessions:
    """Planned sessions of every patient's course (flat arrays, one row per session)."""

    patient: IntArray
    day: IntArray  # relative to index
    regimen: NDArray[np.int8]  # index into REGIMEN_NAMES
    dose_mg: FloatArray
    auc: FloatArray  # mg·h/L
    minutes: FloatArray
    maintenance: BoolArray

    def subset(self, keep: BoolArray | slice) -> "Sessions":
        """The sessions selected by a boolean mask or a slice (order kept: by patient, then day)."""
        return Sessions(**{f: getattr(self, f)[keep] for f in self.__dataclass_fields__})


def draw_population(s: Scenario, n: int, rng: np.random.Generator) -> Population:
    """Draw ``n`` patients' baseline traits, programmes and ketamine start (the factual world)."""
    p, c, t, ph = s.population, s.confounding, s.treatment, s.pharmacology
    male = rng.random(n) >= p.female_share
    age = np.clip(rng.normal(p.age_mean, p.age_sd, n), p.age_min, p.age_max)
    height = rng.normal(np.where(male, p.height_mean_male_m, p.height_mean_female_m), p.height_sd_m)
    height = np.clip(height, 1.40, 2.10)
    bmi = np.clip(p.bmi_median * np.exp(rng.normal(0.0, p.bmi_log_sd, n)), 17.0, 60.0)
    weight = bmi * height**2
    pal = np.clip(rng.normal(p.pal_mean, p.pal_sd, n), 1.3, 2.1)
    madrs0 = np.clip(rng.normal(p.madrs_mean, p.madrs_sd, n), 20.0, 56.0)
    atypical = rng.random(n) < p.atypical_share
    motivation = rng.normal(0.0, 1.0, n)

    start = np.datetime64(p.index_start, "D")
    index_date = start + rng.integers(0, p.index_span_days, n).astype("timedelta64[D]")
    year_start = index_date.astype("datetime64[Y]").astype("datetime64[D]")
    index_doy = (index_date - year_start).astype(np.int64)

    # Decisions (ketamine, programmes) follow the *rated* severity at the assessment, which is
    # recorded; deciding on the unrecorded true score would leave residual confounding through
    # rating noise (regression to the mean), and make programme enrolment a collider between
    # motivation and true severity.
    madrs_assessed = np.clip(np.rint(madrs0 + rng.normal(0.0, s.observation.madrs_noise_sd, n)), 0, 60)
    m_c, b_c, a_c = madrs_assessed - 33.0, bmi - 28.0, age - 44.0
    diet = rng.random(n) < expit(c.diet_intercept + c.diet_per_motivation_sd * motivation
                                 + c.diet_per_bmi_unit * b_c + c.diet_per_madrs_point * m_c
                                 + nonlinear.diet_logit(s, bmi))
    exercise = rng.random(n) < expit(c.exercise_intercept + c.exercise_per_motivation_sd * motivation
                                     + c.exercise_per_age_year * a_c + c.exercise_per_madrs_point * m_c)
    diet_start = rng.integers(c.programme_start_min_day, 1, n)
    exercise_start = rng.integers(c.programme_start_min_day, 1, n)

    propensity = expit(
        t.uptake_intercept + t.uptake_per_madrs_point * m_c + t.uptake_per_bmi_unit * b_c
        + t.uptake_per_age_year * a_c + t.uptake_female * (~male) + t.uptake_per_motivation_sd * motivation
        + t.uptake_diet_programme * diet + t.uptake_exercise_programme * exercise
        + nonlinear.uptake_logit(s, bmi, madrs_assessed, age)
    )
    treated = rng.random(n) < propensity

    responder = rng.random(n) >= ph.nonresponder_share
    emax = np.where(responder, rng.beta(ph.responder_emax_a, ph.responder_emax_b, n), 0.0)
    natural_pmax = rng.beta(ph.natural_improvement_a, ph.natural_improvement_b, n)
    clearance = individual_clearance(weight, ph.clearance_l_per_h_70kg, ph.clearance_cv, rng)

    return Population(
        n=n, index_date=index_date, index_doy=index_doy, age=age, male=male, height_m=height,
        weight0_kg=weight, pal=pal, madrs0=madrs0, madrs_assessed=madrs_assessed, atypical=atypical, motivation=motivation,
        diet=diet, diet_start=diet_start, exercise=exercise, exercise_start=exercise_start,
        emax=emax, natural_pmax=natural_pmax, clearance=clearance, treated=treated,
        propensity=propensity,
    )


def _choice_by_share(shares: dict[str, float], n: int, rng: np.random.Generator) -> IntArray:
    """Draw indices into ``list(shares)`` with the given (unnormalised) shares."""
    probs = np.array(list(shares.values()), dtype=float)
    if np.any(probs < 0) or probs.sum() <= 0:
        raise ValueError(f"shares must be non-negative and sum to a positive number, got {shares}")
    return rng.choice(len(probs), size=n, p=probs / probs.sum())


def _keys_as_floats(shares: dict[str, float]) -> FloatArray:
    return np.array([float(k) for k in shares])


def plan_courses(s: Scenario, pop: Population, rng: np.random.Generator) -> Sessions:
    """Every patient's planned course: route, dose per session, adherence and maintenance.

    Adherence: after each session a patient stops with probability
    ``treatment.discontinue_per_session``.  Patients who finish the induction course
    continue with maintenance sessions every ``maintenance_interval_days`` with probability
    ``maintenance_share``, until the end of follow-up.
    """
    t, ph, obs = s.treatment, s.pharmacology, s.observation
    n = pop.n
    unknown = set(t.regimen_shares) - set(REGIMEN_NAMES)
    if unknown:
        raise ValueError(f"unknown regimen(s) {sorted(unknown)} in treatment.regimen_shares; use {REGIMEN_NAMES}")
    regimen = np.array([REGIMEN_NAMES.index(r) for r in t.regimen_shares])[_choice_by_share(t.regimen_shares, n, rng)]
    iv_dose = _keys_as_floats(t.iv_dose_mg_per_kg)[_choice_by_share(t.iv_dose_mg_per_kg, n, rng)]
    eske_dose = _keys_as_floats(t.esketamine_dose_mg)[_choice_by_share(t.esketamine_dose_mg, n, rng)]
    # Number of induction sessions completed before stopping (geometric adherence).
    stop_after = rng.geometric(t.discontinue_per_session, n) if t.discontinue_per_session > 0 else np.full(n, 10**6)
    maintain = rng.random(n) < t.maintenance_share

    pieces: list[tuple[IntArray, IntArray, NDArray[np.int8], BoolArray]] = []
    for code, r in enumerate(REGIMEN_NAMES):
        who = np.flatnonzero(regimen == code)
        days = np.array(SESSION_DAYS[r])
        k = np.minimum(stop_after[who], len(days))
        grid = np.arange(len(days))[None, :] < k[:, None]
        pi, si = np.nonzero(grid)
        pieces.append((who[pi], days[si], np.full(len(pi), code, np.int8), np.zeros(len(pi), bool)))
        # Maintenance after a completed induction course.
        cont = who[(k == len(days)) & maintain[who]]
        n_maint = max(0, (obs.follow_up_days - days[-1]) // t.maintenance_interval_days)
        if n_maint and len(cont):
            m_days = days[-1] + t.maintenance_interval_days * np.arange(1, n_maint + 1)
            pieces.append((np.repeat(cont, n_maint), np.tile(m_days, len(cont)),
                           np.full(len(cont) * n_maint, code, np.int8), np.ones(len(cont) * n_maint, bool)))
    patient = np.concatenate([p[0] for p in pieces])
    day = np.concatenate([p[1] for p in pieces])
    regimen_s = np.concatenate([p[2] for p in pieces])
    maint = np.concatenate([p[3] for p in pieces])
    delay = rng.integers(0, t.start_delay_max_days + 1, n)
    day = day + delay[patient]

    w = pop.weight0_kg[patient]
    is_regimen = {r: regimen_s == i for i, r in enumerate(REGIMEN_NAMES)}
    first_eske = is_regimen["esketamine"] & (day == delay[patient])
    dose = np.select(
        [is_regimen["iv"], is_regimen["im"], is_regimen["oral"], first_eske, is_regimen["esketamine"]],
        [iv_dose[patient] * w, t.im_dose_mg_per_kg * w, t.oral_dose_mg_per_kg * w,
         np.full(len(day), t.esketamine_first_dose_mg), eske_dose[patient]],
    )
    dose = np.round(dose, 1)
    bio = _by_regimen(ph.bioavailability)[regimen_s]
    auc = session_auc(dose, bio, pop.clearance[patient])
    order = np.argsort(patient.astype(np.int64) * 4096 + day, kind="stable")  # by patient, then day (day < 4096)
    minutes = _by_regimen(SESSION_MINUTES)[regimen_s]
    keep = day <= obs.follow_up_days
    order = order[keep[order]]
    return Sessions(patient=patient[order], day=day[order], regimen=regimen_s[order],
                    dose_mg=dose[order], auc=auc[order], minutes=minutes[order], maintenance=maint[order])


def _by_regimen(mapping: dict[str, float]) -> FloatArray:
    """``mapping`` as an array indexed by regimen code (see REGIMEN_NAMES)."""
    missing = [r for r in REGIMEN_NAMES if r not in mapping]
    if missing:
        raise ValueError(f"no value for regimen(s) {missing}; known: {sorted(mapping)}")
    return np.array([mapping[r] for r in REGIMEN_NAMES], dtype=float)
