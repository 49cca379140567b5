"""Small server-side SVG charts: no JavaScript, nothing fetched, readable by screen readers via <title>."""

from __future__ import annotations

from markupsafe import Markup, escape

from api.schemas.customers import ScorePoint
from api.schemas.metrics import MetricGroup

WIDTH, HEIGHT, PAD = 480, 160, 28


def _svg(label: str, body: list[str]) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
                  f'<title>{escape(label)}</title>{"".join(body)}</svg>')


def score_history(scores: list[ScorePoint]) -> Markup | None:
    """NPS answers (0–10) oldest to newest as a line; None when there are none."""
    points = [(s.at, s.nps) for s in reversed(scores) if s.nps is not None]
    if not points:
        return None
    step = (WIDTH - 2 * PAD) / max(1, len(points) - 1)

    def y(value: float) -> float:
        return HEIGHT - PAD - value / 10 * (HEIGHT - 2 * PAD)

    xy = [(PAD + i * step, y(nps)) for i, (_, nps) in enumerate(points)]
    body = [f'<line class="axis" x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="tick" x="4" y="{y(v) + 4:.1f}">{v}</text>' for v in (0, 5, 10)]
    body.append('<polyline class="line" points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in xy) + '"/>')
    body += [f'<circle class="dot" cx="{a:.1f}" cy="{b:.1f}" r="4"><title>{at:%Y-%m-%d}: NPS {nps}</title></circle>'
             for (a, b), (at, nps) in zip(xy, points)]
    return _svg(f"NPS answers over time, latest {points[-1][1]}", body)


def metric_bars(groups: list[MetricGroup], lowest: float, highest: float, unit: str) -> Markup | None:
    """One bar per period with its 95 % margin of error as a whisker; None when there are no groups."""
    if not groups:
        return None
    span = highest - lowest
    slot = (WIDTH - 2 * PAD) / len(groups)

    def y(value: float) -> float:
        return HEIGHT - PAD - (min(highest, max(lowest, value)) - lowest) / span * (HEIGHT - 2 * PAD)

    zero = y(max(lowest, 0))
    body = [f'<line class="axis" x1="{PAD}" x2="{WIDTH - PAD}" y1="{zero:.1f}" y2="{zero:.1f}"/>']
    for i, g in enumerate(groups):
        x = PAD + i * slot + slot * 0.2
        top, width = min(y(g.value), zero), slot * 0.6
        label = f"{g.period}: {g.value:.1f} {unit} ± {g.margin_of_error:.1f} (n={g.n})"
        mid = x + width / 2
        body.append(f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" '
                    f'height="{abs(zero - y(g.value)):.1f}"><title>{escape(label)}</title></rect>'
                    f'<line class="whisker" x1="{mid:.1f}" x2="{mid:.1f}" '
                    f'y1="{y(g.ci_low):.1f}" y2="{y(g.ci_high):.1f}"/>'
                    f'<text class="tick" x="{mid:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(g.period)}</text>')
    return _svg(f"{unit} by period with 95 % margins of error", body)
