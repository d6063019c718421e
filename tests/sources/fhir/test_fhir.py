"""FHIR R4: simulate → export FHIR (NDJSON and a Bundle) → import gives the same canonical tables and the
same estimates to the last digit; every written resource validates with fhir.resources' R4B models; hostile
inputs are clear errors (file, line or entry, resource id, field) or counted exclusions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ketaweight.core.errors import InputError
from ketaweight.core.results import read_results, strip_volatile
from ketaweight.pipelines.emulation import run_study
from ketaweight.pipelines.imports import export_store, import_fhir
from ketaweight.sources.fhir import read_fhir
from ketaweight.sources.omop import load_mapping
from ketaweight.store import Store


def estimates(store: Path, out: Path) -> dict:
    doc = strip_volatile(read_results(run_study(store, "ketamine-weight", out).path, kind="causal"))
    doc["provenance"] = {k: v for k, v in doc["provenance"].items() if k != "store"}
    return doc


@pytest.fixture(scope="module")
def ndjson(sim_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fhir")
    export_store(sim_store, out, "fhir")
    return out


def test_fhir_round_trip_gives_the_same_tables_and_estimates(sim_store, ndjson, tables_of, tmp_path):
    result = import_fhir(tmp_path / "f.duckdb", ndjson)  # validates every element read against its R4 type
    tables_of.same(tables_of(sim_store), tables_of(tmp_path / "f.duckdb"))
    assert result.report.n_excluded == 0
    assert result.provenance.origin == "simulated"
    with Store(tmp_path / "f.duckdb", read_only=True) as st:
        assert st.provenance().origin == "simulated"
    assert estimates(tmp_path / "f.duckdb", tmp_path / "a") == estimates(sim_store, tmp_path / "b")


def test_a_bundle_round_trips_too(sim_store, tables_of, tmp_path):
    export_store(sim_store, tmp_path / "b", "fhir", layout="bundle")
    bundle = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert bundle["resourceType"] == "Bundle" and {"code": "HTEST"}.items() <= bundle["meta"]["tag"][1].items()
    (tmp_path / "t").mkdir()
    imported = read_fhir(tmp_path / "b" / "bundle.json", load_mapping(), tmp_path / "t")  # entries validated as parsed objects
    tables_of.same(tables_of(sim_store), tables_of(imported.tables))


def test_full_r4b_validation_reads_the_same_as_the_compiled_one(ndjson, tables_of, tmp_path):
    folder = tmp_path / "in"  # every resource of the first 25 patients
    folder.mkdir()
    patients = [json.loads(line) for line in (ndjson / "Patient.ndjson").read_text().splitlines()[:25]]
    keep = {f"Patient/{p['id']}" for p in patients}
    for path in ndjson.glob("*.ndjson"):
        lines = [line for line in path.read_text().splitlines()
                 if path.stem == "Patient" and json.loads(line)["id"] in {k[8:] for k in keep}
                 or (json.loads(line).get("subject") or {}).get("reference") in keep]
        (folder / path.name).write_text("\n".join(lines) + "\n")
    read = {}
    for mode in ("read", "full", "none"):
        (tmp_path / mode).mkdir()
        read[mode] = tables_of(read_fhir(folder, load_mapping(), tmp_path / mode, validate=mode).tables)
    tables_of.same(read["read"], read["full"])
    tables_of.same(read["read"], read["none"])
    assert len(read["read"]["measurements"]) > 100


def test_every_resource_carries_the_simulated_tag(ndjson):
    for path in ndjson.glob("*.ndjson"):
        first = json.loads(path.read_text().split("\n", 1)[0])
        tags = {t["code"] for t in first["meta"]["tag"]}
        assert {"simulated", "HTEST"} <= tags, path.name


def _copy(ndjson: Path, tmp_path: Path, *types: str, lines: int = 50) -> Path:
    """The first ``lines`` resources of the Patient file and of each of ``types`` (a small input keeps the test quick)."""
    out = tmp_path / "in"
    out.mkdir()
    for rtype in ("Patient", *types):
        kept = (ndjson / f"{rtype}.ndjson").read_text().splitlines()[:lines]
        (out / f"{rtype}.ndjson").write_text("\n".join(kept) + "\n")
    return out


def test_a_broken_ndjson_line_names_file_and_line(ndjson, tmp_path):
    folder = _copy(ndjson, tmp_path, "Observation")
    path = folder / "Observation.ndjson"
    lines = path.read_text().splitlines()
    lines[6] = lines[6][:40]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"Observation.ndjson, line 7: not valid JSON"):
        import_fhir(tmp_path / "s.duckdb", folder)
    assert not (tmp_path / "s.duckdb").exists()


def test_a_non_conforming_resource_names_line_id_and_field(ndjson, tmp_path):
    folder = _copy(ndjson, tmp_path, "MedicationAdministration")
    path = folder / "MedicationAdministration.ndjson"
    lines = path.read_text().splitlines()
    res = json.loads(lines[2])
    res["effectivePeriod"]["start"] = "yesterday"
    lines[2] = json.dumps(res)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        import_fhir(tmp_path / "s.duckdb", folder)
    text = str(err.value)
    assert f"MedicationAdministration.ndjson, line 3, column 'MedicationAdministration/{res['id']} effectivePeriod" in text
    assert "does not conform to FHIR R4" in text


def test_a_bundle_with_a_reference_to_nothing_and_unknown_codes_is_counted(tmp_path):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
         "resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-04-02"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
                      "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"}, "effectiveDateTime": "2024-01-02",
                      "valueQuantity": {"value": 65, "unit": "in", "system": "http://unitsofmeasure.org", "code": "[in_i]"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                      "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-01-02T09:30:00-05:00",
                      "valueQuantity": {"value": 150, "unit": "lb", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                      "subject": {"reference": "Patient/nobody"}, "effectiveDateTime": "2024-01-03",
                      "valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                      "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-01-03", "valueQuantity": {"value": 5.1}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "entered-in-error", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                      "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-01-04", "valueQuantity": {"value": 1}},
         "request": {"method": "POST", "url": "Observation"}},
    ]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = import_fhir(tmp_path / "s.duckdb", path)
    r = result.report
    reasons = {(e.table, e.reason.split(" (")[0]): e for e in r.excluded}
    orphan = reasons[("Observation", "subject refers to a Patient that is not in the data")]
    assert orphan.n == 1 and orphan.examples == ("bundle.json entry 3",)
    assert reasons[("Observation", "codes not in the concept-set mapping")].n == 1
    assert ("Observation", "status 'entered-in-error'") in reasons
    with Store(tmp_path / "s.duckdb", read_only=True) as st:
        patient = st.query("SELECT * FROM patients").iloc[0]
        weight = st.query("SELECT * FROM measurements").iloc[0]
    assert patient["height_cm"] == pytest.approx(65 * 2.54) and patient["birth_year"] == 1980
    assert weight["unit"] == "kg" and weight["value"] == pytest.approx(150 * 0.45359237)
    assert str(weight["time"]) == "2024-01-02 09:30:00"  # the local wall time, offset dropped
    assert result.provenance.origin == "real"


_OBS = {"resourceType": "Observation", "id": "w1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "subject": {"reference": "Patient/SIM0000001"},
        "effectiveDateTime": "2023-05-08", "valueQuantity": {"value": 80.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"effectiveDateTime": "2023-02-30"}, "effectiveDateTime", "not a valid R4 dateTime"),
    ({"effectiveDateTime": "08/05/2023"}, "effectiveDateTime", "not a valid R4 dateTime"),
    ({"valueQuantity": {"value": "80.5", "code": "kg"}}, "valueQuantity.value", "not a valid R4 decimal"),
    ({"valueString": "80"}, "value[x]", "only one value[x] may be given"),
    ({"weight": 80}, "weight", "unknown element"),
    ({"valueQuantity": {"value": 80, "kg": True}}, "valueQuantity.kg", "unknown element"),
    ({"code": {"coding": {"system": "http://loinc.org", "code": "29463-7"}}}, "code.coding", "must be an array"),
    ({"status": None}, "status", "required element is missing"),
    ({"id": "w 1"}, None, "not a valid R4 id"),
    ({"component": [{"code": {"text": "x"}, "valueInteger": 1, "valueBoolean": True}]}, "component.0.value[x]", "only one value[x]"),
], ids=["calendar", "date format", "decimal as text", "two values", "unknown element", "unknown nested element",
        "object for an array", "required", "id", "choice in a component"])
def test_the_compiled_validation_refuses_what_does_not_conform(ndjson, tmp_path, change, field, reason):
    """Each defect in one Observation of an otherwise valid file: the import stops naming file, line, resource
    id and field, and writes nothing."""
    folder = _copy(ndjson, tmp_path, "Observation")
    res = {k: v for k, v in {**_OBS, **change}.items() if v is not None}
    path = folder / "Observation.ndjson"
    lines = path.read_text().splitlines()
    lines.insert(4, json.dumps(res))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        import_fhir(tmp_path / "s.duckdb", folder)
    text = str(err.value)
    rid = res["id"]
    assert f"Observation.ndjson, line 5, column 'Observation/{rid}{' ' + field if field else ''}" in text, text
    assert reason in text, text
    assert not (tmp_path / "s.duckdb").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in"]  # no staging folder left behind


def test_line_endings_a_byte_order_mark_blank_lines_and_small_blocks_read_the_same(ndjson, tables_of, tmp_path, monkeypatch):
    """CRLF line ends, a UTF-8 byte-order mark, blank lines, no newline at the end, and blocks smaller than a
    line (each line then spans blocks) give the same tables as the plain files; a broken line after blank
    lines is still named by its own line number."""
    plain = _copy(ndjson, tmp_path, "Observation", "MedicationAdministration", lines=120)
    odd = tmp_path / "odd"
    odd.mkdir()
    for path in plain.iterdir():
        lines = path.read_text().splitlines()
        odd_text = "\r\n\r\n".join(lines[:60]) + "\n   \n" + "\n".join(lines[60:])  # no newline at the end
        (odd / path.name).write_bytes(b"\xef\xbb\xbf" + odd_text.encode())
    (tmp_path / "t1").mkdir()
    (tmp_path / "t2").mkdir()
    expected = tables_of(read_fhir(plain, load_mapping(), tmp_path / "t1").tables)
    monkeypatch.setattr("ketaweight.sources.fhir.ndjson.BLOCK_BYTES", 300)
    tables_of.same(expected, tables_of(read_fhir(odd, load_mapping(), tmp_path / "t2").tables))
    path = odd / "Observation.ndjson"
    text = path.read_bytes().replace(b'"status"', b'"status', 1)  # the first resource: line 1
    lines = text.split(b"\n")
    lines[40] = lines[40][:30]  # line 41 (blank lines in between count)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError) as err:
        read_fhir(odd, load_mapping(), tmp_path / "t3")
    assert "Observation.ndjson, line 1: not valid JSON" in str(err.value)
    assert "Observation.ndjson, line 41: not valid JSON" in str(err.value)


@pytest.mark.parametrize(("text", "where", "reason"), [
    (b'"valueQuantity": {"value": NaN, "code": "kg"}', "valueQuantity.value", "not a valid R4 decimal"),
    (b'"valueQuantity": {"value": 1e400, "code": "kg"}', "valueQuantity.value", "not a valid R4 decimal"),
    (b'"valueQuantity": {"value": 1' + b"0" * 400 + b', "code": "kg"}', "valueQuantity.value", "not a valid R4 decimal"),
    (b'"valueQuantity": {"value": 80, "code": "kg"}, "value\\u0053tring": "80"', "value[x]", "only one value[x]"),
], ids=["NaN", "overflow", "integer overflow", "escaped second value"])
def test_json_that_only_a_lenient_parser_reads_is_refused(ndjson, tmp_path, text, where, reason):
    """NaN and a number beyond a double (read as infinity) are not decimals; a key spelled with an escape
    still counts as that key."""
    folder = _copy(ndjson, tmp_path, "Observation")
    path = folder / "Observation.ndjson"
    head = json.dumps({k: v for k, v in _OBS.items() if k != "valueQuantity"})[:-1].encode()
    lines = path.read_bytes().split(b"\n")
    lines.insert(4, head + b", " + text + b"}")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputError) as err:
        import_fhir(tmp_path / "s.duckdb", folder)
    message = str(err.value)
    assert "Observation.ndjson, line 5" in message and where in message and reason in message, message
    assert not (tmp_path / "s.duckdb").exists()
