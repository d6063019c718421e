"""Hostile CDMs: missing tables, wrong column types, orphans, concepts absent from the vocabulary, units that
do not convert, implausible values, rows outside observation periods, duplicates — each a clear error naming
the table (file, line, column) or a counted exclusion, and the store unchanged after a failed import.  Also
the parts of the format the round trip does not use: drug_strength doses and descendants via concept_ancestor."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ketaweight.core.errors import InputError
from ketaweight.pipelines.imports import export_store, import_omop
from ketaweight.sources.omop import load_mapping
from ketaweight.store import Store


@pytest.fixture()
def cdm(sim_store: Path, tmp_path: Path) -> Path:
    export_store(sim_store, tmp_path / "cdm", "omop")
    return tmp_path / "cdm"


def edit(folder: Path, table: str, select: str) -> None:
    """Rewrite ``<TABLE>.csv`` as ``select`` over its rows (available as ``t``, all text)."""
    path = folder / f"{table.upper()}.csv"
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}', all_varchar = true)")
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT csv, HEADER)")


def concept_id(folder: Path, vocabulary: str, code: str) -> str:
    return duckdb.connect().execute(f"SELECT concept_id FROM read_csv('{folder}/CONCEPT.csv', all_varchar = true) "
                                    f"WHERE vocabulary_id = ? AND concept_code = ?", [vocabulary, code]).fetchall()[0][0]


def excluded(report, text: str) -> int:
    return sum(e.n for e in report.excluded if text in e.reason)


def test_missing_table_is_an_error_and_leaves_the_store_unchanged(cdm, sim_store, tmp_path):
    (cdm / "PERSON.csv").unlink()
    with pytest.raises(InputError, match="table person: required CDM table is missing"):
        import_omop(tmp_path / "new.duckdb", cdm)
    assert not (tmp_path / "new.duckdb").exists()
    assert not any(p.name.startswith(".new.duckdb.import-") for p in tmp_path.iterdir())


def test_a_value_of_the_wrong_type_names_file_line_and_column(cdm, tmp_path):
    edit(cdm, "measurement", "SELECT * REPLACE (CASE WHEN measurement_id = '7' THEN 'abc' ELSE value_as_number END AS value_as_number) FROM t")
    lines = (cdm / "MEASUREMENT.csv").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, start=1) if ",abc," in text)
    with pytest.raises(InputError) as err:
        import_omop(tmp_path / "s.duckdb", cdm)
    assert f"MEASUREMENT.csv, line {line}, column 'value_as_number': not a valid NUMERIC: 'abc'" in str(err.value)


@pytest.mark.parametrize("table, column", [("concept_ancestor", "descendant_concept_id"),
                                           ("measurement", "value_as_number")])
def test_a_csv_file_without_a_column_the_import_reads_is_refused_naming_it(cdm, tmp_path, table, column):
    """Fuzzer (OMOP target, input 270 of seed 1202): a NUL byte in CONCEPT_ANCESTOR.csv's header
    (``\x00escendant_concept_id``) made the column absent; the CSV reader filled it with NULL and the concept
    resolution raised TypeError. A CSV file now needs every column the import reads, as a database does."""
    path = cdm / f"{table.upper()}.csv"
    lines = path.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(column.encode(), b"\x00" + column[1:].encode())
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError) as err:
        import_omop(tmp_path / "s.duckdb", cdm)
    assert f"{path.name}, line 1, column '{column}': column the import reads is missing from the header" in str(err.value)
    assert not (tmp_path / "s.duckdb").exists()


def test_a_column_of_the_wrong_type_in_a_database_is_named(sim_store, tmp_path):
    export_store(sim_store, tmp_path / "db", "omop", layout="duckdb")
    con = duckdb.connect(str(tmp_path / "db" / "cdm.duckdb"))
    con.execute("ALTER TABLE person ALTER year_of_birth TYPE VARCHAR")
    con.close()
    with pytest.raises(InputError, match=r"table person, column 'year_of_birth': has type text, expected integer"):
        import_omop(tmp_path / "s.duckdb", tmp_path / "db" / "cdm.duckdb")


def test_bad_rows_are_counted_with_their_reason(cdm, tmp_path):
    weight = concept_id(cdm, "LOINC", "29463-7")
    mg = concept_id(cdm, "UCUM", "mg")
    ids = [r[0] for r in duckdb.connect().execute(
        f"SELECT measurement_id FROM read_csv('{cdm}/MEASUREMENT.csv', all_varchar = true) WHERE measurement_concept_id = ? "
        "ORDER BY CAST(measurement_id AS INT) LIMIT 5", [weight]).fetchall()]
    edit(cdm, "measurement", f"""
        SELECT * REPLACE (
            CASE WHEN measurement_id IN ('{ids[0]}', '{ids[1]}') THEN '{mg}' ELSE unit_concept_id END AS unit_concept_id,
            CASE WHEN measurement_id = '{ids[2]}' THEN '1000' ELSE value_as_number END AS value_as_number,
            CASE WHEN measurement_id = '{ids[3]}' THEN '2090-01-01' ELSE measurement_date END AS measurement_date,
            CASE WHEN measurement_id = '{ids[3]}' THEN '2090-01-01 10:00:00' ELSE measurement_datetime END AS measurement_datetime)
        FROM t
        UNION ALL SELECT * REPLACE ('99999999' AS person_id, CAST(CAST(measurement_id AS INT) + 10000000 AS VARCHAR) AS measurement_id)
        FROM t WHERE measurement_id IN (SELECT measurement_id FROM t WHERE measurement_concept_id = '{weight}'
                                        ORDER BY CAST(measurement_id AS INT) DESC LIMIT 300)
        UNION ALL SELECT * REPLACE (CAST(CAST(measurement_id AS INT) + 20000000 AS VARCHAR) AS measurement_id)
        FROM t WHERE measurement_id = '{ids[4]}'""")
    orphans = duckdb.connect().execute(f"SELECT count(*) FROM read_csv('{cdm}/MEASUREMENT.csv', all_varchar = true) "
                                       "WHERE person_id = '99999999'").fetchall()[0][0]
    edit(cdm, "drug_exposure", "SELECT * REPLACE (CASE WHEN CAST(drug_exposure_id AS INT) <= 3 THEN '1234567' "
                               "ELSE drug_concept_id END AS drug_concept_id) FROM t")
    r = import_omop(tmp_path / "s.duckdb", cdm).report
    assert excluded(r, "unit mg not convertible to kg") == 2
    assert excluded(r, "implausible value (outside 20") == 1
    assert excluded(r, "outside an observation period") == 1
    assert excluded(r, "duplicate (same person, time and kind)") == 1
    assert excluded(r, "person_id is not in the person table (orphans)") == orphans > 0
    assert excluded(r, "concept_id is not in the vocabulary") == 3
    receipt = "\n".join(r.lines(exact=True))
    assert "measurement_id" in receipt  # the owner's receipt names record ids; the shared form does not
    assert "measurement_id" not in "\n".join(r.lines())


def test_a_failed_store_load_changes_nothing(cdm, tmp_path):
    store = tmp_path / "s.duckdb"
    import_omop(store, cdm)
    with Store(store, read_only=True) as st:
        before, loads = st.counts(), st.con.execute("SELECT count(*) FROM _ketaweight_loads").fetchall()
    with pytest.raises(InputError, match="key already in the store"):
        import_omop(store, cdm)
    with Store(store, read_only=True) as st:
        assert st.counts() == before
        assert st.con.execute("SELECT count(*) FROM _ketaweight_loads").fetchall() == loads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdm", "s.duckdb"]  # the shaped tables' staging folder is gone


def test_doses_from_drug_strength_and_products_found_through_concept_ancestor(cdm, tmp_path):
    """A ketamine 50 mg/mL injection (numerator strength, quantity in mL) and a 28 mg esketamine device
    (amount strength, quantity in devices), both below their ingredient only through concept_ancestor."""
    ket = concept_id(cdm, "RxNorm", "6130")
    eske = concept_id(cdm, "RxNorm", "2201623")
    mg = concept_id(cdm, "UCUM", "mg")
    ml_unit = "2100000001"
    edit(cdm, "concept", f"""SELECT * FROM t UNION ALL VALUES
        ('2100000010', 'ketamine 50 MG/ML Injectable Solution', 'Drug', 'RxNorm', 'Clinical Drug', 'S', 'test-1', '1970-01-01', '2099-12-31', NULL),
        ('2100000011', 'esketamine 28 MG Nasal Spray device', 'Drug', 'RxNorm', 'Clinical Drug', 'S', 'test-2', '1970-01-01', '2099-12-31', NULL),
        ('2100000012', 'esketamine', 'Drug', 'RxNorm', 'Ingredient', 'S', 'test-3', '1970-01-01', '2099-12-31', NULL),
        ('{ml_unit}', 'mL', 'Unit', 'UCUM', 'Unit', 'S', 'mL', '1970-01-01', '2099-12-31', NULL)""")
    edit(cdm, "concept_ancestor", f"""SELECT * FROM t UNION ALL VALUES ('{ket}', '2100000010', '1', '1'),
        ('{eske}', '2100000011', '1', '1'), ('2100000012', '2100000012', '0', '0'), ('2100000012', '2100000011', '1', '1')""")
    edit(cdm, "drug_strength", f"""SELECT * FROM t UNION ALL VALUES
        ('2100000010', '{ket}', NULL, NULL, '50', '{mg}', NULL, '{ml_unit}', NULL, '1970-01-01', '2099-12-31', NULL),
        ('2100000011', '2100000012', '28', '{mg}', NULL, NULL, NULL, NULL, NULL, '1970-01-01', '2099-12-31', NULL)""")
    edit(cdm, "drug_exposure", f"""SELECT * REPLACE (
        CASE WHEN drug_concept_id = '{ket}' AND drug_exposure_id = (SELECT min(drug_exposure_id) FROM t WHERE drug_concept_id = '{ket}')
             THEN '2100000010' WHEN drug_concept_id = '{eske}' AND drug_exposure_id = (SELECT min(drug_exposure_id) FROM t WHERE drug_concept_id = '{eske}')
             THEN '2100000011' ELSE drug_concept_id END AS drug_concept_id,
        CASE WHEN drug_concept_id = '{ket}' AND drug_exposure_id = (SELECT min(drug_exposure_id) FROM t WHERE drug_concept_id = '{ket}') THEN '0.8'
             WHEN drug_concept_id = '{eske}' AND drug_exposure_id = (SELECT min(drug_exposure_id) FROM t WHERE drug_concept_id = '{eske}') THEN '2'
             ELSE quantity END AS quantity) FROM t""")
    changed = duckdb.connect().execute(f"SELECT drug_concept_id, person_id, drug_exposure_start_datetime FROM read_csv('{cdm}/DRUG_EXPOSURE.csv', all_varchar = true) "
                                       "WHERE drug_concept_id IN ('2100000010', '2100000011')").fetchall()
    assert len(changed) == 2
    extra = tmp_path / "map.toml"  # the test ingredient's code is its own: add it to the esketamine set
    extra.write_text('[drug.esketamine]\ncodes = [{ vocabulary = "RxNorm", code = "test-3" }]\n')
    r = import_omop(tmp_path / "s.duckdb", cdm, mapping_file=extra).report
    assert r.n_excluded == 0
    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        doses = dict(st.con.execute("SELECT drug, dose_mg FROM exposures e JOIN patients p USING (patient_id) "
                                    "WHERE (drug = 'ketamine' AND dose_mg = 40) OR (drug = 'esketamine' AND dose_mg = 56)").fetchall())
    assert doses.get("ketamine") == 40.0 and doses.get("esketamine") == 56.0


def test_a_bad_mapping_file_names_the_key(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('[measurement.wieght]\ncodes = [{ vocabulary = "LOINC", code = "29463-7" }]\n')
    with pytest.raises(InputError, match=r"m.toml, column 'measurement.wieght': unknown measurement 'wieght'"):
        load_mapping(bad)
