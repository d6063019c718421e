"""Issue 12's store defects (D8–D13, D19, D24, D29) and the silences of ``store load``, each as a
regression test: a clear error naming the file (and line, column) and reason, nothing written."""

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.core.errors import InputError
from ketaweight.store import store as store_module
from ketaweight.store.store import Store

PATIENTS = "patient_id,sex,birth_year,height_cm\nA1,F,1980,165\nA2,M,1975,180\n"
MEASUREMENTS = "patient_id,time,kind,value,unit\nA1,2024-01-01 09:00:00,weight,70.5,kg\nA2,2024-01-01 09:00:00,weight,80,kg\n"


def write(folder: Path, **files: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def load_new(path: Path, folder: Path) -> str:
    """Load ``folder`` into a new store at ``path``; the error text.  No store file may be left."""
    with pytest.raises(InputError) as err:
        with Store(path) as store:
            store.load_folder(folder)
    assert not path.exists() and not path.with_name(path.name + ".wal").exists(), "a failed first load left a store file"
    return str(err.value)


def test_d8_non_utf8_csv_with_cr_line_ends_names_line_and_column(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": b"patient_id,sex,birth_year,height_cm\rP1,F,1980,165 \xe9\r"})
    message = load_new(tmp_path / "s.duckdb", folder)
    assert "patients.csv, line 2, column 'height_cm': not UTF-8 text (byte 0xe9)" in message


def test_a_non_utf8_byte_in_the_header_names_line_1(tmp_path):
    """Found by tests/fuzz/test_fuzz_sources.py: pyarrow decoding the header raised UnicodeDecodeError."""
    folder = write(tmp_path / "in", **{"patients.csv": b"\x80patient_id,sex,birth_year,height_cm\nP1,F,1980,165\n"})
    message = load_new(tmp_path / "s.duckdb", folder)
    assert "patients.csv, line 1" in message and "not UTF-8 text (byte 0x80)" in message


def test_d9_a_csv_that_is_only_a_byte_order_mark_is_empty(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": b"\xef\xbb\xbf"})
    assert "patients.csv, line 1: file is empty" in load_new(tmp_path / "s.duckdb", folder)


def test_d10_a_table_file_that_is_a_folder_is_named(tmp_path):
    (tmp_path / "in" / "patients.csv").mkdir(parents=True)
    assert "patients.csv: is a folder, not a table file" in load_new(tmp_path / "s.duckdb", tmp_path / "in")


@pytest.mark.parametrize("value", ["infinity", "-infinity", "Infinity"])
def test_d11_infinity_is_not_a_valid_timestamp(tmp_path, value):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS,
                                       "measurements.csv": MEASUREMENTS.replace("2024-01-01 09:00:00", value, 1)})
    assert f"measurements.csv, line 2, column 'time': not a valid timestamp: {value}" in load_new(tmp_path / "s.duckdb", folder)


def test_d11_infinite_parquet_timestamps_are_refused(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS})
    pq.write_table(pa.table({"patient_id": ["A1", "A2"], "time": pa.array([2**63 - 1, 0], pa.timestamp("us")),
                             "kind": ["weight"] * 2, "value": [70.0, 71.0], "unit": ["kg"] * 2}), folder / "measurements.parquet")
    assert "measurements.parquet, row 1, column 'time': not a valid timestamp: infinity" in load_new(tmp_path / "s.duckdb", folder)


def test_d12_a_failed_load_into_a_new_path_creates_nothing(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS.replace("1980", "nineteen")})
    load_new(tmp_path / "new" / "deeper" / "s.duckdb", folder)
    assert not (tmp_path / "new").exists(), "folders made for the store were left behind"


def test_d12_a_failed_load_into_an_existing_store_keeps_it(tmp_path):
    good = write(tmp_path / "good", **{"patients.csv": PATIENTS})
    with Store(tmp_path / "s.duckdb") as store:
        store.load_folder(good)
    bad = write(tmp_path / "bad", **{"measurements.csv": MEASUREMENTS.replace("A2,", "ZZ,")})
    with pytest.raises(InputError, match="unknown patient"):
        with Store(tmp_path / "s.duckdb") as store:
            store.load_folder(bad)
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.counts()["patients"] == 2


@pytest.mark.parametrize("unit, value", [("ms", 2**62), ("ms", -(2**62)), ("s", 2**50)])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_d13_parquet_timestamps_beyond_the_stores_range_are_named_by_row(tmp_path, unit, value, tz):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS})
    pq.write_table(pa.table({"patient_id": ["A1", "A2"], "time": pa.array([0, value], pa.timestamp(unit, tz=tz)),
                             "kind": ["weight"] * 2, "value": [70.0, 71.0], "unit": ["kg"] * 2}), folder / "measurements.parquet")
    message = load_new(tmp_path / "s.duckdb", folder)
    assert "measurements.parquet, row 2, column 'time': timestamp outside the years a store can hold" in message


@pytest.fixture()
def small_store(tmp_path) -> Path:
    with Store(tmp_path / "src.duckdb") as store:
        store.load_folder(write(tmp_path / "good", **{"patients.csv": PATIENTS, "measurements.csv": MEASUREMENTS}))
    return tmp_path / "src.duckdb"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_d19_an_apostrophe_in_the_export_path_is_just_a_path(small_store, tmp_path, fmt):
    out = tmp_path / "Dr O'Brien's export"
    with Store(small_store, read_only=True) as store:
        store.export(out, fmt)
    with Store(tmp_path / "again.duckdb") as store:
        assert store.load_folder(out).rows == {"patients": 2, "exposures": 0, "measurements": 2, "lifestyle": 0,
                                               "adverse_events": 0}


