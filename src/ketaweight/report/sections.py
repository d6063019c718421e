"""The report's sections from the causal results: the answer, mechanism of action, therapeutic
context, the link, limitations and confounding (sections 1–4 and 7; see render.py for the order).

Each ``*_section`` function returns a plain dict (JSON-ready: text, tables with captions,
figures as :class:`~ketaweight.report.figures.Figure`), which the HTML and Markdown templates
render and the JSON output keeps (figures as alt text only).  Every table caption and figure
alt text names the data's source (simulated, synthetic reports, or real FAERS with its
period); counts come masked from the results files and are shown through ``mask_count``.
"""

from __future__ import annotations

from typing import Any

from ketaweight.causal.analysis import CausalAnalysis
from ketaweight.core.privacy import mask_count
from ketaweight.evidence.extract import horizon_phrase
from ketaweight.evidence.grade import LEVELS, Answer, GradingRules, fmt_num
from ketaweight.core import figures as fg
from ketaweight.report.blocks import NOT_ANALYSED, ci_text, data_label, table
from ketaweight.report.collect import RunResults
from ketaweight.study.labels import label as column_label

METHOD_NAMES = {"crude": "crude difference (unadjusted)", "standardization": "standardization (g-formula)",
                "ipw": "IPW (stabilized, censoring weights)", "aipw": "AIPW (doubly robust, cross-fitted)",
                "g-estimation": "g-estimation (SNMM)"}


def _estimates_table(analysis: CausalAnalysis, unit: str, label: str, title: str) -> dict[str, Any]:
    rows = []
    for e in analysis.estimates:
        s = e.sensitivity or {}
        rows.append([METHOD_NAMES.get(e.method, e.method), fmt_num(e.estimate), ci_text(e.ci_low, e.ci_high),
                     mask_count(e.n),
                     "—" if s.get("evalue_ci") is None else f"{s['evalue_estimate']:.2f} ({s['evalue_ci']:.2f})"])
    return table(f"{title} — {label}", ["method", f"estimate ({unit})", "95% CI", "n", "E-value (CI limit)"], rows)


def _forest(analysis: CausalAnalysis, unit: str, alt: str) -> fg.Figure:
    est = analysis.estimates
    return fg.forest_plot([METHOD_NAMES.get(e.method, e.method) for e in est], [e.estimate for e in est],
                          [e.ci_low for e in est], [e.ci_high for e in est], unit=unit, alt=alt,
                          highlight=[e.method == "crude" for e in est])


# ---- sections -------------------------------------------------------------------------------


def answer_section(run: RunResults, answer: Answer, rules: GradingRules) -> dict[str, Any]:
    label = data_label(run.weight)
    rows = [[c.name, c.question, c.finding, c.verdict, f"{c.grade_change:+d}" if c.grade_change else "0", c.rule]
            for c in answer.criteria]
    return {
        "id": "answer", "title": "Does ketamine cause weight loss?",
        "paragraphs": [answer.sentence,
                       f"Data: {label}. The grade says how sure this run can be, by the rules below: an emulated "
                       f"target trial starts at '{LEVELS[rules.start_level]}' (only measured confounders are "
                       f"adjusted for) and each criterion may move it down or up, never above "
                       f"'{LEVELS[rules.max_level]}' for one data source (higher certainty needs replication); "
                       f"the result is '{answer.grade}'."],
        "sentence": answer.sentence, "grade": answer.grade,
        "tables": [table(f"Evidence criteria (Bradford Hill style) and their effect on the grade — {label}",
                          ["criterion", "question", "finding in this run", "verdict", "grade change", "rule"], rows)],
        "figures": [],
    }


def evalue_in_words(evalue_ci: float | None, estimate: float) -> str:
    """What a CI-limit E-value means for a reader who is not an epidemiologist."""
    if evalue_ci is None or evalue_ci != evalue_ci:
        return "No E-value could be computed."
    if evalue_ci <= 1.0:
        return "The interval already includes no effect, so there is nothing for a confounder to explain away."
    strength = ("very weak: almost any difference between the groups that the records do not capture could explain it"
                if evalue_ci < 1.25 else
                "weak: one modest unmeasured difference, such as a lifestyle change not in the records, could explain it"
                if evalue_ci < 1.5 else
                "moderate: it would take an unmeasured difference about as strong as the measured diet and exercise "
                "programmes" if evalue_ci < 2.0 else
                "substantial: an unmeasured confounder would have to be stronger than most measured ones")
    return (f"In words, the protection against unmeasured confounding is {strength}. It says nothing about whether "
            f"a change of {fmt_num(abs(estimate))} kg matters to a patient: that is the size of the effect, judged "
            f"against the 1 kg that matters clinically.")


