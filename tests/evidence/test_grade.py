"""The evidence grade and the sentence: true to the numbers in every scenario, and each rule fires.

Scenario tests simulate 4,000 patients (fixed seed 11), emulate the weight trial and check
that the sentence states the primary (AIPW) estimate and CI, names a direction only when the
CI excludes 0, and that what it says agrees with the simulator's truth.
"""

from __future__ import annotations

import copy
import re

import pytest

from ketaweight.pipelines.simulation import run_simulation
from ketaweight.pipelines.emulation import run_study
from ketaweight.causal.result import CausalResult
from ketaweight.core.results import parse_results, read_result, read_results
from ketaweight.evidence.grade import LEVELS, GradingRules, conclude, fmt_num, grade_evidence
from ketaweight.mechanisms.dose_response import DoseResponseResult
from ketaweight.mechanisms.heterogeneity import IndividualEffects
from ketaweight.mechanisms.mediation import MediationResult
from ketaweight.pipelines.results import Heterogeneity, MechanismsResults

SCENARIOS = ("null", "article", "appetite", "metabolic", "mood-activity")


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario_run(request, tmp_path_factory):
    """(scenario, weight results document, simulator truth) for a 4,000-patient cohort."""
    out = tmp_path_factory.mktemp(request.param) / "sim"
    sim, store = run_simulation(request.param, 4000, 11, out, "duckdb", True)
    res = run_study(store, "ketamine-weight", out / "results")
    return request.param, read_result(res.path), sim.truth


def _numbers(sentence: str) -> list[float]:
    return [float(x.replace("−", "-")) for x in re.findall(r"[−-]?\d+\.\d+", sentence)]


def test_sentence_true_to_the_numbers(scenario_run):
    scenario, doc, truth = scenario_run
    a = grade_evidence(doc)
    # the sentence states the primary estimate, its CI and the % change, as computed
    nums = _numbers(a.sentence)
    assert nums[:3] == [float(fmt_num(a.estimate_kg).replace("−", "-")), float(fmt_num(a.ci_low_kg).replace("−", "-")),
                        float(fmt_num(a.ci_high_kg).replace("−", "-"))]
    assert a.sentence.startswith("In these simulated data")
    assert a.sentence.endswith(f"certainty: {a.grade}.")
    assert a.grade in LEVELS
    covers = a.ci_low_kg <= 0 <= a.ci_high_kg
    assert ("no detectable effect" in a.sentence) == covers
    assert ("loss" in a.sentence) == (a.conclusion == "loss")
    # the truth lies in the CI (fixed seed), so what the sentence says is true of the simulated world
    true_ate = truth["weight_change_kg"]["ate"]
    assert a.ci_low_kg <= true_ate <= a.ci_high_kg
    if scenario == "null":
        assert a.conclusion == "no detectable effect" and "ruling out a change of 1 kg or more" in a.sentence
    else:  # every pathway scenario makes patients lose a little weight, and the run detects it
        assert true_ate < -0.1 and a.conclusion == "loss"
        assert ("a very small loss" in a.sentence) == (abs(a.estimate_kg) < 0.5)


def test_grades_of_the_clean_runs(scenario_run):
    """Balanced, precise, consistent runs with a clean negative control start at moderate (no gradient
    analysed); a detected effect whose CI-limit E-value is below 1.5 (weak confounding could explain it)
    drops to low."""
    _, doc, _ = scenario_run
    a = grade_evidence(doc)
    strength = next(c for c in a.criteria if c.name == "Strength")
    ev_ci = doc.results.analyses["outcome_change"].estimate("aipw").sensitivity["evalue_ci"]
    weak = a.conclusion == "loss" and ev_ci < 1.5
    assert strength.grade_change == (-1 if weak else 0)
    assert a.grade == ("low" if weak else "moderate")
    assert {c.name for c in a.criteria} >= {"Strength", "Consistency", "Precision", "Temporality", "Negative control",
                                            "Balance and overlap", "Biological gradient", "Plausibility (mechanism)"}
    assert next(c for c in a.criteria if c.name == "Biological gradient").finding == "not yet analysed in this run"


