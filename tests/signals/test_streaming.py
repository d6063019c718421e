"""Many quarters in one streaming pass: chunk size does not change the result, a quarter added later
gives the same store as loading all at once, deduplication works across quarters, counts use the
rows of the quarter a report's current version came in, every pair can be scored."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from signals_helpers import DEMO_HEADER, DRUG_HEADER, REAC_HEADER, small_quarter, store_rows, write_zip
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.signals import mapping
from ketaweight.signals.faers import ingest_faers
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.faers_format import TABLES
from ketaweight.signals.faers_members import ReadLimits
from ketaweight.signals.faers_parse import TableParser, parse_table_bytes
from ketaweight.signals.synthetic import history, write_synthetic_quarter

runner = CliRunner()


@pytest.fixture(scope="module")
def three_quarters(tmp_path_factory):
    """A synthetic history of 3 quarters (1,500 reports each, 20% follow-ups of earlier cases), with truth."""
    d = tmp_path_factory.mktemp("history")
    out = []
    for spec in history(3, n_reports=1500, followup_share=0.2):
        path, truth = write_synthetic_quarter(d, spec)
        out.append((path, truth))
    return out


def _expected_reports(truths) -> int:
    cases = np.unique(np.concatenate([t["case_ids"] for t in truths]))
    deleted = np.unique(np.concatenate([t["deleted_case_ids"] for t in truths]))
    return int(np.setdiff1d(cases, deleted).size)


def _table_dump(store):
    con = duckdb.connect(str(store), read_only=True)
    try:
        out = {}
        for t in ("faers_demo", "faers_drug", "faers_reac", "faers_reports", "faers_quarantine"):
            out[t] = sorted(map(tuple, con.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
        return out
    finally:
        con.close()


def test_chunk_size_does_not_change_the_parse(tmp_path):
    path, _ = write_synthetic_quarter(tmp_path, history(1, n_reports=800)[0])
    import zipfile

    with zipfile.ZipFile(path) as zf:
        data = zf.read("ascii/REAC12Q4.txt")
    whole = parse_table_bytes(data, TABLES["REAC"], "REAC.txt")
    for size in (7, 1000, 65_536):
        parser = TableParser(TABLES["REAC"], "REAC.txt")
        blocks = list(parser.blocks(data[i: i + size] for i in range(0, len(data), size)))
        rows = sorted(r for b in blocks for r in zip(*(b.table[c].to_pylist() for c in b.table.column_names)))
        assert rows == sorted(zip(*(whole.table[c].to_pylist() for c in whole.table.column_names)))
        assert parser.account == whole.account


def test_small_read_chunks_give_the_same_store(tmp_path, three_quarters):
    zips = [p for p, _ in three_quarters]
    ingest_faers(zips, tmp_path / "a.duckdb")
    ingest_faers(zips, tmp_path / "b.duckdb", limits=ReadLimits(chunk_bytes=4096))
    assert _table_dump(tmp_path / "a.duckdb") == _table_dump(tmp_path / "b.duckdb")


def test_incremental_equals_all_at_once_and_dedup_crosses_quarters(tmp_path, three_quarters):
    zips = [p for p, _ in three_quarters]
    all_at_once = ingest_faers(zips, tmp_path / "a.duckdb")
    ingest_faers(zips[:2], tmp_path / "b.duckdb")
    added = ingest_faers(zips[2:], tmp_path / "b.duckdb")
    assert added.quarters == ["2013Q2"] and [f.quarter for f in added.files] == ["2013Q2"] * 8  # old ones not re-read
    assert added.reports == all_at_once.reports == _expected_reports([t for _, t in three_quarters])
    assert _table_dump(tmp_path / "a.duckdb") == _table_dump(tmp_path / "b.duckdb")
    groups, dmap = mapping.load_term_groups(), mapping.load_drug_map()
    ta = counts_from_store(tmp_path / "a.duckdb", drug_map=dmap, groups=groups)
    tb = counts_from_store(tmp_path / "b.duckdb", drug_map=dmap, groups=groups)
    assert ta.drugs == tb.drugs and ta.events == tb.events
    np.testing.assert_array_equal(ta.cell_n, tb.cell_n)
    assert ta.n_reports == added.reports


def test_counts_use_the_rows_of_the_kept_quarter(tmp_path):
    # report 101 is in both quarters (same primaryid): the 2023Q2 version lists another drug and event
    q1 = write_zip(tmp_path / "faers_ascii_2023q1.zip", small_quarter())
    q2 = write_zip(tmp_path / "faers_ascii_2023q2.zip", small_quarter(
        "23", 2, demo=DEMO_HEADER + b"101$10$1$20230405\r\n",
        drug=DRUG_HEADER + b"101$10$1$PS$ASPIRIN$\r\n", reac=REAC_HEADER + b"101$10$Rash\r\n"))
    ingest_faers([q1, q2], tmp_path / "s.duckdb")
    t = counts_from_store(tmp_path / "s.duckdb", drug_map=mapping.load_drug_map(), groups={})
    assert t.n_reports == 3
    assert "ketamine" not in t.drug_reports  # only 2023Q1 said ketamine, and 2023Q2 superseded that report
    assert t.pair("aspirin", "rash").a == 1 and t.pair("aspirin", "weight decreased").a == 0


def test_store_without_key_tables_still_scans_and_is_upgraded(tmp_path, q1_zip, q2_zip):
    store = tmp_path / "s.duckdb"
    ingest_faers([q1_zip], store)
    con = duckdb.connect(str(store))
    for t in ("faers_drug_keys", "faers_reac_keys", "faers_drug_names", "faers_pt_names"):
        con.execute(f"DROP TABLE {t}")  # as an older ketaweight wrote it
    con.close()
    groups, dmap = mapping.load_term_groups(), mapping.load_drug_map()
    old = counts_from_store(store, drug_map=dmap, groups=groups)
    ingest_faers([q2_zip], store)  # backfills the keys of 2023Q1
    ref = tmp_path / "ref.duckdb"
    ingest_faers([q1_zip, q2_zip], ref)
    assert store_rows(store) == store_rows(ref)
    assert old.n_reports == 6


def test_all_pairs_parquet_scores_every_cell_and_suppresses_small_ones(tmp_path, three_quarters):
    store = tmp_path / "s.duckdb"
    ingest_faers([p for p, _ in three_quarters], store)
    out = tmp_path / "pairs.parquet"
    r = runner.invoke(app, ["signals", "scan", "--store", str(store), "--all-pairs", str(out)])
    assert r.exit_code == 0, r.output
    df = pq.read_table(out).to_pandas()
    t = counts_from_store(store, drug_map=mapping.load_drug_map(), groups=mapping.load_term_groups())
    assert len(df) == t.cell_n.size
    small = df["suppressed"]
    assert small.any() and (~small).any()
    assert df.loc[small, ["a", "b", "c", "d", "e", "prr", "ebgm", "eb05", "ic_ci_low"]].isna().all().all()
    big = df[~small]
    assert (big["a"] >= 11).all() and big["ebgm"].notna().all()
    # the published numbers equal the one-pair scan's
    row = big.sort_values("a").iloc[-1]
    from ketaweight.signals.scan import scan

    one = scan(t, drugs=[str(row["drug"])], events=[str(row["event"])], prior=None)
    assert one.rows["a"].iloc[0] == row["a"]
    assert one.rows["prr"].iloc[0] == pytest.approx(row["prr"], rel=1e-12)
    assert not list(tmp_path.glob("*.partial"))
    exact = tmp_path / "exact.parquet"
    r = runner.invoke(app, ["signals", "scan", "--store", str(store), "--all-pairs", str(exact), "--exact-counts"])
    assert r.exit_code == 0 and not pq.read_table(exact).to_pandas()["suppressed"].any()


def test_all_pairs_written_in_parts_are_the_whole_frame(tmp_path, three_quarters, monkeypatch):
    """--all-pairs scores and writes the pairs part by part (one row group each, bounded memory):
    the file read back is all_pairs' frame of the whole table, to the bit and with its types."""
    from ketaweight.signals import scan as scan_module
    from ketaweight.signals.scan import all_pairs, all_pairs_parts, fit_or_use_prior

    store = tmp_path / "s.duckdb"
    ingest_faers([p for p, _ in three_quarters], store)
    t = counts_from_store(store, drug_map=mapping.load_drug_map(), groups=mapping.load_term_groups())
    prior, fit = fit_or_use_prior(t)
    whole = all_pairs(t, prior, converged=fit.converged, boundary=fit.boundary)
    assert whole["suppressed"].any() and len(whole) > 50
    parts = list(all_pairs_parts(t, prior, converged=fit.converged, boundary=fit.boundary, part_rows=17))
    assert len(parts) == -(-len(whole) // 17) and max(len(p) for p in parts) == 17
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole, check_exact=True)
    monkeypatch.setattr(scan_module, "PART_ROWS", 17)
    out = tmp_path / "pairs.parquet"
    r = runner.invoke(app, ["signals", "scan", "--store", str(store), "--all-pairs", str(out)])
    assert r.exit_code == 0, r.output
    assert pq.ParquetFile(out).metadata.num_row_groups == len(parts)
    pd.testing.assert_frame_equal(pq.read_table(out).to_pandas(), whole, check_exact=True)


def test_stratified_counts_add_up_over_quarters(tmp_path, three_quarters):
    store = tmp_path / "s.duckdb"
    ingest_faers([p for p, _ in three_quarters], store)
    t = counts_from_store(store, drug_map=mapping.load_drug_map(), groups={}, stratify=["sex"])
    assert t.n_by_stratum.sum() == t.n_reports
    np.testing.assert_array_equal(t.drug_by_stratum.sum(axis=1), t.drug_n)
    # E for a cell equals the per-stratum formula computed independently
    i = int(np.argmax(t.cell_n))
    d, e = t.cell_drug[i], t.cell_event[i]
    ref = sum(t.drug_by_stratum[d, s] * t.event_by_stratum[e, s] / t.n_by_stratum[s] for s in range(len(t.n_by_stratum)))
    assert t.cell_e[i] == pytest.approx(ref, rel=1e-12)
    assert isinstance(t.cells, pd.DataFrame) and len(t.cells) == t.cell_n.size
