"""Sentences of the data-quality family: frames refused from unregistered devices or for
failed authentication."""

from __future__ import annotations

from collections.abc import Callable

from .common import _Ctx, _num
from .labels import Labels

# -- unregistered_device and auth_failure ----------------------------------------------------


def _sample(c: _Ctx, names: object, total: int) -> str:
    shown = [str(n) for n in names][:3] if isinstance(names, list) else []
    if not shown:
        return ""
    if total <= len(shown):
        return c.t("、".join(shown), ", ".join(shown))
    return c.t(f"如{'、'.join(shown)}等", f"e.g. {', '.join(shown)}, ...")


def _count(c: _Ctx, what: str) -> tuple[int, str]:
    """(distinct, "[at least ]N") of `distinct_<what>`."""
    distinct = int(_num(c.ev[f"distinct_{what}"]))
    exact = c.ev.get(f"distinct_{what}_exact", True) is not False
    return distinct, (f"{distinct}" if exact else c.t(f"至少{distinct}", f"at least {distinct}"))


def _window(c: _Ctx) -> str:
    """When the refused frames came: since the first one while open, else first to last."""
    first = c.ev["first_at"]
    if c.open:
        return c.t(f"，自{c.time(first)}起", f", since {c.time(first)}")
    last = c.ev.get("last_at") or c.a.ended_at
    return c.t(f"，时间{c.between(first, last)}", f", {c.between(first, last)}")


def _quiet(c: _Ctx) -> str:
    """The quiet time that closed the anomaly, with the sentence's end."""
    quiet = c.ev.get("quiet_after_s")
    if c.open or quiet is None:
        return c.t("。", ".")
    return c.t(f"；此后{c.dur(quiet)}内未再收到。", f"; none since for {c.dur(quiet)}.")


def _unregistered(c: _Ctx) -> str:
    ev = c.ev
    frames = int(_num(ev["frames"]))
    end = _window(c) + _quiet(c)
    if c.a.subject == "address:*":
        distinct, counted = _count(c, "addresses")
        sample = _sample(c, ev.get("addresses_sample"), distinct)
        most = int(_num(ev["sources_max"]))
        return c.t(
            f"同时有超过{most}个地址发送未登记设备编码的数据：另有{counted}个地址"
            f"{f'（{sample}）' if sample else ''}的{frames}帧数据被拒收{end}",
            f"Refused frames from more than {most} addresses at once: {frames} frame(s) with "
            f"unregistered device numbers from {counted} further address(es)"
            f"{f' ({sample})' if sample else ''}{end}",
        )
    if "address" not in ev:  # the former per-MN form
        mn = ev.get("mn") or c.a.subject.partition(":")[2]
        return c.t(
            f"未登记设备编码{mn}的{frames}帧数据被拒收{end}",
            f"{frames} frame(s) from the unregistered device number {mn} refused{end}",
        )
    distinct, counted = _count(c, "mns")
    sample = _sample(c, ev.get("mns_sample"), distinct)
    address = ev["address"]
    return c.t(
        f"来自{address}的{frames}帧数据因设备编码未登记被拒收，涉及{counted}个不同编码"
        f"{f'（{sample}）' if sample else ''}{end}",
        f"{frames} frame(s) from {address} refused for {counted} unregistered device number(s)"
        f"{f' ({sample})' if sample else ''}{end}",
    )


_REASONS: Labels = {
    "password": {"zh": "访问密码错误", "en": "a wrong password"},
    "decrypt": {
        "zh": "无法用登记的SM4密钥解密",
        "en": "an encrypted part its registered SM4 key does not decrypt",
    },
    "no_key": {
        "zh": "数据加密而该设备未登记SM4密钥",
        "en": "encryption while it has no SM4 key registered",
    },
}


def _auth(c: _Ctx) -> str:
    ev = c.ev
    who = c.head(c.logger(ev["mn"]))
    reason = _REASONS[str(ev["reason"])]["zh" if c.zh else "en"]
    frames = int(_num(ev["frames"]))
    distinct, counted = _count(c, "addresses")
    sample = _sample(c, ev.get("addresses_sample"), distinct)
    accepted = ev.get("last_accepted_at")
    note = ""
    if accepted:
        note = c.t(
            f"；该设备最近一次正常通信于{c.time(accepted)}",
            f"; its last accepted frame came at {c.time(accepted)}",
        )
    sources = ""
    if distinct:
        sources = c.t(
            f"，来自{counted}个地址{f'（{sample}）' if sample else ''}",
            f" from {counted} address(es){f' ({sample})' if sample else ''}",
        )
    text = c.t(
        f"{who}有{frames}帧数据因{reason}被拒收{sources}",
        f"{who}: {frames} frame(s) refused for {reason}{sources}",
    )
    return text + _window(c) + note + _quiet(c)


RENDERERS: dict[str, Callable[[_Ctx], str]] = {
    "unregistered_device": _unregistered,
    "auth_failure": _auth,
}