# ---- each rule on an edited copy of one run (no new simulation) ------------------------------


@pytest.fixture(scope="module")
def article_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("article-rules") / "sim"
    _, store = run_simulation("article", 3000, 5, out, "duckdb", True)
    return read_results(run_study(store, "ketamine-weight", out / "results").path)  # as JSON, edited by the tests


def typed(doc):
    return parse_results(doc)


def _edit(doc, **changes):
    d = copy.deepcopy(doc)
    est = next(e for e in d["results"]["analyses"]["outcome_change"]["estimates"] if e["method"] == "aipw")
    for k, v in changes.items():
        est[k] = v
    return d, est


def test_imprecise_null_loses_two_levels(article_doc):
    d, _ = _edit(article_doc, estimate=-0.2, ci_low=-1.4, ci_high=1.0)
    for e in d["results"]["analyses"]["outcome_change"]["estimates"]:
        e.update(estimate=-0.2, ci_low=-1.4, ci_high=1.0)
    a = grade_evidence(typed(d))
    assert a.conclusion == "no detectable effect" and a.grade == "very low"
    assert "ruling out" not in a.sentence


def test_failed_negative_control_and_balance_downgrade(article_doc):
    d, est = _edit(article_doc)
    nc = d["results"]["analyses"]["outcome_change"]["negative_controls"][0]
    nc["covers_null"] = False
    est["diagnostics"]["balance"]["max_abs_smd_weighted"] = 0.25
    a = grade_evidence(typed(d))
    changes = {c.name: c.grade_change for c in a.criteria}
    assert changes["Negative control"] == -1 and changes["Balance and overlap"] == -1
    assert a.grade == "very low"


def test_weak_evalue_and_inconsistency_downgrade(article_doc):
    d, est = _edit(article_doc)
    est["sensitivity"]["evalue_ci"] = 1.2
    ipw = next(e for e in d["results"]["analyses"]["outcome_change"]["estimates"] if e["method"] == "ipw")
    ipw.update(estimate=0.5, ci_low=0.3, ci_high=0.7)
    a = grade_evidence(typed(d))
    changes = {c.name: c.grade_change for c in a.criteria}
    assert changes["Strength"] == -1 and changes["Consistency"] == -1 and a.grade == "very low"


def _effect(estimand: str, estimate: float, lo: float, hi: float) -> CausalResult:
    return CausalResult("treated", "outcome_change", estimand, "mediation", estimate, 0.05, lo, hi, 1000, "bootstrap", {})


def _mechanisms(slope: tuple[float, float, float]):
    """A mechanisms results file with one pathway and one MSM dose-response curve."""
    est = dict(zip(("estimate", "ci_low", "ci_high"), slope, strict=True))
    pathway = _effect("via appetite", -0.3, -0.4, -0.2)
    mediation = MediationResult(pathway, pathway, {"appetite": pathway}, pathway, (), {})
    curve = DoseResponseResult("sessions_to_horizon", "outcome_change", "msm",
                               {"(intercept)": est, "sessions_to_horizon": est}, (), 1000, "sandwich", 0.95, {},
                               settings={"spec": {"by": None}})
    res = MechanismsResults("ketamine-weight", "kg", {}, mediation, (curve,),
                            Heterogeneity((), (), IndividualEffects({})))
    return parse_results({"kind": "mechanisms", "provenance": {}, "results": res.to_dict()})


