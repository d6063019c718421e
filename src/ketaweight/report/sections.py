"""Build the report's content, section by section in the article's order, from one run's results.

Each ``*_section`` function returns a plain dict (JSON-ready: text, tables with captions,
figures as :class:`~ketaweight.report.figures.Figure`), which the HTML and Markdown templates
render and the JSON output keeps (figures as alt text only).  Every table caption and figure
alt text names the data's source (simulated, synthetic reports, or real FAERS with its
period); counts come masked from the results files and are shown through ``display_count``.
"""

from __future__ import annotations

from typing import Any

from ketaweight.evidence import LEVELS, Answer, GradingRules, fmt_num
from ketaweight.report import figures as fg
from ketaweight.report.collect import RunResults
from ketaweight.report.extract import (
    EstimateRow,
    curves,
    gradient_rows,
    horizon_phrase,
    mediation_rows,
    primary_estimate,
    subgroup_rows,
)
from ketaweight.report.safety import display_count

NOT_ANALYSED = "Not yet analysed in this run: no results file for this analysis was found, so no number is shown."

METHOD_NAMES = {"crude": "crude difference (unadjusted)", "standardization": "standardization (g-formula)",
                "ipw": "IPW (stabilized, censoring weights)", "aipw": "AIPW (doubly robust, cross-fitted)",
                "g-estimation": "g-estimation (SNMM)"}


def data_label(doc: dict[str, Any] | None) -> str:
    """How to label numbers from a results document: simulated, synthetic reports, or the named real source."""
    prov = (doc or {}).get("provenance", {})
    if prov.get("label"):
        return str(prov["label"])
    if prov.get("synthetic"):
        return f"simulated data ({prov.get('source', 'ketaweight simulator')})"
    return f"real data: {prov.get('source', 'user records')}"


def _table(caption: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"caption": caption, "columns": columns, "rows": [[str(c) for c in r] for r in rows]}


def _ci(lo: float | None, hi: float | None) -> str:
    return "—" if lo is None or hi is None else f"{fmt_num(lo)} to {fmt_num(hi)}"


def _estimates_table(analysis: dict[str, Any], unit: str, label: str, title: str) -> dict[str, Any]:
    rows = []
    for e in analysis.get("estimates", []):
        s = e.get("sensitivity") or {}
        rows.append([METHOD_NAMES.get(e["method"], e["method"]), fmt_num(e["estimate"]), _ci(e["ci_low"], e["ci_high"]),
                     display_count(e.get("n")),
                     "—" if s.get("evalue_ci") is None else f"{s['evalue_estimate']:.2f} ({s['evalue_ci']:.2f})"])
    return _table(f"{title} — {label}", ["method", f"estimate ({unit})", "95% CI", "n", "E-value (CI limit)"], rows)


def _forest(analysis: dict[str, Any], unit: str, alt: str) -> fg.Figure:
    est = analysis.get("estimates", [])
    return fg.forest_plot([METHOD_NAMES.get(e["method"], e["method"]) for e in est], [e["estimate"] for e in est],
                          [e["ci_low"] for e in est], [e["ci_high"] for e in est], unit=unit, alt=alt,
                          highlight=[e["method"] == "crude" for e in est])


def _rows_block(rows: list[EstimateRow], unit: str, label: str, title: str, digits: int = 2) -> dict[str, Any]:
    """A table and a forest plot of labelled estimates."""
    return {
        "table": _table(f"{title} — {label}", ["estimate", f"value ({unit})", "95% CI", "n"],
                        [[r.label, fmt_num(r.estimate, digits), f"{fmt_num(r.ci_low, digits)} to {fmt_num(r.ci_high, digits)}",
                          display_count(r.n)] for r in rows]),
        "figure": fg.forest_plot([r.label for r in rows], [r.estimate for r in rows], [r.ci_low for r in rows],
                                 [r.ci_high for r in rows], unit=unit,
                                 alt=f"{title}: estimates with 95% confidence intervals ({label})"),
    }


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
        "tables": [_table(f"Evidence criteria (Bradford Hill style) and their effect on the grade — {label}",
                          ["criterion", "question", "finding in this run", "verdict", "grade change", "rule"], rows)],
        "figures": [],
    }


