"""Scenario files: validation errors name the file and key."""

import pytest

from ketaweight.core.errors import InputError
from ketaweight.sources.simulator import load_scenario


def test_unknown_scenario_lists_builtins():
    with pytest.raises(InputError, match="built-in scenarios are .*article"):
        load_scenario("nope")


def test_bad_key_and_type_are_named(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "x"\n[pathways]\nappetite = "maybe"\nwhatever = 1\n')
    with pytest.raises(InputError) as err:
        load_scenario(f)
    text = str(err.value)
    assert "bad.toml" in text and "pathways.appetite" in text and "pathways.whatever" in text


def test_invalid_toml_is_reported(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("name = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_scenario(f)


def test_partial_file_keeps_defaults(tmp_path):
    f = tmp_path / "small.toml"
    f.write_text('name = "small"\n[pathways]\nmood = false\n')
    s = load_scenario(f)
    assert s.pathways.mood is False and s.pathways.appetite is True
    assert s.pharmacology.clearance_l_per_h_70kg == 79.0
