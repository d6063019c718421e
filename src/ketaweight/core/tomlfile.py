"""Read a TOML file people wrote (a study, a scenario, monitoring rules) with errors that name the file,
the line and the key, never a raw decoding or parser traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ketaweight.core.errors import InputError, Location, Problem


def read_toml(path: Path, label: str | None = None) -> dict[str, Any]:
    """The parsed TOML of ``path``; InputError for a folder, bytes that are not UTF-8 (with their line)
    or invalid TOML (with the parser's line and column)."""
    label = label or str(path)
    if path.is_dir():
        raise InputError([(Location(label), "is a folder; give a TOML file")])
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError([(Location(label, line), f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); re-save the file "
                           "as UTF-8")]) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # "Invalid value (at line 3, column 8)"
        raise InputError([(Location(label), f"not valid TOML: {exc}")]) from exc


def validation_problems(exc: ValidationError, label: str) -> list[Problem]:
    """One located problem per pydantic error (the key path as the column; multi-part messages split)."""
    problems: list[Problem] = []
    for err in exc.errors():
        key = ".".join(str(x) for x in err["loc"]) or None
        for msg in str(err["msg"]).removeprefix("Value error, ").split("; "):
            problems.append((Location(label, column=key), msg))
    return problems
