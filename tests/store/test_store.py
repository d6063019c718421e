"""The canonical store: validated, all-or-nothing loads of hostile files; export round trip."""

from pathlib import Path

import pytest

from ketaweight.core.errors import InputError
from ketaweight.sources.simulator import load_scenario, simulate
from ketaweight.store.store import Store

PATIENTS = "patient_id,sex,birth_year,height_cm\nA1,F,1980,165\nA2,M,1975,180\n"
MEASUREMENTS = "patient_id,time,kind,value,unit\nA1,2024-01-01 09:00:00,weight,70.5,kg\nA2,2024-01-01 09:00:00,weight,200,lb\n"
EXPOSURES = "patient_id,time,drug,dose_mg,route,duration_min\nA1,2024-01-02 09:00:00,ketamine,35,iv,40\n"


def write(folder: Path, **files: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / f"{name}.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


@pytest.fixture()
def store(tmp_path):
    with Store(tmp_path / "store.duckdb") as s:
        s.load_folder(write(tmp_path / "good", patients=PATIENTS, measurements=MEASUREMENTS, exposures=EXPOSURES))
        yield s


def snapshot(store: Store) -> dict:
    return {name: store.query(f'SELECT * FROM "{name}" ORDER BY ALL').to_dict("list") for name in store.counts()}


def load_error(store: Store, folder: Path) -> str:
    before = snapshot(store)
    with pytest.raises(InputError) as err:
        store.load_folder(folder)
    assert snapshot(store) == before, "a failed load must leave the store unchanged"
    return str(err.value)


def test_good_load_converts_pounds_explicitly(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        report = s.load_folder(write(tmp_path / "in", patients=PATIENTS, measurements=MEASUREMENTS))
        assert report.rows == {"patients": 2, "measurements": 2}
        assert report.conversions == {"weight: lb → kg (× 0.45359237)": 1}
        kg = s.query("SELECT value, unit FROM measurements WHERE patient_id = 'A2'")
        assert kg["value"][0] == pytest.approx(200 * 0.45359237)
        assert kg["unit"][0] == "kg"


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"patients": "patient_id,sex,birth_year,height_cm,shoe_size\nB1,F,1980,165,38\n"},
         "patients.csv, line 1, column 'shoe_size': unknown column"),
        ({"patients": "patient_id,sex,birth_year,height_cm\nB1,F,nineteen,165\n"},
         "patients.csv, line 2, column 'birth_year': not a valid integer: nineteen"),
        ({"measurements": "patient_id,time,kind,value,unit\nA1,2024-02-01 09:00:00,weight,0,kg\n"},
         "measurements.csv, line 2, column 'value': impossible weight value 0 kg"),
        ({"measurements": "patient_id,time,kind,value,unit\nA1,2024-02-01 09:00:00,weight,900,kg\n"},
         "measurements.csv, line 2, column 'value': impossible weight value 900 kg"),
        ({"measurements": "patient_id,time,kind,value,unit\nA1,2024-02-01 09:00:00,weight,70,stone\n"},
         "measurements.csv, line 2, column 'unit': unknown unit stone for kind weight"),
        ({"exposures": "patient_id,time,drug,dose_mg,route,duration_min\nA1,2024-02-01 09:00:00,ketamine,-5,iv,40\n"},
         "exposures.csv, line 2, column 'dose_mg': impossible value -5 mg"),
        ({"exposures": "patient_id,time,drug,dose_mg,route,duration_min\nA1,1970-02-01 09:00:00,ketamine,35,iv,40\n"},
         "exposures.csv, line 2, column 'time': date before the patient's birth year 1980"),
        ({"exposures": "patient_id,time,drug,dose_mg,route,duration_min\nZZ,2024-02-01 09:00:00,ketamine,35,iv,40\n"},
         "exposures.csv, line 2, column 'patient_id': unknown patient"),
        ({"exposures": "patient_id,time,drug,dose_mg,route,duration_min\nA1,2024-02-01 09:00:00,ketamine,35,nasal,40\n"},
         "exposures.csv, line 2, column 'route': unknown value nasal"),
        ({"measurements": "patient_id,time,kind,value,unit\nA1,2024-02-01 09:00:00,weight,70,kg\nA1,2024-02-01 09:00:00,weight,71,kg\n"},
         "measurements.csv, line 3: duplicate key (patient_id, time, kind) also on line 2"),
        ({"measurements": MEASUREMENTS}, "measurements.csv, line 2: key already in the store"),
        ({"lifestyle": "patient_id,start,end,kind,detail\nA1,2024-03-01,2024-02-01,diet_programme,x\n"},
         "lifestyle.csv, line 2, column 'end': end before start"),
    ],
)
def test_each_validation_error_names_file_line_column_and_reason(store, tmp_path, files, expected):
    message = load_error(store, write(tmp_path / "bad", **files))
    assert expected in message


