"""FAERS ingestion: every defect in the hand-built fixtures, counts that reconcile, deduplication
rules, all-or-nothing loading."""

from __future__ import annotations

import hashlib
import shutil
import zipfile

import duckdb
import pytest

from ketaweight.core.errors import InputError
from ketaweight.signals.faers import ingest_faers
from ketaweight.signals.faers_members import discover_quarter
from ketaweight.signals.faers_format import TABLES
from ketaweight.signals.faers_parse import parse_table_bytes



def _files(report):
    return {(f.quarter, f.table): f for f in report.files}


def test_discovery_handles_name_variants(q1_zip, q2_zip):
    z1 = discover_quarter(q1_zip)
    assert z1.quarter == "2023Q1" and z1.members["DEMO"] == "ascii/DEMO23Q1.txt"
    assert "THER" not in z1.members and any("no THER" in n for n in z1.notes)
    assert z1.deleted == ("deleted/DELETED_CASES_23Q1.txt",)
    z2 = discover_quarter(q2_zip)
    assert z2.quarter == "2023Q2"
    assert z2.members["DEMO"] == "ASCII/demo23q2_new.txt"  # the re-issue wins
    assert z2.deleted == ("Deleted/DELETE23Q2.txt",)


def test_ingest_repairs_quarantines_and_reconciles(tmp_path, q1_zip, q2_zip):
    store = tmp_path / "s.duckdb"
    rep = ingest_faers([q1_zip, q2_zip], store)
    f = _files(rep)
    drug, reac = f[("2023Q1", "DRUG")], f[("2023Q1", "REAC")]
    assert (drug.dollar_repairs, drug.encoding_repairs, drug.quarantined, drug.loaded) == (1, 1, 2, 8)
    assert (reac.lines_joined, reac.records_split, reac.quarantined, reac.loaded) == (1, 1, 1, 7)
    assert f[("2023Q1", "RPSR")].notes == ("empty file",) and f[("2023Q1", "RPSR")].loaded == 0
    for fr in rep.files:
        assert fr.records == fr.loaded + fr.quarantined
        if fr.table != "DELETED":
            assert fr.records == fr.data_lines - fr.lines_joined + fr.records_split
    con = duckdb.connect(str(store), read_only=True)
    q = con.execute("SELECT file, line, column_name, reason FROM faers_quarantine ORDER BY file, line").fetchall()
    assert [(r[0], r[1], r[2]) for r in q] == [("ascii/DRUG23Q1.txt", 10, "role_cod"), ("ascii/DRUG23Q1.txt", 11, None),
                                              ("ascii/REAC23Q1.txt", 9, "pt")]
    assert "PS, SS, C or I" in q[0][3] and "too few fields" in q[1][3]
    names = dict(con.execute("SELECT line, drugname FROM faers_drug WHERE quarter='2023Q1'").fetchall())
    assert names[8] == "KETAMINE $ HCL"
    assert names[9] == "ACIDE ACÉTYLSALICYLIQUE"
    pts = con.execute("SELECT primaryid, pt FROM faers_reac WHERE quarter='2023Q1' ORDER BY line, primaryid").fetchall()
    assert (10000041, "Dissociation") in pts
    assert (10000051, "Rash") in pts and (10000061, "Weight decreased") in pts
    con.close()


