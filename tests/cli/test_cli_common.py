"""The CLI error boundary: errors become exit code 2, warnings are shown once and passed on."""

import warnings

import pytest
import typer

from ketaweight.cli._common import run_cli
from ketaweight.core.errors import BalanceWarning, InputError, Location


def test_other_warnings_are_passed_on_once_and_ketaweight_warnings_printed(capsys):
    def action():
        warnings.warn("from a library", DeprecationWarning)
        warnings.warn("SMD 0.2 > 0.1", BalanceWarning)
        return 42

    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        assert run_cli(action) == 42
    assert [str(w.message) for w in outer] == ["from a library"]
    assert "warning (BalanceWarning): SMD 0.2 > 0.1" in capsys.readouterr().err


def test_input_error_exits_with_code_2(capsys):
    def action():
        raise InputError([(Location("f.csv", 3, "value"), "bad")])

    with pytest.raises(typer.Exit) as exit_info:
        run_cli(action)
    assert exit_info.value.exit_code == 2
    assert "f.csv, line 3, column 'value': bad" in capsys.readouterr().err
