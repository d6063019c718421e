"""The frozen result every estimator returns, and its summary (text and HTML).

One vocabulary everywhere (STYLE.md): ``treatment``, ``outcome``, ``estimand``, ``method``,
``estimate``, ``se``, ``ci_low``, ``ci_high``, ``n``; ``variance`` says in words how the
standard error was computed.  The JSON form is documented in ``docs/results-schema.md``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ketaweight.core.privacy import mask_count


@dataclass(frozen=True)
class CausalResult:
    """One estimator's answer on one table.

    Attributes
    ----------
    treatment, outcome:
        Column names.
    estimand:
        ``"ATE"`` or ``"ATT"``.
    method:
        Estimator name (``"crude"``, ``"standardization"``, ``"ipw"``, ``"aipw"``, ``"g-estimation"``).
    estimate:
        Mean difference treated − untreated, in the outcome's units.
    se, ci_low, ci_high, ci_level:
        Standard error and confidence interval (outcome units).
    n:
        Rows analysed (censored rows included); ``diagnostics["n_observed_outcome"]`` has
        those with an observed outcome.
    variance:
        How ``se`` and the CI were computed, in words.
    diagnostics:
        Balance, overlap, weights, models, attrition (see ``docs/results-schema.md``).
    warnings:
        Warning messages raised while fitting, each naming its class and threshold.
    sensitivity:
        E-values (``evalue_estimate``, ``evalue_ci``) and how they were approximated.
    settings:
        The estimator's settings and the analysis spec, for reproducibility.
    """

    treatment: str
    outcome: str
    estimand: str
    method: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    variance: str
    diagnostics: dict[str, Any] = field(repr=False)
    warnings: tuple[str, ...] = ()
    ci_level: float = 0.95
    sensitivity: dict[str, Any] = field(default_factory=dict, repr=False)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, the ``results[]`` item of the causal results file."""
        return {
            "treatment": self.treatment,
            "outcome": self.outcome,
            "estimand": self.estimand,
            "method": self.method,
            "estimate": self.estimate,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "ci_level": self.ci_level,
            "n": self.n,
            "variance": self.variance,
            "warnings": list(self.warnings),
            "sensitivity": self.sensitivity,
            "diagnostics": self.diagnostics,
            "settings": self.settings,
        }

    def summary(self) -> Summary:
        """A printable summary with numbered notes (``as_text()``, ``as_html()``)."""
        return Summary.of([self])


@dataclass(frozen=True)
class Summary:
    """A table of results plus numbered notes, renderable as text or HTML."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]

    @classmethod
    def of(cls, results: list[CausalResult]) -> Summary:
        """Summarise one or several results of the same question side by side."""
        if not results:
            raise ValueError("no results to summarise; fit at least one estimator")
        first = results[0]
        title = f"Effect of {first.treatment} on {first.outcome} ({first.estimand})"
        header = ("method", "estimate", "se", f"{first.ci_level:.0%} CI", "n", "max |SMD| w", "ESS", "E-value (CI)")
        rows = []
        notes: list[str] = []
        for r in results:
            d = r.diagnostics
            ev = r.sensitivity
            rows.append(
                (
                    r.method,
                    f"{r.estimate:.3f}",
                    f"{r.se:.3f}",
                    f"({r.ci_low:.3f}, {r.ci_high:.3f})",
                    mask_count(r.n),
                    f"{d['balance']['max_abs_smd_weighted']:.3f}" if d.get("adjusted") else "—",
                    f"{d['weights']['ess']:.0f}" if d.get("weights_used_by_estimator") else "—",
                    _fmt_evalue(ev),
                )
            )
            notes.append(f"{r.method}: variance by {r.variance}")
            notes.extend(f"{r.method}: {w}" for w in r.warnings)
        if any(r.sensitivity.get("approximation") for r in results):
            notes.append("E-values: " + next(r.sensitivity["approximation"] for r in results if r.sensitivity))
        return cls(title, header, tuple(rows), tuple(notes))

    def as_text(self) -> str:
        """Fixed-width text table with numbered notes."""
        widths = [max(len(h), *(len(row[i]) for row in self.rows)) for i, h in enumerate(self.header)]
        line = "  ".join(h.ljust(w) for h, w in zip(self.header, widths))
        out = [self.title, "=" * len(self.title), line, "-" * len(line)]
        out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in self.rows]
        out += ["", "Notes:"] + [f"[{i}] {n}" for i, n in enumerate(self.notes, 1)]
        return "\n".join(out)

    def as_html(self) -> str:
        """An HTML fragment: caption, table and an ordered list of notes."""
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (
            f'<table class="ketaweight-causal"><caption>{esc(self.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><ol>{notes}</ol>"
        )

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return self.as_html()


def _fmt_evalue(ev: dict[str, Any]) -> str:
    e, c = ev.get("evalue_estimate"), ev.get("evalue_ci")
    if e is None:
        return "—"
    return f"{e:.2f} ({c:.2f})" if c is not None else f"{e:.2f}"