def mechanism_section(run: RunResults) -> dict[str, Any]:
    paras = ["Ketamine blocks NMDA receptors; at sub-anaesthetic doses it is a rapid-acting antidepressant. "
             "Nothing in its pharmacology makes it a weight-loss drug, but three routes from a ketamine course to a "
             "change in weight are plausible (appetite, metabolism, mood → activity): this run tests them."]
    if run.truth is not None:
        sc = run.truth.get("provenance", {}).get("scenario", {})
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
    res = doc["results"]
    label = data_label(doc)
    unit = {"score": "points"}.get(res["outcome_units"]["outcome_change"], res["outcome_units"]["outcome_change"])
    kind = res["study"]["outcome"]["kind"].upper()
    when = horizon_phrase(res["study"]["outcome"].get("horizon_days"))
    an = res["analyses"]["outcome_change"]
    p = primary_estimate(an, "aipw") or an["estimates"][-1]
    sec["paragraphs"].append(f"Starting a course changed the {kind} score at {when} by {fmt_num(p['estimate'])} {unit} "
                             f"(95% CI {_ci(p['ci_low'], p['ci_high'])}; {p['method']}; {label}). A fall in {kind} is "
                             f"an improvement: this is the benefit the weight question sits beside.")
    sec["tables"].append(_estimates_table(an, unit, label, f"Effect on {kind} change at {when}"))
    sec["figures"].append(_forest(an, f"change in {kind} ({unit})", f"Forest plot: effect of starting a course on "
                                  f"{kind} at {when}, five estimators with 95% CIs ({label})"))
    return sec


def link_section(run: RunResults) -> dict[str, Any]:
    res = run.weight["results"]
    label = data_label(run.weight)
    when = horizon_phrase(res["study"]["outcome"].get("horizon_days"))
    sec = {"id": "the-link", "title": "The link between ketamine and weight: the estimates",
           "paragraphs": [f"Target trial: {res['study']['study'].get('description', '')}"], "tables": [], "figures": []}
    for col, unit in res["outcome_units"].items():
        an = res["analyses"][col]
        sec["tables"].append(_estimates_table(an, unit, label, f"Effect on weight change at {when} ({unit})"))
        if col == "outcome_change":
            sec["figures"].append(_forest(an, f"weight change ({unit})", f"Forest plot: effect of starting a course on "
                                          f"weight at {when}, five estimators with 95% CIs; the crude difference in "
                                          f"orange ({label})"))
    crude, aipw = primary_estimate(res["analyses"]["outcome_change"], "crude"), primary_estimate(res["analyses"]["outcome_change"], "aipw")
    if crude and aipw:
        sec["paragraphs"].append(f"The crude difference ({fmt_num(crude['estimate'])} kg) and the adjusted AIPW estimate "
                                 f"({fmt_num(aipw['estimate'])} kg) differ by {abs(crude['estimate'] - aipw['estimate']):.2f} kg: "
                                 f"that much of the raw difference came from who chose ketamine (diet and exercise "
                                 f"programmes, severity, BMI), not from ketamine.")
    if run.truth is not None:
        t = run.truth["results"]
        sec["paragraphs"].append(f"Check against the simulator's truth (known only because the data are simulated): "
                                 f"true average effect {fmt_num(t['weight_change_kg']['ate'])} kg "
                                 f"({fmt_num(t['weight_change_pct']['ate'])}%); the crude difference of true weight change "
                                 f"would be {fmt_num(t['crude_difference_true_weight_change_kg'])} kg.")
    return sec


def mechanisms_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "three-mechanisms", "title": "The three mechanisms: appetite, metabolism, mood → activity",
           "paragraphs": [], "tables": [], "figures": []}
    doc = run.mechanisms
    if doc is None:
        sec["paragraphs"].append("Mediation analysis: " + NOT_ANALYSED)
    else:
        med = doc["results"]["mediation"]
        block = _rows_block(mediation_rows(doc), "kg", data_label(doc), "Effect carried by each measured pathway "
                            "(interventional mediation, g-computation)", digits=3)
        sec["paragraphs"].append("Each pathway's effect is what shifting its measured mediators (food-diary intake and "
                                 "appetite; depression score and activity) to their distribution under treatment would "
                                 "do; what no measured mediator captures — such as energy expenditure — stays in the "
                                 "direct remainder. The estimates rest on these assumptions:")
        sec["paragraphs"].extend(f"• {a}" for a in med["assumptions"])
        sec["paragraphs"].extend(f"Warning: {w}" for w in med.get("warnings", []))
        sec["tables"].append(block["table"])
        sec["figures"].append(block["figure"])
    if run.truth is not None:
        pw = run.truth["results"]["pathways_kg"]
        sec["tables"].append(_table("What each pathway truly carries — simulator truth (known only in simulation)",
                                    ["pathway", "true average effect (kg)"],
                                    [[k, fmt_num(v["ate"], 3)] for k, v in pw.items()]))
    return sec


