"""Read a TOML file people wrote (a study, a scenario, monitoring rules) with errors that name the file,
the line and the key, never a raw decoding or parser traceback."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ketaweight.core.errors import InputError, Location, Problem


def decode_text(raw: bytes, label: str) -> str:
    """UTF-8 text (a BOM is dropped); InputError naming the line of the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError([(Location(label, line), f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); re-save the file "
                           "as UTF-8")]) from exc


def read_toml(path: Path, label: str | None = None) -> tuple[dict[str, Any], str]:
    """The parsed TOML of ``path`` and its text; InputError for a folder, bytes that are not UTF-8 (with
    their line) or invalid TOML (with the parser's line and column)."""
    label = label or str(path)
    if path.is_dir():
        raise InputError([(Location(label), "is a folder; give a TOML file")])
    text = decode_text(path.read_bytes(), label)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:  # "Invalid value (at line 3, column 8)"
        raise InputError([(Location(label), f"not valid TOML: {exc}")]) from exc


def line_of(text: str, key_path: tuple[str | int, ...]) -> int | None:
    """The 1-based line where ``section.key`` is written (best effort: tomllib keeps no positions).

    Finds the ``[section]`` header, then the first line after it that assigns the next key; falls back
    to the header line, or None when the section is not in the file (a missing section is never an error).
    """
    lines = text.splitlines()
    names = [k for k in key_path if isinstance(k, str)]
    if not names:
        return None
    header = re.compile(r"^\s*\[\s*" + re.escape(names[0]) + r"\s*\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        top = re.compile(r"^\s*" + re.escape(names[0]) + r"\s*=")  # a top-level key
        return next((i + 1 for i, line in enumerate(lines) if top.match(line)), None)
    if len(names) == 1:
        return start + 1
    assign = re.compile(r"^\s*" + re.escape(names[1]) + r"\s*=")
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if assign.match(lines[i]):
            return i + 1
    return start + 1


def validation_problems(exc: ValidationError, label: str, text: str | None = None, *,
                        unknown_key: str = "unknown key", renamed: Mapping[str, str] | None = None) -> list[Problem]:
    """One located problem per pydantic error: the key path as the column, its line when ``text`` is given;
    multi-part messages split; ``unknown_key`` says what to do about a key the model does not have, and
    ``renamed`` (old key name → what replaced it) what to write instead of a key an earlier version had."""
    problems: list[Problem] = []
    for err in exc.errors():
        loc = tuple(k for k in err["loc"] if k != "[key]")  # pydantic marks a bad dict key so
        key = ".".join(str(x) for x in loc) or None
        line = line_of(text, loc) if text is not None else None
        if err["type"] == "extra_forbidden":
            old = str(loc[-1]) if loc else ""
            reasons = [f"key {old!r} was replaced: {renamed[old]}" if renamed and old in renamed else unknown_key]
        else:
            reasons = str(err["msg"]).removeprefix("Value error, ").split("; ")
        problems += [(Location(label, line, key, column_label="key"), msg) for msg in reasons]
    return problems
