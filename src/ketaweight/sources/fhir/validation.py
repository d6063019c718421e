"""Fast validation of the FHIR R4 elements ketaweight reads, compiled from fhir.resources' R4B models.

Full validation with ``fhir.resources`` (``model_validate_json``) runs Python code for every element of every
resource (fhir_core's model validators) and reads about 6,500–8,000 resources per CPU-second; a bulk export
of a clinic has tens of millions.  This module builds, once per resource type, a validator that pydantic-core
runs in Rust on the raw JSON text, from the same models' field definitions — names, JSON aliases, cardinality
(list or single), required elements, choice groups (``value[x]``) and each primitive's type with the R4
regular expression fhir_core gives it (id, code, uri, string, dateTime, date, instant, decimal, integer,
boolean) — for the elements ketaweight reads (:data:`READ`), and, on every object it descends into, the names
of all elements the R4B model knows.  So it refuses, with the element's path:

* an element name R4 does not define, at the resource's top level and inside every element read;
* a value of the wrong JSON type or not matching its R4 primitive (a malformed id, code, dateTime, an
  impossible calendar date, a decimal given as a string), an array where one value is allowed or the other
  way round, a missing required element (``Observation.status``, ``Observation.code``, …);
* two elements of one choice group (``valueQuantity`` and ``valueString``).

What it does not look into: the values of elements ketaweight does not read (``Observation.referenceRange``,
``Patient.name``, …) beyond their names.  ``fhir.resources`` does not check value-set bindings either (it
accepts ``status: "bogus"``); the import counts statuses that are not records (:data:`NOT_A_RECORD` in the
reader).  ``--validate full`` runs fhir.resources' complete models instead.

The output of a validator is the resource as a dict, with JSON values as ``json.loads`` gives them: the
reader takes it in place of a second parse.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from functools import cache
from typing import Any

from pydantic_core import SchemaValidator, ValidationError, core_schema

Read = dict[str, "Read | None"]
"""Element names read (JSON names, without [x] suffix expansion) → the elements read inside them (None for
a primitive or an element read whole)."""

_CODING: Read = {"system": None, "code": None, "display": None}
_CONCEPT: Read = {"coding": _CODING, "text": None}
_REFERENCE: Read = {"reference": None}
_QUANTITY: Read = {"value": None, "unit": None, "system": None, "code": None}
_PERIOD: Read = {"start": None, "end": None}
_META: Read = {"tag": _CODING}
_DOSAGE: Read = {"route": _CONCEPT, "dose": _QUANTITY, "doseAndRate": {"doseQuantity": _QUANTITY}}

READ: dict[str, Read] = {
    "Patient": {"id": None, "meta": _META, "gender": None, "birthDate": None},
    "Observation": {"id": None, "status": None, "code": _CONCEPT, "subject": _REFERENCE,
                    "effectiveDateTime": None, "effectiveInstant": None, "effectivePeriod": _PERIOD,
                    "valueQuantity": _QUANTITY, "valueInteger": None, "valueBoolean": None,
                    "component": {"code": _CONCEPT, "valueQuantity": _QUANTITY, "valueInteger": None, "valueBoolean": None}},
    "MedicationAdministration": {"id": None, "status": None, "medicationCodeableConcept": _CONCEPT,
                                 "medicationReference": _REFERENCE, "subject": _REFERENCE, "effectiveDateTime": None,
                                 "effectivePeriod": _PERIOD, "dosage": {"route": _CONCEPT, "dose": _QUANTITY},
                                 "contained": None},
    "MedicationStatement": {"id": None, "status": None, "medicationCodeableConcept": _CONCEPT,
                            "medicationReference": _REFERENCE, "subject": _REFERENCE, "effectiveDateTime": None,
                            "effectivePeriod": _PERIOD, "dosage": _DOSAGE, "contained": None},
    "MedicationRequest": {"id": None, "status": None, "subject": _REFERENCE},
    "Medication": {"id": None, "code": _CONCEPT},
    "Condition": {"id": None, "code": _CONCEPT, "subject": _REFERENCE, "onsetDateTime": None,
                  "onsetPeriod": _PERIOD, "recordedDate": None, "severity": _CONCEPT},
    "AdverseEvent": {"id": None, "event": _CONCEPT, "subject": _REFERENCE, "date": None,
                     "detected": None, "severity": _CONCEPT},
    "Procedure": {"id": None, "status": None, "code": _CONCEPT, "subject": _REFERENCE,
                  "performedDateTime": None, "performedPeriod": _PERIOD, "note": {"text": None}},
}
"""The elements of each resource type the reader uses (:mod:`ketaweight.sources.fhir.reader`); ``meta`` only
of a Patient, whose tags say where the data come from (a ``meta`` elsewhere is an element not read)."""


_LEAP_YEAR = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
CALENDAR = (r"^(?:\d{4}(?:-\d{2})?$|(?:\d{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
            r"|(?:0[13578]|1[02])-31)|" + _LEAP_YEAR + r"-02-29)(?:T.*)?$)")
"""A date, dateTime or instant whose day (when it gives one) is a day of the Gregorian calendar: February 29
only in leap years, the 31st only in months that have one.  A regular expression, so that the check runs in
pydantic-core's Rust regex engine with the R4 format's own, not as a Python call per value."""


def _pattern(regex: str | re.Pattern) -> str:
    text = regex.pattern if isinstance(regex, re.Pattern) else regex
    return "^(?:" + text.lstrip("^").rstrip("$") + ")$"


_DOUBLE_MAX = int(sys.float_info.max)
"""A decimal is read as a double: a larger integer (or 1e400, read as infinity) is refused, not overflowed."""


@cache
def _primitives() -> dict[str, core_schema.CoreSchema]:
    """Core schemas of the R4 primitives, keyed by fhir_core's type class name (regular expressions its own)."""
    from fhir_core import types as t  # noqa: PLC0415 - fhir.resources' dependency, loaded only when validating

    def named(schema: core_schema.CoreSchema, what: str) -> core_schema.CoreSchema:
        return core_schema.custom_error_schema(schema, custom_error_type="fhir_type", custom_error_message=f"not a valid R4 {what}")

    def text(what: str, regex: str | re.Pattern, **kw: Any) -> core_schema.CoreSchema:
        return named(core_schema.str_schema(pattern=_pattern(regex), strict=True, **kw), what)

    def dated(what: str, regex: re.Pattern) -> core_schema.CoreSchema:
        schema = core_schema.chain_schema([core_schema.str_schema(pattern=_pattern(regex), strict=True),
                                           core_schema.str_schema(pattern=CALENDAR, strict=True)])
        return named(schema, f"{what} (the format, or not a day of the calendar)")

    def integer(what: str, lo: int) -> core_schema.CoreSchema:
        return named(core_schema.int_schema(strict=True, ge=lo, le=2**31 - 1), f"{what} (a JSON integer from {lo} to 2^31-1)")

    return {
        "Id": text("id (A-Z a-z 0-9 - ., at most 64)", t.Id.pattern, min_length=1, max_length=64),
        "Code": text("code", r"[^\s]+(\s[^\s]+)*"), "String": text("string (non-empty)", r"[ \r\n\t\S]+"),
        "Markdown": text("markdown", t.Markdown.pattern), "Uri": text("uri", t.Uri.pattern), "Url": text("url", t.Uri.pattern),
        "Canonical": text("canonical", t.Uri.pattern), "Oid": text("oid", t.Oid.pattern),
        "Uuid": text("uuid", r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        "Date": dated("date", t.Date.pattern), "DateTime": dated("dateTime", t.DateTime.pattern),
        "Instant": dated("instant", t.Instant.pattern), "Time": text("time", t.Time.pattern),
        "Decimal": named(core_schema.union_schema([core_schema.int_schema(strict=True, ge=-_DOUBLE_MAX, le=_DOUBLE_MAX),
                                                   core_schema.float_schema(strict=True, allow_inf_nan=False)]),
                         "decimal (a JSON number within the range of a double)"),
        "Integer": integer("integer", -(2**31)), "UnsignedInt": integer("unsignedInt", 0), "PositiveInt": integer("positiveInt", 1),
        "Base64Binary": text("base64Binary", r"(\s*([0-9a-zA-Z+=]){4}\s*)+"),
        "bool": named(core_schema.bool_schema(strict=True), "boolean (true or false)"),
    }


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the element type, whether it is a list) of a model field's annotation (Optional/None stripped)."""
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin in (list, typing.List):  # noqa: UP006 - fhir.resources annotates with typing.List
            annotation, is_list = typing.get_args(annotation)[0], True
        else:
            return annotation, is_list