def dose_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "dose-and-variability", "title": "Dose, frequency, duration and individual variability",
           "paragraphs": [], "tables": [], "figures": []}
    doc = run.mechanisms
    if doc is None:
        sec["paragraphs"].append(f"Dose-response, subgroup effects and per-patient effects: {NOT_ANALYSED}")
    else:
        label = data_label(doc)
        sec["paragraphs"].append("Dose-response among treated patients: marginal structural models (stabilized "
                                 "generalized-propensity weights) give the mean weight change at 12 weeks if every "
                                 "treated patient had received a given exposure, E[Y^a], over the 5th–95th percentile "
                                 "of the exposures seen; the curves' slopes are the gradient.")
        for c in curves(doc):
            pts = c["curve"]
            sec["figures"].append(fg.curve_plot([p["exposure"] for p in pts], [p["estimate"] for p in pts],
                                                [p["ci_low"] for p in pts], [p["ci_high"] for p in pts],
                                                xlabel=c["exposure"].replace("_", " "), ylabel="mean weight change (kg)",
                                                alt=f"Dose-response curve: mean weight change at 12 weeks by "
                                                    f"{c['exposure'].replace('_', ' ')}, MSM with 95% band ({label})"))
        grad = _rows_block(gradient_rows(doc), "kg per unit", label, "Dose-response slopes", digits=3)
        sec["tables"].append(grad["table"])
        sub = _rows_block(subgroup_rows(doc), "kg", label, "Effects by subgroup and by route (heterogeneity)")
        sec["tables"].append(sub["table"])
        sec["figures"].append(sub["figure"])
        het = doc["results"]["heterogeneity"]
        sec["tables"].append(_table(f"Tests of effect modification — {label}", ["modifier", "χ²", "df", "p", "p (Holm)"],
                                    [[m["modifier"], f"{m['test']['chi2']:.2f}", m["test"]["df"], f"{m['test']['p_value']:.3f}",
                                      f"{m['test']['p_holm']:.3f}"] for m in het["subgroups"]]))
        ind = het["individual"]
        pr, cal = ind["predicted"], ind["calibration"]
        sec["paragraphs"].append(
            f"Per-patient effects ({ind['method']}; {label}): predicted effects have SD {pr['sd']:.2f} kg, 90% between "
            f"{fmt_num(pr['p05'])} and {fmt_num(pr['p95'])} kg; {100 * ind['share_predicted_below_threshold']:.1f}% "
            f"are predicted to lose more than {abs(ind['threshold']):g} kg. Calibration slope {cal['blp_slope']:.2f} "
            f"(95% CI {cal['blp_slope_ci'][0]:.2f} to {cal['blp_slope_ci'][1]:.2f}). "
            + " ".join(t[0].upper() + t[1:].rstrip(".") + "." for t in (cal.get("reading"), ind.get("caveat")) if t))
        sec["figures"].append(fg.forest_plot(["predicted per-patient effects: 5th–95th percentile (median)"],
                                             [pr["p50"]], [pr["p05"]], [pr["p95"]], unit="per-patient effect (kg)",
                                             alt=f"Spread of predicted per-patient effects: median with 5th to 95th "
                                                 f"percentile ({label})"))
    if run.truth is not None:
        ind = run.truth["results"]["individual_effect_kg"]
        sec["paragraphs"].append(
            f"Individual variability in the simulated patients (simulator truth, known only in simulation): "
            f"each patient's own effect has SD {ind['sd']:.2f} kg; 90% of patients lie between "
            f"{fmt_num(ind['p05'])} and {fmt_num(ind['p95'])} kg (median {fmt_num(ind['p50'])} kg); "
            f"{100 * ind['share_losing_more_than_1kg']:.1f}% lose more than 1 kg because of the course.")
        sec["figures"].append(fg.forest_plot(["true per-patient effects: 5th–95th percentile (median)"], [ind["p50"]],
                                             [ind["p05"]], [ind["p95"]], unit="per-patient effect (kg)",
                                             alt="Spread of true per-patient effects: median with 5th to 95th percentile "
                                                 "(simulator truth)"))
    return sec