def mechanism_section(run: RunResults) -> dict[str, Any]:
    paras = ["Ketamine blocks NMDA receptors; at sub-anaesthetic doses it is a rapid-acting antidepressant. "
             "Nothing in its pharmacology makes it a weight-loss drug, but three routes from a ketamine course to a "
             "change in weight are plausible (appetite, metabolism, mood → activity): this run tests them."]
    if run.truth is not None:
        sc = run.truth.provenance.get("scenario", {})
        paras.append(f"The patients in this run are simulated by ketaweight's mechanistic model (scenario "
                     f"'{sc.get('name', '?')}'): ketamine exposure by route → antidepressant benefit, appetite and "
                     f"energy-expenditure effects → Hall's energy-balance model of body weight. "
                     f"{sc.get('description', '')}")
    return {"id": "mechanism", "title": "Mechanism of action: the model behind this run", "paragraphs": paras,
            "tables": [], "figures": []}


def therapeutic_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "therapeutic-context", "title": "Therapeutic context: the effect on depression in these data",
           "paragraphs": [], "tables": [], "figures": []}
    doc = run.depression
    if doc is None:
        sec["paragraphs"].append(NOT_ANALYSED)
        return sec
    res = doc.results
    label = data_label(doc)
    unit = {"score": "points"}.get(res.outcome_units["outcome_change"], res.outcome_units["outcome_change"])
    kind = res.study.outcome.kind.upper()
    days = res.study.outcome.horizon_days
    when = horizon_phrase(days)
    an = res.analyses["outcome_change"]
    p = an.estimate("aipw") or an.estimates[-1]
    sec["paragraphs"].append(f"Starting a course changed the {kind} score at {when} by {fmt_num(p.estimate)} {unit} "
                             f"(95% CI {ci_text(p.ci_low, p.ci_high)}; {p.method}; {label}). A fall in {kind} is "
                             f"an improvement: this is the benefit the weight question sits beside.")
    truth = run.simulation_truth.madrs_points.get(f"day_{days}") if run.simulation_truth and kind == "MADRS" else None
    if truth is not None:
        sec["paragraphs"].append(f"Check against the simulator's truth (known only because the data are simulated): "
                                 f"true average effect on MADRS at day {days}: {fmt_num(truth.ate)} points.")
    sec["tables"].append(_estimates_table(an, unit, label, f"Effect on {kind} change at {when}"))
    sec["figures"].append(_forest(an, f"change in {kind} ({unit})", f"Forest plot: effect of starting a course on "
                                  f"{kind} at {when}, five estimators with 95% CIs ({label})"))
    return sec


def link_section(run: RunResults) -> dict[str, Any]:
    res = run.study
    label = data_label(run.weight)
    when = horizon_phrase(res.study.outcome.horizon_days)
    sec = {"id": "the-link", "title": "The link between ketamine and weight: the estimates",
           "paragraphs": [f"Target trial: {res.study.study.description}"], "tables": [], "figures": []}
    for col, unit in res.outcome_units.items():
        an = res.analyses[col]
        sec["tables"].append(_estimates_table(an, unit, label, f"Effect on weight change at {when} ({unit})"))
        if col == "outcome_change":
            sec["figures"].append(_forest(an, f"weight change ({unit})", f"Forest plot: effect of starting a course on "
                                          f"weight at {when}, five estimators with 95% CIs; the crude difference in "
                                          f"orange ({label})"))
    main = res.analyses["outcome_change"]
    crude, aipw = main.estimate("crude"), main.estimate("aipw")
    if crude and aipw:
        sec["paragraphs"].append(f"The crude difference ({fmt_num(crude.estimate)} kg) and the adjusted AIPW estimate "
                                 f"({fmt_num(aipw.estimate)} kg) differ by {abs(crude.estimate - aipw.estimate):.2f} kg: "
                                 f"that much of the raw difference came from who chose ketamine (diet and exercise "
                                 f"programmes, severity, BMI), not from ketamine ({label}).")
    t = run.simulation_truth
    if t is not None:
        sec["paragraphs"].append(f"Check against the simulator's truth (known only because the data are simulated): "
                                 f"true average effect {fmt_num(t.weight_change_kg.ate)} kg "
                                 f"({fmt_num(t.weight_change_pct.ate)}%); the crude difference of true weight change "
                                 f"would be {fmt_num(t.crude_difference_true_weight_change_kg)} kg.")
    return sec


