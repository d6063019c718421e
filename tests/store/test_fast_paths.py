"""The store's fast paths give what the exact ones give: the streamed CSV reader and the pandas one,
Parquet read in place and its text, the simulator's contract and a check of every value."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ketaweight.core.errors import InputError
from ketaweight.core.schema import TABLES
from ketaweight.sources import files
from ketaweight.sources.simulator import load_scenario, simulate, with_measurement
from ketaweight.store import checks
from ketaweight.store.store import Store

PATIENTS = "patient_id,sex,birth_year,height_cm,atypical_features\nA1,F,1980,165,true\nA2,M,1975,180,no\n"
MEASUREMENTS = "patient_id,time,kind,value,unit\nA1,2024-01-01 09:00:00,weight,70.5,kg\nA2,2024-01-01 09:00:00,weight,200,lb\n"

HOSTILE = {
    "bad values": {"measurements": MEASUREMENTS + "A1,2024-01-02 09:00:00,weight,0,kg\nA1,2024-13-01 09:00:00,weight,70,kg\n"
                                                  "A1,2024-01-03 09:00:00,weight,70,stone\nA9,2024-01-04 09:00:00,weight,70,kg\n"},
    "duplicate key": {"measurements": MEASUREMENTS + "A1,2024-01-01 09:00:00,weight,71,kg\n"},
    "blank line": {"patients": PATIENTS.replace("A2", "\nA2")},
    "short line": {"patients": PATIENTS + "A3,F,1990\n"},
    "long line": {"patients": PATIENTS + "A3,F,1990,160,true,1\n"},
    "latin-1": {"patients": PATIENTS.encode() + "A3,F,19\xe90,160,\n".encode("latin-1")},
    "repeated column": {"patients": "patient_id,sex,sex,birth_year,height_cm\nA1,F,F,1980,165\n"},
    "birth year": {"measurements": "patient_id,time,kind,value,unit\nA1,1970-01-01 09:00:00,weight,70,kg\n"},
}


def write(folder: Path, tables: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in {"patients": PATIENTS, **tables}.items():
        (folder / f"{name}.csv").write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def load_message(tmp_path: Path, folder: Path) -> str:
    with Store(":memory:") as store, pytest.raises(InputError) as err:
        store.load_folder(folder)
    return str(err.value)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_streamed_and_exact_csv_readers_report_the_same(tmp_path, monkeypatch, case):
    folder = write(tmp_path / "in", HOSTILE[case])
    streamed = load_message(tmp_path, folder)

    def not_plain(path, table):
        raise files.NotPlainCsv("forced")
        yield  # a generator, like the real one

    monkeypatch.setattr("ketaweight.store.staging.csv_text_batches", not_plain)
    assert load_message(tmp_path, folder) == streamed


def test_a_short_line_in_an_optional_column_loads(tmp_path):
    folder = write(tmp_path / "in", {"patients": "patient_id,sex,birth_year,height_cm,atypical_features\nA1,F,1980,165\n"})
    with Store(tmp_path / "s.duckdb") as store:
        assert store.load_folder(folder).rows == {"patients": 1}
        assert store.query("SELECT atypical_features FROM patients")["atypical_features"].isna().all()


def test_screening_flags_what_the_report_names():
    """The one-pass screen flags each rule's offender (else the load would succeed and miss it)."""
    with Store(":memory:") as store:
        store.load_frames({"patients": pd.DataFrame({"patient_id": ["A1"], "sex": ["F"], "birth_year": [1980], "height_cm": [165.0]})})
        checks.create_units_table(store.con)
        good = pd.DataFrame({"patient_id": ["A1"], "time": [pd.Timestamp("2024-01-01 09:00")], "kind": ["weight"],
                             "value": [70.0], "unit": ["kg"]})
        store.con.register("m", good)
        assert not checks.screen(store.con, TABLES["measurements"], "m")
        for bad in (good.assign(value=[900.0]), good.assign(unit=["stone"]), good.assign(patient_id=["ZZ"]),
                    good.assign(time=[pd.Timestamp("1970-01-01")]), good.assign(kind=["height"]), pd.concat([good, good]),
                    good.assign(value=[np.nan])):
            store.con.register("m", bad)
            assert checks.screen(store.con, TABLES["measurements"], "m"), bad