def test_gradient_offsets_a_downgrade_but_never_reaches_high(article_doc):
    weak, est = _edit(article_doc)
    est["sensitivity"]["evalue_ci"] = 1.2
    assert grade_evidence(typed(weak)).grade == "low"
    a = grade_evidence(typed(weak), mechanisms=_mechanisms((-0.1, -0.15, -0.05)))
    changes = {c.name: c for c in a.criteria}
    assert changes["Biological gradient"].grade_change == 1 and a.grade == "moderate"
    assert changes["Plausibility (mechanism)"].verdict == "supports"
    assert "via appetite −0.300" in changes["Plausibility (mechanism)"].finding
    capped = grade_evidence(typed(article_doc), mechanisms=_mechanisms((-0.1, -0.15, -0.05)))
    rows = {c.name: c.grade_change for c in capped.criteria}
    assert capped.grade == "moderate" and rows["Biological gradient"] == 1 and rows["Replication"] == -1
    for a_ in (a, capped):  # the table adds up: start level + grade changes = the grade
        assert GradingRules().start_level + sum(c.grade_change for c in a_.criteria) == LEVELS.index(a_.grade)
    flat = grade_evidence(typed(weak), mechanisms=_mechanisms((0.01, -0.05, 0.07)))
    assert {c.name: c.grade_change for c in flat.criteria}["Biological gradient"] == 0 and flat.grade == "low"


def test_conclude_and_format():
    r = GradingRules()
    assert conclude(0.0, -0.1, 0.1, r) == "no detectable effect"
    assert conclude(-0.05, -0.08, -0.02, r) == "negligible"
    assert conclude(-0.5, -0.8, -0.2, r) == "loss"
    assert conclude(0.5, 0.2, 0.8, r) == "gain"
    assert fmt_num(-0.001) == "0.00" and fmt_num(-1.234) == "−1.23"


def test_missing_primary_method_is_explained(article_doc):
    with pytest.raises(ValueError, match="no 'tmle' estimate"):
        grade_evidence(typed(article_doc), rules=GradingRules(primary_method="tmle"))


# ---- positivity, population, heterogeneity and measurement (issue 14) -------------------------


def test_clean_run_states_positivity_population_and_learner(article_doc):
    a = grade_evidence(typed(article_doc))
    rows = {c.name: c for c in a.criteria}
    pos = rows["Positivity and weights"]
    assert pos.grade_change == 0 and pos.verdict == "supports"
    assert "treated: ESS" in pos.finding and "control: ESS" in pos.finding and "largest weight" in pos.finding
    assert rows["Target population"].grade_change == 0 and "no trimming" in rows["Target population"].finding
    assert rows["Nuisance models"].finding.startswith("linear") and rows["Nuisance models"].grade_change == 0
    assert rows["Heterogeneity"].verdict == "not assessed"


def test_thin_arm_extreme_weights_and_truncation_downgrade(article_doc):
    thin, est = _edit(article_doc)
    arms = est["diagnostics"]["weights"]["by_arm"]
    arms["control"]["ess"] = 0.05 * arms["control"]["n"]  # the untreated mean rests on 5 % of its patients
    a = grade_evidence(typed(thin))
    pos = next(c for c in a.criteria if c.name == "Positivity and weights")
    assert pos.grade_change == -1 and "control arm's weights rest on 5%" in pos.finding
    assert a.grade == "low"  # moderate − 1
    def truncated(removed_control: float):
        d, est = _edit(article_doc)
        est["diagnostics"]["truncation"] = {"kind": "by arm", "upper_percentile": 99.0, "arms": {
            "treated": {"cap": 4.0, "capped": {"n": 20}, "share_of_weight_removed": 0.01},
            "control": {"cap": 9.0, "capped": {"n": 30}, "share_of_weight_removed": removed_control}}}
        return next(c for c in grade_evidence(typed(d)).criteria if c.name == "Positivity and weights")
    pos = truncated(0.12)
    assert pos.grade_change == -1 and "truncation removed 12.0% of the control weight" in pos.finding
    assert "1.0% of the treated weight" in pos.finding
    assert truncated(0.03).grade_change == 0  # within GradingRules.truncation_removed_max (5 %)
    heavy, est = _edit(article_doc)
    w = est["diagnostics"]["weights"]
    w["max"] = 25 * w["mean"]
    assert next(c for c in grade_evidence(typed(heavy)).criteria if c.name == "Positivity and weights").grade_change == -1


