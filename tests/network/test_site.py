"""One site: control estimates exactly as the study's AIPW makes them, injected positive controls with
known truth, and a bundle that holds aggregates only."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace

import pytest

from ketaweight.causal.aipw import AIPW
from ketaweight.core.errors import InputError
from ketaweight.network.bundle import check_site_results, read_bundle, study_hash, write_bundle
from ketaweight.network.controls import design_controls
from ketaweight.network.estimation import aipw_many
from ketaweight.network.site import bundle_site
from ketaweight.pipelines.emulation import analysis_spec
from ketaweight.pipelines.network_site import site_data
from ketaweight.study.spec import load_study


@pytest.fixture(scope="module")
def data(network):
    return site_data(network["stores"][0], "ketamine-weight")


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_batch_aipw_is_aipw_outcome_by_outcome(data, estimand):
    spec = replace(analysis_spec(data.study, "outcome_change"), estimand=estimand)
    outcomes = ["outcome_change", *data.control_columns[:4]]
    many = aipw_many(data.table, spec, outcomes, AIPW(seed=3, n_repeats=2))
    for o in outcomes:
        one = AIPW(seed=3, n_repeats=2).fit(data.table, replace(spec, outcome=o, censor=None, missing_outcome="censor"))
        got = many.estimates[o]
        assert got.estimate == pytest.approx(one.estimate, rel=1e-10, abs=1e-12)
        assert got.se == pytest.approx(one.se, rel=1e-10)
        assert got.n == one.n and got.n_observed == one.diagnostics["n_observed_outcome"]
    assert many.analysed.sum() == many.estimates["outcome_change"].n
    with pytest.raises(ValueError, match="default logistic and linear"):
        from sklearn.linear_model import LinearRegression
        aipw_many(data.table, spec, outcomes, AIPW(outcome_learner=LinearRegression()))


def test_controls_in_outcome_equivalents_and_injected_truth(data):
    spec = analysis_spec(data.study, "outcome_change")
    plan = design_controls(data.table, outcome="outcome_change", treatment="treated", control_columns=data.control_columns,
                           kinds=data.control_kinds, effects=(-1.0,))
    untreated = data.table["treated"] == 0
    kind, col = data.control_kinds[0], data.control_columns[0]
    assert plan.factors[kind] == pytest.approx(data.table.loc[untreated, "outcome_change"].std()
                                               / data.table.loc[untreated, col].std())
    many = aipw_many(plan.table, spec, [col, f"{kind}-1"], AIPW())
    raw, injected = many.estimates[col], many.estimates[f"{kind}-1"]
    # the injected control is the converted control plus a known, weight-proportional effect
    assert injected.estimate - raw.estimate * plan.factors[kind] == pytest.approx(-1.0, abs=0.05)
    assert injected.se == pytest.approx(raw.se * plan.factors[kind], rel=0.05)
    flat = data.table.assign(**{col: 3.0})
    with pytest.raises(InputError, match="does not vary"):
        design_controls(flat, outcome="outcome_change", treatment="treated", control_columns=[col], kinds=[kind], effects=())


def test_the_site_document_and_its_calibration(data):
    run = bundle_site(data, "A")
    doc = run.results
    assert doc["study_hash"] == study_hash(data.study) and doc["site"] == "A"
    assert len(doc["controls"]) == len(data.control_kinds) * 4 and doc["primary"]["method"] == "aipw"
    assert {round(c["true_effect"], 12) for c in doc["controls"]} == {0.0, -0.5, -1.0, -2.0}  # ATE: injected exactly
    assert doc["primary"]["likelihood"]["kind"] == "grid"
    primary = next(r for r in data.results.results["outcome_change"] if r.method == "aipw")
    assert doc["primary"]["estimate"] == primary.estimate
    assert run.calibration.n_negative == len(data.control_kinds) and run.calibration.loo is not None
    assert not check_site_results(doc, patient_ids=data.table["patient_id"])


def test_bundle_round_trip_and_tampering(data, tmp_path):
    path = bundle_site(data, "A", tmp_path / "A.zip").path
    b = read_bundle(path)
    assert b.site == "A" and b.study == data.study and set(b.manifest["files"]) == {"site.json", "study.json"}
    raw = path.read_bytes()
    ids = data.table["patient_id"].astype(str)
    with zipfile.ZipFile(path) as zf:
        text = b"".join(zf.read(n) for n in zf.namelist()).decode()
    assert not any(pid in text for pid in ids[:500]) and "SIM0" not in text and len(raw) < 100_000
    tampered = tmp_path / "T.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "site.json":
                content = content.replace(b'"site": "A"', b'"site": "B"')
            dst.writestr(name, content)
    with pytest.raises(InputError, match="checksum"):
        read_bundle(tampered)
    extra = tmp_path / "X.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(extra, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("patients.csv", "patient_id\nSIM0000001\n")
    with pytest.raises(InputError, match="unexpected"):
        read_bundle(extra)
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(InputError, match="not a zip"):
        read_bundle(tmp_path / "not.zip")
    with pytest.raises(InputError, match="not found"):
        read_bundle(tmp_path / "missing.zip")


def test_the_privacy_gate_refuses_and_writes_nothing(data, tmp_path):
    doc = bundle_site(data, "A").results
    ids = data.table["patient_id"].astype(str).tolist()
    cases = {
        "count": lambda d: d["counts"].update(n_treated=7),
        "identifier": lambda d: d["primary"]["warnings"].append(f"look at {ids[3]}"),
        "key": lambda d: d.update(patient_id=ids[:3]),
        "rows": lambda d: d["primary"].update(smd_weighted=[0.0] * 5000),
        "schema": lambda d: d["primary"].update(weights_per_patient=[1.0]),
    }
    expected = {"count": "under 11", "identifier": "patient identifier", "key": "patient-level",
                "rows": "looks like patient rows", "schema": "not in the bundle schema"}
    for name, spoil in cases.items():
        bad = json.loads(json.dumps(doc))
        spoil(bad)
        target = tmp_path / f"{name}.zip"
        with pytest.raises(InputError, match=expected[name]):
            write_bundle(target, bad, data.study, patient_ids=ids)
        assert not target.exists() and not list(tmp_path.glob(f".{name}.zip.*"))
    other = load_study("ketamine-depression")
    with pytest.raises(InputError, match="does not match the study"):
        write_bundle(tmp_path / "w.zip", doc, other)


def test_a_site_with_too_few_treated_cannot_join(data):
    res = data.results
    results = {col: [replace(r, diagnostics={**r.diagnostics, "n_treated": 8}) for r in rs] for col, rs in res.results.items()}
    with pytest.raises(InputError, match="fewer than 11"):
        bundle_site(replace(data, results=replace(res, results=results)), "tiny")


def test_site_names_are_checked(data):
    with pytest.raises(InputError, match="site name"):
        bundle_site(data, "../etc")


def test_a_study_without_controls_is_refused(network):
    study = load_study("ketamine-weight")
    bare = study.model_copy(update={"network": study.network.model_copy(update={"negative_controls": ()})})
    with pytest.raises(InputError, match="no negative controls"):
        bundle_site(site_data(network["stores"][0], bare), "A")


def test_unknown_control_pattern_names_the_store(network, tmp_path):
    study = load_study("ketamine-weight")
    odd = study.model_copy(update={"network": study.network.model_copy(update={"negative_controls": ("ldl_*",)})})
    with pytest.raises(InputError, match="matches no measurement kind"):
        site_data(network["stores"][0], odd)
