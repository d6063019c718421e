"""Counting in unique reports (long tables, stores, mddc tables), stratified E, term groups,
drug-name mapping, and the scan output (controls, JSON envelope, masking)."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from ketaweight.core.errors import InputError
from ketaweight.core.results import read_results, write_results
from ketaweight.signals import mapping
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.mgps import GammaMixturePrior
from ketaweight.signals.scan import scan
from ketaweight.signals.counting import from_long, read_long_table
from ketaweight.signals.tables import from_contingency, read_contingency_csv

THETA = GammaMixturePrior(3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)


def _long():
    # 5 reports; report r1 lists drug A twice and event x twice (counted once)
    return pd.DataFrame(
        [("r1", "A", "x", "F"), ("r1", "A", "x", "F"), ("r1", "B", "y", "F"), ("r2", "A", "y", "M"),
         ("r3", "B", "x", "M"), ("r4", "B", "z", "F"), ("r5", "C", "x", "M")],
        columns=["report_id", "drug", "event", "stratum"])


def test_long_table_counts_unique_reports():
    df = _long().drop(columns="stratum")
    # the long table lists co-occurring (drug, event) rows; r1 has drugs {A,B} and events {x,y}
    t = from_long(df)
    assert t.n_reports == 5
    assert t.drug_reports == {"a": 2, "b": 3, "c": 1}
    assert t.event_reports == {"x": 3, "y": 2, "z": 1}
    pc = t.pair("a", "x")
    assert (pc.a, pc.b, pc.c, pc.d) == (1, 1, 2, 1)
    assert pc.e == pytest.approx(2 * 3 / 5)
    assert t.pair("c", "z").a == 0  # never reported together: a = 0, margins still known


def test_stratified_expected_count():
    t = from_long(_long())
    # strata: F = {r1, r4}, M = {r2, r3, r5}; drug a: F1 M1; event x: F1 M2
    # E = 1*1/2 + 1*2/3
    assert t.pair("a", "x").e == pytest.approx(1 / 2 + 2 / 3)
    assert t.expected("c", "z") == pytest.approx(0.0)


def test_long_table_errors(tmp_path):
    with pytest.raises(InputError, match="missing column"):
        from_long(pd.DataFrame({"id": [1], "drug": ["a"]}))
    p = tmp_path / "long.csv"
    p.write_text("report_id,drug,event\n1,a,x\n2,,y\n")
    with pytest.raises(InputError, match=r"long.csv, line 3, column 'drug': empty value"):
        read_long_table(p)


def test_mddc_csv_and_errors(tmp_path, statin49):
    p = tmp_path / "statin49.csv"
    statin49.to_csv(p)
    t = read_contingency_csv(p)
    assert t.pair("atorvastatin", "rhabdomyolysis").a == 2041
    bad = tmp_path / "bad.csv"
    bad.write_text(",DrugA,Other\nEvent1,3,x\nOther AE,1,2\n")
    with pytest.raises(InputError, match=r"bad.csv, line 2, column 'Other': count must be a whole number"):
        read_contingency_csv(bad)


def test_group_on_contingency_is_flagged_approximate(statin49):
    groups = {"muscle": mapping.TermGroup("muscle", "Muscle", frozenset({"rhabdomyolysis", "myopathy"}))}
    t = from_contingency(statin49, groups=groups)
    assert t.approximate_groups
    assert t.pair("atorvastatin", "muscle").a == 2041 + int(statin49.loc["Myopathy", "Atorvastatin"])


def test_drug_map_brand_salt_spelling():
    m = mapping.load_drug_map()
    for name, want in [("Ketalar", "ketamine"), ("KETAMINE HCL", "ketamine"), ("Ketamine hydrochloride 50 mg/ml", "ketamine"),
                       ("SPRAVATO (ESKETAMINE)", "esketamine"), ("ketamne", "ketamine"), ("Remeron SolTab", "mirtazapine")]:
        assert m.lookup(name)[0] == want, name
    assert m.lookup("TYLENOL")[0] is None
    assert m.key("TYLENOL", "ACETAMINOPHEN") == ("acetaminophen", "unmapped")


def test_user_files_extend_vocabularies(tmp_path):
    d = tmp_path / "names.csv"
    d.write_text("# mine\nname,ingredient\nketa-x,ketamine\n")
    assert mapping.load_drug_map([d]).lookup("KETA-X")[0] == "ketamine"
    g = tmp_path / "groups.toml"
    g.write_text('[appetite]\nlabel = "Appetite"\nterms = ["Decreased appetite", "Increased appetite"]\n')
    groups = mapping.load_term_groups([g])
    assert "appetite" in groups and "weight-loss" in groups
    bad = tmp_path / "bad.toml"
    bad.write_text("[x\n")
    with pytest.raises(InputError, match="bad.toml, line 1"):
        mapping.load_term_groups([bad])
    badcsv = tmp_path / "bad.csv"
    badcsv.write_text("name,ingredient\nonlyone\n")
    with pytest.raises(InputError, match="bad.csv, line 2"):
        mapping.load_drug_map([badcsv])


def test_store_counts_map_roles_and_groups(fixture_store):
    groups = mapping.load_term_groups()
    t = counts_from_store(fixture_store, drug_map=mapping.load_drug_map(), groups=groups)
    assert t.n_reports == 7
    # ketamine reports after dedup: 10000011 (Ketalar), 10000061 ('KETAMINE $ HCL'), 10000081 (KETAMINE, role I)
    assert t.drug_reports["ketamine"] == 3
    assert t.pair("ketamine", "weight-loss").a == 2  # weight decreased in 10000011 and 10000061
    assert t.pair("esketamine", "weight-loss").a == 1  # 10000022: two weight-loss terms, one report
    with duckdb.connect(str(fixture_store), read_only=True) as con:  # the store's verbatim names, as mapped
        names = con.execute("SELECT drugname, prod_ai FROM faers_drug_names").fetchall()
    dmap = mapping.load_drug_map()
    assert {d for d, ai in names if dmap.key(d, ai)[0] == "esketamine"} == {"SPRAVATO (ESKETAMINE)", "SPRAVATO"}
    ps = counts_from_store(fixture_store, drug_map=mapping.load_drug_map(), groups=groups, roles=["PS"])
    assert ps.drug_reports["ketamine"] == 2  # the interacting (I) report drops out
    with pytest.raises(InputError, match="roles must be among"):
        counts_from_store(fixture_store, drug_map=mapping.load_drug_map(), groups=groups, roles=["XX"])
    st = counts_from_store(fixture_store, drug_map=mapping.load_drug_map(), groups=groups, stratify=["sex"])
    assert st.strata == "sex"
    assert st.pair("ketamine", "weight-loss").e > 0


def test_scan_rows_controls_json_and_masking(fixture_store, tmp_path):
    groups = mapping.load_term_groups()
    t = counts_from_store(fixture_store, drug_map=mapping.load_drug_map(), groups=groups)
    res = scan(t, drugs=["ketamine", "esketamine"], events=["weight-loss"], groups=groups,
               controls=mapping.load_controls(), prior=THETA)
    assert list(res.rows["role"]) == ["requested", "requested", "control", "control", "control"]
    assert res.prior_source == "given"
    doc = res.to_dict()
    pair = doc["pairs"][0]
    assert pair["drug"] == "ketamine" and pair["a"] == "<11" and pair["n"] == "<11"
    assert {m["method"] for m in pair["measures"]} == {"PRR", "ROR", "IC", "EBGM"}
    assert all({"estimate", "ci_low", "ci_high"} <= m.keys() for m in pair["measures"])
    exact = res.to_dict(exact_counts=True)
    assert exact["pairs"][0]["a"] == 2
    out = write_results(tmp_path / "signals.json", kind="signals", results=doc, provenance={"data": "fixture"})
    back = read_results(out, kind="signals")
    assert back["results"]["controls"][0]["drug"] == "mirtazapine"
    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(res.to_rich_table())
    text = console.export_text()
    assert "<11" in text and "ketamine" in text
    assert not any(f" {k} " in text.split("EBGM")[0] for k in ())  # table rendered


def test_scan_needs_data():
    t = from_long(_long().iloc[:3])
    with pytest.raises(InputError, match="too few"):
        scan(t, drugs=["a"], events=["x"])
    with pytest.raises(InputError, match="at least one drug"):
        scan(t, drugs=[], events=["x"], prior=THETA)


def test_scan_statin49_reference_row(statin49):
    t = from_contingency(statin49)
    res = scan(t, drugs=["atorvastatin"], events=["rhabdomyolysis"])
    r = res.rows.iloc[0]
    assert r["a"] == 2041 and r["prr"] == pytest.approx(19.24, abs=0.005) and r["ror"] == pytest.approx(19.43, abs=0.005)
    assert r["ic"] == pytest.approx(4.18, abs=0.005)
    assert r["prr_signal"] and r["ror_signal"] and r["ic_signal"] and r["ebgm_signal"]
    assert res.prior_fit.converged
    json.dumps(res.to_dict(), allow_nan=True)
