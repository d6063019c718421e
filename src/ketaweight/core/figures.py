"""The figures of ketaweight: matplotlib plots of plain numbers, for the report and for ``plot()``.

Each function takes plain numbers and returns a :class:`Figure`: the matplotlib figure
(``.figure``, what a notebook user gets from a result's ``plot()``), its alt text, and on demand
accessible inline SVG (``.svg``: a ``<title>`` and ``role="img"``, so the report stays one
self-contained file) or files (``.save``: SVG or PNG).  Text stays text in the SVG
(``svg.fonttype = "none"``) so it scales on a phone and is read by screen readers; labels from data
are never parsed as mathtext (``text.parse_math`` off: a ``$`` in a name is a dollar sign); output is
deterministic (fixed hash salt, no date).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

WIDTH_IN = 4.6
"""Figure width, inches: narrow enough that 11-pt text stays ≥ 10 CSS px when a phone (390 px) shows the
figure at its full width (checked in the browser by the report tests)."""
LABEL_CHARS = 20
"""Axis tick labels wrap at this many characters, so long labels do not widen the figure."""

_RC = {"svg.fonttype": "none", "svg.hashsalt": "ketaweight", "font.size": 11.5, "axes.spines.top": False,
       "axes.spines.right": False, "font.family": "sans-serif", "text.parse_math": False}
BLUE, ORANGE, GREY = "#1f5fa8", "#c0571b", "#666666"
"""Colour-blind-safe pair (blue/orange) plus grey for references."""


class Figure:
    """A matplotlib figure and its alt text (also the SVG's ``<title>``)."""

    def __init__(self, figure: plt.Figure, alt: str) -> None:
        self.figure = figure
        self.alt = alt
        self._svg: str | None = None

    @property
    def svg(self) -> str:
        """Accessible inline SVG (computed once)."""
        if self._svg is None:
            self._svg = _svg_text(self.figure, self.alt)
        return self._svg

    def save(self, path: str | Path) -> Path:
        """Write the figure as SVG or PNG (by the file's suffix)."""
        p = Path(path)
        if p.suffix.lower() == ".svg":
            p.write_text(self.svg, encoding="utf-8")
        elif p.suffix.lower() == ".png":
            with plt.rc_context(_RC):
                self.figure.savefig(p, format="png", dpi=200, bbox_inches="tight", metadata={"Software": None})
        else:
            raise ValueError(f"{p}: a figure is saved as .svg or .png")
        return p

    def close(self) -> None:
        """Free the matplotlib figure (the SVG text, once made, stays)."""
        _ = self.svg
        plt.close(self.figure)

    def _repr_svg_(self) -> str:
        return self.svg


def _wrap(label: str, width: int = LABEL_CHARS) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def _svg_text(fig: plt.Figure, alt: str) -> str:
    buf = io.StringIO()
    with plt.rc_context(_RC):  # the SVG settings (text as text, fixed hash salt) apply when it is written
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    fid = "fig-" + hashlib.sha1((alt + text).encode("utf-8")).hexdigest()[:12]  # stable across runs
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', text, count=1)
    text = text.replace("<svg", f'<svg role="img" aria-labelledby="{fid}-title" class="figure"', 1)
    head_end = text.index(">", text.index("<svg")) + 1
    return text[:head_end] + f'<title id="{fid}-title">{html.escape(alt)}</title>' + text[head_end:]


def _to_svg(fig: plt.Figure, alt: str) -> Figure:
    return Figure(fig, alt)


def forest_plot(labels: Sequence[str], estimates: Sequence[float], lows: Sequence[float], highs: Sequence[float], *,
                unit: str, alt: str, reference: float = 0.0, log: bool = False,
                highlight: Sequence[bool] | None = None) -> Figure:
    """Point estimates with horizontal confidence intervals, one row per label (top to bottom)."""
    n = len(labels)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.55 * n + 1.0))
        y = list(range(n))[::-1]
        for i, (yy, e, lo, hi) in enumerate(zip(y, estimates, lows, highs, strict=True)):
            colour = ORANGE if (highlight and highlight[i]) else BLUE
            ax.plot([lo, hi], [yy, yy], color=colour, lw=2)
            ax.plot([e], [yy], "o", color=colour, ms=6)
        ax.axvline(reference, color=GREY, lw=1, ls="--")
        ax.set_yticks(y, [_wrap(s) for s in labels])
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
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.36 * n + 1.2))
        y = list(range(n))[::-1]
        nan = float("nan")  # an SMD that could not be computed (a constant column) is left out, not drawn at 0
        ax.plot([nan if v is None else abs(v) for v in unweighted], y, "o", mfc="white", color=ORANGE, label="before adjustment")
        ax.plot([nan if v is None else abs(v) for v in weighted], y, "o", color=BLUE, label="after weighting")
        ax.axvline(threshold, color=GREY, ls="--", lw=1, label=f"threshold {threshold:g}")
        ax.set_yticks(y, [_wrap(s) for s in covariates])
        ax.set_xlabel("|standardized mean difference|")
        ax.legend(frameon=False, loc="lower right")
        return _to_svg(fig, alt)


