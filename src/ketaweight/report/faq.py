"""The article's five FAQs, answered from this run's numbers (and the disclaimer).

The article answers each question from general knowledge; here each answer keeps that
general statement and adds what this run measured, with its data label.
"""

from __future__ import annotations

from typing import Any

from ketaweight.core.privacy import mask_count
from ketaweight.evidence.grade import Answer, GradingRules, fmt_num
from ketaweight.pipelines.results import MonitoringFlag
from ketaweight.report.blocks import data_label
from ketaweight.report.collect import RunResults

DISCLAIMER = ("This report is for informational and research purposes only and does not constitute medical advice. "
              "Numbers from simulated or synthetic data describe a model world, not real patients. Always consult a "
              "qualified healthcare professional before starting or changing any treatment.")


def _flag(run: RunResults, starts: str) -> MonitoringFlag | None:
    if run.responsible_use is None:
        return None
    return next((f for f in run.responsible_use.results.flags if f.flag.startswith(starts)), None)


def faq_section(run: RunResults, answer: Answer, rules: GradingRules) -> dict[str, Any]:
    label = data_label(run.weight)
    res = run.study
    pct_analysis = res.analyses.get("outcome_change_pct")
    pct = pct_analysis.estimate(rules.primary_method) if pct_analysis is not None else None
    crude = res.analyses["outcome_change"].estimate("crude")
    rapid, dose = _flag(run, "weight loss"), _flag(run, "ketamine IV/IM")

    if answer.ci_low_kg < 0:
        significant = (f"The largest loss compatible with this run is {fmt_num(-answer.ci_low_kg)} kg"
                       + (f" ({fmt_num(-pct.ci_low)}% of body weight)" if pct and pct.ci_low < 0 else "")
                       + f", against the 5% of body weight that weight-loss treatments are judged by "
                         f"(the answer above: {fmt_num(answer.estimate_kg)} kg, certainty {answer.grade}).")
    else:
        significant = (f"No weight loss is compatible with this run (the answer above: {fmt_num(answer.estimate_kg)} kg, "
                       f"certainty {answer.grade}).")
    side = ("Reduced appetite and nausea are the plausible weight-related effects. "
            + (f"In this run, {mask_count(rapid.count)} of {mask_count(rapid.of)} treated patients lost more "
               f"than 5% of their weight within 28 days of starting ({label}); such patients need review."
               if rapid else "Rapid weight loss was not assessed in this run."))
    combine = ("Ketamine is not a weight-loss strategy. "
               + (f"In this run, diet and exercise programmes started around the same time explain part of the raw "
                  f"difference: crude {fmt_num(crude.estimate)} kg versus adjusted {fmt_num(answer.estimate_kg)} kg "
                  f"({label})." if crude else ""))
    offlabel = ("No. Ketamine should be given only under qualified supervision, for approved uses, within protocol. "
                + (f"Over-protocol dosing is monitored: {mask_count(dose.count)} of {mask_count(dose.of)} "
                   f"sessions were flagged in this run — {dose.flag} ({label})." if dose else ""))
    items = [
        ("Is ketamine approved for weight loss?",
         "No: ketamine is approved as an anaesthetic and (esketamine) for treatment-resistant depression. This run "
         "does not change that: it estimates what a course does to weight (the answer at the top of this page), which "
         "is not evidence that ketamine is safe or effective for losing weight."),
        ("Can ketamine therapy lead to significant weight loss?", significant),
        ("Are there any potential side effects of ketamine related to weight loss?", side),
        ("Can ketamine be used in combination with other weight loss strategies?", combine),
        ("Is it safe to use ketamine for off-label purposes like weight loss?", offlabel),
    ]
    return {"id": "faq", "title": "Frequently asked questions, answered from this run", "paragraphs": [],
            "faq": [{"question": q, "answer": a} for q, a in items], "tables": [], "figures": []}


def disclaimer_section() -> dict[str, Any]:
    return {"id": "disclaimer", "title": "Disclaimer", "paragraphs": [DISCLAIMER], "tables": [], "figures": []}
