"""Every results file of a run validates against its published JSON Schema and reads back into its
type losslessly (issue "One house": one result protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ketaweight.core.protocol import RESULT_KINDS
from ketaweight.network import bundle, synthesis, validation  # noqa: F401  (the network kinds, as `ketaweight schemas`)
from ketaweight.core.results import envelope_schema, read_result
from ketaweight.pipelines.schemas import all_schemas, render

DOCS_SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def check_results_file(path: Path) -> str:
    """Validate one file against its kind's schema and check the typed round trip; returns the kind."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(doc, envelope_schema(doc["kind"]))
    typed = read_result(path)
    assert type(typed.results) is RESULT_KINDS[doc["kind"]]
    assert typed.results.to_dict() == doc["results"], f"{path.name}: the typed payload does not round-trip"
    summary = typed.results.summary()
    assert summary.as_text() and summary.as_html().startswith("<table")
    return doc["kind"]


def test_every_file_of_a_run_validates_and_round_trips(article_run):
    results, _ = article_run
    files = sorted(results.glob("*.json")) + [results.parent / "truth.json"]
    kinds = sorted(check_results_file(p) for p in files)
    assert kinds == ["causal", "causal", "mechanisms", "responsible_use", "signals", "signals", "simulation_truth"]


def test_a_file_that_breaks_its_schema_is_refused(article_run, tmp_path):
    results, _ = article_run
    doc = json.loads((results / "responsible_use.json").read_text(encoding="utf-8"))
    doc["results"]["flags"][0]["count"] = "many"  # neither a number nor "<11"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, envelope_schema("responsible_use"))
    with pytest.raises(ValueError, match="does not match its schema"):
        read_result(bad)


@pytest.mark.parametrize("name", sorted(all_schemas()))
def test_published_schemas_are_current(name):
    """docs/schemas/ holds what the code generates (regenerate with `ketaweight schemas docs/schemas`)."""
    assert (DOCS_SCHEMAS / name).read_text(encoding="utf-8") == render(all_schemas()[name])


def test_study_reference_page_is_current():
    """docs/study-reference.md lists every study key (regenerate with
    `ketaweight schemas docs/schemas --reference docs/study-reference.md`)."""
    from ketaweight.pipelines.schemas import study_reference

    page = study_reference()
    assert (DOCS_SCHEMAS.parent / "study-reference.md").read_text(encoding="utf-8") == page
    for key in ("`negative_control_method`", "`n_bootstrap`", "`horizon_days`", "[mechanisms.mediation]"):
        assert key in page