def test_parquet_in_place_reads_values_as_their_text_would(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    pd.DataFrame({"patient_id": ["A1", "A2"], "sex": ["F", "M"], "birth_year": [1980, 1975], "height_cm": [165, 180]}
                 ).to_parquet(folder / "patients.parquet")
    pd.DataFrame({"patient_id": ["A1", "A1"], "time": pd.to_datetime(["2024-05-01 09:00:00.75", "2024-05-02 09:00:00"], format="ISO8601"),
                  "kind": ["weight", "weight"], "value": [70.25, np.nan], "unit": ["kg", "kg"]}).to_parquet(folder / "measurements.parquet")
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(InputError) as err:
        store.load_folder(folder)
    assert "measurements.parquet, row 2, column 'value': missing value" in str(err.value)  # NaN is empty, as in text
    pd.DataFrame({"patient_id": ["A1"], "time": pd.to_datetime(["2024-05-01 09:00:00.75"]), "kind": ["weight"], "value": [70.25],
                  "unit": ["kg"]}).to_parquet(folder / "measurements.parquet")
    with Store(tmp_path / "t.duckdb") as store:
        store.load_folder(folder)
        row = store.query("SELECT * FROM measurements")
        assert row["time"][0] == pd.Timestamp("2024-05-01 09:00:00")  # to the second, as an exported CSV holds it
        assert row["value"][0] == 70.25
        assert store.query("SELECT height_cm FROM patients ORDER BY 1")["height_cm"].tolist() == [165.0, 180.0]


@pytest.fixture(scope="module")
def simulated():
    return {m: simulate(with_measurement(load_scenario("article"), m), 400, 3, truth=False).tables for m in ("clinic", "research")}


@pytest.mark.parametrize("measurement", ["clinic", "research"])
def test_the_simulator_keeps_its_contract(simulated, measurement, tmp_path):
    """What makes the contract path safe: every value of the simulator's tables passes every check,
    and the contract path stores exactly what the value checks store."""
    tables = simulated[measurement]
    with Store(tmp_path / "values.duckdb") as checked, Store(tmp_path / "contract.duckdb") as trusted:
        a = checked.load_frames(tables, label="simulated", checks="values")
        b = trusted.load_frames(tables, label="simulated", checks="contract")
        assert a.rows == b.rows and a.conversions == b.conversions == {}
        for name in a.rows:
            left = checked.query(f'SELECT * FROM "{name}" ORDER BY ALL')
            right = trusted.query(f'SELECT * FROM "{name}" ORDER BY ALL')
            assert left.equals(right), name


def test_the_contract_is_checked_once_and_names_the_breach(simulated, tmp_path):
    tables = dict(simulated["clinic"])
    patients = tables["patients"]
    breaches = {
        "height_cm": patients.set_column(patients.schema.get_field_index("height_cm"), "height_cm",
                                         pa.array([str(v) for v in patients["height_cm"].to_pylist()])),
        "sex": patients.set_column(patients.schema.get_field_index("sex"), "sex",
                                   pa.array(["X"] + patients["sex"].to_pylist()[1:])),
        "birth_year": patients.set_column(patients.schema.get_field_index("birth_year"), "birth_year",
                                          pa.array([None] + patients["birth_year"].to_pylist()[1:], pa.int64())),
    }
    for column, table in breaches.items():
        with Store(tmp_path / f"{column}.duckdb") as store:
            with pytest.raises(InputError) as err:
                store.load_frames({**tables, "patients": table}, label="simulated", checks="contract")
            assert f"simulated: patients, column '{column}'" in str(err.value)
            assert sum(store.counts().values()) == 0


def test_the_contract_path_checks_every_value_when_the_store_has_rows(simulated, tmp_path):
    tables = simulated["clinic"]
    with Store(tmp_path / "s.duckdb") as store:
        store.load_frames(tables, label="simulated", checks="contract")
        with pytest.raises(InputError, match="key already in the store"):
            store.load_frames({"measurements": tables["measurements"]}, label="again", checks="contract")
