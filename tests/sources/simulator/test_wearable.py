"""Weekly wearable / food-app records: the 7-day means, who has records, and that they leave the
rest of a seed's data untouched."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ketaweight.core.errors import InputError
from ketaweight.sources.simulator import load_scenario, simulate, with_measurement
from ketaweight.sources.simulator.dynamics import WEEK_DAYS, World, simulate_worlds
from ketaweight.sources.simulator.population import draw_population, plan_courses

WEEKLY_KINDS = ("energy_intake_7d", "activity_7d", "energy_expenditure_7d")


@pytest.fixture(scope="module")
def appetite_and_metabolism():
    """Worlds without and with the course, appetite and metabolism on, mood off."""
    s = load_scenario("article")
    s = s.model_copy(update={"pathways": s.pathways.model_copy(update={"mood": False})})
    rng = np.random.default_rng(5)
    pop = draw_population(s, 400, rng)
    sessions = plan_courses(s, pop, rng)
    worlds = (World("no", False, True, True, False), World("course", True, True, True, False))
    return s, sessions, simulate_worlds(s, pop, sessions, worlds, n_detailed=2)


def test_weekly_means_add_up_to_the_drug_kcal(appetite_and_metabolism):
    """Σ over the weeks of days 0-83 of 7 × (course − no course) = the drug's kcal computed from the
    sessions by hand: intake −ΔA on each session day and the next plus sustained −k·exposure (each
    session adds AUC/typical AUC, halving every appetite_half_life_days); expenditure +ΔM per session day."""
    s, sessions, t = appetite_and_metabolism
    pw = s.pathways
    grid = t.grid_days
    weeks = (grid >= WEEK_DAYS) & (grid <= 84)
    intake = WEEK_DAYS * np.nansum(t.intake_7d_change[1][weeks] - t.intake_7d_change[0][weeks], axis=0)
    expenditure = WEEK_DAYS * np.nansum(t.expenditure_7d_change[1][weeks] - t.expenditure_7d_change[0][weeks], axis=0)
    decay = 0.5 ** (1 / pw.appetite_half_life_days)
    days = np.arange(84)
    checked = 0
    for patient in np.unique(sessions.patient)[:60]:
        mine = sessions.patient == patient
        session_days, auc = sessions.day[mine], sessions.auc[mine]
        dosed = np.isin(days, session_days) | np.isin(days - 1, session_days)
        exposure = sum((a / pw.typical_auc_mg_h_per_l) * np.where(days >= d, decay ** (days - d), 0.0)
                       for d, a in zip(session_days, auc))
        expected_intake = pw.appetite_dose_day_kcal * dosed.sum() + pw.appetite_sustained_kcal * exposure.sum()
        expected_expenditure = pw.metabolism_dose_day_kcal * np.isin(days, session_days).sum()
        assert intake[patient] == pytest.approx(expected_intake, rel=1e-4, abs=0.5)
        assert expenditure[patient] == pytest.approx(expected_expenditure, rel=1e-4, abs=0.5)
        checked += 1
    assert checked == 60
    # The first grid day's week was not simulated: no made-up value.
    assert np.isnan(t.intake_7d_change[:, 0]).all()


def _weekly(tables):
    m = tables["measurements"]
    return m.filter(pc.is_in(pc.cast(m["kind"], "string"), value_set=pa.array(WEEKLY_KINDS))).to_pandas()


def test_records_follow_the_measurement_design():
    s = load_scenario("article")
    clinic = simulate(s, 3000, 8, truth=False).tables
    weekly = _weekly(clinic)
    patients = clinic["patients"].num_rows
    for kind in WEEKLY_KINDS:
        rows = weekly[weekly["kind"] == kind]
        share = rows["patient_id"].nunique() / patients
        assert share == pytest.approx(s.observation.wearable_share, abs=0.04), kind
        assert (rows["time"].dt.hour == 0).all() and (rows["time"].dt.minute == 0).all()  # dated at midnight
        assert rows.groupby("patient_id").size().max() <= s.observation.wearable_weeks + 1
    # Same records for the three kinds (one device, one app, one sync per week).
    counts = weekly.groupby("kind", observed=True).size()
    assert counts.nunique() == 1
    research = _weekly(simulate(with_measurement(s, "research"), 3000, 8, truth=False).tables)
    assert research["patient_id"].nunique() == patients  # everyone
    assert len(research) > len(weekly) * 1.5


def test_wearable_records_leave_the_other_tables_of_a_seed_unchanged():
    s = load_scenario("article")
    none = s.model_copy(update={"observation": s.observation.model_copy(update={"wearable_share": 0.0})})
    a, b = simulate(s, 600, 3, truth=False).tables, simulate(none, 600, 3, truth=False).tables
    for name in ("patients", "exposures", "lifestyle", "adverse_events"):
        assert a[name].equals(b[name]), name
    assert len(_weekly(b)) == 0
    kinds = a["measurements"]["kind"]
    rest = a["measurements"].filter(pc.invert(pc.is_in(pc.cast(kinds, "string"),
                                                       value_set=pa.array(WEEKLY_KINDS))))
    assert rest.to_pandas().reset_index(drop=True).equals(b["measurements"].to_pandas().reset_index(drop=True))


def test_weekly_records_need_a_weekly_grid(tmp_path):
    f = tmp_path / "biweekly.toml"
    f.write_text('name = "biweekly"\n[observation]\nvisit_interval_days = 14\n')
    with pytest.raises(InputError, match="visit_interval_days must be 7"):
        load_scenario(f)
    f.write_text('name = "biweekly"\n[observation]\nvisit_interval_days = 14\nwearable_share = 0.0\n')
    assert load_scenario(f).observation.visit_interval_days == 14
    with pytest.raises(InputError, match="--measurement research: .*visit_interval_days must be 7"):
        with_measurement(load_scenario(f), "research")  # the overrides are validated too
    with pytest.raises(InputError, match="unknown measurement design"):
        with_measurement(load_scenario("article"), "lab")
