"""The report: sections in the article's order, real figures, labels, privacy, offline, optional analyses."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.evidence.grade import fmt_num
from ketaweight.report.collect import collect
from ketaweight.report.render import build_report
from ketaweight.core.results import read_results


ORDER = ["answer", "mechanism", "therapeutic-context", "the-link", "three-mechanisms", "dose-and-variability",
         "limitations", "signals", "responsible-use", "faq", "disclaimer"]
COUNT_COLUMNS = {"n", "reports (a)", "remaining", "excluded", "sessions", "patients", "events", "count", "of"}


def test_sections_in_the_article_order(article_run):
    _, paths = article_run
    html = paths.html.read_text(encoding="utf-8")
    positions = [html.index(f'<section id="{s}"') for s in ORDER]
    assert positions == sorted(positions)
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    assert [s["id"] for s in doc["sections"]] == ORDER
    assert doc["answer"]["sentence"] == paths.sentence
    assert paths.sentence in html and paths.sentence in paths.markdown.read_text(encoding="utf-8")


def test_figures_are_accessible_inline_svg(article_run):
    _, paths = article_run
    html = paths.html.read_text(encoding="utf-8")
    svgs = re.findall(r"<svg[^>]*>\s*<title id=\"[^\"]+\">([^<]+)</title>", html)
    # therapeutic forest, weight forest, individual spread, attrition, balance, overlap, 2 signals forests
    assert len(svgs) == html.count("<svg") >= 8
    assert all(len(alt) > 20 for alt in svgs)
    assert html.count('role="img"') == html.count("<svg")
    assert html.count("<caption>") >= 10 and html.count("<figcaption>") == html.count("<svg")
    # the weight forest plot carries the five estimators' labels as text
    assert "AIPW (doubly robust, cross-fitted)" in html and "g-estimation (SNMM)" in html


def test_self_contained_and_offline(article_run):
    _, paths = article_run
    html = paths.html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert 'name="viewport"' in html and '<html lang="en">' in html


def test_every_number_is_labelled_with_its_source(article_run):
    _, paths = article_run
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    captions = [t["caption"] for s in doc["sections"] for t in s["tables"]]
    assert captions and all(re.search(r"simulated|simulator truth|synthetic|real FAERS", c) for c in captions)
    figures = [f["figure"] for s in doc["sections"] for f in s["figures"]]
    assert figures and all(re.search(r"simulated|simulator truth|synthetic|real FAERS", f) for f in figures)
    assert any("2021Q1–2023Q4" in c and "mddc" in c for c in captions)


def test_no_identifiers_and_no_small_counts(article_run, tmp_path):
    results, paths = article_run
    for p in (paths.html, paths.markdown, paths.json):
        assert "SIM0" not in p.read_text(encoding="utf-8")
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    checked = masked = 0
    for s in doc["sections"]:
        for t in s["tables"]:
            for j, col in enumerate(t["columns"]):
                if col not in COUNT_COLUMNS:
                    continue
                for row in t["rows"]:
                    cell = row[j]
                    checked += 1
                    masked += cell == "<11"
                    if cell not in ("<11", "—"):
                        assert int(cell.replace(",", "")) == 0 or int(cell.replace(",", "")) >= 11, (t["caption"], cell)
    assert checked > 50 and masked >= 1  # the run has small cells (real mddc table), and they are masked


def test_small_signal_cells_hide_their_ratios(article_run):
    _, paths = article_run
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    sig = next(s for s in doc["sections"] if s["id"] == "signals")
    for t in sig["tables"]:
        a = t["columns"].index("reports (a)")
        for row in t["rows"]:
            if row[a] == "<11":
                assert all(c.startswith("suppressed") for c in row[a + 1:a + 6])


def test_numbers_come_from_the_results_files(article_run):
    results, paths = article_run
    weight = read_results(results / "ketamine-weight.json")
    aipw = next(e for e in weight["results"]["analyses"]["outcome_change"]["estimates"] if e["method"] == "aipw")
    html = paths.html.read_text(encoding="utf-8")
    assert f"{aipw['estimate']:.2f}".replace("-", "−") in paths.sentence
    truth = read_results(results.parent / "truth.json")
    assert f"{truth['results']['weight_change_kg']['ate']:.2f}".replace("-", "−") in html


def test_mechanisms_render_from_their_results(article_run):
    results, paths = article_run
    mech = read_results(next(results.glob("*-mechanisms.json")), kind="mechanisms")["results"]
    md = paths.markdown.read_text(encoding="utf-8")
    for r in [mech["mediation"]["total"], *mech["mediation"]["pathways"].values(), mech["mediation"]["direct"]]:
        assert f"| {r['estimand']} | {fmt_num(r['estimate'], 3)} |" in md
    html = paths.html.read_text(encoding="utf-8")
    assert "Dose-response curve: mean weight change at 12 weeks by sessions (count)" in html
    assert "same patients, no course" in html  # the curves are read against the no-course reference, drawn
    assert "Effects by subgroup and by route (heterogeneity)" in html
    assert "Not yet analysed" not in md


def test_report_states_positivity_population_heterogeneity(article_run):
    """The limitations section restates the grade's overlap, weights, population and learner findings (ESS of
    each arm from the results file), and the variability section the calibrated spread and the catalogue
    search, with the numbers of the mechanisms file."""
    results, paths = article_run
    weight = read_results(results / "ketamine-weight.json")
    aipw = next(e for e in weight["results"]["analyses"]["outcome_change"]["estimates"] if e["method"] == "aipw")
    arms = aipw["diagnostics"]["weights"]["by_arm"]
    md = paths.markdown.read_text(encoding="utf-8")
    assert "Overlap, weights, population and nuisance models of the primary estimate (aipw)" in md
    for arm, v in arms.items():
        assert f"{arm}: ESS {round(v['ess']):,}" in md
    assert "| Target population | every analysed patient (ATE); no trimming |" in md
    mech = read_results(next(results.glob("*-mechanisms.json")), kind="mechanisms")["results"]
    spread = mech["heterogeneity"]["individual"]["distribution"]["spread"]
    assert f"SD {spread['sd_calibrated']:.2f} kg (95% CI {spread['sd_calibrated_ci'][0]:.2f}" in md
    assert "| Heterogeneity |" in md
    # clinic-grade records without a substudy: the pathways that cannot be attributed are named with the reason
    noisy = [k for k in mech["not_estimable"] if k.startswith("attribution of pathway")]
    assert noisy and all(f"Not attributable — {k.removeprefix('attribution of ')}:" in md for k in noisy)


def test_substudy_calibration_is_stated():
    from ketaweight.report.mechanisms_sections import _calibration_text

    text = _calibration_text({"reference_columns": {"intake_7d_change": "intake_7d_ref_change"}})
    assert "regression-calibrated on the validation substudy" in text and "bootstrap replicate" in text
    from ketaweight.study.labels import label

    assert f"({label('intake_7d_change')} on {label('intake_7d_ref_change')})" in text  # readable names


def test_energy_balance_outcome_model_is_stated():
    from ketaweight.report.mechanisms_sections import _energy_balance_text
    from ketaweight.study.labels import label

    text = _energy_balance_text({"factors_kcal_per_unit": {"intake_7d_change": 0.76, "expenditure_net_7d_change": -1.0},
                                 "kg_per_kcal_per_day": 0.00912, "other_mediators": ["madrs_change"]})
    assert "energy balance" in text and "0.0091 kg per kcal/day" in text
    assert f"{label('intake_7d_change')} × +0.76" in text and f"{label('madrs_change')} act on weight only" in text


def test_missing_analyses_say_not_yet_analysed(article_run, tmp_path):
    results, _ = article_run
    run = tmp_path / "results"
    shutil.copytree(results, run, ignore=shutil.ignore_patterns("*-mechanisms.json", "signals*.json",
                                                                "responsible_use.json"))
    report = build_report(collect(run))
    sections = {s["id"]: json.dumps(s, default=str) for s in report["sections"]}
    for sid in ("three-mechanisms", "dose-and-variability", "signals", "responsible-use"):
        assert sections[sid].count("Not yet analysed in this run") == 1, sid
    crit = {c["name"]: c for c in report["answer"]["criteria"]}
    assert crit["Biological gradient"]["finding"] == "not yet analysed in this run"
    assert crit["Coherence"]["verdict"] == "not assessed"


def test_markdown_tables_are_well_formed(article_run):
    _, paths = article_run
    for block in re.findall(r"((?:^\|.*\|\n)+)", paths.markdown.read_text(encoding="utf-8"), flags=re.M):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block.strip().split("\n")}
        assert len(widths) == 1, block[:200]


def test_cli_report_writes_three_forms(article_run, tmp_path):
    results, paths = article_run
    out = tmp_path / "cli" / "answer.html"
    res = CliRunner().invoke(app, ["report", "--results", str(results), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Answer: " + paths.sentence in " ".join(res.output.split())
    assert out.exists() and out.with_suffix(".md").exists()
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["answer"]["sentence"] == paths.sentence


def test_cli_report_without_weight_results_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["report", "--results", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no weight study results" in " ".join(res.output.split())


@pytest.mark.parametrize("n", [500])
def test_tiny_cohort_masks_small_safety_counts(tmp_path, n):
    """A 500-patient clinic has flags and adverse-event cells under 11: each is shown as <11."""
    from ketaweight.pipelines.simulation import run_simulation
    from ketaweight.pipelines.responsible_use import responsible_use

    _, store = run_simulation("article", n, 3, tmp_path / "tiny", "duckdb", False)
    r = responsible_use(store)
    values = [f.count for f in r.flags] + [x.events for x in r.adverse_events]
    assert "<11" in values
    assert all(v == "<11" or v == 0 or v >= 11 for v in values)
    assert all(x.per_100_sessions is None for x in r.adverse_events if x.events == "<11")


def test_faq_answers_with_the_run_numbers(article_run):
    _, paths = article_run
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    faq = next(s for s in doc["sections"] if s["id"] == "faq")["faq"]
    assert [f["question"] for f in faq] == [
        "Is ketamine approved for weight loss?", "Can ketamine therapy lead to significant weight loss?",
        "Are there any potential side effects of ketamine related to weight loss?",
        "Can ketamine be used in combination with other weight loss strategies?",
        "Is it safe to use ketamine for off-label purposes like weight loss?"]
    a = doc["answer"]
    assert f"The largest loss compatible with this run is {-a['ci_low_kg']:.2f} kg" in faq[1]["answer"]
    assert "lost more than 5%" in faq[2]["answer"]
    # the answer sentence is said once, at the top: the FAQ refers to it instead of repeating it
    assert not any(a["sentence"] in f["answer"] for f in faq)
    assert f"the answer above: {fmt_num(a['estimate_kg'])} kg, certainty {a['grade']}" in faq[1]["answer"]


def test_mediation_not_estimable_is_said_not_faked(article_run, tmp_path):
    results, _ = article_run
    run = tmp_path / "results"
    shutil.copytree(results, run)
    path = next(run.glob("*-mechanisms.json"))
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["results"]["mediation"] = None
    doc["results"]["not_estimable"] = {"mediation": "no mediator recorded before the outcome window"}
    path.write_text(json.dumps(doc), encoding="utf-8")
    report = build_report(collect(run))
    mech = next(s for s in report["sections"] if s["id"] == "three-mechanisms")
    assert "Mediation could not be estimated in this run: no mediator recorded before the outcome window." in mech["paragraphs"]
    assert not mech["figures"]
    crit = {c["name"]: c for c in report["answer"]["criteria"]}
    assert crit["Plausibility (mechanism)"]["verdict"] == "not assessed"