def limitations_section(run: RunResults) -> dict[str, Any]:
    res = run.weight["results"]
    label = data_label(run.weight)
    an = res["analyses"]["outcome_change"]
    p = primary_estimate(an, "aipw") or an["estimates"][-1]
    d = p["diagnostics"]
    att = res.get("cohort_attrition", [])
    sec = {"id": "limitations", "title": "Limitations and confounding", "tables": [], "figures": [],
           "paragraphs": ["Diet, exercise and other lifestyle changes around the start of treatment are the article's "
                          "named confounders; here they are measured and adjusted for: "
                          + ", ".join(f"{k} ({v})" for k, v in res.get("covariates", {}).items()) + "."]}
    sec["figures"].append(fg.attrition_diagram([s["reason"] for s in att], [display_count(s["n_after"]) for s in att],
                                               [display_count(s["n_excluded"]) for s in att],
                                               alt=f"Attrition diagram: patients remaining after each eligibility step "
                                                   f"(counts under 11 shown as <11; {label})"))
    sec["tables"].append(_table(f"Cohort attrition — {label}", ["step", "remaining", "excluded"],
                                [[s["reason"], display_count(s["n_after"]), display_count(s["n_excluded"])] for s in att]))
    bal, ov = d["balance"], d["overlap"]
    sec["figures"].append(fg.balance_plot(bal["covariates"], bal["smd_unweighted"], bal["smd_weighted"],
                                          threshold=bal["threshold"],
                                          alt=f"Balance plot: absolute standardized mean differences of each covariate "
                                              f"before and after weighting, threshold {bal['threshold']:g} ({label})"))
    sec["figures"].append(fg.overlap_plot(ov["quantiles"], ov["treated"], ov["control"],
                                          alt=f"Propensity overlap: propensity-score quantiles of treated and untreated "
                                              f"patients; {100 * ov['share_outside_support']:.1f}% outside common "
                                              f"support ({label})"))
    s = p["sensitivity"]
    sec["paragraphs"].append(
        f"E-value ({p['method']}): {s['evalue_estimate']:.2f} for the estimate, {s['evalue_ci']:.2f} for the CI limit — "
        f"an unmeasured confounder would need risk-ratio associations of that size with both ketamine and weight change "
        f"to explain the estimate (or move the CI to 0) away. {s.get('approximation', '')}.")
    ncs = an.get("negative_controls", [])
    if ncs:
        sec["tables"].append(_table(f"Negative-control outcome — {label}", ["outcome", "method", "estimate", "95% CI", "reading"],
                                    [[nc["outcome"], nc["result"]["method"], fmt_num(nc["result"]["estimate"]),
                                      _ci(nc["result"]["ci_low"], nc["result"]["ci_high"]), nc["interpretation"]]
                                     for nc in ncs]))
    warns = sorted({w for e in an.get("estimates", []) for w in e.get("warnings", [])})
    sec["paragraphs"].extend(f"Warning: {w}" for w in warns)
    return sec


def _about_ketamine(doc: dict[str, Any]) -> bool:
    return any(p["drug"] in ("ketamine", "esketamine") for p in doc["results"]["pairs"])


