"""Sentences of the data-gaps family: a device offline, hourly records missing, transmission or
validity rates too low."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from .common import HOUR, _Ctx, _fmt, _num, _when, format_time

# -- device_offline ------------------------------------------------------------------------


def _offline(c: _Ctx) -> str:
    ev = c.ev
    who = c.head(c.device(c.a.subject))
    if not c.open:
        lasted = c.dur(ev["silence_s"])
        return c.t(
            f"{who}自{c.start()}至{c.end()}离线{lasted}，已恢复通信。",
            f"{who} was silent for {lasted}, from {c.start()} until {c.end()}, and has been "
            "heard from again.",
        )
    last = c.time(ev["last_contact"])
    silence = c.dur(ev["silence_s"])
    threshold = c.dur(ev["threshold_s"])
    as_of = format_time(c.a.as_of) if c.a.as_of is not None else None
    never = ev.get("never_seen") is True
    alarm = c.a.severity == "alarm"
    if c.zh:
        text = f"{who}自{last}起未发送任何数据"
        text += "（网关启动以来从未收到）" if never else ""
        text += f"，截至{as_of}已{silence}" if as_of else f"，已{silence}"
        quiet = ev.get("quiet_hours")
        if isinstance(quiet, list) and quiet:
            text += f"（离线判定阈值{threshold}，不计{'、'.join(map(str, quiet))}的正常静默时段）"
        else:
            text += f"（离线判定阈值{threshold}）"
        return text + ("，已达报警级别。" if alarm else "。")
    text = f"{who} has sent nothing since {last}"
    text += " (never heard from since the gateway started)" if never else ""
    text += f"; silent for {silence}" + (f" as of {as_of}" if as_of else "")
    quiet = ev.get("quiet_hours")
    if isinstance(quiet, list) and quiet:
        text += (
            f" (threshold {threshold}, not counting the quiet hours {', '.join(map(str, quiet))})"
        )
    else:
        text += f" (threshold {threshold})"
    return text + ("; now an alarm." if alarm else ".")


# -- low_transmission -----------------------------------------------------------------------


def _low_transmission(c: _Ctx) -> str:
    ev = c.ev
    who = c.head(c.logger(ev["mn"]))
    monthly = ev.get("period") == "month"
    label = str(ev["period_label"])
    span = c.t(f"（{c.start()}至{c.end()}）", f" ({c.start()} to {c.end()})")
    when = c.t(f"{label}月" if monthly else label, label) + span
    keys = ("expected_hours", "received_hours", "valid_hours")
    expected, received, valid = (int(_num(ev[k])) for k in keys)
    rate = _fmt(_num(ev["transmission_rate"]) * 100, 1)
    validity = _fmt(_num(ev["validity_rate"]) * 100, 1)
    need_t = _fmt(_num(ev["min_transmission"]) * 100, 0)
    need_v = _fmt(_num(ev["min_validity"]) * 100, 0)
    stopped = int(_num(ev.get("stopped_hours", 0)))
    stopped_zh = f"，停运{stopped}小时不计" if stopped else ""
    stopped_en = f"; {stopped} stopped hours not counted" if stopped else ""
    return c.t(
        f"{who}{when}传输率{rate}%（应报{expected}小时，实报{received}小时），有效率{validity}%"
        f"（有效{valid}小时{stopped_zh}），低于要求（传输率{need_t}%、有效率{need_v}%）。",
        f"{who}, {when}: transmission {rate} % ({received} of {expected} hours), validity "
        f"{validity} % ({valid} valid hours{stopped_en}), under the required {need_t} % and "
        f"{need_v} %.",
    )


# -- data_gap -------------------------------------------------------------------------------


_RECORDS = {
    "hour": ("小时数据", "hourly record"),
    "minute": ("分钟数据", "minute record"),
    "day": ("日数据", "daily record"),
}


def _hours(c: _Ctx, begin: datetime, count: int, step: timedelta = HOUR) -> str:
    """The missing records: hourly ones, or minute or daily ones (`c.ev["interval"]`)."""
    zh, en = _RECORDS.get(str(c.ev.get("interval", "hour")), _RECORDS["hour"])
    daily = step >= timedelta(days=1)
    show = (lambda t: format_time(t)[:10]) if daily else format_time  # Beijing dates
    if count <= 1:
        return c.t(f"{show(begin)}的{zh}", f"{en} of {show(begin)}")
    last = show(begin + step * (count - 1))
    return c.t(
        f"{show(begin)}至{last}共{count}条{zh}",
        f"{count} {en}s, {show(begin)} to {last}",
    )


def _data_gap(c: _Ctx) -> str:
    ev = c.ev
    who = c.head(c.logger(ev["mn"]))
    begin = _when(ev["missing_from"])
    count = int(_num(ev.get("missing_records", ev.get("missing_hours"))))
    step = (_when(ev["missing_until"]) - begin) / count if count else HOUR
    hours = _hours(c, begin, count, step)
    filled = ev.get("filled") or []
    if not c.open:
        if ev.get("closed_as") == "backfilled":
            arrived = (
                f"the missing {hours} has arrived"
                if count <= 1
                else f"the missing {hours}, have all arrived"
            )
            return c.t(f"{who}缺失的{hours}已全部补传到达。", f"{who}: {arrived} (back-filled).")
        return c.t(
            f"{who}缺失{hours}，已于{c.end()}结束。",
            f"{who} missed {hours if count > 1 else 'the ' + hours}; ended {c.end()}.",
        )
    notes: list[str] = []
    if ev.get("seen_by") == "overdue":
        due = ev.get("due_after_s")
        late = c.dur(due) if due is not None else ""
        notes.append(
            c.t(
                f"超过应报时间{late}仍未收到" if late else "超过应报时间仍未收到",
                f"overdue by more than {late} on the device's clock" if late else "overdue",
            )
        )
    if ev.get("first_after"):
        after = c.time(ev["first_after"])
        notes.append(c.t(f"其后{after}的数据已到达", f"the record of {after} has arrived"))
    why = c.t(f"（{'，'.join(notes)}）", f" ({'; '.join(notes)})") if notes else ""
    missing = hours if count > 1 else f"the {hours}"
    text = c.t(f"{who}缺失{hours}{why}", f"{who} is missing {missing}{why}")
    if isinstance(filled, list) and filled:
        text += c.t(
            f"，已补传到达{len(filled)}条，仍缺{count - len(filled)}条",
            f"; {len(filled)} arrived since, {count - len(filled)} still missing",
        )
    requested = ev.get("backfill_requested")
    if requested is True:
        text += c.t("，已请求设备补传", "; back-fill requested")
    elif requested is False:
        text += c.t("，未发出补传请求", "; no back-fill request sent")
    return text + c.t("。", ".")


RENDERERS: dict[str, Callable[[_Ctx], str]] = {
    "device_offline": _offline,
    "data_gap": _data_gap,
    "low_transmission": _low_transmission,
}