def overlap_plot(quantiles: Sequence[float], treated: Sequence[float], control: Sequence[float], *, alt: str) -> Figure:
    """Mirrored histograms of the propensity score: treated above the axis, untreated below.

    Drawn from the arms' quantiles (the results files hold no per-patient scores and no bin counts):
    between consecutive quantiles lies that share of the arm, so each bar's height is the share over
    the bar's width — a histogram with the quantiles as bin edges.  Bars that face each other mean
    overlap; an arm with nothing opposite it lies outside common support."""
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.2))
        for values, sign, colour, name in ((treated, 1, BLUE, "treated"), (control, -1, ORANGE, "untreated")):
            for (p0, p1), (q0, q1) in zip(zip(quantiles, quantiles[1:]), zip(values, values[1:])):
                width = max(q1 - q0, 1e-3)
                ax.bar(q0, sign * (p1 - p0) / width, width=width, align="edge", color=colour, alpha=0.6,
                       label=name if p0 == quantiles[0] else None)
        ax.axhline(0, color=GREY, lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("propensity score")
        ax.set_ylabel("density (untreated below)")
        ax.legend(frameon=False, loc="upper right")
        return _to_svg(fig, alt)


def attrition_diagram(steps: Sequence[str], remaining: Sequence[str], excluded: Sequence[str], *, alt: str) -> Figure:
    """A flow of boxes: each eligibility step with the patients remaining and excluded (already masked text)."""
    n = len(steps)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.75 * n + 0.3))
        ax.set_axis_off()
        ax.set_xlim(0, 10)
        ax.set_ylim(-0.5, n - 0.3)
        for i, (s, r, e) in enumerate(zip(steps, remaining, excluded, strict=True)):
            yy = n - 1 - i
            ax.text(3.2, yy, f"{_wrap(s, 34)}\n{r} remain", ha="center", va="center",
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
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.2))
        ax.fill_between(x, low, high, color=BLUE, alpha=0.2, lw=0)
        ax.plot(x, estimate, color=BLUE, lw=2, label="with this exposure")
        ax.axhline(0, color=GREY, ls=":", lw=0.8)
        if reference is not None:
            ax.axhline(reference, color=ORANGE, ls="--", lw=1.5, label=reference_label)
            ax.legend(frameon=False, loc="best")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        return _to_svg(fig, alt)


def funnel_plot(estimates: Sequence[float], ses: Sequence[float], null_mean: float, null_sd: float, *, unit: str,
                outcome: tuple[float, float] | None, alt: str) -> Figure:
    """Negative-control estimates against their SE, with the 95% region of no effect with random error only
    (grey, dashed) and with the fitted empirical null (blue): OHDSI's calibration effect plot (network studies)."""
    import numpy as np  # only this figure needs a grid of SEs

    se = np.linspace(0, max(ses) * 1.1 if len(ses) else 1.0, 100)
    half = 1.96 * np.sqrt(null_sd**2 + se**2)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.4))
        ax.fill_betweenx(se, null_mean - half, null_mean + half, color=BLUE, alpha=0.15, lw=0,
                         label="95% of the empirical null")
        ax.plot(-1.96 * se, se, color=GREY, ls="--", lw=1, label="95% with random error only")
        ax.plot(1.96 * se, se, color=GREY, ls="--", lw=1)
        ax.plot(list(estimates), list(ses), "o", color=BLUE, ms=4, label="negative controls")
        if outcome is not None:
            ax.plot([outcome[0]], [outcome[1]], "D", color=ORANGE, ms=7, label="the outcome (uncalibrated)")
        ax.set_ylim(se[-1], 0)
        ax.set_xlabel(f"estimate ({unit})")
        ax.set_ylabel("standard error")
        ax.legend(frameon=False, fontsize=8, loc="lower left")
        return _to_svg(fig, alt)