def _model_class(type_name: str, owner: type) -> type:
    """The R4B model class of a complex type (``CodeableConcept``) or backbone element (``ObservationComponent``)."""
    from fhir.resources.R4B import get_fhir_model_class  # noqa: PLC0415 - heavy, loaded only when validating

    module = sys.modules[owner.__module__]
    if hasattr(module, type_name):
        return getattr(module, type_name)
    return get_fhir_model_class(type_name)


Plan = tuple[list[tuple[str, frozenset[str]]], dict[str, "Plan"]]
"""Choice groups of an object (group, its JSON names) and the plans of the objects read inside it."""


def _element_schema(annotation: Any, read: Read | None, owner: type) -> tuple[core_schema.CoreSchema, Plan | None]:
    element, is_list = _unwrap(annotation)
    plan = None
    if typing.get_origin(element) is typing.Annotated:
        base, *meta = typing.get_args(element)
        schema = _primitives()[type(meta[0]).__name__ if meta else base.__name__]
    elif element is bool:
        schema = _primitives()["bool"]
    elif read is None:
        schema = core_schema.any_schema()  # an element read whole (contained resources): the reader looks itself
    else:
        schema, plan = _object_schema(_model_class(element.__name__.removesuffix("Type"), owner), read)
    return (core_schema.list_schema(schema, min_length=1) if is_list else schema), plan