def signals_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "signals", "title": "Signals from spontaneous reports (FAERS)", "tables": [], "figures": [],
           "paragraphs": ["Disproportionality compares how often an event is reported with a drug against all other "
                          "drugs: a signal is a question, not a cause (notoriety, stimulated reporting, and depression "
                          "itself changes appetite and weight)."]}
    if not run.signals:
        sec["paragraphs"].append(NOT_ANALYSED)
    for doc in sorted(run.signals, key=lambda d: not _about_ketamine(d)):  # ketamine's own reports first
        label = data_label(doc)
        r = doc["results"]
        rows, lab, est, lo, hi = [], [], [], [], []
        for pair in r["pairs"]:
            m = {x["method"]: x for x in pair["measures"]}
            sig = [k for k, x in m.items() if x.get("signal")]
            role = pair["role"] if pair["role"] != "control" else f"control ({pair['expected_result']})"
            small = isinstance(pair["a"], str)  # masked: ratios and E would let a reader recover the count
            ratios = ["suppressed (<11 reports)"] * 4 if small else [_ratio(m[k]) for k in ("PRR", "ROR", "IC", "EBGM")]
            rows.append([role, pair["drug"], pair["event"], display_count(pair["a"]),
                         "suppressed" if small else f"{pair['expected_count']:.1f}", *ratios,
                         ", ".join(sig) or "none"])
            prr = m["PRR"]
            if not small and prr.get("estimate") and prr.get("ci_low") and prr.get("ci_high"):
                lab.append(f"{pair['drug']} × {pair['event']}")
                est.append(prr["estimate"])
                lo.append(prr["ci_low"])
                hi.append(prr["ci_high"])
        sec["tables"].append(_table(f"Disproportionality, counts as the source counts them — {label}",
                                    ["role", "drug", "event", "reports (a)", "expected (E)", "PRR (95% CI)",
                                     "ROR (95% CI)", "IC (95% CI)", "EBGM (EB05–EB95)", "signals"], rows))
        if lab:
            sec["figures"].append(fg.forest_plot(lab, est, lo, hi, unit="PRR (log scale)", log=True, reference=1.0,
                                                 alt=f"Forest plot of proportional reporting ratios with 95% CIs "
                                                     f"({label})"))
        for c in r.get("controls", []):
            found = [k for k, v in c["signal"].items() if v]
            ok = all(c["as_expected"].values())
            sec["paragraphs"].append(
                f"Control {c['drug']} × {c['event']} (expected {c['expected']}; {label}): "
                + (f"signal by {', '.join(found)}" if found else "no signal by any method")
                + (", as expected." if ok else " — not as expected: read this table's signals with that in mind."))
        sec["paragraphs"].extend(f"{label}: {n}" for n in r.get("notes", []))
    return sec


def _ratio(m: dict[str, Any]) -> str:
    """'est (low–high)'; EBGM from a prior fit that did not converge is marked, as the signals CLI does."""
    if m.get("estimate") is None:
        return "undefined"
    flag = " (!) prior fit not converged" if m.get("prior_converged") is False or m.get("prior_boundary") else ""
    return f"{fmt_num(m['estimate'])} ({fmt_num(m['ci_low'])} to {fmt_num(m['ci_high'])}){flag}"


def responsible_section(run: RunResults) -> dict[str, Any]:
    sec = {"id": "responsible-use", "title": "Responsible use: adverse events and monitoring flags",
           "paragraphs": ["Ketamine is a controlled substance with a potential for misuse; these are the views a "
                          "service would monitor."], "tables": [], "figures": []}
    doc = run.responsible_use
    if doc is None:
        sec["paragraphs"].append(NOT_ANALYSED)
        return sec
    label, r = data_label(doc), doc["results"]
    sec["tables"].append(_table(f"Sessions by drug and route — {label}", ["drug (route)", "sessions", "patients"],
                                [[x["group"], display_count(x["sessions"]), display_count(x["patients"])] for x in r["routes"]]))
    sec["tables"].append(_table(f"Adverse events on session days — {label}",
                                ["drug (route)", "event", "events", "per 100 sessions"],
                                [[x["group"], x["term"], display_count(x["events"]),
                                  "—" if x["per_100_sessions"] is None else f"{x['per_100_sessions']:.1f}"]
                                 for x in r["adverse_events"]]))
    sec["tables"].append(_table(f"Monitoring flags — {label}", ["flag", "count", "of", "%"],
                                [[f"{x['flag']} ({x['unit']})", display_count(x["count"]),
                                  "—" if x["of"] is None else display_count(x["of"]),
                                  "—" if x["percent"] is None else f"{x['percent']:.1f}"] for x in r["flags"]]))
    sec["paragraphs"].append(r["note"])
    return sec
