"""Study spec validation: every problem named with the file and key."""

import pytest

from ketaweight.core.errors import InputError
from ketaweight.study.spec import builtin_studies, load_study

GOOD = """
[study]
name = "t"
title = "t"
[covariates]
baseline = ["age", "bmi"]
"""


def test_shipped_studies_load():
    assert {"ketamine-weight", "ketamine-depression"} <= set(builtin_studies())
    weight = load_study("ketamine-weight")
    assert weight.outcome.kind == "weight" and weight.outcome.horizon_days == 84
    assert load_study("ketamine-depression").outcome.kind == "madrs"


def test_defaults(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(GOOD)
    s = load_study(f)
    assert s.treatment.grace_days == 14 and s.analysis.estimand == "ATE"
    assert s.analysis.propensity_calibration == "none"
    assert s.with_analysis(propensity_calibration="logistic").analysis.propensity_calibration == "logistic"


@pytest.mark.parametrize("extra, message", [
    ('[outcome]\nkind = "waist"\n', "unknown measurement kind 'waist'"),
    ('[treatment]\ndrugs = ["ketamin"]\n', "unknown drug 'ketamin'"),
    ('[treatment]\nroutes = ["nasal"]\n', "unknown route 'nasal'"),
    ('[analysis]\nestimand = "ATC"\n', "analysis.estimand"),
    ('[analysis]\npropensity_calibration = "isotonic"\n', "analysis.propensity_calibration"),
    ('[mechanisms.mediation]\ncalibration_by_arm = true\n', 'calibration_interactions = "all" for true'),
    ('[outcome]\nhorizon_days = -3\n', "outcome.horizon_days"),
    ('[eligibility]\nminimum_age = 18\n', "eligibility.minimum_age"),
])
def test_errors_name_file_and_key(tmp_path, extra, message):
    f = tmp_path / "bad.toml"
    f.write_text(GOOD + extra)
    with pytest.raises(InputError) as err:
        load_study(f)
    assert "bad.toml" in str(err.value) and message in str(err.value)


def test_unknown_and_post_baseline_covariates_are_rejected(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(GOOD.replace('["age", "bmi"]', '["age", "shoe_size", "madrs_week2"]'))
    with pytest.raises(InputError) as err:
        load_study(f)
    text = str(err.value)
    assert "unknown covariate 'shoe_size'" in text
    assert "'madrs_week2' is measured after time zero" in text


def test_missing_file_lists_shipped_studies(tmp_path):
    with pytest.raises(InputError, match="shipped studies: ketamine-depression, ketamine-weight"):
        load_study(tmp_path / "nope.toml")


@pytest.mark.parametrize("section, key", [("outcome", "horizon_days"), ("outcome", "window_days"), ("treatment", "grace_days"),
                                          ("eligibility", "washout_days"), ("eligibility", "baseline_window_days")])
@pytest.mark.parametrize("value", ["1000000000", "9223372036854775807", "3651"])
def test_d32_day_counts_are_bounded_in_the_schema(tmp_path, section, key, value):
    """A huge window or horizon is refused at the study file, naming the key, before it can overflow a date."""
    f = tmp_path / "bad.toml"
    f.write_text(GOOD + f"[{section}]\n{key} = {value}\n")
    with pytest.raises(InputError) as err:
        load_study(f)
    assert f"bad.toml, line 8, key '{section}.{key}': Input should be less than or equal to 3650" in str(err.value)


def test_ten_years_is_still_a_valid_horizon(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(GOOD + "[outcome]\nhorizon_days = 3650\n")
    assert load_study(f).outcome.horizon_days == 3650