def test_deduplication_rules(fixture_store, q2_zip):
    con = duckdb.connect(str(fixture_store), read_only=True)
    rows = dict(con.execute("SELECT caseid, primaryid FROM faers_reports").fetchall())
    log = con.execute("SELECT step_no, removed, rows_after FROM faers_dedup_log ORDER BY step_no").fetchall()
    con.close()
    assert rows[1000002] == 10000022  # latest caseversion
    assert rows[1000005] == 10000053  # same version: latest fda_dt
    assert rows[1000007] == 10000072  # same version and fda_dt: highest primaryid
    assert 1000004 not in rows  # on q2_zip's deleted list
    assert 1000009 not in rows  # only in the superseded DEMO file
    assert sorted(rows) == [1000001, 1000002, 1000003, 1000005, 1000006, 1000007, 1000008]
    # 13 DEMO rows: 1 repeated primaryid, 1 deleted case, 4 older versions / ties
    assert log == [(0, 0, 13), (1, 1, 12), (2, 1, 11), (3, 4, 7)]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failed_ingest_leaves_store_unchanged(tmp_path, q1_zip, q2_zip):
    store = tmp_path / "s.duckdb"
    ingest_faers([q1_zip], store)
    before = _digest(store)
    bad = tmp_path / "faers_ascii_2023q3.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ascii/DEMO23Q3.txt", "primaryid$caseid$caseversion$fda_dt\r\n1$1$1$20230701\r\n")
        zf.writestr("ascii/DRUG23Q3.txt", "primaryid$drugname\r\n1$X\r\n")  # lacks drug_seq, role_cod
        zf.writestr("ascii/REAC23Q3.txt", "primaryid$caseid$pt\r\n1$1$Rash\r\n")
    with pytest.raises(InputError, match=r"DRUG23Q3.txt, line 1: header lacks required column\(s\) drug_seq, role_cod"):
        ingest_faers([q2_zip, bad], store)
    assert _digest(store) == before
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT DISTINCT quarter FROM faers_files").fetchall() == [("2023Q1",)]
    con.close()


def test_failed_ingest_creates_no_file(tmp_path, q1_zip):
    store = tmp_path / "new.duckdb"
    bad = tmp_path / "faers_ascii_2024q1.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ascii/DEMO24Q1.txt", "x")
    with pytest.raises(InputError, match="no DRUG, REAC file found"):
        ingest_faers([bad], store)
    assert not store.exists()


def test_same_quarter_twice_needs_replace(tmp_path, q1_zip):
    store = tmp_path / "s.duckdb"
    ingest_faers([q1_zip], store)
    with pytest.raises(InputError, match="already in"):
        ingest_faers([q1_zip], store)
    rep = ingest_faers([shutil.copy(q1_zip, tmp_path / q1_zip.name)], store, replace=True)
    assert rep.reports == 6
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*) FROM faers_demo").fetchall()[0][0] == 6
    con.close()


def test_not_a_zip(tmp_path):
    p = tmp_path / "faers_ascii_2023q1.zip"
    p.write_text("hello")
    with pytest.raises(InputError, match="not a zip"):
        ingest_faers([p], tmp_path / "s.duckdb")


def test_ambiguous_dollar_is_quarantined():
    data = b"primaryid$caseid$pt$drug_rec_act\n1$1$A$B$C\n"
    pf = parse_table_bytes(data, TABLES["REAC"], "REAC.txt")
    assert pf.loaded == 0 and "ambiguous" in pf.quarantined[0].reason and pf.quarantined[0].line == 2


def test_header_only_and_trailing_delimiters():
    pf = parse_table_bytes(b"primaryid$caseid$outc_cod\r\n", TABLES["OUTC"], "OUTC.txt")
    assert pf.loaded == 0 and pf.records == 0
    pf = parse_table_bytes(b"primaryid$caseid$outc_cod$\n1$1$DE$\n2$2$HO$\n", TABLES["OUTC"], "OUTC.txt")
    assert pf.loaded == 2 and pf.table["outc_cod"].to_pylist() == ["DE", "HO"]


def test_trailing_dollar_on_lines_but_not_header():
    data = b"primaryid$caseid$outc_cod\r\n1$1$DE$\r\n2$2$HO$\r\n3$3$OT$extra\r\n"
    pf = parse_table_bytes(data, TABLES["OUTC"], "OUTC.txt")
    assert pf.table["outc_cod"].to_pylist() == ["DE", "HO"]
    assert pf.quarantined[0].line == 4 and "after the final" in pf.quarantined[0].reason


def test_store_that_is_not_duckdb_is_a_clear_error(tmp_path, q1_zip):
    bad = tmp_path / "notduck.duckdb"
    bad.write_bytes(b"this is not a database file" * 100)
    before = bad.read_bytes()
    with pytest.raises(InputError, match="cannot open the store"):
        ingest_faers([q1_zip], bad)
    assert bad.read_bytes() == before
