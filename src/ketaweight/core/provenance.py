"""Where the data behind a result came from, recorded when the data enter ketaweight and carried
with every result (never guessed from file placement).

Three origins: ``simulated`` (the ketaweight simulator: patient records with a known truth),
``synthetic`` (generated spontaneous reports in the FAERS format) and ``real`` (records or
reports a user loaded).  A store remembers the provenance of each load
(:meth:`ketaweight.store.Store.provenance`); exports write it beside the tables as
``provenance.json`` so that it survives an export and a re-load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

Origin = Literal["simulated", "synthetic", "real"]
ORIGINS: tuple[str, ...] = ("simulated", "synthetic", "real")

PROVENANCE_FILE = "provenance.json"
"""Written beside exported tables; read back by a folder load."""


@dataclass(frozen=True)
class Provenance:
    """The origin of a dataset, a description of its source, and the period it covers (if known)."""

    origin: Origin
    source: str
    """A noun phrase that reads after "real" / inside "simulated data (…)", e.g. "records loaded from clinic/",
    "FAERS data as tabulated in the mddc package's sedative1000 table", "ketaweight simulator, scenario 'article'"."""
    period: str | None = None

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ValueError(f"provenance origin must be one of {', '.join(ORIGINS)}, got {self.origin!r}")

    @property
    def synthetic(self) -> bool:
        """True for simulated records and synthetic reports: no number describes real people."""
        return self.origin != "real"

    @property
    def label(self) -> str:
        """How the report labels numbers from these data.

        >>> Provenance("simulated", "ketaweight simulator, scenario 'article'").label
        "simulated data (ketaweight simulator, scenario 'article')"
        >>> Provenance("real", "records loaded from clinic/", "2023–2025").label
        'real records loaded from clinic/, 2023–2025'
        """
        period = f", {self.period}" if self.period else ""
        if self.origin == "simulated":
            return f"simulated data ({self.source}{period})"
        if self.origin == "synthetic":
            return f"synthetic reports ({self.source}{period}; not real reports)"
        return f"real {self.source}{period}"

    def to_dict(self) -> dict[str, Any]:
        """The envelope's ``provenance`` core (``synthetic`` is kept for readers that only ask that)."""
        return {"origin": self.origin, "source": self.source, "period": self.period, "synthetic": self.synthetic,
                "label": self.label}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        """Read back :meth:`to_dict` (derived keys ignored)."""
        return cls(d["origin"], d["source"], d.get("period"))

    def with_source(self, source: str) -> Provenance:
        return replace(self, source=source)

    @classmethod
    def combine(cls, items: list[Provenance]) -> Provenance | None:
        """One provenance for data from several loads: real if any load was real, else simulated if any was."""
        if not items:
            return None
        unique = list(dict.fromkeys(items))
        if len(unique) == 1:
            return unique[0]
        origin = next(o for o in ("real", "simulated", "synthetic") if any(p.origin == o for p in unique))
        periods = sorted({p.period for p in unique if p.period})
        return cls(origin, "; ".join(dict.fromkeys(p.source for p in unique)), " – ".join(periods) or None)  # type: ignore[arg-type]


def write_provenance_file(folder: Path, provenance: Provenance) -> Path:
    """``folder/provenance.json`` (plain JSON, no envelope: it describes the data files beside it)."""
    path = folder / PROVENANCE_FILE
    path.write_text(json.dumps({"origin": provenance.origin, "source": provenance.source,
                                "period": provenance.period}, indent=2) + "\n", encoding="utf-8")
    return path


def read_provenance_file(folder: Path) -> Provenance | None:
    """The provenance written beside exported tables, or None when there is none."""
    path = folder / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        return Provenance.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a ketaweight provenance file ({exc}); delete or repair it") from exc
