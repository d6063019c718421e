"""The results protocol itself: lossless round trips (NaN, masked counts, nested results), fields kept
in memory never written, one type per kind, schemas that accept what is written."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import jsonschema
import numpy as np
import pytest

from ketaweight.core.attrition import AttritionStep
from ketaweight.core.privacy import mask_counts
from ketaweight.core.protocol import RESULT_KINDS, Count, InMemory, Real, Result
from ketaweight.core.results import envelope_schema, read_result, write_result
from ketaweight.pipelines.results import MechanismRow, MechanismsValidation, ValidationResults, ValidationRow, kinds


@dataclass(frozen=True)
class _Toy(Result):
    x: Real
    n: Count
    steps: tuple[AttritionStep, ...] = ()
    rows: InMemory = field(default=None, compare=False)


def test_nan_and_masked_counts_round_trip():
    toy = _Toy(float("nan"), 7, (AttritionStep.between("s", "why", 20, 13),), rows=np.arange(3))
    d = toy.to_dict()
    assert d == {"x": None, "n": 7, "steps": [{"step": "s", "reason": "why", "n_before": 20, "n_excluded": 7,
                                                "n_after": 13}]}
    assert "rows" not in d  # in-memory fields are never written
    back = _Toy.from_dict(d)
    assert math.isnan(back.x) and back.n == 7 and back.steps == toy.steps and back.rows is None
    masked = _Toy.from_dict(mask_counts(d))
    assert masked.n == "<11" and masked.steps[0].n_excluded == "<11" and masked.steps[0].n_after == 13
    with pytest.raises(ValueError):
        _Toy.from_dict({"x": 1.0, "n": "a few"})  # a count is a number or "<11", nothing else


def test_default_summary_masks_counts():
    text = AttritionStep.between("s", "why", 20, 13).summary().as_text()
    assert "<11" in text and " 7" not in text


def test_every_kind_has_one_type_and_a_schema():
    from ketaweight.network import bundle, synthesis, validation  # noqa: F401  (the layer above registers its kinds)

    registered = kinds()
    assert set(registered) == {"causal", "mechanisms", "responsible_use", "simulation_truth", "validation",
                               "mechanisms_validation", "signals", "faers_ingest", "network_truth", "network_site",
                               "network", "network_validation"}
    assert registered is not RESULT_KINDS and registered == RESULT_KINDS
    for kind in registered:
        schema = envelope_schema(kind)
        assert schema["properties"]["kind"] == {"const": kind}


def test_validation_kinds_round_trip_through_files(tmp_path):
    row = ValidationRow("article", "outcome_change", "aipw", -0.53, -0.531, -0.001, -0.05, 0.002, 0.03, 0.031,
                        0.95, 0.015, 200)
    mrow = MechanismRow("article", "appetite", -0.3, float("nan"), 0.9, 0.04, 50)
    for result in (ValidationResults((row,)), MechanismsValidation((mrow,), {"article": {"dose_max_abs_error": 0.1}})):
        path = write_result(tmp_path / f"{result.kind}.json", result, {"origin": "simulated", "source": "test"})
        doc = json.loads(path.read_text())
        jsonschema.validate(doc, envelope_schema(result.kind))
        back = read_result(path).results
        assert back.to_dict() == result.to_dict()
    assert math.isnan(read_result(tmp_path / "mechanisms_validation.json").results.mediation[0].mean_estimate)
