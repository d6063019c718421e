"""The simulator's negative-control outcomes: never moved by the drug, confounded like weight,
biased by the switchable unmeasured confounder, the same design at every site."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketaweight.core.errors import InputError
from ketaweight.core.schema import CONTROL_KINDS, MEASUREMENT_KINDS
from ketaweight.sources.simulator import load_scenario, simulate
from ketaweight.sources.simulator.controls import control_design

N = 6000


def _controls(res) -> pd.DataFrame:
    m = res.tables["measurements"].to_pandas()
    m["kind"] = m["kind"].astype(str)
    return m[m["kind"].str.startswith("control_")]


def _changes(res) -> pd.DataFrame:
    """Per patient and control: value at the 12-week visit minus the value at the assessment."""
    c = _controls(res).copy()
    c["t"] = c.groupby(["patient_id", "kind"], observed=True)["time"].rank()
    wide = c.pivot_table(index=["patient_id", "kind"], columns="t", values="value", observed=True)
    return (wide[2.0] - wide[1.0]).dropna().unstack("kind")


def with_controls(name: str, **confounding) -> object:
    s = load_scenario(name)
    return s.model_copy(update={"confounding": s.confounding.model_copy(update=confounding)}) if confounding else s


def test_controls_are_measurement_kinds_recorded_at_the_assessment_and_week_12():
    s = load_scenario("article")
    res = simulate(s, 2000, 4, truth=False)
    c = _controls(res)
    assert sorted(c["kind"].unique()) == list(CONTROL_KINDS[:30]) and s.negative_controls.n_outcomes == 30
    assert all(MEASUREMENT_KINDS[k].unit == "au" for k in c["kind"].unique())
    assert (c.groupby(["patient_id", "kind"], observed=True).size() <= 2).all()
    assert 0.75 < c["patient_id"].nunique() / 2000 <= 1.0
    assert res.truth is None
    full = simulate(s, 2000, 4)
    assert full.truth["negative_controls"]["control_07"] == {"ate": 0.0, "att": 0.0, "atc": 0.0}
    assert full.tables["measurements"].equals(res.tables["measurements"])  # truth or not, the same records


def test_the_drug_never_moves_a_control():
    """A scenario whose drug changes weight a lot and the null scenario record identical controls
    (same seed: same patients, same courses, same visits)."""
    null = simulate(load_scenario("null"), 1500, 8, truth=False)
    strong = load_scenario("appetite")
    strong = strong.model_copy(update={"pathways": strong.pathways.model_copy(update={"appetite_dose_day_kcal": -900.0})})
    drug = simulate(strong, 1500, 8, truth=False)
    assert _controls(null).reset_index(drop=True).equals(_controls(drug).reset_index(drop=True))


def test_controls_are_confounded_like_weight_and_by_the_unmeasured_confounder():
    clean = simulate(load_scenario("article"), N, 9)
    patients = clean.patient_truth.to_pandas().set_index("patient_id")
    ch = _changes(clean)
    treated = patients.loc[ch.index, "treated"].to_numpy()
    design = control_design(load_scenario("article"))
    kg_eq = ch / design.scale  # back to kg-equivalents
    crude = kg_eq[treated].mean() - kg_eq[~treated].mean()
    loading = pd.Series(design.lifestyle_loading, index=design.kinds)
    # the crude comparison is confounded in weight's direction, the more the more a control follows lifestyle
    assert clean.truth["crude_difference_true_weight_change_kg"] < -0.2
    assert np.corrcoef(crude[loading.index], loading)[0, 1] < -0.5
    assert crude[loading > 1].mean() < -0.15
    # with unmeasured habits (motivated patients eat less) the controls follow them too
    biased = simulate(with_controls("article", unmeasured_intake_kcal_per_sd=-80.0), N, 9)
    ch_b = _changes(biased) / design.scale
    shift = (ch_b[treated].mean() - ch_b[~treated].mean()) - crude
    assert (shift[loading > 0.5] < 0).mean() > 0.9


def test_the_design_is_shared_by_every_seed_and_has_its_own_units():
    a, b = control_design(load_scenario("article")), control_design(load_scenario("null"))
    assert np.array_equal(a.lifestyle_loading, b.lifestyle_loading) and np.array_equal(a.scale, b.scale)
    assert a.scale.std() > 0.5 and 0.7 < a.lifestyle_loading.mean() < 1.3


def test_control_days_must_be_visit_days(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\n[negative_controls]\ndays = [0, 85]\n', encoding="utf-8")
    with pytest.raises(InputError, match="not visit days"):
        load_scenario(p)
    p.write_text('name = "x"\n[negative_controls]\nn_outcomes = 100\n', encoding="utf-8")
    with pytest.raises(InputError, match="n_outcomes"):
        load_scenario(p)
    p.write_text('name = "x"\n[negative_controls]\nn_outcomes = 0\n', encoding="utf-8")
    assert _controls(simulate(load_scenario(p), 300, 1, truth=False)).empty
