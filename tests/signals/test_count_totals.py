"""The counts kept in the store at ingest (faers_count_totals): after every ingest — quarters in any
order, re-sent and deleted cases, a replaced quarter, an older store, a changed drug map — they are
exactly what counting every quarter gives, and a scan uses them only when it would count the same way."""

from __future__ import annotations

from types import SimpleNamespace

import duckdb
import numpy as np
import pytest

from ketaweight.signals import faers_count_totals, faers_counts, mapping
from ketaweight.signals.faers import ingest_faers
from ketaweight.signals.faers_count_totals import COUNT_TABLES
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.synthetic import history, write_synthetic_quarter

from test_faers_incremental import resent_case_quarters

FIELDS = ("cell_drug", "cell_event", "cell_n", "cell_e", "drug_n", "event_n")


def _counted(store, monkeypatch, **kw):
    """The count table from counting every quarter (the kept totals ignored)."""
    with monkeypatch.context() as m:
        m.setattr(faers_counts, "load_totals", lambda con, codes: None)
        return counts_from_store(store, **kw)


def _same(a, b) -> bool:
    return ((a.drugs, a.events, a.n_terms, a.n_reports) == (b.drugs, b.events, b.n_terms, b.n_reports)
            and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS))


def _defaults() -> dict:
    return {"drug_map": mapping.load_drug_map(), "groups": mapping.load_term_groups()}


@pytest.fixture
def spy(monkeypatch):
    """Which way the last ingest counted: 'quarters' (all again) or 'changes' (only changed reports)."""
    seen: list[str] = []
    taken_away: list[int] = []  # per update: reports taken away
    real = faers_count_totals.count_parts

    def count_parts(con, codes, parts, totals=None, **kw):
        seen.append("changes" if totals is not None else "quarters")
        if totals is not None:
            taken_away.append(con.execute("SELECT count(*) FROM _kw_changed WHERE sign = -1").fetchall()[0][0])
        return real(con, codes, parts, totals, **kw)

    monkeypatch.setattr(faers_count_totals, "count_parts", count_parts)
    return SimpleNamespace(ways=seen, taken_away=taken_away)


@pytest.fixture(scope="module")
def quarters(tmp_path_factory):
    out = tmp_path_factory.mktemp("totals")
    return [write_synthetic_quarter(out, s)[0] for s in history(4, n_reports=2_000, followup_share=0.15, seed=5)]


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 1, 0, 2)])
def test_totals_after_every_ingest_equal_counting_every_quarter(tmp_path, monkeypatch, quarters, spy, order):
    store = tmp_path / "s.duckdb"
    for i, k in enumerate(order):
        ingest_faers([quarters[k]], store)
        assert spy.ways[-1] == ("quarters" if i == 0 else "changes")
        kept = counts_from_store(store, **_defaults())
        assert _same(kept, _counted(store, monkeypatch, **_defaults()))
    assert max(spy.taken_away) > 0  # superseded reports were taken away
    all_at_once = tmp_path / "all.duckdb"
    ingest_faers(quarters, all_at_once)
    assert _same(counts_from_store(store, **_defaults()), counts_from_store(all_at_once, **_defaults()))


def test_resent_and_deleted_cases_are_taken_away(tmp_path, monkeypatch, spy):
    first, second = resent_case_quarters(tmp_path)
    store = tmp_path / "s.duckdb"
    ingest_faers([first], store)
    ingest_faers([second], store)
    assert spy.ways == ["quarters", "changes"]
    kept = counts_from_store(store, **_defaults())
    assert _same(kept, _counted(store, monkeypatch, **_defaults()))
    # every first-quarter report was taken away (superseded, re-sent or deleted); the ketamine–weight
    # loss cell now comes from case 31's re-sent primaryid alone, aspirin's headache and rash cells are gone
    assert kept.n_reports == 3 and kept.pair("ketamine", "weight decreased").a == 1
    assert kept.pair("aspirin", "headache").a == 0 and kept.pair("aspirin", "rash").a == 0
    assert kept.pair("aspirin", "nausea").a == 2


def test_a_scan_uses_the_totals_only_when_it_counts_the_same_way(tmp_path, monkeypatch, quarters):
    store = tmp_path / "s.duckdb"
    ingest_faers(quarters[:2], store)
    used: list[bool] = []  # per lookup: were the kept totals found usable
    real = faers_counts.load_totals

    def load_totals(con, codes):
        got = real(con, codes)
        used.append(got is not None)
        return got

    monkeypatch.setattr(faers_counts, "load_totals", load_totals)
    default = counts_from_store(store, **_defaults())
    assert used == [True] and default.n_reports > 0
    custom = mapping.load_drug_map()
    extended = type(custom)({**custom.names, "ketamine": "not-ketamine"})  # a user's map renames a drug
    for kw in ({"roles": ["PS"]}, {"stratify": ["sex"]}, {"groups": {}},
               {"drug_map": extended}):
        args = {**_defaults(), **kw}
        used.clear()
        table = counts_from_store(store, **args)
        with monkeypatch.context() as m:
            m.setattr(faers_counts, "load_totals", lambda con, codes: None)
            assert _same(table, counts_from_store(store, **args))
        if "drug_map" in kw:  # looked up, found counted with another map, not used
            assert used == [False] and "not-ketamine" in table.drugs and "not-ketamine" not in default.drugs
        elif "groups" in kw:
            assert used == [False] and table.events != default.events
        else:
            assert used == []


def test_replaced_quarter_old_store_and_new_drug_map_count_again(tmp_path, monkeypatch, quarters, spy):
    store = tmp_path / "s.duckdb"
    ingest_faers(quarters[:2], store)
    ingest_faers([quarters[1]], store, replace=True)
    assert spy.ways[-1] == "quarters"
    assert _same(counts_from_store(store, **_defaults()), _counted(store, monkeypatch, **_defaults()))
    # a store ingested before the totals existed: the scan counts, the next ingest counts everything once
    con = duckdb.connect(str(store))
    for t in COUNT_TABLES:
        con.execute(f"DROP TABLE {t}")
    con.close()
    assert _same(counts_from_store(store, **_defaults()), _counted(store, monkeypatch, **_defaults()))
    ingest_faers([quarters[2]], store)
    assert spy.ways[-1] == "quarters"
    assert _same(counts_from_store(store, **_defaults()), _counted(store, monkeypatch, **_defaults()))
    # the shipped drug map changed (a new version): an old name now maps elsewhere, so everything is counted
    # again with the new map at the next ingest
    shipped = mapping.load_drug_map()
    changed = type(shipped)({**shipped.names, "ketamine": "ketamine hydrochloride form"})
    monkeypatch.setattr(faers_count_totals.mapping, "load_drug_map", lambda *a: changed)
    ingest_faers([quarters[3]], store)
    assert spy.ways[-1] == "quarters"
    args = {"drug_map": changed, "groups": mapping.load_term_groups()}
    assert _same(counts_from_store(store, **args), _counted(store, monkeypatch, **args))
