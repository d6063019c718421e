"""A small simulated store shared by the OMOP and FHIR tests, and exact table comparison."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ketaweight.core.schema import TABLES
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.store import Store


@pytest.fixture(scope="session")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 simulated patients (seed 11) in a store: the truth of every round trip."""
    out = tmp_path_factory.mktemp("sim")
    _result, store = run_simulation("article", 1200, 11, out, truth=False)
    return store


def canonical(tables: dict) -> dict[str, pd.DataFrame]:
    """Each canonical table as a frame in key order with plain column types, for exact comparison."""
    out = {}
    for name, table in tables.items():
        table = table.to_table() if hasattr(table, "to_table") else table  # an Arrow dataset (an import's Parquet files)
        frame = table.to_pandas() if hasattr(table, "to_pandas") else table
        frame = frame[list(TABLES[name].column_names)].copy()
        for col in frame.columns:
            if str(frame[col].dtype) in ("category", "object", "string") or col in ("start", "end"):
                values = frame[col].astype(object).where(frame[col].notna(), None)
                frame[col] = values.map(lambda v: None if v is None else (str(v)[:10] if col in ("start", "end") else str(v)))
        frame = frame.sort_values(list(TABLES[name].key)).reset_index(drop=True)
        out[name] = frame
    return out


def store_tables(store: Path) -> dict[str, pd.DataFrame]:
    with Store(store, read_only=True) as st:
        return canonical({name: st.query(f'SELECT * FROM "{name}"') for name in TABLES})


def assert_same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert set(a) == set(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_dtype=False, check_exact=True, obj=name)


@pytest.fixture(scope="session")
def tables_of():
    """``tables_of(store path | dict of tables)`` → canonical frames; ``tables_of.same(a, b)`` asserts exact equality."""
    class Helper:
        @staticmethod
        def __call__(x):
            return store_tables(x) if isinstance(x, (str, Path)) else canonical(x)

        same = staticmethod(assert_same_tables)

    return Helper()
