"""Charts as SVG text, built server-side with nothing but the standard library: the series that
explain an anomaly, their limits as dashed horizontal lines, the anomaly's time shaded, and a
time axis in Beijing time. A series is drawn as a line broken where values are missing (a gap
of more than twice its usual step), with dots when it has few values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from itertools import pairwise
from statistics import median

from .schemas import BEIJING, SeriesOut

WIDTH = 960
PLOT_HEIGHT = 300
LEFT, RIGHT, TOP = 72, 28, 44
AXIS_SPACE = 56  # below the plot: tick labels and the axis title
LEGEND_ROW = 20
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
SHADE = "#f4b6b6"
FONT = "'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei','PingFang SC',sans-serif"
DOTS_UP_TO = 60  # values per series drawn as dots too
MAX_TICKS = 8

_MINUTE, _HOUR, _DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
_TIME_STEPS = (
    tuple(_MINUTE * m for m in (1, 2, 5, 10, 15, 30))
    + tuple(_HOUR * h for h in (1, 2, 3, 6, 12))
    + tuple(_DAY * d for d in (1, 2, 7, 14, 28))
)

TEXTS = {
    "zh": {
        "axis": "时间(北京时间)",
        "shade": "异常时段",
        "empty": "此时段内没有存储的数值",
        "limit": "限值",
    },
    "en": {
        "axis": "time (Beijing time)",
        "shade": "anomaly",
        "empty": "no values stored in this window",
        "limit": "limit",
    },
}


def _num(value: float) -> str:
    """Coordinates: short and exact enough."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _tick_text(value: float, step: float) -> str:
    """`value` with as many decimals as the step needs."""
    decimals = next((d for d in range(10) if abs(round(step, d) - step) < step * 1e-6), 10)
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def _nice_step(span: float, count: int = 5) -> float:
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _y_range(series: Sequence[SeriesOut]) -> tuple[float, float, float]:
    """(low, high, tick step) covering every value and limit."""
    values = [v for s in series for _, v in s.points if math.isfinite(v)]
    values += [s.limit for s in series if s.limit is not None and math.isfinite(s.limit)]
    if not values:
        return 0.0, 1.0, 0.2
    low, high = min(values), max(values)
    if low > 0 and (low <= high - low or high == low):
        low = 0.0  # amounts from zero, unless the values sit far above it
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    high += (high - low) * 0.04  # room above the highest value or limit
    if not math.isfinite(high - low):
        return low, high, high / 2 - low / 2
    step = _nice_step(high - low)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _time_ticks(start: datetime, end: datetime) -> tuple[list[datetime], timedelta]:
    span = end - start
    step = next((s for s in _TIME_STEPS if span / s <= MAX_TICKS), _TIME_STEPS[-1])
    local = start.astimezone(BEIJING)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight + step * math.ceil((local - midnight) / step)
    ticks = []
    moment = first
    while moment <= end:
        ticks.append(moment)
        moment += step
    return ticks, step


def _segments(points: Sequence[tuple[datetime, float]], bucket_s: int | None) -> list[list[int]]:
    """Indexes of the points, split where values are missing."""
    usable = [i for i, (_, v) in enumerate(points) if math.isfinite(v)]
    if not usable:
        return []
    deltas = [(points[b][0] - points[a][0]).total_seconds() for a, b in pairwise(usable)]
    usual = bucket_s or (median(deltas) if deltas else 0)
    out = [[usable[0]]]
    for index, delta in zip(usable[1:], deltas, strict=True):
        if usual and delta > 2 * usual:
            out.append([index])
        else:
            out[-1].append(index)
    return out


