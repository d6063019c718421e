"""Hostile scenario files and analysis tables (`analyze --table`): each either works or fails with one
clear error (InputError / NumericalError naming the file or column) — never another exception."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
from hypothesis import given

from ketaweight.causal.spec import AnalysisSpec
from ketaweight.core.errors import InputError, NumericalError
from ketaweight.pipelines.table_analysis import analyze_table, read_table
from ketaweight.sources.simulator import Scenario, load_scenario

from .mutations import mutated

SCENARIO = (resources.files("ketaweight.sources.simulator") / "scenarios" / "article.toml").read_bytes()
_rng = np.random.default_rng(3)
_l1 = _rng.normal(size=120)
_a = (_rng.random(120) < 1 / (1 + np.exp(-_l1))).astype(int)
TABLE = pd.DataFrame({"A": _a, "L1": _l1.round(3), "L2": _rng.integers(0, 3, 120),
                      "Y": (_a + _l1 + _rng.normal(size=120)).round(3)}).to_csv(index=False).encode()
SPEC = AnalysisSpec(treatment="A", outcome="Y", covariates=("L1", "L2"), categorical=("L2",))


@given(mutated(SCENARIO))
def test_a_mutated_scenario_loads_or_is_refused_clearly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("scenario") / "s.toml"
    path.write_bytes(data)
    try:
        assert isinstance(load_scenario(str(path)), Scenario)
    except InputError as exc:
        assert str(path) in str(exc)


@given(mutated(TABLE, max_edits=4))
def test_a_mutated_analysis_table_is_analysed_or_refused_clearly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("table") / "t.csv"
    path.write_bytes(data)
    try:
        res = analyze_table(read_table(path), SPEC, methods=("crude", "ipw", "aipw"))
    except (InputError, NumericalError) as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)
        return
    assert len(res.results) == 3


def test_a_covariate_listed_twice_is_named_not_a_singular_matrix(tmp_path):
    """main (D31): two identical covariate columns ended in LinAlgError 'Singular matrix'."""
    frame = pd.read_csv(__import__("io").BytesIO(TABLE)).assign(L1copy=lambda d: d["L1"] * 2.0)
    spec = AnalysisSpec(treatment="A", outcome="Y", covariates=("L1", "L1copy"))
    try:
        analyze_table(frame, spec, methods=("ipw", "g-estimation"))
    except InputError as exc:
        assert "L1copy" in str(exc) and "same as L1" in str(exc)
    else:
        raise AssertionError("collinear covariates were accepted")
