"""Shared style of every bayesln figure: the backend rule, fonts, colours, text measuring
and the plain-number ratio axis.

Headless (Agg) by default - the command line writes figures into run folders - but a
backend the user or Jupyter chose through ``MPLBACKEND`` is kept (ipykernel sets it to
the inline backend; forcing Agg there would hide every figure).
"""

from __future__ import annotations

import math
import os
import textwrap

import matplotlib

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "COLORS",
    "FLAG",
    "FONT",
    "FONT_MIN",
    "SOURCE_COLORS",
    "SOURCE_MARKERS",
    "display_treatment",
    "favours_labels",
    "new_figure",
    "plt",
    "ratio_axis",
    "text_width",
    "wrap",
]

#: base and smallest font size (points) of the journal-width figures
FONT, FONT_MIN = 8.0, 7.0
#: journal full-page width (inches): 180 mm
JOURNAL_WIDTH = 7.0
FLAG = "#c0392b"
COLORS = {
    "study": "0.25", "shrunken": "#1f5fa8", "bayes": "#1f5fa8", "fixed": "#8c2d04", "random": "#1b7837",
    "published": "#e66101", "recomputed": "#4d9221", "frequentist": "0.35", "grid": "0.85",
}
#: colour and marker of each comparison-table source (colour is never the only encoding)
SOURCE_COLORS = {"bayesian": COLORS["bayes"], "frequentist": COLORS["frequentist"],
                 "published": COLORS["published"], "recomputed": COLORS["recomputed"]}
SOURCE_MARKERS = {"bayesian": "o", "frequentist": "s", "published": "D", "recomputed": "^"}


def new_figure(width: float, height: float, layout: str = "none"):
    """A figure outside pyplot's registry (no global state: nothing accumulates, nothing
    needs closing; Jupyter displays a returned figure, ``fig.savefig`` writes it) with an
    Agg canvas, so ``fig.canvas.draw()`` renders it whatever the backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


_TTP = None


def text_width(s: str, size: float, weight: str = "normal") -> float:
    """Width in inches of ``s`` (widest line) at ``size`` points in the default font,
    measured from the glyph outlines (independent of backend and dpi), with 4% slack
    for hinting differences between PNG and SVG."""
    global _TTP
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    if _TTP is None:
        _TTP = TextToPath()
    prop = FontProperties(size=size, weight=weight)
    widths = [_TTP.get_text_width_height_descent(line, prop, ismath=False)[0] if line else 0.0
              for line in str(s).split("\n")]
    return 1.04 * max(widths + [0.0]) / 72.0


def wrap(s: str, width_in: float, size: float, weight: str = "normal") -> str:
    """``s`` wrapped so that no line is wider than ``width_in`` inches at ``size`` points."""
    out = []
    for para in str(s).split("\n"):
        chars = max(int(len(para) * width_in / max(text_width(para, size, weight), 1e-9)), 10) if para else 10
        while True:
            lines = textwrap.wrap(para, chars, break_long_words=True, break_on_hyphens=False) or [""]
            if all(text_width(line, size, weight) <= width_in for line in lines) or chars <= 10:
                break
            chars -= 2
        out.extend(lines)
    return "\n".join(out)


def ratio_axis(ax, lo: float | None = None, hi: float | None = None, max_ticks: int = 7) -> None:
    """Plain-number ticks (0.5, 1, 2, ...) on a log ratio axis: the densest 'nice' set with
    at most ``max_ticks`` ticks inside (lo, hi) (default: the axis limits). matplotlib's
    own labels overlap ("1.1x10^0 1.2x10^0 ...") when the range lies within one decade."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if lo is None or hi is None:
        lo, hi = ax.get_xlim()
    e_lo, e_hi = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    ticks: list[float] = [1.0]
    for mant in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        cand = sorted({round(m * 10.0**e, 10) for e in range(e_lo, e_hi + 1) for m in mant})
        inside = [t for t in cand if lo <= t <= hi]
        if len(inside) > max_ticks:
            break
        if inside:
            ticks = inside
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def display_treatment(label) -> str:
    """A treatment label as printed: short lower-case codes (tac, mmf, ivcy) in capitals,
    anything else as the user wrote it."""
    s = str(label).strip()
    if s and s.islower() and s.replace("_", "").isalnum() and len(s) <= 5:
        return s.upper()
    return s


def favours_labels(treat: str, control: str, direction: str | None) -> tuple[str, str]:
    """(left, right) labels under an effect axis whose right side is 'more events on
    ``treat``': a benefit outcome (response) favours the treatment on the right, a harm
    (adverse event) on the left. Without a known direction the sides are described,
    not judged."""
    if direction == "benefit":
        return f"Favours {control}", f"Favours {treat}"
    if direction == "harm":
        return f"Favours {treat}", f"Favours {control}"
    return f"Fewer events on {treat}", f"More events on {treat}"


def finite(*xs) -> bool:
    return all(x is not None and np.isfinite(float(x)) for x in xs)
