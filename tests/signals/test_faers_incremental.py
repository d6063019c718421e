"""Incremental deduplication: adding quarters one by one (in any order) gives the tables a full
rebuild gives, and a case re-sent in a later quarter replaces its earlier version."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest

from ketaweight.signals import mapping
from ketaweight.signals.faers import ingest_faers
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.faers_dedup import DEDUP_TABLES, update_reports
from ketaweight.signals.synthetic import history, write_synthetic_quarter

from signals_helpers import DEMO_HEADER, DRUG_HEADER, REAC_HEADER, small_quarter, write_zip


def _tables(store) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in DEDUP_TABLES}
    finally:
        con.close()


def _rebuilt(store, tmp_path) -> dict[str, list[tuple]]:
    """The same store deduplicated from scratch (every quarter)."""
    copy = tmp_path / f"rebuilt-{store.name}"
    shutil.copy(store, copy)
    con = duckdb.connect(str(copy))
    try:
        update_reports(con, None)
    finally:
        con.close()
    return _tables(copy)


def test_fixture_quarters_one_by_one_equal_all_at_once(tmp_path, q1_zip, q2_zip, fixture_store):
    store = tmp_path / "one-by-one.duckdb"
    ingest_faers([q1_zip], store)
    rep = ingest_faers([q2_zip], store)
    got = _tables(store)
    assert got == _tables(fixture_store)  # both quarters in one ingest
    assert got == _rebuilt(store, tmp_path)
    assert rep.reports == 7 and [s.n_after for s in rep.dedup] == [13, 12, 11, 7]


@pytest.fixture(scope="module")
def small_history(tmp_path_factory):
    """Four quarters of 3,000 reports, 10% of each later quarter's reports follow-ups of earlier cases,
    every defect present; and the generator's truth (case ids, deleted case ids)."""
    out = tmp_path_factory.mktemp("history")
    zips, cases, deleted = [], [], []
    for spec in history(4, n_reports=3_000, followup_share=0.1, seed=77):
        path, truth = write_synthetic_quarter(out, spec)
        zips.append(path)
        cases.append(truth["case_ids"])
        deleted.append(truth["deleted_case_ids"])
    expected = np.setdiff1d(np.unique(np.concatenate(cases)), np.unique(np.concatenate(deleted))).size
    return zips, int(expected)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (2, 0, 3, 1)])
def test_history_one_by_one_in_any_order_equals_a_rebuild(tmp_path, small_history, order):
    zips, expected = small_history
    at_once = tmp_path / "at-once.duckdb"
    ingest_faers(zips, at_once)
    store = tmp_path / "one-by-one.duckdb"
    for k in order:
        rep = ingest_faers([zips[k]], store)
    got = _tables(store)
    assert rep.reports == expected  # the generator's truth: distinct cases minus deleted ones
    assert got == _tables(at_once)
    assert got == _rebuilt(store, tmp_path)
    # and the counts a scan is built from are the same, cell for cell
    dm, groups = mapping.load_drug_map(), mapping.load_term_groups()
    a = counts_from_store(store, drug_map=dm, groups=groups)
    b = counts_from_store(at_once, drug_map=dm, groups=groups)
    assert (a.drugs, a.events, a.n_reports) == (b.drugs, b.events, b.n_reports)
    assert np.array_equal(a.cell_n, b.cell_n) and np.array_equal(a.cell_drug, b.cell_drug)


def _quarter(tmp_path, yy: str, q: int, demo: bytes, drug: bytes, reac: bytes, deleted: bytes | None = None):
    return write_zip(tmp_path / f"faers_ascii_20{yy}q{q}.zip",
                     small_quarter(yy, q, demo=DEMO_HEADER + demo, drug=DRUG_HEADER + drug,
                                   reac=REAC_HEADER + reac, deleted=deleted))


def resent_case_quarters(tmp_path):
    """Two quarters: in the second, case 10 comes back as version 2 (a new primaryid, another drug);
    primaryid 201 is re-sent as is; primaryid 301 is re-sent under case 31 (so case 30 has no report
    left); case 40 is deleted."""
    first = _quarter(tmp_path, "23", 1,
                     b"101$10$1$20230105\r\n201$20$1$20230106\r\n301$30$1$20230107\r\n401$40$1$20230108\r\n",
                     b"101$10$1$PS$KETALAR$KETAMINE\r\n201$20$1$PS$ASPIRIN$\r\n301$30$1$PS$ASPIRIN$\r\n"
                     b"401$40$1$PS$ASPIRIN$\r\n",
                     b"101$10$Weight decreased\r\n201$20$Nausea\r\n301$30$Headache\r\n401$40$Rash\r\n")
    second = _quarter(tmp_path, "23", 2,
                      b"102$10$2$20230405\r\n201$20$1$20230106\r\n301$31$1$20230407\r\n",
                      b"102$10$1$PS$ASPIRIN$\r\n201$20$1$PS$ASPIRIN$\r\n301$31$1$PS$KETALAR$KETAMINE\r\n",
                      b"102$10$Nausea\r\n201$20$Nausea\r\n301$31$Weight decreased\r\n", deleted=b"40\r\n")
    return first, second


def test_a_resent_case_replaces_its_earlier_version(tmp_path):
    first, second = resent_case_quarters(tmp_path)
    store = tmp_path / "s.duckdb"
    ingest_faers([first], store)
    rep = ingest_faers([second], store)
    con = duckdb.connect(str(store), read_only=True)
    rows = con.execute("SELECT caseid, primaryid, caseversion, quarter FROM faers_reports ORDER BY 1").fetchall()
    con.close()
    assert rows == [(10, 102, 2, "2023Q2"), (20, 201, 1, "2023Q2"), (31, 301, 1, "2023Q2")]
    # 7 DEMO rows; 201 and 301 once each (5); case 40 deleted (4); case 10's version 1 superseded (3)
    assert [s.n_after for s in rep.dedup] == [7, 5, 4, 3]
    assert _tables(store) == _rebuilt(store, tmp_path)
    table = counts_from_store(store, drug_map=mapping.load_drug_map(), groups={})
    # ketamine now comes only with case 31's report (the re-sent primaryid's later rows), not case 10's
    assert table.pair("ketamine", "weight decreased").a == 1
    assert table.pair("aspirin", "nausea").a == 2 and table.n_reports == 3


def test_a_store_written_before_the_case_table_is_deduplicated_whole(tmp_path, q1_zip, q2_zip, fixture_store):
    store = tmp_path / "old.duckdb"
    ingest_faers([q1_zip], store)
    con = duckdb.connect(str(store))
    con.execute("DROP TABLE faers_dedup_cases")  # as a store ingested by an earlier version has it
    con.close()
    ingest_faers([q2_zip], store)
    assert _tables(store) == _tables(fixture_store)
