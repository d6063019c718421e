"""The report's figures: matplotlib plots of the run's numbers, returned as accessible inline SVG.

Each function takes plain numbers and returns a :class:`Figure` (SVG text with a ``<title>``
and ``role="img"``, plus the alt text), so the HTML stays one self-contained file: no images
on disk, no CDN.  Text stays text in the SVG (``svg.fonttype = "none"``) so it scales on a
phone and is read by screen readers; output is deterministic (fixed hash salt, no date).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

_RC = {"svg.fonttype": "none", "svg.hashsalt": "ketaweight", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False, "font.family": "sans-serif"}
BLUE, ORANGE, GREY = "#1f5fa8", "#c0571b", "#666666"
"""Colour-blind-safe pair (blue/orange) plus grey for references."""


@dataclass(frozen=True)
class Figure:
    """An inline SVG and its alt text (also its ``<title>``)."""

    svg: str
    alt: str


def _to_svg(fig: plt.Figure, alt: str) -> Figure:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    fid = "fig-" + hashlib.sha1((alt + text).encode("utf-8")).hexdigest()[:12]  # stable across runs
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', text, count=1)
    text = text.replace("<svg", f'<svg role="img" aria-labelledby="{fid}-title" class="figure"', 1)
    head_end = text.index(">", text.index("<svg")) + 1
    text = text[:head_end] + f'<title id="{fid}-title">{html.escape(alt)}</title>' + text[head_end:]
    return Figure(svg=text, alt=alt)


def forest_plot(labels: Sequence[str], estimates: Sequence[float], lows: Sequence[float], highs: Sequence[float], *,
                unit: str, alt: str, reference: float = 0.0, log: bool = False,
                highlight: Sequence[bool] | None = None) -> Figure:
    """Point estimates with horizontal confidence intervals, one row per label (top to bottom)."""
    n = len(labels)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 0.45 * n + 0.9))
        y = list(range(n))[::-1]
        for i, (yy, e, lo, hi) in enumerate(zip(y, estimates, lows, highs, strict=True)):
            colour = ORANGE if (highlight and highlight[i]) else BLUE
            ax.plot([lo, hi], [yy, yy], color=colour, lw=2)
            ax.plot([e], [yy], "o", color=colour, ms=6)
        ax.axvline(reference, color=GREY, lw=1, ls="--")
        ax.set_yticks(y, labels)
        ax.set_xlabel(unit)
        if log:  # plain tick labels: matplotlib's default log labels go through mathtext
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(axis="x", color="#dddddd", lw=0.6)
        return _to_svg(fig, alt)


def balance_plot(covariates: Sequence[str], unweighted: Sequence[float], weighted: Sequence[float], *,
                 threshold: float, alt: str) -> Figure:
    """Absolute standardized mean differences before and after weighting (a 'Love plot')."""
    n = len(covariates)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 0.32 * n + 1.0))
        y = list(range(n))[::-1]
        nan = float("nan")  # an SMD that could not be computed (a constant column) is left out, not drawn at 0
        ax.plot([nan if v is None else abs(v) for v in unweighted], y, "o", mfc="white", color=ORANGE, label="before adjustment")
        ax.plot([nan if v is None else abs(v) for v in weighted], y, "o", color=BLUE, label="after weighting")
        ax.axvline(threshold, color=GREY, ls="--", lw=1, label=f"threshold {threshold:g}")
        ax.set_yticks(y, covariates)
        ax.set_xlabel("|standardized mean difference|")
        ax.legend(frameon=False, loc="lower right")
        return _to_svg(fig, alt)


def overlap_plot(quantiles: Sequence[float], treated: Sequence[float], control: Sequence[float], *, alt: str) -> Figure:
    """Propensity-score quantiles of treated and untreated patients (overlapping curves = positivity holds)."""
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 2.8))
        ax.plot(quantiles, treated, "-o", color=BLUE, ms=3, label="treated")
        ax.plot(quantiles, control, "-s", color=ORANGE, ms=3, label="untreated")
        ax.set_xlabel("quantile of the group")
        ax.set_ylabel("propensity score")
        ax.set_ylim(0, 1)
        ax.legend(frameon=False)
        return _to_svg(fig, alt)


def attrition_diagram(steps: Sequence[str], remaining: Sequence[str], excluded: Sequence[str], *, alt: str) -> Figure:
    """A flow of boxes: each eligibility step with the patients remaining and excluded (already masked text)."""
    n = len(steps)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 0.55 * n + 0.3))
        ax.set_axis_off()
        ax.set_xlim(0, 10)
        ax.set_ylim(-0.5, n - 0.3)
        for i, (s, r, e) in enumerate(zip(steps, remaining, excluded, strict=True)):
            yy = n - 1 - i
            ax.text(3.2, yy, f"{s}\n{r} remain", ha="center", va="center",
                    bbox={"boxstyle": "round", "fc": "#eef3fa", "ec": BLUE})
            if e not in ("0", "—"):
                ax.text(8.0, yy, f"excluded: {e}", ha="center", va="center", color=ORANGE)
            if i < n - 1:
                ax.annotate("", xy=(3.2, yy - 0.62), xytext=(3.2, yy - 0.38), arrowprops={"arrowstyle": "->", "color": GREY})
        return _to_svg(fig, alt)


def curve_plot(x: Sequence[float], estimate: Sequence[float], low: Sequence[float], high: Sequence[float], *,
               xlabel: str, ylabel: str, alt: str, reference: float | None = None,
               reference_label: str = "reference") -> Figure:
    """A curve with its confidence band (dose-response); ``reference`` draws the level the curve is read
    against (e.g. the same patients without treatment), labelled in a legend."""
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 3.0))
        ax.fill_between(x, low, high, color=BLUE, alpha=0.2, lw=0)
        ax.plot(x, estimate, color=BLUE, lw=2, label="with this exposure")
        ax.axhline(0, color=GREY, ls=":", lw=0.8)
        if reference is not None:
            ax.axhline(reference, color=ORANGE, ls="--", lw=1.5, label=reference_label)
            ax.legend(frameon=False, loc="best")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        return _to_svg(fig, alt)