def chart(
    series: Sequence[SeriesOut],
    start: datetime,
    end: datetime,
    *,
    shade: tuple[datetime, datetime | None] | None = None,
    title: str = "",
    lang: str = "zh",
) -> str:
    """The `<svg>` element (no XML declaration: it is inlined in HTML as it is) of `series`
    over [start, end); `shade` is the anomaly's time (an open end: to the end of the chart)."""
    texts = TEXTS.get(lang, TEXTS["zh"])
    shown = list(series)
    legend_rows = len(shown) + sum(1 for s in shown if s.limit is not None)
    height = TOP + PLOT_HEIGHT + AXIS_SPACE + LEGEND_ROW * max(legend_rows, 1) + 8
    plot_w = WIDTH - LEFT - RIGHT
    bottom = TOP + PLOT_HEIGHT
    span_s = max((end - start).total_seconds(), 1.0)
    low, high, y_step = _y_range(shown)

    def x(moment: datetime) -> float:
        return LEFT + (moment - start).total_seconds() / span_s * plot_w

    def y(value: float) -> float:
        return bottom - (value / 2 - low / 2) / (high / 2 - low / 2) * PLOT_HEIGHT

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" font-family="{FONT}" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    if title:
        out.append(
            f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>'
        )
    if shade is not None:
        begin = max(shade[0], start)
        finish = min(shade[1] or end, end)
        if finish >= begin:
            left, right = x(begin), x(finish)
            out.append(
                f'<rect x="{_num(left)}" y="{TOP}" width="{_num(max(right - left, 2.0))}" '
                f'height="{PLOT_HEIGHT}" fill="{SHADE}" fill-opacity="0.45"/>'
            )
            out.append(
                f'<text x="{_num(left + 4)}" y="{TOP + 14}" fill="#a33">'
                f"{escape(texts['shade'])}</text>"
            )
    # the value grid and axis
    for k in range(min(round(high / y_step - low / y_step), 20) + 1):
        tick = low + k * y_step
        at = y(tick)
        out.append(
            f'<line x1="{LEFT}" y1="{_num(at)}" x2="{LEFT + plot_w}" y2="{_num(at)}" '
            'stroke="#e3e3e3"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{_num(at + 4)}" text-anchor="end">'
            f"{escape(_tick_text(tick, y_step))}</text>"
        )
    units = {s.unit for s in shown if s.unit}
    if len(units) == 1:
        out.append(
            f'<text x="{LEFT - 6}" y="{TOP - 8}" text-anchor="end">{escape(units.pop())}</text>'
        )
    # the time axis, in Beijing time
    ticks, t_step = _time_ticks(start, end)
    last_day = None
    for moment in ticks:
        at = x(moment)
        local = moment.astimezone(BEIJING)
        out.append(
            f'<line x1="{_num(at)}" y1="{TOP}" x2="{_num(at)}" y2="{bottom}" stroke="#f0f0f0"/>'
        )
        out.append(
            f'<line x1="{_num(at)}" y1="{bottom}" x2="{_num(at)}" y2="{bottom + 5}" stroke="#555"/>'
        )
        if t_step >= _DAY:
            label, day = f"{local:%m-%d}", None
        else:
            label, day = f"{local:%H:%M}", f"{local:%m-%d}"
        out.append(f'<text x="{_num(at)}" y="{bottom + 18}" text-anchor="middle">{label}</text>')
        if day is not None and day != last_day:
            out.append(
                f'<text x="{_num(at)}" y="{bottom + 32}" text-anchor="middle" '
                f'fill="#555">{day}</text>'
            )
            last_day = day
    out.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{bottom + 48}" text-anchor="middle" '
        f'fill="#333">{escape(texts["axis"])}</text>'
    )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{PLOT_HEIGHT}" fill="none" '
        'stroke="#555"/>'
    )
    # limits, then the values
    for n, s in enumerate(shown):
        color = COLORS[n % len(COLORS)]
        if s.limit is not None and math.isfinite(s.limit):
            at = y(s.limit)
            out.append(
                f'<line x1="{LEFT}" y1="{_num(at)}" x2="{LEFT + plot_w}" y2="{_num(at)}" '
                f'stroke="{color}" stroke-width="1.5" stroke-dasharray="6 4"/>'
            )
            label = s.limit_label or f"{texts['limit']} {s.limit:g}"
            out.append(
                f'<text x="{LEFT + plot_w - 4}" y="{_num(at - 4)}" text-anchor="end" '
                f'fill="{color}">{escape(label)}</text>'
            )
    for n, s in enumerate(shown):
        color = COLORS[n % len(COLORS)]
        for segment in _segments(s.points, s.bucket_s):
            coords = " ".join(
                f"{_num(x(s.points[i][0]))},{_num(y(s.points[i][1]))}" for i in segment
            )
            if len(segment) > 1:
                out.append(
                    f'<polyline points="{coords}" fill="none" stroke="{color}" '
                    'stroke-width="2" stroke-linejoin="round"/>'
                )
            if len(segment) == 1 or len(s.points) <= DOTS_UP_TO:
                for i in segment:
                    px, py = x(s.points[i][0]), y(s.points[i][1])
                    out.append(f'<circle cx="{_num(px)}" cy="{_num(py)}" r="2.5" fill="{color}"/>')
    if not any(s.points for s in shown):
        out.append(
            f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + PLOT_HEIGHT * 0.3:.0f}" '
            f'text-anchor="middle" fill="#777" font-size="14">{escape(texts["empty"])}</text>'
        )
    # the legend
    row_y = bottom + AXIS_SPACE + 12
    for n, s in enumerate(shown):
        color = COLORS[n % len(COLORS)]
        name = s.label + (f" ({s.unit})" if s.unit else "")
        out.append(
            f'<line x1="{LEFT}" y1="{row_y - 4}" x2="{LEFT + 24}" y2="{row_y - 4}" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        out.append(f'<text x="{LEFT + 30}" y="{row_y}">{escape(name)}</text>')
        row_y += LEGEND_ROW
        if s.limit is not None:
            out.append(
                f'<line x1="{LEFT}" y1="{row_y - 4}" x2="{LEFT + 24}" y2="{row_y - 4}" '
                f'stroke="{color}" stroke-width="1.5" stroke-dasharray="6 4"/>'
            )
            label = s.limit_label or f"{texts['limit']} {s.limit:g}"
            out.append(f'<text x="{LEFT + 30}" y="{row_y}">{escape(label)}</text>')
            row_y += LEGEND_ROW
    out.append("</svg>")
    return "\n".join(out)