POSITIVITY_CRITERIA = ("Balance and overlap", "Positivity and weights", "Target population", "Nuisance models")
"""Criteria of the grade whose findings the limitations section states again, as one table."""


def limitations_section(run: RunResults, answer: Answer | None = None) -> dict[str, Any]:
    res = run.study
    label = data_label(run.weight)
    an = res.analyses["outcome_change"]
    p = an.estimate("aipw") or an.estimates[-1]
    d = p.diagnostics
    att = res.cohort_attrition
    sec = {"id": "limitations", "title": "Limitations and confounding", "tables": [], "figures": [],
           "paragraphs": ["Diet, exercise and other lifestyle changes around the start of treatment are the article's "
                          "named confounders; here they are measured and adjusted for: "
                          + "; ".join(f"{column_label(k)} ({v})" for k, v in res.covariates.items()) + "."]}
    sec["figures"].append(fg.attrition_diagram([s.reason for s in att], [mask_count(s.n_after) for s in att],
                                               [mask_count(s.n_excluded) for s in att],
                                               alt=f"Attrition diagram: patients remaining after each eligibility step "
                                                   f"(counts under 11 shown as <11; {label})"))
    sec["tables"].append(table(f"Cohort attrition — {label}", ["step", "remaining", "excluded"],
                                [[s.reason, mask_count(s.n_after), mask_count(s.n_excluded)] for s in att]))
    bal, ov = d["balance"], d["overlap"]
    sec["figures"].append(fg.balance_plot([column_label(c) for c in bal["covariates"]], bal["smd_unweighted"],
                                          bal["smd_weighted"],
                                          threshold=bal["threshold"],
                                          alt=f"Balance plot: absolute standardized mean differences of each covariate "
                                              f"before and after weighting, threshold {bal['threshold']:g} ({label})"))
    share = ov.get("share_outside_support")
    outside = (f"{100 * share:.1f}% outside common support" if share is not None
               else "the share outside common support is not shown (fewer than 11 patients)")
    sec["figures"].append(fg.overlap_plot(ov["quantiles"], ov["treated"], ov["control"],
                                          alt=f"Propensity overlap: propensity-score quantiles of treated and untreated "
                                              f"patients; {outside} ({label})"))
    if answer is not None:
        rows = [[c.name, c.finding, f"{c.grade_change:+d}" if c.grade_change else "0"]
                for c in answer.criteria if c.name in POSITIVITY_CRITERIA]
        sec["tables"].append(table(f"Overlap, weights, population and nuisance models of the primary estimate "
                                   f"({p.method}) — {label}", ["check", "finding in this run", "grade change"], rows))
    s = p.sensitivity
    sec["paragraphs"].append(
        f"E-value ({p.method}; {label}): {fmt_num(s.get('evalue_estimate'))} for the estimate, "
        f"{fmt_num(s.get('evalue_ci'))} for the CI limit — "
        f"an unmeasured confounder would need risk-ratio associations of that size with both ketamine and weight change "
        f"to explain the estimate (or move the CI to 0) away. {evalue_in_words(s.get('evalue_ci'), p.estimate)} "
        f"{s.get('approximation', '')}.")
    if an.negative_controls:
        sec["tables"].append(table(f"Negative-control outcome — {label}", ["outcome", "method", "estimate", "95% CI", "reading"],
                                    [[column_label(nc.outcome), nc.result.method, fmt_num(nc.result.estimate),
                                      ci_text(nc.result.ci_low, nc.result.ci_high), nc.interpretation]
                                     for nc in an.negative_controls]))
    warns = sorted({w for e in an.estimates for w in e.warnings})
    sec["paragraphs"].extend(f"Warning: {w}" for w in warns)
    return sec
