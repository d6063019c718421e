"""The ``kind = "signals"`` results file: every scored drug–event pair with its 2×2 counts and
four measures (PRR, ROR, IC, EBGM), the prior, the controls' verdicts, notes and caveats.

In a file written for sharing, a pair with any 2×2 cell from 1 to 10 is ``suppressed``: the small
cells read ``"<11"``, the other cells (zeros too) read ``"suppressed"`` (core.privacy's word for a count
hidden because it would reveal a masked one), and E and every estimate and interval are ``null``
(withheld), since any of them would give the masked count back (``a = N − b − c − d``;
``a = 2^IC·(E + ½) − ½``; with a zero cell, from the drug's and the event's totals that other pairs
show).  The signal flags stay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ketaweight.core.privacy import mask_count
from ketaweight.core.protocol import Count, Real, Result
from ketaweight.core.summary import Summary


@dataclass(frozen=True)
class Measure(Result):
    """One disproportionality measure of one pair (ratios; IC in log2 units)."""

    method: str  # PRR, ROR, IC or EBGM
    estimate: Real  # NaN (null in files): undefined (a zero cell), or withheld when the pair is suppressed
    ci_low: Real
    ci_high: Real
    ci_level: float  # EBGM: 0.90 (EB05–EB95)
    signal: bool
    chi2_yates: Real | None = None  # PRR only
    qn: Real | None = None  # EBGM only: posterior weight of the first prior component
    prior_converged: bool | None = None  # EBGM only
    prior_boundary: bool | None = None  # EBGM only


@dataclass(frozen=True)
class PairSignal(Result):
    """One drug–event pair: the 2×2 table of unique reports (a = drug and event), E and the measures."""

    drug: str
    event: str
    event_kind: str  # "group" (a term group) or "term"
    role: str  # "requested" or "control"
    expected_result: str | None  # controls: "positive" or "negative"
    n: Count  # "suppressed": withheld (a suppressed pair's cell of 0 or of 11 or more)
    a: Count
    b: Count
    c: Count
    d: Count
    expected_count: Real  # NaN (null) when withheld
    measures: tuple[Measure, ...]
    source: str | None = None
    suppressed: bool = False
    """A 2×2 cell is 1–10: small cells read "<11", everything else that could recover them is withheld."""

    def measure(self, method: str) -> Measure:
        return next(m for m in self.measures if m.method == method)

    def interval(self, method: str) -> str:
        """'2.41 (1.80–3.22)', 'undefined' (a zero cell) or 'withheld (<11)' (a suppressed pair)."""
        m = self.measure(method)
        if self.suppressed:
            return "withheld (<11)"
        if m.estimate != m.estimate:
            return "undefined"
        return f"{m.estimate:.2f} ({m.ci_low:.2f}–{m.ci_high:.2f})"

    @property
    def signals(self) -> list[str]:
        """The methods whose signal criterion this pair meets."""
        return [m.method for m in self.measures if m.signal]


@dataclass(frozen=True)
class ControlVerdict(Result):
    """Did a control pair behave as expected under each method?"""

    drug: str
    event: str
    expected: str
    signal: dict[str, bool]
    as_expected: dict[str, bool]


@dataclass(frozen=True)
class SignalsReport(Result):
    """A scan written for sharing (counts 1–10 masked unless exact counts were asked for)."""

    kind: ClassVar[str] = "signals"

    question: str
    settings: dict[str, Any]
    data: dict[str, Any]
    thresholds: dict[str, str]
    prior: dict[str, Any]
    pairs: tuple[PairSignal, ...]
    controls: tuple[ControlVerdict, ...]
    notes: tuple[str, ...]
    caveats: tuple[str, ...]

    @property
    def requested(self) -> list[PairSignal]:
        return [p for p in self.pairs if p.role == "requested"]

    def summary(self) -> Summary:
        rows = []
        for p in self.pairs:
            cells = [p.interval(m.method) for m in p.measures]
            rows.append((p.role, p.drug, p.event, mask_count(p.a), *cells, ", ".join(p.signals) or "none"))
        return Summary("Disproportionality (unique reports)",
                       ("role", "drug", "event", "n", *(m.method for m in self.pairs[0].measures), "signals")
                       if self.pairs else ("role", "drug", "event", "n", "signals"),
                       tuple(rows), (*self.notes, *self.caveats))
