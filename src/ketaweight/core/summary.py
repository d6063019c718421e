"""A printable summary of any result: a titled table plus numbered notes, as text or HTML
(statsmodels' ``summary()`` → ``as_text()`` / ``as_html()``).  Every HTML cell is escaped."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """A table of text cells with a title and numbered notes (caveats, variance methods, warnings)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()

    def as_text(self) -> str:
        """Fixed-width text table with numbered notes."""
        widths = [max(len(h), *(len(row[i]) for row in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.header)]
        line = "  ".join(h.ljust(w) for h, w in zip(self.header, widths))
        out = [self.title, "=" * len(self.title), line, "-" * len(line)]
        out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in self.rows]
        if self.notes:
            out += ["", "Notes:"] + [f"[{i}] {n}" for i, n in enumerate(self.notes, 1)]
        return "\n".join(out)

    def as_html(self) -> str:
        """An HTML fragment: a captioned table and an ordered list of the notes (all text escaped)."""
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (f'<table class="ketaweight-summary"><caption>{esc(self.title)}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + (f"<ol>{notes}</ol>" if notes else ""))

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return self.as_html()
