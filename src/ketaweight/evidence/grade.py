"""The evidence grade and the one-sentence answer, by transparent rules.

Every criterion of a Bradford Hill style table (strength, consistency, precision,
temporality, gradient, plausibility, coherence, negative control, balance and overlap) is
judged from the run's results with a written rule and a number; the criteria that are
GRADE domains move the certainty level, the others are shown but do not.  The rules,
their thresholds and their sources are in ``docs/evidence.md`` and in the report.

Levels (GRADE Working Group; Schünemann et al. 2019 for non-randomised studies judged with
ROBINS-I): an emulated target trial starts at **high** and loses one level at once because
only measured confounders are adjusted for, so it starts the table at **moderate**; then

* strength: an effect whose CI-limit E-value is < 1.5 could be explained by weak unmeasured
  confounding (−1); a large effect (approximate RR ≤ 0.5 or ≥ 2) with no bias downgrade (+1);
* consistency: adjusted estimators that disagree (a CI not overlapping the primary CI, or a
  different conclusion) (−1);
* precision: CI wider than the minimal important difference (MID, 1 kg) (−1), or CI spanning
  both no effect and an important effect either way (−2);
* negative control: CI excluding 0 (−1); balance/overlap: weighted |SMD| above threshold or
  too many patients outside common support (−1);
* positivity and weights: an arm whose weights rest on too few patients (Kish ESS below the
  engine's share of that arm), extreme weights, or arm-specific truncation that removed more than a
  small share of an arm's weight (−1; a risk of bias, like balance);
* target population (GRADE indirectness): common-support trimming that removed more than a small
  share of the eligible patients answers the question for a narrower population (−1);
* gradient: a dose-response estimate excluding 0 in the direction of the effect, with no
  bias downgrade (+1).

The level is clamped to very low … moderate: upgrades can offset downgrades, but one emulated
trial in one data source never reaches high (that needs replication).  The sentence reports
the primary estimator's estimate with its CI in kg (and %), the direction only when the CI
excludes zero, and the grade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from ketaweight.causal.analysis import CausalAnalysis
from ketaweight.causal.result import CausalResult
from ketaweight.core.privacy import MIN_CELL_COUNT, mask_count
from ketaweight.core.protocol import Real, Result
from ketaweight.core.results import ResultsFile
from ketaweight.core.summary import Summary
from ketaweight.evidence import calibration
from ketaweight.evidence.extract import EstimateRow, gradient_rows, horizon_phrase, pathway_rows
from ketaweight.pipelines.results import CausalStudy, MechanismsResults
from ketaweight.signals.report import SignalsReport
from ketaweight.study.labels import label
from ketaweight.study.spec import Study

LEVELS = ("very low", "low", "moderate", "high")
"""Certainty levels, lowest first (GRADE)."""

Verdict = Literal["supports", "against", "neutral", "not assessed"]
Conclusion = Literal["loss", "gain", "negligible", "no detectable effect", "not estimable"]


@dataclass(frozen=True, kw_only=True)
class GradingRules:
    """Thresholds of the grading rules (units in each name).  Defaults are documented in docs/evidence.md."""

    primary_method: str = "aipw"
    """Estimator whose estimate the sentence reports (doubly robust: consistent if either model is right)."""
    mid_kg: float = 1.0
    """Minimal important difference of weight change, kg (about twice the SD of one clinic weighing)."""
    negligible_kg: float = 0.1
    """An interval entirely within ±this many kg shows no effect of practical size, kg."""
    evalue_weak: float = 1.5
    """CI-limit E-value below which weak unmeasured confounding could explain the effect."""
    large_rr: float = 2.0
    """Approximate risk ratio (or its inverse) counted as a large effect (GRADE)."""
    start_level: int = 2
    """Index into LEVELS where an emulated target trial starts (2 = moderate: high − 1 for measured-only adjustment)."""
    max_level: int = 2
    """Highest level one emulated trial in one data source can reach (2 = moderate): upgrades offset
    downgrades but 'high' needs replication in another data source or a randomised trial."""
    truncation_removed_max: float = 0.05
    """Share of an arm's weight that arm-specific truncation may remove before the estimate counts as
    resting on altered weights (a bias-variance trade the reader must see; −1 above it)."""
    trimmed_max: float = 0.10
    """Share of the analysed patients that common-support trimming may remove before the answer counts as
    being about a narrower population than the eligible one (GRADE indirectness; −1 above it)."""


@dataclass(frozen=True)
class Criterion(Result):
    """One row of the Bradford Hill table: what was asked, what the run found, what it does to the grade."""

    name: str
    question: str
    finding: str
    verdict: Verdict
    grade_change: int
    rule: str


@dataclass(frozen=True)
class Answer(Result):
    """The graded answer: the primary estimate, its reading, the grade, the criteria and the sentence."""

    estimate_kg: Real
    ci_low_kg: Real
    ci_high_kg: Real
    estimate_pct: Real | None
    method: str
    conclusion: Conclusion
    grade: str
    criteria: list[Criterion] = field(default_factory=list)
    sentence: str = ""

    def summary(self) -> Summary:
        return Summary(self.sentence, ("criterion", "finding", "verdict", "grade change"),
                       tuple((c.name, c.finding, c.verdict, f"{c.grade_change:+d}" if c.grade_change else "0")
                             for c in self.criteria), tuple(f"{c.name}: {c.rule}" for c in self.criteria))


def fmt_num(x: float | None, digits: int = 2) -> str:
    """A number for people: fixed decimals, a true minus sign (U+2212); −0.00 is written 0.00; an undefined
    number (None, NaN, ±inf) is an em dash.

    >>> fmt_num(-0.537), fmt_num(-0.001), fmt_num(2.5, 1), fmt_num(float("nan"))
    ('−0.54', '0.00', '2.5', '—')
    """
    if x is None or not math.isfinite(x):
        return "—"
    s = f"{x:.{digits}f}"
    if float(s) == 0:
        return f"{0:.{digits}f}"
    return s.replace("-", "−")


def _ci_text(lo: float, hi: float, level: float = 0.95) -> str:
    return f"{int(round(level * 100))}% CI {fmt_num(lo)} to {fmt_num(hi)}"


def conclude(est: float, lo: float, hi: float, rules: GradingRules) -> Conclusion:
    """Read an interval: not estimable without a finite estimate and interval; no detectable effect if it
    covers 0; negligible if inside ±negligible_kg; else its sign.

    >>> r = GradingRules()
    >>> conclude(-0.54, -0.56, -0.51, r), conclude(0.0, -0.03, 0.02, r), conclude(-0.05, -0.08, -0.02, r)
    ('loss', 'no detectable effect', 'negligible')
    """
    if not all(math.isfinite(v) for v in (est, lo, hi)):
        return "not estimable"
    if lo <= 0 <= hi:
        return "no detectable effect"
    if -rules.negligible_kg < lo and hi < rules.negligible_kg:
        return "negligible"
    return "loss" if est < 0 else "gain"


def _size_word(est: float, rules: GradingRules) -> str:
    a = abs(est)
    return "a very small" if a < rules.mid_kg / 2 else "a small" if a < rules.mid_kg else "a clinically noticeable"


# ---- criteria -------------------------------------------------------------------------------


def _strength(primary: CausalResult, conclusion: str, rules: GradingRules, bias_ok: bool) -> Criterion:
    sens = primary.sensitivity or {}
    ev_ci, ev_est, rr = sens.get("evalue_ci"), sens.get("evalue_estimate"), sens.get("rr")
    rule = (f"effect detected: CI-limit E-value < {rules.evalue_weak:g} → −1; approximate RR ≤ {1 / rules.large_rr:g} "
            f"or ≥ {rules.large_rr:g} with no bias downgrade → +1; no effect detected → 0")
    finding = (f"estimate {fmt_num(primary.estimate)} kg; E-value {ev_est:.2f} for the estimate, {ev_ci:.2f} for the CI limit"
               if ev_ci is not None and ev_est is not None else f"estimate {fmt_num(primary.estimate)} kg; E-value not available")
    if conclusion in ("no detectable effect", "negligible", "not estimable"):
        return Criterion("Strength", "How large is the effect, and how strong would unmeasured confounding have to be "
                         "to explain it?", finding + "; no effect to explain away", "neutral", 0, rule)
    if ev_ci is not None and ev_ci < rules.evalue_weak:
        return Criterion("Strength", "How large is the effect, and how strong would unmeasured confounding have to be "
                         "to explain it?", finding + f": a confounder associated with treatment and outcome by a risk "
                         f"ratio of {ev_ci:.2f} could move the CI to include no effect", "against", -1, rule)
    large = rr is not None and (rr <= 1 / rules.large_rr or rr >= rules.large_rr)
    return Criterion("Strength", "How large is the effect, and how strong would unmeasured confounding have to be to "
                     "explain it?", finding + (f"; approximate RR {rr:.2f}: a large effect" if large else ""),
                     "supports", 1 if (large and bias_ok) else 0, rule)


def _consistency(analysis: CausalAnalysis, primary: CausalResult, conclusion: str, rules: GradingRules) -> Criterion:
    adjusted = [e for e in analysis.estimates if e.method != "crude"]
    rule = ("every adjusted estimator's CI overlaps the primary CI and reaches the same conclusion → 0; otherwise −1 "
            "(the crude difference is shown, not judged)")
    q = "Do the estimators that adjust in different ways (outcome model, weights, both, g-estimation) agree?"
    if len(adjusted) < 2:
        return Criterion("Consistency", q, "fewer than two adjusted estimators were run", "not assessed", 0, rule)
    lo, hi = primary.ci_low, primary.ci_high
    bad = [e.method for e in adjusted
           if e.ci_high < lo or e.ci_low > hi or conclude(e.estimate, e.ci_low, e.ci_high, rules) != conclusion]
    span = f"{fmt_num(min(e.estimate for e in adjusted))} to {fmt_num(max(e.estimate for e in adjusted))} kg"
    if bad:
        return Criterion("Consistency", q, f"{len(adjusted)} adjusted estimators range {span}; disagree: {', '.join(bad)}",
                         "against", -1, rule)
    return Criterion("Consistency", q, f"{len(adjusted)} adjusted estimators range {span} and agree", "supports", 0, rule)


def _precision(primary: CausalResult, rules: GradingRules) -> Criterion:
    lo, hi = primary.ci_low, primary.ci_high
    width = hi - lo
    rule = (f"CI width ≤ MID ({rules.mid_kg:g} kg) → 0; wider → −1; CI spanning 0 and an important effect "
            f"(≤ −{rules.mid_kg:g} or ≥ {rules.mid_kg:g} kg) → −2")
    q = "Is the interval narrow enough to tell an important effect from none?"
    finding = f"95% CI {fmt_num(lo)} to {fmt_num(hi)} kg (width {width:.2f} kg)"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return Criterion("Precision", q, "no confidence interval could be computed", "against", -2, rule)
    if lo <= 0 <= hi and (lo <= -rules.mid_kg or hi >= rules.mid_kg):
        return Criterion("Precision", q, finding + ": compatible with no effect and with an important one", "against", -2, rule)
    if width > rules.mid_kg:
        return Criterion("Precision", q, finding + ": wider than the MID", "against", -1, rule)
    return Criterion("Precision", q, finding, "supports", 0, rule)


def _temporality(study: Study | None) -> Criterion:
    horizon = study.outcome.horizon_days if study is not None else None
    grace = study.treatment.grace_days if study is not None else None
    return Criterion("Temporality", "Does the exposure come before the outcome?",
                     f"by design: treatment starts within {grace} days of time zero, weight is measured "
                     f"{horizon_phrase(horizon)} later; baseline covariates are measured before time zero",
                     "supports", 0, "target-trial emulation fixes the order; counted in the starting level")


def _negative_control(analysis: CausalAnalysis) -> Criterion:
    ncs = analysis.negative_controls
    rule = "negative-control outcome CI covers 0 → 0; excludes 0 (residual confounding or bias) → −1"
    q = "Does the analysis find an 'effect' on an outcome ketamine cannot change (resting heart rate)?"
    if not ncs:
        return Criterion("Negative control", q, "no negative-control outcome was analysed", "not assessed", 0, rule)
    nc = ncs[0]
    r = nc.result
    if nc.covers_null is None:
        return Criterion("Negative control", q, f"the {r.method} estimate on {nc.outcome} could not be estimated",
                         "not assessed", 0, rule)
    finding = f"{r.method} estimate on {nc.outcome}: {fmt_num(r.estimate)} ({fmt_num(r.ci_low)} to {fmt_num(r.ci_high)})"
    if nc.covers_null:
        return Criterion("Negative control", q, finding + ": covers 0", "supports", 0, rule)
    return Criterion("Negative control", q, finding + ": excludes 0, a sign of bias", "against", -1, rule)


def _balance(primary: CausalResult) -> Criterion:
    d = primary.diagnostics or {}
    bal, ov, th = d.get("balance") or {}, d.get("overlap") or {}, d.get("thresholds") or {}
    smd, smd_th = bal.get("max_abs_smd_weighted"), bal.get("threshold", th.get("smd", 0.1))
    out, out_th = ov.get("share_outside_support"), th.get("outside_support", 0.05)
    rule = f"max weighted |SMD| ≤ {smd_th:g} and share outside common support ≤ {out_th:g} → 0; otherwise −1"
    q = "After adjustment, do treated and untreated patients look alike, and do they overlap?"
    n = d.get("n_analysed")
    if out is None and ov.get("n_outside_support") == "<11" and isinstance(n, int) and n > 0:
        out = MIN_CELL_COUNT / n  # masked: fewer than 11 outside support, a share below 11/n (an upper bound)
        outside = f"fewer than 11 patients (< {100 * out:.1f}%) outside common support"
    else:
        outside = f"{100 * out:.1f}% of patients outside common support" if out is not None else ""
    if smd is None or out is None:
        return Criterion("Balance and overlap", q, "diagnostics not available", "not assessed", 0, rule)
    finding = f"max weighted |SMD| {smd:.3f}; {outside}"
    if smd > smd_th or out > out_th:
        return Criterion("Balance and overlap", q, finding, "against", -1, rule)
    return Criterion("Balance and overlap", q, finding, "supports", 0, rule)


def _positivity(primary: CausalResult, rules: GradingRules) -> Criterion:
    """Do the weights rest on enough patients in each arm?  Kish ESS per arm, the largest weight, and what
    arm-specific truncation removed (from the primary estimator's diagnostics)."""
    d = primary.diagnostics or {}
    th = d.get("thresholds") or {}
    ess_th, extreme_th = th.get("min_ess_share", 0.1), th.get("extreme_weight", 20.0)
    rule = (f"in each weighted arm Kish ESS ≥ {ess_th:.0%} of its patients, largest weight ≤ {extreme_th:g}× the mean, "
            f"and arm-specific truncation removed ≤ {rules.truncation_removed_max:.0%} of each arm's weight → 0; "
            f"otherwise −1")
    q = "Do the weights rest on enough patients in each arm, without a few patients carrying the answer?"
    w = d.get("weights") or {}
    arms = w.get("by_arm")
    if not d.get("weights_used_by_estimator") or not arms:
        return Criterion("Positivity and weights", q, "the primary estimate's weights are not available in this run",
                         "not assessed", 0, rule)
    parts, bad = [], []
    for arm, v in arms.items():
        n, ess = v.get("n"), v.get("ess")
        if not isinstance(n, int) or n <= 0 or ess is None or not math.isfinite(ess):
            continue
        share = ess / n
        parts.append(f"{arm}: ESS {mask_count(int(round(ess)))} of {mask_count(n)} ({share:.0%})")
        if share < ess_th:
            bad.append(f"the {arm} arm's weights rest on {share:.0%} of its patients")
    mean, largest = w.get("mean"), w.get("max")
    if isinstance(mean, (int, float)) and isinstance(largest, (int, float)) and mean > 0:
        parts.append(f"largest weight {largest / mean:.1f}× the mean")
        if largest > extreme_th * mean:
            bad.append("extreme weights")
    t = d.get("truncation")
    if t and t.get("kind") == "by arm":
        removed = {arm: v["share_of_weight_removed"] for arm, v in t["arms"].items()}
        parts.append(f"truncated within each arm at its {t['upper_percentile']:g}th percentile, removing "
                     + ", ".join(f"{r:.1%} of the {arm} weight" for arm, r in removed.items()))
        bad += [f"truncation removed {r:.1%} of the {arm} weight" for arm, r in removed.items()
                if r > rules.truncation_removed_max]
    elif t:
        parts.append(f"weights clipped at the pooled percentiles {t.get('percentiles')}")
    finding = "; ".join(parts) if parts else "no weighted arm to judge"
    if bad:
        return Criterion("Positivity and weights", q, finding + ": " + "; ".join(bad), "against", -1, rule)
    return Criterion("Positivity and weights", q, finding, "supports", 0, rule)


def _population(primary: CausalResult, rules: GradingRules) -> Criterion:
    """Is the answer about the eligible patients, or about a population the analysis narrowed (trimming, ATO)?"""
    d = primary.diagnostics or {}
    trimmed = d.get("trimming")
    rule = (f"common-support trimming removed ≤ {rules.trimmed_max:.0%} of the analysed patients → 0; more → −1 "
            "(GRADE indirectness: the answer is about a narrower population); an overlap-weighted estimand (ATO) is "
            "stated, not graded (the study asked for it)")
    q = "Is the answer about the patients the study meant, or about a population the analysis narrowed?"
    if primary.estimand == "ATO":
        return Criterion("Target population", q, "the estimand is the overlap-weighted average effect (ATO): patients "
                         "whose treatment was least predictable weigh most, not the eligible cohort as a whole",
                         "neutral", 0, rule)
    if not trimmed:
        return Criterion("Target population", q, f"every analysed patient ({primary.estimand}); no trimming",
                         "supports", 0, rule)
    n0, gone = trimmed.get("n_before"), trimmed.get("n_excluded")
    share = gone / n0 if isinstance(n0, int) and isinstance(gone, int) and n0 > 0 else None
    how_many = (f"{mask_count(gone)} of {mask_count(n0)} patients ({share:.1%})" if share is not None
                else "an unknown number of patients")
    finding = f"trimmed by the {trimmed.get('description', trimmed.get('rule'))}: {how_many} removed; the answer is the {trimmed.get('estimand')}"
    if share is None or share > rules.trimmed_max:
        return Criterion("Target population", q, finding, "against", -1, rule)
    return Criterion("Target population", q, finding, "supports", 0, rule)


def _nuisance_models(primary: CausalResult) -> Criterion:
    """Which learner the primary estimator's nuisance models used, and what the validation grid says about it."""
    learners = (primary.diagnostics or {}).get("learners") or {}
    rule = ("shown, never graded: the validation grid (docs/validation.md) measures each learner's bias and coverage "
            "in harder worlds; the linear learner is biased where confounders act through thresholds and interactions")
    q = "Were the nuisance models flexible enough for the confounding in these data?"
    if not learners:
        return Criterion("Nuisance models", q, "not recorded for the primary estimate", "not assessed", 0, rule)
    name = learners.get("learner", "?")
    finding = f"{name}: {learners.get('description', '')}".rstrip(": ")
    weights = learners.get("ensemble_weights")
    if weights:
        cands = learners.get("candidates") or {}
        finding += "; ensemble weights " + "; ".join(
            f"{part} " + ", ".join(f"{c} {v:.0%}" for c, v in zip(cands.get(part, ()), ws)) for part, ws in weights.items())
    if name == "linear":
        finding += ("; a threshold or interaction in the confounding that no design column names would bias it "
                    "(rerun with learner = \"augmented\" to check)")
    return Criterion("Nuisance models", q, finding, "neutral", 0, rule)


def _heterogeneity(mech: MechanismsResults | None) -> Criterion:
    """For whom: the BLP calibration test, the calibrated spread of individual effects, the modifiers found."""
    rule = ("shown, never graded: heterogeneity says for whom, not whether; BLP slope of Chernozhukov et al. (1 = "
            "calibrated heterogeneity, 0 = none detectable), calibrated SD of individual effects with its interval, "
            "modifiers whose Holm-adjusted p < 0.05 in the catalogue search")
    q = "Does the effect differ between patients, and by which baseline traits?"
    if mech is None:
        return Criterion("Heterogeneity", q, "not yet analysed in this run", "not assessed", 0, rule)
    het = mech.heterogeneity
    dist = het.individual.distribution or {}
    parts = []
    cal = dist.get("calibration") or {}
    if "blp_slope" in cal:
        lo, hi = cal["blp_slope_ci"]
        p = cal.get("blp_p_value_no_heterogeneity")
        parts.append(f"BLP slope {cal['blp_slope']:.2f} (95% CI {lo:.2f} to {hi:.2f}"
                     + (f"; p = {p:.2g} for no heterogeneity" if isinstance(p, float) and math.isfinite(p) else "") + ")")
    spread = dist.get("spread") or {}
    if "sd_calibrated" in spread:
        lo, hi = spread["sd_calibrated_ci"]
        parts.append(f"calibrated SD of individual effects {spread['sd_calibrated']:.2f} kg (95% CI {lo:.2f} to {hi:.2f})")
    if het.search is not None:
        parts.append("modifiers found in the catalogue search: " + (", ".join(label(c) for c in het.search.found) or "none"))
    held = [label(m.modifier) for m in het.subgroups if isinstance(m.p_holm, float) and m.p_holm < 0.05]
    if het.subgroups:
        parts.append("prespecified modifiers with Holm p < 0.05: " + (", ".join(held) or "none"))
    if not parts:
        return Criterion("Heterogeneity", q, "the mechanisms results hold no heterogeneity estimates", "not assessed", 0, rule)
    return Criterion("Heterogeneity", q, "; ".join(parts), "neutral", 0, rule)


def _with_measurement(c: Criterion, mech: MechanismsResults | None) -> Criterion:
    """The plausibility row with what it must add about the mediators' measurement: calibration on a validation
    substudy, and pathways that could not be attributed."""
    if mech is None:
        return c
    parts = []
    cal = (mech.mediation.diagnostics or {}).get("calibration") if mech.mediation is not None else None
    if cal:
        parts.append("mediators regression-calibrated on a validation substudy: "
                     + ", ".join(f"{m} → {r}" for m, r in cal.get("reference_columns", {}).items()))
    noisy = [k.removeprefix("attribution of pathway ") for k in mech.not_estimable if k.startswith("attribution of pathway ")]
    if noisy:
        parts.append("not attributable from consumer-grade records without a validation substudy: " + ", ".join(noisy)
                     + " (their effect is mostly in the direct remainder)")
    unrecorded = [k.removeprefix("mediation pathway ") for k in mech.not_estimable if k.startswith("mediation pathway ")]
    if unrecorded:
        parts.append("mediators never recorded: " + ", ".join(unrecorded))
    return replace(c, finding=c.finding + "; " + "; ".join(parts)) if parts else c


def _rows_criterion(name: str, question: str, rows: list[EstimateRow] | None, conclusion: str, est: float,
                    rule: str, change_if_support: int) -> Criterion:
    """Gradient / plausibility: judged from another analysis' estimates when that analysis ran."""
    if rows is None:
        return Criterion(name, question, "not yet analysed in this run", "not assessed", 0, rule)
    if not rows:
        return Criterion(name, question, "the mechanisms results hold no such estimate", "not assessed", 0, rule)
    same = [r for r in rows if r.excludes_zero and (r.estimate < 0) == (est < 0)]
    listing = "; ".join(f"{r.label} {fmt_num(r.estimate, 3)} ({fmt_num(r.ci_low, 3)} to {fmt_num(r.ci_high, 3)})"
                        for r in rows)
    if conclusion in ("loss", "gain") and same:
        return Criterion(name, question, listing, "supports", change_if_support, rule)
    if conclusion in ("loss", "gain"):
        return Criterion(name, question, listing + ": none in the direction of the effect", "against", 0, rule)
    return Criterion(name, question, listing, "neutral", 0, rule)


def _coherence(signals: list[ResultsFile]) -> Criterion:
    rule = "shown, never graded: disproportionality compares reporting, not incidence"
    q = "Do spontaneous reports (FAERS) mention weight loss with ketamine or esketamine more often than expected?"
    rows = []
    for doc in signals:
        report: SignalsReport = doc.results
        for p in report.requested:
            if p.drug in ("ketamine", "esketamine") and "loss" in p.event:
                hit = p.signals
                rows.append(f"{p.drug} × {p.event} in {doc.label}: " + (f"signal by {', '.join(hit)}" if hit else "no signal"))
    if not rows:
        return Criterion("Coherence", q, "no ketamine or esketamine report data in this run", "not assessed", 0, rule)
    return Criterion("Coherence", q, "; ".join(rows), "neutral", 0, rule)


def _replication(raw_level: int, rules: GradingRules) -> Criterion:
    """The cap, as a row: one emulated trial in one data source cannot exceed ``rules.max_level``."""
    rule = f"one emulated trial in one data source: the level is capped at '{LEVELS[rules.max_level]}'"
    q = "Has the answer been replicated in another data source or a randomised trial?"
    if raw_level > rules.max_level:
        return Criterion("Replication", q, "no: the upgrades above are capped", "against", rules.max_level - raw_level, rule)
    return Criterion("Replication", q, "no (the cap does not bind in this run)", "not assessed", 0, rule)


# ---- the grade and the sentence -----------------------------------------------------------


def grade_evidence(
    weight: ResultsFile,
    *,
    signals: list[ResultsFile] | None = None,
    mechanisms: ResultsFile | None = None,
    rules: GradingRules | None = None,
    network: ResultsFile | None = None,
) -> Answer:
    """Grade the answer from the weight study's results file (``kind = "causal"``) and whatever else ran.

    ``mechanisms`` is the weight study's mechanisms results file (``kind = "mechanisms"``:
    mediation and dose-response) or None when it did not run; ``signals`` are signals results
    files; ``network`` a network synthesis (``kind = "network"``), whose calibrated estimate, empirical
    null, consistency across sites and replication then replace the single site's
    (:mod:`ketaweight.evidence.calibration`).  Raises ValueError when the primary estimator is missing.
    """
    rules = rules or GradingRules()
    res: CausalStudy = weight.results
    analysis = res.analyses["outcome_change"]
    primary = analysis.estimate(rules.primary_method)
    if primary is None:
        raise ValueError(f"the weight results have no '{rules.primary_method}' estimate; run the study with it, "
                         f"or choose GradingRules(primary_method=...) among {[e.method for e in analysis.estimates]}")
    pct_analysis = res.analyses.get("outcome_change_pct")
    pct = pct_analysis.estimate(rules.primary_method) if pct_analysis is not None else None
    # -- network hook (issue 15): a network's calibrated estimate and its rules replace the single site's
    net = calibration.network_primary(network.results) if network is not None else None
    site_primary = primary  # the estimators are compared at the site whose results these are
    if net is not None:
        primary, pct = net, None
    est, lo, hi = primary.estimate, primary.ci_low, primary.ci_high
    conclusion = conclude(est, lo, hi, rules)
    mech: MechanismsResults | None = mechanisms.results if mechanisms is not None else None

    balance = _balance(primary)
    positivity = _positivity(site_primary, rules)
    nc = (Criterion(**vars(calibration.systematic_error(network.results, rules.mid_kg))) if net and network
          else _negative_control(analysis))
    bias_ok = balance.grade_change == 0 and nc.grade_change == 0 and positivity.grade_change == 0
    criteria = [
        _strength(primary, conclusion, rules, bias_ok),
        _consistency(analysis, site_primary, conclude(site_primary.estimate, site_primary.ci_low,
                                                      site_primary.ci_high, rules), rules),
        _precision(primary, rules),
        _temporality(res.study),
        _rows_criterion("Biological gradient", "Does more ketamine (dose, sessions, course length) go with more effect?",
                        None if mech is None else gradient_rows(mech),
                        conclusion, est, "a dose-response slope (MSM linear term: cumulative mg/kg, sessions, "
                        "sessions/week or course length) excluding 0 in the effect's direction, no bias downgrade → +1; "
                        "otherwise 0", 1 if bias_ok else 0),
        _with_measurement(_rows_criterion(
            "Plausibility (mechanism)", "Does a measured pathway (appetite, metabolism, mood → activity) carry the effect?",
            None if mech is None else pathway_rows(mech), conclusion, est,
            "shown, never graded: mediation needs stronger assumptions than the total effect", 0), mech),
        _heterogeneity(mech),
        _coherence(signals or []),
        nc,
        balance,
        positivity,
        _population(site_primary, rules),
        _nuisance_models(site_primary),
    ]
    if net and network:  # -- network hook (issue 15): consistency across sites, replication across databases
        criteria.insert(2, Criterion(**vars(calibration.consistency_across_sites(network.results))))
    raw_level = rules.start_level + sum(c.grade_change for c in criteria)
    criteria.append(Criterion(**vars(calibration.replication(network.results, conclusion, raw_level))) if net and network
                    else _replication(raw_level, rules))
    level = max(0, rules.start_level + sum(c.grade_change for c in criteria))
    answer = Answer(est, lo, hi, pct.estimate if pct else None, rules.primary_method, conclusion, LEVELS[level], criteria)
    answer = _with_sentence(answer, weight, rules)
    return replace(answer, sentence=calibration.reword(answer.sentence, network)) if net and network else answer


def _with_sentence(a: Answer, weight: ResultsFile, rules: GradingRules) -> Answer:
    data = weight.data
    study: Study | None = weight.results.study
    where = "In these simulated data" if data is not None and data.synthetic else \
        f"In these data ({data.source if data is not None else 'records'})"
    drugs = " or ".join(study.treatment.drugs if study is not None else ["ketamine"])
    when = horizon_phrase(study.outcome.horizon_days if study is not None else None)
    ci = _ci_text(a.ci_low_kg, a.ci_high_kg)
    pct = f"; {fmt_num(a.estimate_pct)}% of body weight" if a.estimate_pct is not None and math.isfinite(a.estimate_pct) else ""
    if a.conclusion == "not estimable":
        body = (f"the effect of starting a {drugs} course on weight at {when} could not be estimated "
                f"(the {a.method} estimate or its confidence interval is undefined: too few patients in one arm, or no "
                f"overlap; see the warnings)")
    elif a.conclusion == "no detectable effect":
        bound = (f", ruling out a change of {rules.mid_kg:g} kg or more either way"
                 if -rules.mid_kg < a.ci_low_kg and a.ci_high_kg < rules.mid_kg else "")
        body = (f"starting a {drugs} course had no detectable effect on weight at {when}: "
                f"{fmt_num(a.estimate_kg)} kg ({ci}{pct}){bound}")
    elif a.conclusion == "negligible":
        body = (f"starting a {drugs} course had no effect of practical size on weight at {when}: "
                f"{fmt_num(a.estimate_kg)} kg ({ci}{pct}), less than {rules.negligible_kg:g} kg either way")
    else:
        body = (f"starting a {drugs} course changed weight at {when} by {fmt_num(a.estimate_kg)} kg "
                f"({ci}{pct}), {_size_word(a.estimate_kg, rules)} {a.conclusion}")
    return replace(a, sentence=f"{where}, {body}; certainty: {a.grade}.")
