"""Charts drawn on the server as inline SVG: no script, readable by screen readers.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>``
saying what it shows; the page puts the same numbers in a table next to it
(the fallback for people who cannot see the drawing). Bars carry their value
in a ``<title>`` so pointing at one shows it.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from html import escape

from markupsafe import Markup

__all__ = ["bar_chart", "daily_counts", "progress_bar"]

_W, _H = 960, 220
_LEFT, _BOTTOM, _TOP = 36, 24, 12
_ids = itertools.count(1)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_BAR = 56.0


def daily_counts(moments: Iterable[datetime], last_day: date, days: int) -> list[tuple[str, int]]:
    """How many ``moments`` fall on each of the ``days`` days up to ``last_day`` (UTC dates)."""
    counts = Counter(m.date() for m in moments)
    first = last_day - timedelta(days=days - 1)
    return [
        ((first + timedelta(days=i)).isoformat(), counts.get(first + timedelta(days=i), 0))
        for i in range(days)
    ]


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if top * step >= value:
                return top * step
        top *= 10


def _short(label: str) -> str:
    """Axis text: ``MM-DD`` for ISO dates, else the label cut to fit."""
    if _ISO_DATE.fullmatch(label):
        return label[5:]
    return label if len(label) <= 24 else label[:23] + "…"


def bar_chart(title: str, description: str, points: Sequence[tuple[str, int]]) -> Markup:
    """A bar chart of labelled counts (labels are shown under every few bars)."""
    chart_id = f"chart-{next(_ids)}"
    top = _nice_max(max((v for _, v in points), default=0) or 1)
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    slot = plot_w / max(len(points), 1)
    bar_w = min(max(slot * 0.7, 1.0), _MAX_BAR)
    every = max(1, len(points) // 6)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(description)}</desc>',
    ]
    # a middle tick only where it is a whole number
    for fraction in (0, 0.5, 1) if top >= 2 else (0, 1):
        y = _TOP + plot_h * (1 - fraction)
        tick = int(top * fraction)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - 8}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for i, (label, value) in enumerate(points):
        x = _LEFT + i * slot + (slot - bar_w) / 2
        h = plot_h * value / top
        y = _TOP + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{_H - 6}" '
                f'text-anchor="middle">{escape(_short(label))}</text>'
            )
    if not any(v for _, v in points):
        parts.append(
            f'<text class="none" x="{_LEFT + plot_w / 2:.1f}" y="{_TOP + plot_h / 2:.1f}" '
            'text-anchor="middle">Nothing in this period</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def progress_bar(title: str, percent: float) -> Markup:
    """A horizontal progress bar (progressive releases), labelled with its percentage."""
    chart_id = f"chart-{next(_ids)}"
    shown = max(0.0, min(100.0, percent))
    return Markup(  # noqa: S704 - the title is escaped, the rest are numbers
        f'<svg class="progress" viewBox="0 0 200 16" role="img" aria-labelledby="{chart_id}-t">'
        f'<title id="{chart_id}-t">{escape(title)}: {shown:.0f}%</title>'
        f'<rect class="track" x="0" y="0" width="200" height="16" rx="8"/>'
        f'<rect class="fill" x="0" y="0" width="{2 * shown:.1f}" height="16" rx="8"/>'
        f"</svg>"
    )
