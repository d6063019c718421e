"""User text inside messages: one line, bounded, control characters made visible."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(text: object, limit: int = 300) -> str:
    """``text`` as one printable line of at most ``limit`` characters (newlines and other control
    characters escaped as ``\\n``, ``\\x0b`` …): error messages and notes quote file content, and a
    message must stay one line however hostile the file.

    >>> one_line("drug,report_id\\na")
    'drug,report_id\\\\na'
    """
    s = "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                for ch in str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"
