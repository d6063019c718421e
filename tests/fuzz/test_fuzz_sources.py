"""Hostile data on the way in: a store folder (CSV and Parquet), an OMOP CDM as CSV files and FHIR R4
NDJSON, each with one file mutated byte by byte. Every input either loads or is refused with one
InputError that names the file it came from — never another exception — and a refused load leaves the
store it was meant for exactly as it was.

Each input costs a load (0.3–2 s on this machine), so ``make test`` runs a short budget here (``budget``); ``make fuzz``
(HYPOTHESIS_PROFILE=fuzz) runs the profile's full budget."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketaweight.core.errors import InputError
from ketaweight.core.schema import TABLES
from ketaweight.pipelines.imports import export_store, import_fhir, import_omop
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.store import Store

from .mutations import mutated
from .progress import FuzzProgress

def budget(fast: int):
    """``fast`` inputs inside ``make test``; the profile's own budget under ``make fuzz``."""
    return settings(max_examples=fast) if os.environ.get("HYPOTHESIS_PROFILE", "test") == "test" else settings()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict:
    """25 simulated patients as a canonical CSV folder and a Parquet folder; 6 others as an OMOP CSV CDM and
    FHIR NDJSON (an import's cost grows with its rows, and at 6 patients every file of both formats still holds
    rows); a store holding 25 other patients, and its contents (what a refused load must leave unchanged)."""
    root = tmp_path_factory.mktemp("fuzz-sources")
    run_simulation("article", 25, 3, root / "sim", "csv", False)
    run_simulation("article", 25, 4, root / "sim-parquet", "parquet", False)
    small = run_simulation("article", 6, 3, root / "small", "duckdb", False)[1]
    export_store(small, root / "omop", "omop")
    export_store(small, root / "fhir", "fhir")
    for table in ("PERSON", "MEASUREMENT", "OBSERVATION", "DRUG_EXPOSURE", "CONDITION_OCCURRENCE"):
        assert len((root / "omop" / f"{table}.csv").read_bytes().splitlines()) > 1, f"the OMOP seed has no {table} rows"
    assert all(p.stat().st_size for p in (root / "fhir").glob("*.ndjson")), "the FHIR seed has an empty file"
    other = run_simulation("article", 25, 5, root / "other", "csv", False)[1]
    with Store(other) as st_:  # distinct ids, so a mutated copy of the seed folder is not a duplicate load
        for name in TABLES:
            if "patient_id" in TABLES[name].column_names:
                st_.con.execute(f"UPDATE \"{name}\" SET patient_id = 'OTHER-' || patient_id")
    return {"csv": root / "sim" / "csv", "parquet": root / "sim-parquet" / "parquet", "omop": root / "omop",
            "fhir": root / "fhir", "store": other, "store_rows": snapshot(other)}


@contextmanager
def case_folder(tmp_path_factory) -> Iterator[Path]:
    """A fresh folder for one input, removed after it (10,000 inputs would otherwise leave ~30 GB behind)."""
    work = tmp_path_factory.mktemp("case")
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mutate_one_file(data: st.DataObject, folder: Path, target: Path, pattern: str) -> Path:
    """Copy ``folder`` to ``target`` with one file (chosen by the fuzzer among ``pattern``) mutated; that file."""
    shutil.copytree(folder, target)
    victim = data.draw(st.sampled_from(sorted(p.name for p in target.glob(pattern))), label="file")
    path = target / victim
    path.write_bytes(data.draw(mutated(path.read_bytes(), max_edits=4), label="bytes"))
    return path


def snapshot(store: Path) -> dict[str, list]:
    with Store(store, read_only=True) as st_:
        return {name: st_.con.execute(f'SELECT * FROM "{name}" ORDER BY ALL').fetchall() for name in TABLES}


def refused_clearly(exc: InputError, folder: Path) -> None:
    """One clear message that names the folder or a file in it (a mutated patients.csv may surface as
    unknown patients in exposures.csv: the file named is the one whose rows are refused)."""
    text = str(exc)
    assert text.strip() and "Traceback" not in text
    names = [str(folder), *(p.name for p in folder.iterdir()), *(p.stem.lower() for p in folder.iterdir())]
    assert any(n in text for n in names), f"the error names no file of {folder}: {text[:300]}"


IMPORTS = {"omop": (import_omop, "*.csv"), "fhir": (import_fhir, "*.ndjson")}
PROGRESS = {name: FuzzProgress(name) for name in ("store-folder", *IMPORTS)}


def loaded_or_refused(progress: FuzzProgress, load, store: Path, victim: Path, store_rows: dict) -> None:
    """Run ``load()``: it loads, or refuses with one InputError naming the mutated file's folder and leaves
    ``store`` as it was (``store_rows``). Counted in ``progress``; the input was drawn before (hypothesis ends a
    draw that runs out of data by raising, which is not the code under test failing)."""
    with progress.input() as outcome:
        try:
            load()
        except InputError as exc:
            refused_clearly(exc, victim.parent)
            assert snapshot(store) == store_rows, "a refused load changed the store"
            outcome["refused"] = True


@budget(20)
@given(data=st.data(), fmt=st.sampled_from(["csv", "parquet"]))
def test_a_mutated_store_folder_loads_or_is_refused_and_the_store_is_unchanged(seeds, tmp_path_factory, data, fmt):
    with case_folder(tmp_path_factory) as work:
        victim = mutate_one_file(data, seeds[fmt], work / "in", f"*.{fmt}")
        store = work / "store.duckdb"
        shutil.copy(seeds["store"], store)

        def load() -> None:
            with Store(store) as st_:
                st_.load_folder(work / "in")

        loaded_or_refused(PROGRESS["store-folder"], load, store, victim, seeds["store_rows"])


@pytest.mark.parametrize("fmt", sorted(IMPORTS))  # two targets, each with its own budget (`-k fhir` runs one)
@budget(8)
@given(data=st.data())
def test_a_mutated_omop_cdm_or_fhir_export_is_imported_or_refused_naming_the_file(seeds, tmp_path_factory, data, fmt):
    importer, pattern = IMPORTS[fmt]
    with case_folder(tmp_path_factory) as work:
        victim = mutate_one_file(data, seeds[fmt], work / fmt, pattern)
        store = work / "store.duckdb"
        shutil.copy(seeds["store"], store)
        loaded_or_refused(PROGRESS[fmt], lambda: importer(store, work / fmt), store, victim, seeds["store_rows"])
