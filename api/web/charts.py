"""Small server-side SVG charts: no JavaScript, nothing fetched, readable by screen readers via <title>;
a bar that leads somewhere is an SVG link, so it is clicked (or reached with Tab) like any link."""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup, escape

from api.schemas.customers import ScorePoint
from api.schemas.metrics import MetricGroup

WIDTH, HEIGHT, PAD = 480, 160, 28
SERIES = 8
"""Segments get one of this many colours (``.s0``–``.s7`` in the stylesheet), in order."""


def _svg(label: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
                  f'<title>{escape(label)}</title>{"".join(body)}</svg>')


def _linked(shape: str, href: str | None, label: str) -> str:
    if href is None:
        return shape
    return f'<a href="{escape(href)}" aria-label="{escape(label)}">{shape}</a>'


def score_history(scores: list[ScorePoint], field: str, lowest: int, highest: int) -> Markup | None:
    """One score (``nps`` 0–10, ``csat`` 1–5, ``ces`` 1–7) oldest to newest as a line; None when never answered."""
    name = field.upper()
    points = [(s.at, getattr(s, field)) for s in reversed(scores) if getattr(s, field) is not None]
    if not points:
        return None
    step = (WIDTH - 2 * PAD) / max(1, len(points) - 1)

    def y(value: float) -> float:
        return HEIGHT - PAD - (value - lowest) / (highest - lowest) * (HEIGHT - 2 * PAD)

    xy = [(PAD + i * step, y(value)) for i, (_, value) in enumerate(points)]
    ticks = (lowest, (lowest + highest) // 2, highest)
    body = [f'<line class="axis" x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="tick" x="4" y="{y(v) + 4:.1f}">{v}</text>' for v in ticks]
    body.append('<polyline class="line" points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in xy) + '"/>')
    body += [f'<circle class="dot" cx="{a:.1f}" cy="{b:.1f}" r="4"><title>{at:%Y-%m-%d}: {name} {value}</title></circle>'
             for (a, b), (at, value) in zip(xy, points)]
    body.append(f'<text class="tick" x="{PAD}" y="{HEIGHT - 6}">{points[0][0]:%Y-%m-%d}</text>'
                f'<text class="tick" x="{WIDTH - PAD}" y="{HEIGHT - 6}" text-anchor="end">{points[-1][0]:%Y-%m-%d}</text>')
    return _svg(f"{name} answers over time ({len(points)}), latest {points[-1][1]}", body)


def metric_bars(groups: list[MetricGroup], lowest: float, highest: float, unit: str,
                link: Callable[[MetricGroup], str] | None = None) -> Markup | None:
    """One slot per period, one bar per segment in it, each with its 95 % margin as a whisker and
    linked to ``link(group)``; None when there are no groups."""
    if not groups:
        return None
    periods = list(dict.fromkeys(g.period for g in groups))
    segments = list(dict.fromkeys(g.segment for g in groups))
    span = highest - lowest
    slot = (WIDTH - 2 * PAD) / len(periods)
    width = slot * 0.7 / len(segments)

    def y(value: float) -> float:
        return HEIGHT - PAD - (min(highest, max(lowest, value)) - lowest) / span * (HEIGHT - 2 * PAD)

    zero = y(max(lowest, 0))
    body = [f'<line class="axis" x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="tick" x="2" y="{y(v) + 4:.1f}">{v:g}</text>' for v in (lowest, highest)]
    if lowest < 0 < highest:
        body.append(f'<line class="axis zero" x1="{PAD}" x2="{WIDTH - PAD}" y1="{zero:.1f}" y2="{zero:.1f}"/>')
    every = -(-len(periods) // 6)  # at most 6 period labels, so they never overlap
    for p, period in enumerate(periods):
        if p % every == 0:
            body.append(f'<text class="tick" x="{PAD + (p + 0.5) * slot:.1f}" y="{HEIGHT - 8}" '
                        f'text-anchor="middle">{escape(period)}</text>')
    for g in groups:
        x = PAD + periods.index(g.period) * slot + slot * 0.15 + segments.index(g.segment) * width
        mid = x + width / 2
        label = (f"{g.period}{' · ' + g.segment if g.segment is not None else ''}: {g.value:.1f} {unit} "
                 f"± {g.margin_of_error:.1f} (n={g.n})")
        bar = (f'<rect class="bar s{segments.index(g.segment) % SERIES}" x="{x:.1f}" y="{min(y(g.value), zero):.1f}" '
               f'width="{max(width - 1, 1):.1f}" height="{max(abs(zero - y(g.value)), 1):.1f}">'
               f'<title>{escape(label)}</title></rect>'
               f'<line class="whisker" x1="{mid:.1f}" x2="{mid:.1f}" y1="{y(g.ci_low):.1f}" y2="{y(g.ci_high):.1f}"/>')
        body.append(_linked(bar, link(g) if link else None, label))
    return _svg(f"{unit} by period with 95 % margins of error", body)


def sentiment_bars(groups, labels: tuple[str, ...], link: Callable[[str, str], str]) -> Markup | None:
    """One horizontal bar per group (``SentimentGroup``), split by sentiment label; each part links
    to ``link(group, label)``. None when there are no groups."""
    if not groups:
        return None
    row, left = 26, 110
    height = row * len(groups) + 8
    body = []
    for i, g in enumerate(groups):
        top = 4 + i * row
        body.append(f'<text class="tick label" x="{left - 6}" y="{top + 15}" text-anchor="end">'
                    f'{escape(g.group)} ({g.n})</text>')
        x = float(left)
        for label in labels:
            share = g.share(label)
            if not share:
                continue
            width = share / 100 * (WIDTH - left - 8)
            text = f"{g.group}: {share:.0f} % {label} of {g.n}"
            part = (f'<rect class="part sent-{label}" x="{x:.1f}" y="{top}" width="{width:.1f}" height="{row - 6}">'
                    f'<title>{escape(text)}</title></rect>')
            if width > 34:
                part += (f'<text class="in" x="{x + width / 2:.1f}" y="{top + 15}" '
                         f'text-anchor="middle">{share:.0f} %</text>')
            body.append(_linked(part, link(g.group, label), text))
            x += width
    return _svg("Sentiment shares per group", body, height=height)
