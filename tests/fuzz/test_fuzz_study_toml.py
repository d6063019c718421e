"""Hostile study TOML files: every one either loads or fails with InputError naming the file (and the key
where there is one) — never another exception, never a hang."""

from __future__ import annotations

from importlib import resources

from hypothesis import given

from ketaweight.core.errors import InputError
from ketaweight.study.spec import Study, load_study

from .mutations import mutated

SEED = (resources.files("ketaweight.study.studies") / "ketamine-weight.toml").read_bytes()


@given(mutated(SEED))
def test_a_mutated_study_file_loads_or_is_refused_clearly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("study") / "s.toml"
    path.write_bytes(data)
    try:
        study = load_study(path)
    except InputError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc.problems[0][1])
        return
    assert isinstance(study, Study)
