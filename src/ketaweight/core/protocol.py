"""The one results protocol: every result type serialises (``to_dict``), reads back
(``from_dict``) losslessly, describes itself (``summary()`` → ``as_text()`` / ``as_html()``) and
publishes its JSON Schema (``json_schema()``).

Result types are frozen dataclasses that inherit :class:`Result`.  The dataclass fields *are* the
serialised form: ``to_dict`` dumps them (nested results, tuples, dicts) through pydantic's
``TypeAdapter`` and ``from_dict`` validates a dict back into the dataclass, so the JSON, the
Python object and the schema cannot drift apart.  Three field types carry the conventions that
JSON needs:

* :data:`Real` — a float whose NaN/±inf is written ``null`` and read back as NaN;
* :data:`Count` — a count of people or reports: an integer, or ``"<11"`` once masked for sharing;
* :data:`InMemory` — kept on the object, never written (row indices of the analysed patients,
  per-patient predictions, the analysis table): nothing patient-level reaches a file.

A type that is the payload of a results file names its ``kind`` (``kind: ClassVar[str] = "causal"``);
:data:`RESULT_KINDS` maps kinds to types for :func:`ketaweight.core.results.read_result`.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, TypeAdapter

from ketaweight.core.privacy import COUNT_KEYS, mask_count
from ketaweight.core.summary import Summary


def _nan_from_null(value: Any) -> Any:
    return math.nan if value is None else value


def _null_from_nonfinite(value: float) -> float | None:
    return value if math.isfinite(value) else None


Real = Annotated[float, BeforeValidator(_nan_from_null),
                 PlainSerializer(_null_from_nonfinite, return_type=float | None)]
"""A float; NaN and infinities are written as ``null`` (JSON has no NaN) and read back as NaN."""

Count = int | Literal["<11", "suppressed"]
"""A count of people, rows or reports: exact in memory; in files meant for sharing ``"<11"`` when it is
from 1 to 10, or ``"suppressed"`` when it would reveal such a count (``core.privacy``)."""

InMemory = Annotated[Any, Field(exclude=True)]
"""A field that stays on the object and is never serialised (give it ``default=None, compare=False``)."""

FRAME_COLUMNS = ("part", "method", "estimand", "treatment", "outcome", "exposure", "by", "estimate", "se", "ci_low",
                 "ci_high", "ci_level", "n")
"""The leading columns of every :meth:`Result.to_frame` (one vocabulary from code to JSON to frame)."""

RESULT_KINDS: dict[str, type[Result]] = {}
"""Results-file kind → the result type of its ``results`` payload."""


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def to_plain(value: Any) -> Any:
    """JSON-ready plain values: numpy scalars and arrays, tuples, paths and non-finite floats
    converted (NaN → None), dict keys as strings."""
    from pathlib import PurePath

    import numpy as np

    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_plain(v) for v in value.tolist()]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, PurePath):
        return str(value)
    return value


class Result:
    """Base of every result type (a frozen dataclass); see the module docstring."""

    kind: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            if kind in RESULT_KINDS and RESULT_KINDS[kind].__qualname__ != cls.__qualname__:
                raise TypeError(f"results kind {kind!r} is already {RESULT_KINDS[kind].__name__}")
            RESULT_KINDS[kind] = cls

    def to_dict(self) -> dict[str, Any]:
        """The serialised form: every field except :data:`InMemory` ones, as plain JSON values."""
        return to_plain(_adapter(type(self)).dump_python(self, mode="python"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Read back :meth:`to_dict` (also a masked copy: counts may be ``"<11"``)."""
        return _adapter(cls).validate_python(data)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of the serialised form (generated from the dataclass fields)."""
        return _adapter(cls).json_schema(mode="serialization")

    def summary(self) -> Summary:
        """A titled table of the result's scalar fields (types with more to say override this)."""
        rows = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, (str, int, float, bool)) or value is None:
                rows.append((f.name, mask_count(value) if f.name in COUNT_KEYS and isinstance(value, int) else _cell(value)))
        return Summary(type(self).__name__, ("field", "value"), tuple(rows))

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    def frame_rows(self) -> list[dict[str, Any]]:
        """Rows of :meth:`to_frame`: this result's own row if it is an estimate (it has ``estimate`` and
        ``ci_low``), else the rows of every result it holds, each with ``part`` saying where it sits."""
        if hasattr(self, "estimate") and hasattr(self, "ci_low"):
            return [{f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                     if isinstance(getattr(self, f.name), (str, int, float, bool)) or getattr(self, f.name) is None}]
        rows: list[dict[str, Any]] = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            for part, value in _results_in(getattr(self, f.name), f.name):
                rows += [{"part": part if "part" not in r else f"{part}.{r['part']}", **{k: v for k, v in r.items()
                                                                                       if k != "part"}}
                         for r in value.frame_rows()]
        return rows

    def to_frame(self) -> Any:
        """A tidy pandas DataFrame, one row per estimate (method, estimand, estimate, se, ci_low, ci_high,
        n and the diagnostics that matter); columns in that order where present."""
        import pandas as pd  # only this method needs pandas

        frame = pd.DataFrame(self.frame_rows())
        first = [c for c in FRAME_COLUMNS if c in frame.columns]
        return frame[first + [c for c in frame.columns if c not in first]]


def _results_in(value: Any, path: str) -> list[tuple[str, Result]]:
    """The results held by a field value (itself, or inside a tuple, list or dict), with their path."""
    if isinstance(value, Result):
        return [(path, value)]
    if isinstance(value, (list, tuple)):
        return [(p, r) for i, v in enumerate(value) for p, r in _results_in(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [(p, r) for k, v in value.items() for p, r in _results_in(v, f"{path}.{k}")]
    return []


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:.4g}"
    return "—" if value is None else str(value)
