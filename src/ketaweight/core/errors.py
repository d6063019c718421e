"""Warnings and errors shared by every ketaweight stage.

All numerical-trouble warnings subclass :class:`KetaweightWarning`, so a user can turn them
into errors in one line (``warnings.simplefilter("error", KetaweightWarning)``), as
statsmodels does with ``ModelWarning``.  Each warning message states the threshold it
tested.  Errors about user input subclass :class:`InputError` and carry a location.
"""

from __future__ import annotations

from dataclasses import dataclass


class KetaweightWarning(UserWarning):
    """Base class of every warning ketaweight raises."""


class BalanceWarning(KetaweightWarning):
    """A covariate stays imbalanced after adjustment (|SMD| above the threshold)."""


class PositivityWarning(KetaweightWarning):
    """Poor overlap of propensity scores, or weights beyond the extreme-weight threshold."""


class ConvergenceWarning(KetaweightWarning):
    """An iterative fit stopped without meeting its convergence criterion."""


class SeparationWarning(KetaweightWarning):
    """A logistic model separates the data (fitted probabilities of 0 or 1)."""


class SmallCellWarning(KetaweightWarning):
    """A count below the disclosure threshold was masked in an output."""


@dataclass(frozen=True)
class Location:
    """Where a bad value sits: file, 1-based line (CSV: the header is line 1) and column name."""

    file: str
    line: int | None = None
    column: str | None = None
    line_label: str = "line"  # "row" for formats without text lines (Parquet, data frames)
    column_label: str = "column"  # "key" in a TOML file

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"{self.line_label} {self.line}")
        if self.column is not None:
            parts.append(f"{self.column_label} '{self.column}'")
        return ", ".join(parts)


Problem = tuple[Location, str]
"""One problem with user input: where it is and why it is wrong."""


class InputError(ValueError):
    """Bad user input (a file, a spec, a table).  ``problems`` lists every problem found."""

    def __init__(self, problems: list[tuple[Location, str]], *, limit: int = 100) -> None:
        self.problems = problems
        shown = [f"{loc}: {reason}" for loc, reason in problems[:limit]]
        more = len(problems) - len(shown)
        if more > 0:
            shown.append(f"... and {more} more problem(s)")
        super().__init__("\n".join(shown) if shown else "invalid input")


class NumericalError(RuntimeError):
    """A computation cannot give a trustworthy number (no overlap, separation as a hard stop)."""