def test_positivity_downgrade_blocks_the_gradient_upgrade(article_doc):
    thin, est = _edit(article_doc)
    est["diagnostics"]["weights"]["by_arm"]["treated"]["ess"] = 1.0
    a = grade_evidence(typed(thin), mechanisms=_mechanisms((-0.1, -0.15, -0.05)))
    rows = {c.name: c.grade_change for c in a.criteria}
    assert rows["Positivity and weights"] == -1 and rows["Biological gradient"] == 0 and a.grade == "low"


def test_trimming_is_stated_and_a_large_trim_is_indirect(article_doc):
    def trimmed(share: float):
        d, est = _edit(article_doc)
        n0 = est["n"]
        gone = int(round(share * n0))
        est["diagnostics"]["trimming"] = {
            "rule": "crump", "description": "Crump, Hotz, Imbens & Mitnik (2009) optimal rule", "alpha": 0.08,
            "bounds": [0.08, 0.92], "n_before": n0, "n_excluded": gone, "n_after": n0 - gone,
            "treated": {"n_before": 1, "n_excluded": 0}, "control": {"n_before": 1, "n_excluded": 0},
            "estimand": "ATE in the trimmed population (propensity in [0.08, 0.92])"}
        return next(c for c in grade_evidence(typed(d)).criteria if c.name == "Target population")
    few, many = trimmed(0.04), trimmed(0.25)
    assert few.grade_change == 0 and "4.0%" in few.finding and "Crump" in few.finding
    assert "trimmed population" in few.finding
    assert many.grade_change == -1 and many.verdict == "against" and "25.0%" in many.finding


def _mechanisms_with(heterogeneity: Heterogeneity, not_estimable: dict[str, str], calibration: dict | None):
    pathway = _effect("via appetite", -0.3, -0.4, -0.2)
    diag = {"calibration": calibration} if calibration else {}
    mediation = MediationResult(pathway, pathway, {"appetite": pathway}, pathway, (), diag)
    res = MechanismsResults("ketamine-weight", "kg", not_estimable, mediation, (), heterogeneity)
    return parse_results({"kind": "mechanisms", "provenance": {}, "results": res.to_dict()})


def test_heterogeneity_and_measurement_are_stated_never_graded(article_doc):
    from ketaweight.mechanisms.modifiers import ModifierSearch, ModifierTest

    dist = {"calibration": {"blp_slope": 0.93, "blp_slope_ci": [0.61, 1.25], "blp_p_value_no_heterogeneity": 1e-6},
            "spread": {"sd_calibrated": 0.53, "sd_calibrated_ci": [0.35, 0.72], "sd_predicted": 0.57}}
    search = ModifierSearch((ModifierTest("atypical_features", "categorical", 30.0, 1, 1e-7, 1e-6, {}),),
                            ("atypical_features",), 0.05, {})
    het = Heterogeneity((), (), IndividualEffects(dist), search=search)
    mech = _mechanisms_with(het, {"attribution of pathway metabolism": "consumer-grade"},
                            {"reference_columns": {"energy_intake_7d": "energy_intake_7d_ref"}})
    a = grade_evidence(typed(article_doc), mechanisms=mech)
    rows = {c.name: c for c in a.criteria}
    h = rows["Heterogeneity"]
    assert h.grade_change == 0 and h.verdict == "neutral"
    assert "BLP slope 0.93 (95% CI 0.61 to 1.25" in h.finding
    assert "calibrated SD of individual effects 0.53 kg (95% CI 0.35 to 0.72)" in h.finding
    assert "catalogue search: depression with atypical features" in h.finding
    p = rows["Plausibility (mechanism)"]
    assert "regression-calibrated on a validation substudy: energy_intake_7d → energy_intake_7d_ref" in p.finding
    assert "not attributable from consumer-grade records without a validation substudy: metabolism" in p.finding
    assert a.grade == grade_evidence(typed(article_doc)).grade
