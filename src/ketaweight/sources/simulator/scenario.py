"""Scenario parameters for the virtual-patient simulator, loaded from TOML and validated.

Every number in the model is a parameter here.  Each field's description says its unit
and whether its default comes from the literature (``[lit: source]``) or is an assumption
(``[assumption]``).  No human trial has measured weight as an outcome of ketamine, so every
drug-effect size is an assumption; the ``null`` scenario switches them all off.

A scenario file only needs the values it changes; everything else keeps its default::

    name = "appetite"
    description = "Ketamine suppresses appetite; no other pathway."
    [pathways]
    metabolism = false
    mood = false
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ketaweight.core.errors import InputError, Location
from ketaweight.core.tomlfile import read_toml, validation_problems
from ketaweight.core.vocabulary import MEASUREMENT_DESIGNS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Population(_Section):
    age_mean: float = Field(44.0, description="years; adults in ketamine TRD clinics [lit: Wilkinson 2017 cohort, ~45 y]")
    age_sd: float = Field(12.0, description="years [assumption]")
    age_min: float = Field(18.0, description="years")
    age_max: float = Field(80.0, description="years")
    female_share: float = Field(0.58, ge=0, le=1, description="share female [lit: TRD trials ~55-60%]")
    bmi_median: float = Field(28.0, description="kg/m² [lit: US adults with depression]")
    bmi_log_sd: float = Field(0.18, description="sd of log BMI [assumption]")
    height_mean_male_m: float = Field(1.76, description="m [lit: NHANES]")
    height_mean_female_m: float = Field(1.62, description="m [lit: NHANES]")
    height_sd_m: float = Field(0.07, description="m [lit: NHANES]")
    pal_mean: float = Field(1.55, description="physical activity level, EE/RMR [lit: sedentary-to-low-active adults]")
    pal_sd: float = Field(0.12, description="[assumption]")
    madrs_mean: float = Field(33.0, description="baseline MADRS points [lit: TRD trials ~34]")
    madrs_sd: float = Field(6.0, description="MADRS points [lit]")
    atypical_share: float = Field(0.3, ge=0, le=1, description="share with atypical (hyperphagic) depression [lit: ~15-40%]")
    index_start: str = Field("2023-01-02", description="first possible index (assessment) date, ISO")
    index_span_days: int = Field(730, gt=0, description="index dates spread uniformly over this many days")


class Treatment(_Section):
    uptake_intercept: float = Field(-0.4, description="logit of starting ketamine for a reference patient [assumption]")
    uptake_per_madrs_point: float = Field(0.07, description="logit per MADRS point above 33 (confounding by indication) [assumption]")
    uptake_per_bmi_unit: float = Field(0.04, description="logit per kg/m² above 28 [assumption]")
    uptake_per_age_year: float = Field(-0.015, description="logit per year above 44 [assumption]")
    uptake_female: float = Field(0.15, description="logit, female vs male [assumption]")
    uptake_per_motivation_sd: float = Field(0.5, description="logit per SD of latent motivation (unmeasured) [assumption]")
    uptake_diet_programme: float = Field(0.6, description="logit if in a diet programme at index [assumption]")
    uptake_exercise_programme: float = Field(0.4, description="logit if in an exercise programme at index [assumption]")
    regimen_shares: dict[str, float] = Field(
        default_factory=lambda: {"iv": 0.55, "esketamine": 0.25, "im": 0.12, "oral": 0.08},
        description="regimen mix among treated: iv, im, oral racemic ketamine; esketamine nasal spray [assumption, typical US clinic mix]",
    )
    iv_dose_mg_per_kg: dict[str, float] = Field(
        default_factory=lambda: {"0.5": 0.75, "0.75": 0.15, "1.0": 0.10},
        description="IV dose (mg/kg over 40 min) → share [lit: 0.5 mg/kg standard, Murrough 2013]",
    )
    im_dose_mg_per_kg: float = Field(0.5, description="mg/kg [lit: IM 0.5 mg/kg]")
    oral_dose_mg_per_kg: float = Field(1.5, description="mg/kg [lit: oral 0.5-3 mg/kg]")
    esketamine_first_dose_mg: float = Field(56.0, description="mg [lit: Spravato label]")
    esketamine_dose_mg: dict[str, float] = Field(
        default_factory=lambda: {"56": 0.35, "84": 0.65}, description="maintenance dose → share [lit: label]"
    )
    start_delay_max_days: int = Field(7, ge=0, description="first session 0..this many days after assessment")
    discontinue_per_session: float = Field(0.03, ge=0, le=1, description="probability of stopping after each session [assumption]")
    maintenance_share: float = Field(0.3, ge=0, le=1, description="share of treated continuing with maintenance sessions [assumption]")
    maintenance_interval_days: int = Field(21, gt=0, description="days between maintenance sessions [lit: clinic practice]")


class Pharmacology(_Section):
    clearance_l_per_h_70kg: float = Field(79.0, description="L/h per 70 kg [lit: Kamp 2020 meta-analysis]")
    clearance_cv: float = Field(0.30, description="between-patient CV of clearance [lit: Kamp 2020]")
    bioavailability: dict[str, float] = Field(
        default_factory=lambda: {"iv": 1.0, "im": 0.93, "esketamine": 0.50, "oral": 0.17},
        description="fraction absorbed by regimen [lit: Kamp 2020; Spravato label]",
    )
    ec50_auc_mg_h_per_l: float = Field(0.30, description="AUC giving half the maximal antidepressant effect, mg·h/L [assumption]")
    responder_emax_a: float = Field(6.0, description="Beta(a, b) of Emax among responders [assumption, mean 0.6]")
    responder_emax_b: float = Field(4.0, description="see responder_emax_a")
    nonresponder_share: float = Field(0.35, ge=0, le=1, description="share with no antidepressant response [lit: TRD response ~50-70%]")
    benefit_half_life_days: float = Field(7.0, gt=0, description="days [lit: Murrough 2013, median relapse ~18 d after 6 infusions]")
    natural_improvement_a: float = Field(2.0, description="Beta(a, b) of the natural-course fractional improvement [assumption, mean 0.2]")
    natural_improvement_b: float = Field(8.0, description="see natural_improvement_a")
    natural_improvement_tau_days: float = Field(42.0, gt=0, description="days to reach 63% of natural improvement [assumption]")


class Pathways(_Section):
    appetite: bool = Field(True, description="switch: drug lowers energy intake")
    metabolism: bool = Field(True, description="switch: drug raises energy expenditure")
    mood: bool = Field(True, description="switch: drug's antidepressant benefit changes activity and intake")
    appetite_dose_day_kcal: float = Field(-120.0, description="kcal/day on a session day and the day after (nausea, dissociation) [assumption]")
    appetite_sustained_kcal: float = Field(-40.0, description="kcal/day per unit of decaying drug exposure (1 unit = typical IV session AUC) [assumption]")
    appetite_half_life_days: float = Field(3.0, gt=0, description="days [assumption]")
    metabolism_dose_day_kcal: float = Field(40.0, description="extra expenditure on a session day, kcal/day (sympathomimetic) [assumption]")
    activity_min_per_madrs_point: float = Field(2.4, description="extra light-activity minutes/day per MADRS point of improvement [lit: DESIGN.md; cross-sectional studies]")
    intake_kcal_per_madrs_point_typical: float = Field(3.0, description="kcal/day per MADRS point of improvement, typical depression (appetite returns) [assumption]")
    intake_kcal_per_madrs_point_atypical: float = Field(-4.0, description="kcal/day per MADRS point, atypical depression (hyperphagia eases) [assumption]")
    typical_auc_mg_h_per_l: float = Field(0.45, gt=0, description="AUC of a typical IV 0.5 mg/kg session, mg·h/L; normalises drug exposure")


class Confounding(_Section):
    diet_intercept: float = Field(-2.0, description="logit of a diet programme around index [assumption]")
    diet_per_motivation_sd: float = Field(0.8, description="logit per SD of motivation [assumption]")
    diet_per_bmi_unit: float = Field(0.08, description="logit per kg/m² above 28 [assumption]")
    diet_per_madrs_point: float = Field(0.03, description="logit per MADRS point above 33 [assumption]")
    diet_kcal: float = Field(-450.0, description="initial intake change in a diet programme, kcal/day [lit: behavioural programmes]")
    diet_adherence_half_life_days: float = Field(60.0, gt=0, description="days for adherence to halve [lit: typical regain]")
    exercise_intercept: float = Field(-2.3, description="logit of an exercise programme around index [assumption]")
    exercise_per_motivation_sd: float = Field(0.8, description="logit per SD of motivation [assumption]")
    exercise_per_age_year: float = Field(-0.02, description="logit per year above 44 [assumption]")
    exercise_per_madrs_point: float = Field(0.02, description="logit per MADRS point above 33 [assumption]")
    exercise_kcal: float = Field(220.0, description="extra expenditure, kcal/day [lit: exercise trials]")
    exercise_compensation: float = Field(0.5, ge=0, le=1, description="share of exercise expenditure eaten back [lit: King 2008]")
    exercise_activity_min: float = Field(35.0, description="extra recorded activity, min/day")
    exercise_adherence_half_life_days: float = Field(90.0, gt=0, description="days [assumption]")
    programme_start_min_day: int = Field(-30, description="programmes start this many days before index, at the earliest")
    holiday_kcal: float = Field(180.0, description="extra intake 20 Nov – 5 Jan, kcal/day [lit: +0.4-0.9 kg holiday gain]")
    unmeasured_intake_kcal_per_sd: float = Field(0.0, description="direct effect of unmeasured motivation on intake, kcal/day per SD (0 = no unmeasured confounding)")


class Observation(_Section):
    pre_index_days: int = Field(28, ge=14, description="days simulated before index (baseline window)")
    follow_up_days: int = Field(180, ge=98, description="days simulated after index")
    visit_interval_days: int = Field(7, gt=0, description="clinic visit grid, days")
    missed_visit_prob: float = Field(0.15, ge=0, lt=1, description="per visit, weeks 1-12 [assumption]")
    missed_visit_prob_late: float = Field(0.35, ge=0, lt=1, description="per visit after week 12 [assumption]")
    scale_sd_kg: float = Field(0.45, ge=0, description="scale noise sd [lit: DESIGN.md]")
    scale_ar1: float = Field(0.5, ge=0, lt=1, description="AR(1) correlation of scale noise between weekly visits [assumption]")
    weekly_cycle_share: float = Field(0.0035, ge=0, description="weekly weight cycle amplitude, share of weight [lit: Orsama 2014]")
    madrs_noise_sd: float = Field(3.0, ge=0, description="MADRS rating noise sd, points [lit: inter-rater]")
    dropout_hazard: float = Field(0.012, ge=0, lt=1, description="per-visit dropout probability after week 2 [assumption]")
    dropout_per_week2_madrs_point: float = Field(0.04, description="log-hazard per MADRS point of the week-2 score above baseline-adjusted (non-response → dropout) [assumption]")
    intake_underreport_mean: float = Field(0.15, ge=0, lt=1, description="mean share of intake not reported [lit: doubly labelled water studies]")
    intake_underreport_sd: float = Field(0.08, ge=0, description="sd of the share [lit]")
    wearable_share: float = Field(0.6, ge=0, le=1, description="share of patients who share a wrist wearable and a food-logging app with the clinic: weekly means of activity, expenditure and intake [assumption]")
    wearable_weeks: int = Field(12, ge=1, description="weeks after index with weekly wearable/app records (plus the baseline week before index)")
    wearable_missing_week_prob: float = Field(0.10, ge=0, lt=1, description="per week, no record (device not worn, nothing logged) [assumption]")
    app_intake_noise_kcal: float = Field(150.0, ge=0, description="sd of a week's app-logged mean intake around the (under-reported) truth, kcal/day [assumption]")
    wearable_activity_noise_min: float = Field(8.0, ge=0, description="sd of a week's mean active minutes around the truth, min/day [assumption]")
    wearable_expenditure_noise_kcal: float = Field(80.0, ge=0, description="sd of a week's mean estimated expenditure around the device's systematic estimate, kcal/day [assumption]")
    wearable_expenditure_bias_cv: float = Field(0.10, ge=0, lt=1, description="between-patient CV of the device's multiplicative expenditure bias [lit: wrist-worn devices ~10-25% error vs doubly labelled water]")
    validation_share: float = Field(0.0, ge=0, le=1, description="share of patients (at random) in a research-grade validation substudy: noise-free weekly intake, expenditure (total, and net of activity energy) and active minutes by reference methods, recorded as energy_intake_7d_ref, energy_expenditure_7d_ref, energy_expenditure_net_7d_ref and activity_7d_ref (0 = no substudy) [assumption; nutrition studies use recovery biomarkers on 5-10%]")

    @model_validator(mode="after")
    def _weekly_records_need_a_weekly_grid(self) -> Observation:
        if self.wearable_share > 0 and self.visit_interval_days != 7:
            raise ValueError("wearable records are weekly means dated at grid days: visit_interval_days must be 7 "
                             "when wearable_share > 0")
        if self.validation_share > 0 and self.visit_interval_days != 7:
            raise ValueError("validation-substudy records are weekly means dated at grid days: visit_interval_days must "
                             "be 7 when validation_share > 0")
        if self.wearable_share > 0 and 7 * self.wearable_weeks > self.follow_up_days:
            raise ValueError(f"wearable_weeks {self.wearable_weeks} reach past follow_up_days {self.follow_up_days}")
        return self
    ae_rates: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "iv": {"Dissociation": 0.30, "Nausea": 0.12, "Blood pressure increased": 0.10, "Dizziness": 0.12, "Headache": 0.08},
            "im": {"Dissociation": 0.30, "Nausea": 0.10, "Blood pressure increased": 0.08, "Dizziness": 0.10, "Headache": 0.08},
            "esketamine": {"Dissociation": 0.41, "Nausea": 0.27, "Blood pressure increased": 0.10, "Dizziness": 0.29, "Sedation": 0.23},
            "oral": {"Dissociation": 0.05, "Nausea": 0.08, "Dizziness": 0.06, "Headache": 0.05},
        },
        description="per-session probability of each adverse event (MedDRA PT) by regimen [lit: Spravato label; Short 2018 review]",
    )


class NegativeControls(_Section):
    """Negative-control outcomes: measurements (kinds ``control_01`` …) the drug cannot change that share
    weight's confounding.  Each control j follows, in kg-equivalents,

        Δ_ij(t) = a_j·L_i(t) + Σ_k b_jk·z_ik·t/84 + noise,

    where L_i(t) is the patient's own energy balance from the start of the simulation (programmes,
    holidays, unmeasured habits, the natural course of depression; never the drug) at
    :data:`ketaweight.sources.simulator.controls.ENERGY_DENSITY_KCAL_PER_KG`, and z_ik are the
    standardised age, BMI, sex and baseline severity.  Values are written in each control's own
    arbitrary unit (value = offset_j + scale_j·(level_i + Δ_ij)).  The design (a_j, b_jk, scales)
    comes from ``design_seed``, not the simulation seed, so every site of a network measures the same
    controls.  True effect of the drug on every control: exactly 0."""

    n_outcomes: int = Field(30, ge=0, le=99, description="number of negative-control outcomes (OHDSI uses 50-100)")
    lifestyle_loading_mean: float = Field(1.0, description="mean of a_j: how strongly a control follows the patient's own "
                                                           "energy balance, relative to body weight (1 = as weight, to first order) [assumption]")
    lifestyle_loading_sd: float = Field(0.5, ge=0, description="SD of a_j across controls [assumption]")
    trait_drift_sd: float = Field(0.3, ge=0, description="SD of b_jk: 12-week drift per SD of age, BMI, sex and severity, "
                                                         "kg-equivalents (measured confounders) [assumption]")
    noise_sd: float = Field(0.5, ge=0, description="measurement noise SD, kg-equivalents [assumption, like a scale's 0.45 kg]")
    level_sd: float = Field(2.0, ge=0, description="SD of a patient's stable level, kg-equivalents [assumption]")
    days: tuple[int, ...] = Field((0, 84), description="visit days (after index) with a control measurement, if the visit happens")
    design_seed: int = Field(2013, description="seeds the controls' design (loadings, units), shared by every site")


class Nonlinear(_Section):
    """Confounding through thresholds and interactions (every size 0 by default: the other scenarios'
    linear world).  Obesity enters as a soft threshold expit((BMI − centre)/width), wider than the
    recorded BMI's error (scale noise ≈ 0.15 kg/m²), so adjusting for the recorded BMI can remove it;
    severity as a hard threshold on the assessed MADRS, which is recorded exactly."""

    bmi_threshold: float = Field(32.0, description="kg/m²; centre of the soft obesity threshold [assumption]")
    bmi_threshold_width: float = Field(1.0, gt=0, description="kg/m²; width of the soft obesity threshold [assumption]")
    severe_madrs: float = Field(38.0, description="assessed MADRS at or above which depression counts as severe here [assumption]")
    young_age: float = Field(35.0, description="years; age below which the young-and-severe terms apply [assumption]")
    uptake_obese_logit: float = Field(0.0, description="logit of starting ketamine, obese vs not [assumption]")
    uptake_obese_severe_logit: float = Field(0.0, description="logit of starting ketamine, obese and severe (interaction) [assumption]")
    uptake_young_severe_logit: float = Field(0.0, description="logit of starting ketamine, severe and under 35 years (interaction) [assumption]")
    diet_obese_logit: float = Field(0.0, description="logit of a diet programme, obese vs not [assumption]")
    intake_obese_kcal: float = Field(0.0, description="intake change from index on, obese vs not, kcal/day (untreated course of the illness) [assumption]")
    intake_obese_severe_kcal: float = Field(0.0, description="intake change from index on, obese and severe (comfort eating), kcal/day [assumption]")
    intake_young_severe_kcal: float = Field(0.0, description="intake change from index on, severe and under 35 years, kcal/day [assumption]")


class Modification(_Section):
    """Effect modification: the drug's appetite and metabolic effects scaled per patient by
    max(0, 1 + per_bmi_unit·(BMI − 28) + female·[female] + per_age_decade·(age − 44)/10 + atypical·[atypical])
    (every coefficient 0 by default: the same drug effect for everyone).  The mood pathway is modified
    by subtype through ``pathways.intake_kcal_per_madrs_point_*``."""

    per_bmi_unit: float = Field(0.0, description="relative change of the appetite and metabolic effects per kg/m² above 28 [assumption]")
    female: float = Field(0.0, description="relative change for women [assumption]")
    per_age_decade: float = Field(0.0, description="relative change per 10 years above 44 [assumption]")
    atypical: float = Field(0.0, description="relative change with atypical depression [assumption]")


class Scenario(_Section):
    name: str
    description: str = ""
    population: Population = Population()
    treatment: Treatment = Treatment()
    pharmacology: Pharmacology = Pharmacology()
    pathways: Pathways = Pathways()
    confounding: Confounding = Confounding()
    observation: Observation = Observation()
    nonlinear: Nonlinear = Nonlinear()
    modification: Modification = Modification()
    negative_controls: NegativeControls = NegativeControls()

    @model_validator(mode="after")
    def _control_days_are_visit_days(self) -> Scenario:
        o = self.observation
        bad = [d for d in self.negative_controls.days
               if d < 0 or d > o.follow_up_days or d % o.visit_interval_days]
        if bad:
            raise ValueError(f"negative_controls.days {bad} are not visit days after index (multiples of "
                             f"visit_interval_days {o.visit_interval_days} up to follow_up_days {o.follow_up_days})")
        return self

    @property
    def drug_affects_weight(self) -> bool:
        p = self.pathways
        return p.appetite or p.metabolism or p.mood


MEASUREMENTS: dict[str, dict[str, float]] = {
    "clinic": {},
    "research": {
        "wearable_share": 1.0, "wearable_missing_week_prob": 0.0, "app_intake_noise_kcal": 0.0,
        "wearable_activity_noise_min": 0.0, "wearable_expenditure_noise_kcal": 0.0, "wearable_expenditure_bias_cv": 0.0,
        "intake_underreport_mean": 0.0, "intake_underreport_sd": 0.0,
    },
    "substudy": {"validation_share": 0.10},
}
"""Measurement designs (observation overrides).  ``clinic``: the scenario as written (a share of
patients with consumer wearables and a food app, with logging noise, device bias, missed weeks
and under-reporting).  ``research``: every patient measured every week as a metabolic study
would — weighed intake, no logging noise, device bias or missed weeks (the device still does not
see adaptive thermogenesis or the fall of expenditure with weight) — the design under which
mediation's assumption of well-measured mediators holds (docs/mechanisms.md).  ``substudy``: the clinic's
records plus a research-grade validation substudy of a random 10% of patients (reference-method
weekly intake and expenditure, :mod:`ketaweight.sources.simulator.substudy`), on which mediation
calibrates the clinic's records (:mod:`ketaweight.mechanisms.calibration`).  The names are
:data:`ketaweight.core.vocabulary.MEASUREMENT_DESIGNS` (checked at import)."""
if tuple(MEASUREMENTS) != MEASUREMENT_DESIGNS:
    raise ImportError(f"simulator measurement designs {tuple(MEASUREMENTS)} differ from core.vocabulary {MEASUREMENT_DESIGNS}")


def with_measurement(s: Scenario, measurement: str) -> Scenario:
    """``s`` with the observation overrides of :data:`MEASUREMENTS` ``[measurement]``."""
    if measurement not in MEASUREMENTS:
        raise InputError([(Location("measurement"), f"unknown measurement design {measurement!r}; "
                                                    f"choose one of {', '.join(MEASUREMENTS)}")])
    overrides = MEASUREMENTS[measurement]
    if not overrides:
        return s
    try:  # validated again: the overrides must fit the scenario (e.g. weekly records need a weekly grid)
        observation = Observation.model_validate({**s.observation.model_dump(), **overrides})
    except ValidationError as exc:
        raise InputError([(Location(f"scenario '{s.name}'", column="observation"), f"--measurement {measurement}: {err['msg']}")
                          for err in exc.errors()]) from exc
    return s.model_copy(update={"observation": observation})


def _scenario_dir() -> resources.abc.Traversable:
    return resources.files("ketaweight.sources.simulator") / "scenarios"


def builtin_scenarios() -> list[str]:
    """Names of the scenario files shipped with ketaweight."""
    return sorted(p.name.removesuffix(".toml") for p in _scenario_dir().iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a built-in scenario by name (``article``, ``null`` …) or a TOML file by path.

    Raises :class:`InputError` naming the file, the key and the reason for every problem.
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise InputError([(Location(str(path)), "scenario file not found")])
        label = str(path)
        raw, text = read_toml(path, label)
    else:
        resource = _scenario_dir() / f"{name_or_path}.toml"
        if not resource.is_file():
            raise InputError([(Location(str(name_or_path)),
                               f"unknown scenario; built-in scenarios are {', '.join(builtin_scenarios())}")])
        label = f"scenario '{name_or_path}'"
        raw, text = read_toml(Path(str(resource)), label)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise InputError(validation_problems(exc, label, text)) from exc