def test_truncated_file_is_reported_at_its_last_line(store, tmp_path):
    text = "patient_id,time,kind,value,unit\nA1,2024-02-01 09:00:00,weight,70,kg\nA1,2024-02-08 09:00"
    message = load_error(store, write(tmp_path / "trunc", measurements=text))
    assert "measurements.csv, line 3, column 'kind': missing value" in message


def test_wrong_encoding_names_line_and_column(store, tmp_path):
    raw = "patient_id,sex,birth_year,height_cm\nB1,F,1980,165\n".encode() + "B2,M,1981,17\xe90\n".encode("latin-1")
    message = load_error(store, write(tmp_path / "enc", patients=raw))
    assert "patients.csv, line 3, column 'height_cm': not UTF-8 text (byte 0xe9)" in message


def test_empty_file(store, tmp_path):
    message = load_error(store, write(tmp_path / "empty", patients=""))
    assert "patients.csv, line 1: file is empty" in message


def test_ragged_line(store, tmp_path):
    text = "patient_id,sex,birth_year,height_cm\nB1,F,1980,165\nB2,M,1981,170,extra\n"
    message = load_error(store, write(tmp_path / "ragged", patients=text))
    assert "patients.csv, line 3: malformed CSV line: Expected 4 fields in line 3, saw 5" in message


def test_mixed_units_convert_per_row_and_bad_ones_fail_the_whole_load(store, tmp_path):
    text = ("patient_id,time,kind,value,unit\nA1,2024-03-01 09:00:00,weight,154,lb\n"
            "A1,2024-03-08 09:00:00,weight,69.8,kg\nA1,2024-03-15 09:00:00,weight,70,kilos\n")
    message = load_error(store, write(tmp_path / "mixed", measurements=text))
    assert "line 4, column 'unit': unknown unit kilos" in message
    # Nothing from the good rows of the failed file went in.
    assert store.query("SELECT count(*) AS n FROM measurements WHERE time >= '2024-03-01'")["n"][0] == 0


def test_failure_in_one_table_loads_no_table(store, tmp_path):
    folder = write(tmp_path / "two", patients="patient_id,sex,birth_year,height_cm\nC1,F,1990,160\n",
                   measurements="patient_id,time,kind,value,unit\nC1,2024-01-01 09:00:00,weight,-3,kg\n")
    load_error(store, folder)
    assert store.query("SELECT count(*) AS n FROM patients WHERE patient_id = 'C1'")["n"][0] == 0


def test_rows_may_reference_patients_loaded_with_them(store, tmp_path):
    folder = write(tmp_path / "together", patients="patient_id,sex,birth_year,height_cm\nD1,F,1990,160\n",
                   measurements="patient_id,time,kind,value,unit\nD1,2024-01-01 09:00:00,weight,60,kg\n")
    assert store.load_folder(folder).rows == {"patients": 1, "measurements": 1}


def test_many_errors_are_listed_then_counted(store, tmp_path):
    rows = "".join(f"A1,2024-04-{d:02d} 09:00:00,weight,0,kg\n" for d in range(1, 29))
    message = load_error(store, write(tmp_path / "many", measurements="patient_id,time,kind,value,unit\n" + rows))
    assert "line 21," in message and "and 8 more row(s) with the same problem" in message


def test_simulated_cohort_round_trips_through_csv_and_parquet(tmp_path):
    result = simulate(load_scenario("article"), 300, 2, truth=False)
    with Store(tmp_path / "a.duckdb") as a:
        a.load_frames(result.tables, label="simulated")
        counts = a.counts()
        for fmt in ("csv", "parquet"):
            a.export(tmp_path / fmt, fmt)
            with Store(tmp_path / f"{fmt}.duckdb") as b:
                b.load_folder(tmp_path / fmt)
                assert b.counts() == counts
                for name in counts:
                    left = a.query(f'SELECT * FROM "{name}" ORDER BY ALL')
                    right = b.query(f'SELECT * FROM "{name}" ORDER BY ALL')
                    assert left.equals(right), (fmt, name)


def test_parquet_rows_are_named_by_row_number(store, tmp_path):
    import pandas as pd

    folder = tmp_path / "pq"
    folder.mkdir()
    pd.DataFrame({"patient_id": ["A1", "A1"], "time": ["2024-05-01 09:00:00", "2024-05-02 09:00:00"],
                  "kind": ["weight", "weight"], "value": [70.0, -1.0], "unit": ["kg", "kg"]}).to_parquet(folder / "measurements.parquet")
    message = load_error(store, folder)
    assert "measurements.parquet, row 2, column 'value': impossible weight value -1.0 kg" in message


def test_corrupt_parquet_is_a_clear_error(store, tmp_path):
    folder = tmp_path / "badpq"
    folder.mkdir()
    (folder / "patients.parquet").write_bytes(b"PAR1 this is not parquet")
    assert "cannot read Parquet file" in load_error(store, folder)


def test_both_formats_for_one_table_is_ambiguous(store, tmp_path):
    folder = write(tmp_path / "both", patients=PATIENTS)
    (folder / "patients.parquet").write_bytes(b"")
    assert "both patients.csv and patients.parquet exist" in load_error(store, folder)
