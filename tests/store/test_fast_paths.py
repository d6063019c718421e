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


def _exact_reader_only(monkeypatch) -> None:
    """Make every CSV file go to the exact (pandas) reader, as a file that is not plain does."""
    def not_plain(path, table):
        raise files.NotPlainCsv("forced")
        yield  # a generator, like the real one

    monkeypatch.setattr("ketaweight.store.staging.csv_text_batches", not_plain)


def _force_screening_first(monkeypatch) -> None:
    """Make a first load screen its staged rows before inserting them, the way a load into a store with rows goes."""
    monkeypatch.setattr("ketaweight.store.store.units_flagged", lambda units: True)


@pytest.mark.parametrize("exact_way", [_exact_reader_only, _force_screening_first], ids=["exact CSV reader", "screening first"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_exact_ways_report_what_the_fast_ones_report(tmp_path, monkeypatch, case, exact_way):
    """The streamed CSV reader against the exact one; a first load inserted, then screened, against screening first."""
    folder = write(tmp_path / "in", HOSTILE[case])
    fast = load_message(tmp_path, folder)
    exact_way(monkeypatch)
    assert load_message(tmp_path, folder) == fast


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


def test_screening_passes_unique_keys_in_any_order_and_flags_a_repeated_one_wherever_it_is():
    """Keys in increasing order are passed in one streaming pass; any other order goes to the sort of key hashes."""
    with Store(":memory:") as store:
        store.load_frames({"patients": pd.DataFrame({"patient_id": ["A1", "A2", "A3"], "sex": ["F", "M", "F"],
                                                     "birth_year": [1980, 1975, 1990], "height_cm": [165.0, 180.0, 170.0]})})
        checks.create_units_table(store.con)
        rows = pd.DataFrame({"patient_id": ["A1", "A1", "A2", "A3"], "kind": ["weight"] * 4, "value": [70.0, 71.0, 80.0, 60.0],
                             "unit": ["kg"] * 4, "time": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01", "2024-01-01"])})
        for order, repeated in (([0, 1, 2, 3], False), ([3, 1, 2, 0], False), ([0, 1, 1, 2], True), ([1, 0, 2, 0], True),
                                ([0, 2, 3, 0], True)):
            store.con.register("m", rows.iloc[order].reset_index(drop=True))
            assert checks.screen(store.con, TABLES["measurements"], "m") is repeated, order


def test_values_trimmed_only_where_needed_load_as_the_exact_reader_loads_them(tmp_path, monkeypatch):
    """The streamed reader skips DuckDB's trim for chunks whose values need none; chunks with spaces,
    no-break spaces, tabs or empty values are trimmed as the exact reader trims them."""
    lines = [f"P{i:03d},2024-01-01 09:00:00,weight,{60 + i % 30},kg" for i in range(200)]
    lines[150] = "P150 ,2024-01-01 09:00:00, weight,\u00a070\u00a0,kg"
    lines[170] = "P170,2024-01-01 09:00:00 ,weight,70,\tkg"
    lines[190] = "P190,2024-01-01 09:00:00,weight,,kg"
    patients = "patient_id,sex,birth_year,height_cm\n" + "".join(f"P{i:03d},F,1980,165\n" for i in range(200))
    folder, valid = tmp_path / "in", tmp_path / "valid"
    for path, rows in ((folder, lines), (valid, lines[:170] + ["P170,2024-01-01 09:00:00 ,weight,70, kg"] + lines[171:190]
                                                      + ["P190,2024-01-01 09:00:00,weight,\u3000 71,kg"] + lines[191:])):
        path.mkdir()
        (path / "patients.csv").write_text(patients)
        (path / "measurements.csv").write_text("patient_id,time,kind,value,unit\n" + "\n".join(rows) + "\n", encoding="utf-8")
    monkeypatch.setattr(files, "CSV_BLOCK_BYTES", 1 << 10)
    monkeypatch.setattr(files, "CSV_CHUNK_BYTES", 1 << 10)
    assert len(list(files.csv_text_batches(folder / "measurements.csv", TABLES["measurements"]))) > 3

    def stored() -> list[tuple]:
        with Store(":memory:") as store:
            store.load_folder(valid)
            return store.con.sql("SELECT * FROM measurements ORDER BY rowid").fetchall()

    streamed, streamed_rows = load_message(tmp_path, folder), stored()
    assert "line 172, column 'unit': unknown unit \tkg" in streamed and "line 192, column 'value': missing value" in streamed
    assert "line 152" not in streamed  # spaces and no-break spaces are trimmed
    assert [r for r in streamed_rows if r[0] in ("P150", "P190")] == [("P150", streamed_rows[150][1], "weight", 70.0, "kg"),
                                                                       ("P190", streamed_rows[190][1], "weight", 71.0, "kg")]
    _exact_reader_only(monkeypatch)
    assert load_message(tmp_path, folder) == streamed
    assert stored() == streamed_rows


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


def _spy_on_screening(monkeypatch) -> list[str]:
    """The relations the screening reads, in order, from now on."""
    screened: list[str] = []
    real = checks.screen

    def spy(con, table, relation, **kwargs):
        screened.append(relation)
        return real(con, table, relation, **kwargs)

    monkeypatch.setattr("ketaweight.store.store.screen", spy)
    return screened


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_first_load_screened_after_inserting_stores_what_screening_first_stores(simulated, tmp_path, monkeypatch, fmt):
    """Into an empty store the rows are inserted, then screened inside the transaction (each file read
    once); the values, their order, the unit conversions and the receipt are those of screening first."""
    with Store(tmp_path / "source.duckdb") as source:
        source.load_frames(simulated["clinic"], label="simulated")
        source.con.execute("UPDATE measurements SET value = value / 0.45359237, unit = 'lb' WHERE kind = 'weight' AND rowid % 7 = 0")
        folder = tmp_path / fmt
        source.export(folder, fmt)
    screened = _spy_on_screening(monkeypatch)

    def load(path: Path):
        with Store(path) as store:
            report = store.load_folder(folder)
            return report, {name: store.con.sql(f'SELECT * FROM "{name}" ORDER BY rowid').to_arrow_table() for name in TABLES}

    fast, fast_rows = load(tmp_path / "fast.duckdb")
    assert screened == list(fast.rows)  # the store's own tables, just inserted
    screened.clear()
    _force_screening_first(monkeypatch)
    slow, slow_rows = load(tmp_path / "slow.duckdb")
    assert screened == [f"_typed_{name}" for name in slow.rows]
    assert fast.rows == slow.rows and fast.conversions == slow.conversions and fast.conversions
    for name in TABLES:
        assert fast_rows[name].equals(slow_rows[name]), name
