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


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:.4g}"
    return "—" if value is None else str(value)