def _object_schema(model: type, read: Read, resource_type: str | None = None) -> tuple[core_schema.CoreSchema, Plan]:
    """A typed dict of ``model``'s elements: those in ``read`` validated, every other known one allowed (its
    value not looked into), any unknown name refused; and the object's choice-group plan."""
    fields: dict[str, core_schema.TypedDictField] = {}
    groups: dict[str, list[str]] = {}
    inner: dict[str, Plan] = {}
    for name, info in model.model_fields.items():
        if name == "fhir_comments":
            continue
        alias = info.alias or name
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("one_of_many"):
            groups.setdefault(extra["one_of_many"], []).append(alias)
        schema: core_schema.CoreSchema = core_schema.any_schema()
        if alias in read:
            schema, plan = _element_schema(info.annotation, read[alias], model)
            if plan is not None and (plan[0] or plan[1]):
                inner[alias] = plan
        fields[alias] = core_schema.typed_dict_field(schema, required=bool(extra.get("element_required")))
    if resource_type is not None:
        fields["resourceType"] = core_schema.typed_dict_field(core_schema.literal_schema([resource_type]), required=True)
    return core_schema.typed_dict_schema(fields, extra_behavior="forbid"), ([(g, frozenset(n)) for g, n in groups.items()], inner)


class _Choices:
    """At most one element of each choice group, in an object and in the objects read inside it: one pass
    over the object's keys (a few dictionary look-ups; cheaper than set operations per group)."""

    def __init__(self, plan: Plan) -> None:
        groups, inner = plan
        self.group_of = {name: group for group, names in groups for name in names}
        self.inner = tuple((alias, _Choices(sub)) for alias, sub in inner.items())

    def check(self, obj: dict, where: str = "") -> None:
        """Raise :class:`ChoiceError` naming the first group given twice (its path in ``where``)."""
        group_of = self.group_of
        seen: set[str] = set()
        for key in obj:
            group = group_of.get(key)
            if group is not None:
                if group in seen:
                    raise ChoiceError(group, sorted(k for k in obj if group_of.get(k) == group), where)
                seen.add(group)
        for alias, sub in self.inner:
            value = obj.get(alias)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    sub.check(item, f"{where}.{alias}.{i}")
            elif value is not None:
                sub.check(value, f"{where}.{alias}")


class FastValidator:
    """Validate one resource type's JSON text (or parsed dict) and return the resource as a dict."""

    def __init__(self, resource_type: str) -> None:
        from fhir.resources.R4B import get_fhir_model_class  # noqa: PLC0415

        schema, plan = _object_schema(get_fhir_model_class(resource_type), READ[resource_type], resource_type)
        self._validator = SchemaValidator(schema)
        self._choices = _Choices(plan)

    def __call__(self, text: str | bytes | None, obj: dict | None = None) -> dict:
        """The validated resource (raises pydantic_core's :class:`ValidationError`, or :class:`ChoiceError`)."""
        doc = self._validator.validate_json(text) if text is not None else self._validator.validate_python(obj)
        self._choices.check(doc)
        return doc


class ChoiceError(ValueError):
    """Two elements of one choice group (``value[x]``) in one object."""

    def __init__(self, group: str, present: list[str], where: str = "") -> None:
        self.field = f"{where}.{group}[x]".lstrip(".")
        super().__init__(f"only one {group}[x] may be given, found {', '.join(present)}")


@cache
def fast_validator(resource_type: str) -> FastValidator:
    """The compiled validator of a resource type read by ketaweight (built on first use, a few ms)."""
    return FastValidator(resource_type)


__all__ = ["READ", "ChoiceError", "FastValidator", "ValidationError", "fast_validator"]