def test_d24_sql_in_the_export_path_is_never_run(small_store, tmp_path):
    injected = tmp_path / "injected.csv"
    out = f"{tmp_path}/x.csv' (FORMAT csv); COPY (SELECT 42) TO '{injected}' (FORMAT csv); --"
    result = CliRunner().invoke(app, ["store", "export", "--store", str(small_store), "--format", "csv", "--out", out])
    assert result.exit_code == 0, result.output
    assert not injected.exists()
    assert (Path(out) / "patients.csv").read_text().startswith("patient_id,sex,birth_year,height_cm")


def test_d29_a_second_process_gets_one_line_naming_the_store(small_store):
    code = ("import sys\nfrom ketaweight.core.errors import InputError\nfrom ketaweight.store.store import Store\n"
            f"try:\n    Store({str(small_store)!r}, read_only=True)\nexcept InputError as e:\n    print(e)\n    sys.exit(3)\n")
    with Store(small_store):  # this process holds the write lock, as a running load does
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith(f"{small_store}: the store is in use by another ketaweight or DuckDB process")
    assert "Traceback" not in done.stderr


def test_d29_a_write_failure_says_the_store_is_unchanged(small_store, tmp_path, monkeypatch):
    folder = write(tmp_path / "more", **{"patients.csv": "patient_id,sex,birth_year,height_cm\nA3,F,1990,170\n"})
    real = store_module.insert_sql

    def full_disk(table, *args, **kwargs):  # DuckDB's own words when a write finds no space
        if table.name == "patients":
            raise duckdb.IOException('IO Error: Could not write file "s.duckdb.wal": No space left on device')
        return real(table, *args, **kwargs)

    monkeypatch.setattr(store_module, "insert_sql", full_disk)
    with Store(small_store) as store:
        with pytest.raises(InputError) as err:
            store.load_folder(folder)
        assert store.counts()["patients"] == 2
    assert str(err.value).startswith(f"{small_store}: could not write the store (the disk is full)")
    assert "the store's contents are unchanged" in str(err.value)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_store_load_names_the_files_it_skips_and_explains_the_long_format(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS, "weights.csv": "patient_id,time,weight\nA1,2024-01-01,70\n",
                                       "notes.txt": "hello", ".DS_Store": ""})
    (folder / "old").mkdir()
    result = run("store", "load", str(folder), "--store", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "skipped weights.csv: not a table ketaweight knows" in text
    assert "its column(s) weight look like measurements" in text
    assert "patient_id,time,kind,value,unit; a row: P0001,2024-03-01 09:00:00,weight,82.4,kg" in text
    assert "skipped notes.txt: not a table file" in text
    assert "skipped old: a folder" in text
    assert ".DS_Store" not in text


def test_a_wide_measurements_file_is_explained(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS, "measurements.csv": "patient_id,time,weight,phq9\nA1,2024-01-01,70,12\n"})
    message = load_new(tmp_path / "s.duckdb", folder)
    assert "measurements.csv, line 1, column 'weight': unknown column" in message
    assert "measurements are one row per value (the long format)" in message


def test_store_load_of_a_missing_folder_is_an_error_and_creates_nothing(tmp_path):
    result = run("store", "load", str(tmp_path / "nowhere"), "--store", str(tmp_path / "out" / "s.duckdb"))
    assert result.exit_code == 2
    assert "nowhere: folder not found" in result.output
    assert list(tmp_path.iterdir()) == []


def test_loading_the_same_folder_twice_says_so_in_one_line(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS, "measurements.csv": MEASUREMENTS})
    store = str(tmp_path / "s.duckdb")
    assert run("store", "load", str(folder), "--store", store).exit_code == 0
    result = run("store", "load", str(folder), "--store", store)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    text = " ".join(result.output.split())
    assert "this folder looks already loaded (loaded at" in text and "nothing was changed" in text
    assert "key already in the store" not in text and len(lines) <= 4


def test_a_partly_new_folder_is_still_reported_row_by_row(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS})
    with Store(tmp_path / "s.duckdb") as store:
        store.load_folder(folder)
        write(folder, **{"patients.csv": PATIENTS + "A3,F,1990,170\n"})
        with pytest.raises(InputError, match="patients.csv, line 2: key already in the store"):
            store.load_folder(folder)


def test_the_load_receipt_shows_the_data_owner_exact_counts(tmp_path):
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS,
                                       "measurements.csv": MEASUREMENTS.replace("80,kg", "200,lb")})
    result = run("store", "load", str(folder), "--store", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "the data owner's receipt: exact counts, not for sharing" in text
    assert "patients: 2 rows from" in text and "(2 now in the store)" in text
    assert "converted 1 row, weight: lb → kg" in text
    assert "<11" not in text


def test_a_parquet_file_with_corrupt_data_pages_is_named(tmp_path):
    """Found by tests/fuzz/test_fuzz_sources.py: the schema reads, a data page does not (DuckDB's
    TProtocolException / Snappy errors) — one InputError naming the file, nothing created."""
    folder = write(tmp_path / "in", **{"patients.csv": PATIENTS})
    pq.write_table(pa.table({"patient_id": ["A1", "A2"] * 50, "time": pa.array(range(100), pa.timestamp("s")),
                             "term": ["Nausea"] * 100, "severity": ["mild"] * 100}), folder / "adverse_events.parquet")
    raw = bytearray((folder / "adverse_events.parquet").read_bytes())
    raw[4:40] = b"\xff" * 36  # the first page header; the footer (schema) stays intact
    (folder / "adverse_events.parquet").write_bytes(bytes(raw))
    assert "adverse_events.parquet" in load_new(tmp_path / "s.duckdb", folder)
