"""A corrupt Parquet page that DuckDB's screening pass does not touch but the "already loaded?" check
does (found by `make fuzz`, 10,000 store-folder inputs, after ~800): the load ended in a bare
``InvalidInputException: Snappy decompression failure`` / ``duckdb.Error: TProtocolException``.
The two files are the fuzzer's own inputs (mutations of a 25-patient simulated measurements.parquet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ketaweight.core.errors import InputError
from ketaweight.core.schema import TABLES
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.store import Store

FIXTURES = Path(__file__).parent.parent / "fixtures" / "corrupt-parquet"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    """The fuzzer's set-up: a simulated Parquet folder (seed 4) and a store of 25 other patients (seed 5)."""
    root = tmp_path_factory.mktemp("corrupt-parquet")
    run_simulation("article", 25, 4, root / "sim", "parquet", False)
    other = run_simulation("article", 25, 5, root / "other", "csv", False)[1]
    with Store(other) as st_:
        for name in TABLES:
            if "patient_id" in TABLES[name].column_names:
                st_.con.execute(f"UPDATE \"{name}\" SET patient_id = 'OTHER-' || patient_id")
    return {"folder": root / "sim" / "parquet", "store": other}


def _table_counts(path: Path) -> dict[str, int]:
    with Store(path, read_only=True) as st_:
        return st_.counts()


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.parquet")))
def test_a_corrupt_page_read_by_the_reload_check_is_one_error_naming_the_file(seeds, tmp_path, fixture):
    folder = tmp_path / "in"
    shutil.copytree(seeds["folder"], folder)
    shutil.copy(FIXTURES / fixture, folder / "measurements.parquet")
    store = tmp_path / "store.duckdb"
    shutil.copy(seeds["store"], store)
    before = _table_counts(store)
    with pytest.raises(InputError) as err, Store(store) as st_:
        st_.load_folder(folder)
    assert str(err.value).startswith(f"{folder / 'measurements.parquet'}: cannot read the file's data")
    assert _table_counts(store) == before
