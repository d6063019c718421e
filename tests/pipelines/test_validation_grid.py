"""The validation grid's harness: the grid file, the summaries by hand, a tiny run through the CLI.

The grid's figures themselves come from the long run (``ketaweight validate estimators --grid``,
docs/validation.md); here only what a short run can check.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.core.errors import InputError
from ketaweight.pipelines import validation_grid
from ketaweight.pipelines.validation_grid import (DEFAULT_GRID_ESTIMATORS, GRID_ESTIMATORS, PRIMARY, GridEntry, load_grid, meets_target,
                                                  summarise_entry, validate_grid)

runner = CliRunner()


def test_shipped_grid_covers_the_worlds_the_issue_names():
    entries = load_grid()
    names = {e.name for e in entries}
    assert {"nonlinear-confounding", "strong-confounding", "effect-modification", "informative-dropout",
            "rare-treatment", "small-clinic"} <= names
    assert {e.patients for e in entries if e.name == "small-clinic"} == {500}
    assert PRIMARY in GRID_ESTIMATORS


def test_bad_grid_files_are_named_with_line_and_entry(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('[[entry]]\nname = "a"\nscenario = "article"\n\n[[entry]]\nname = "b"\nscenario = "artcle"\n'
                 'patients = 100\nspeed = 2\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_grid(p)
    text = str(err.value)
    assert "line 5" in text and "entry[1]" in text and "speed" in text and "at least 200" in text
    p.write_text('[[entry]]\nname = "a"\nscenario = "artcle"\n', encoding="utf-8")
    with pytest.raises(InputError, match="artcle"):
        load_grid(p)
    p.write_bytes(b'[[entry]]\nname = "\xff"\n')
    with pytest.raises(InputError, match="UTF-8"):
        load_grid(p)
    with pytest.raises(InputError, match="not found"):
        load_grid(tmp_path / "none.toml")


def test_summaries_by_hand_and_failures_counted_not_averaged():
    """Truth 1; estimates 0.9, 1.1, 1.3 with SE 0.1 and CI ± 0.2; one failed replicate (NaN)."""
    reps = [{"x": (0.9, 0.1, 0.7, 1.1)}, {"x": (1.1, 0.1, 0.9, 1.3)}, {"x": (1.3, 0.1, 1.1, 1.5)},
            {"x": (math.nan,) * 4}]
    (row,) = summarise_entry(GridEntry("e", "article", 500), 1.0, reps, ["x"])
    assert row.replicates == 3 and row.failed == 1
    assert row.bias == pytest.approx(0.1) and row.bias_over_se == pytest.approx(1.0)
    assert row.empirical_sd == pytest.approx(0.2) and row.bias_mcse == pytest.approx(0.2 / math.sqrt(3))
    assert row.coverage == pytest.approx(2 / 3) and row.coverage_mcse == pytest.approx(math.sqrt(2 / 9 / 3))
    assert not meets_target(row)
    assert meets_target(row.__class__(**{**row.to_dict(), "coverage": 0.95, "bias_over_se": -0.05}))


def test_tiny_grid_through_the_cli(tmp_path):
    """Two replicates of a 400-patient clinic: files written, one row per estimator, the truth exact and
    shared by every estimator, each estimate within 1 kg of it."""
    grid = tmp_path / "grid.toml"
    grid.write_text('[[entry]]\nname = "tiny"\nscenario = "article"\npatients = 400\n', encoding="utf-8")
    out = tmp_path / "out"
    args = ["validate", "estimators", "--grid", "--grid-file", str(grid), "-r", "2", "--truth-patients", "3000",
            "--workers", "1", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "validation-grid.json").read_text())
    rows = doc["results"]["rows"] if "rows" in doc["results"] else doc["results"]
    assert {r["method"] for r in rows} == set(DEFAULT_GRID_ESTIMATORS)
    truth = {r["truth"] for r in rows}
    assert len(truth) == 1 and -1.5 < truth.pop() < -0.2
    assert all(r["replicates"] + r["failed"] == 2 for r in rows)
    assert all(abs(r["mean_estimate"] - r["truth"]) < 1.0 for r in rows if r["replicates"])
    md = (out / "validation-grid.md").read_text()
    assert "tiny" in md and "partial" not in md
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "--replace" in again.output


def test_unknown_estimator_is_refused():
    with pytest.raises(ValueError, match="unknown grid estimator"):
        validate_grid(grid=[GridEntry("e", "article", 400)], estimators=["aipw (magic)"], replicates=2)


def test_entries_keep_their_cohorts_and_a_checkpoint_resumes_and_extends(tmp_path, monkeypatch):
    """Entry b run alone gives the same replicates as in the whole grid (its cohorts come from its place in
    the grid, not from what else runs); a checkpointed run of 2 replicates extended to 3 runs one more and
    keeps the first two to the last digit."""
    grid = [GridEntry("a", "article", 400), GridEntry("b", "null", 400)]
    kw = dict(grid=grid, replicates=2, truth_patients=3000, workers=1, estimators=["crude", "aipw (linear)"])
    whole = validate_grid(**kw)
    alone = validate_grid(**kw, entries=["b"], checkpoint=tmp_path / "ckpt.json")
    assert [r.to_dict() for r in alone] == [r.to_dict() for r in whole if r.scenario == "b"]
    assert not (tmp_path / "ckpt-a.json").exists()
    assert json.loads((tmp_path / "ckpt-b-truth.json").read_text())["done"][0]["result"] == alone[0].truth
    first = json.loads((tmp_path / "ckpt-b.json").read_text())["done"]
    counted = []
    monkeypatch.setattr(validation_grid, "cohort_truth", lambda *a: pytest.fail("the truth was simulated again"))
    extended = validate_grid(**{**kw, "replicates": 3}, entries=["b"], checkpoint=tmp_path / "ckpt.json",
                             on_replicate=counted.append)
    done = json.loads((tmp_path / "ckpt-b.json").read_text())["done"]
    assert len(done) == 3 and done[:2] == first
    assert counted == [2, 1]  # two resumed at once, one run (and the truth read, not simulated again)
    assert extended[0].truth == alone[0].truth
    assert all(r.replicates + r.failed == 3 for r in extended)
    with pytest.raises(ValueError, match="unknown grid entry"):
        validate_grid(**kw, entries=["c"])
    with pytest.raises(InputError, match="another run"):  # other estimators: not the same replicates
        validate_grid(**{**kw, "estimators": ["crude"]}, entries=["b"], checkpoint=tmp_path / "ckpt.json")


def test_entries_and_estimators_need_the_grid():
    res = runner.invoke(app, ["validate", "estimators", "--entries", "small-clinic"])
    assert res.exit_code == 2 and "add --grid" in res.output


def test_the_checkpoint_keys_the_study_by_what_the_grid_reads():
    """A new study section must be sorted into the key or out of it; the mechanisms settings (which the grid's
    estimators never read) leave the key alone, the analysis settings change it."""
    from ketaweight.pipelines.validation_grid import GRID_STUDY_SECTIONS, grid_study_key
    from ketaweight.study.spec import Study, load_study

    assert set(Study.model_fields) == GRID_STUDY_SECTIONS | {"mechanisms", "network"}
    study = load_study("ketamine-weight")
    other_mechanisms = study.with_mediation(intermediate_in_outcome=not study.mechanisms.mediation.intermediate_in_outcome)
    assert grid_study_key(other_mechanisms) == grid_study_key(study)
    other_analysis = study.model_copy(update={"analysis": study.analysis.model_copy(update={"estimand": "ATT"})})
    assert grid_study_key(other_analysis) != grid_study_key(study)
    # the grid's estimators set their own propensity calibration; the shipped checkpoints predate the key
    assert grid_study_key(study.with_analysis(propensity_calibration="logistic")) == grid_study_key(study)
    assert "propensity_calibration" not in grid_study_key(study)["analysis"]
