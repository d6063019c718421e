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


@pytest.mark.parametrize("extra, message", [
    ('[outcome]\nkind = "waist"\n', "unknown measurement kind 'waist'"),
    ('[treatment]\ndrugs = ["ketamin"]\n', "unknown drug 'ketamin'"),
    ('[treatment]\nroutes = ["nasal"]\n', "unknown route 'nasal'"),
    ('[analysis]\nestimand = "ATC"\n', "analysis.estimand"),
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
