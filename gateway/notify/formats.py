"""The bodies, headers and addresses of deliveries, per channel kind, and whether an answer
means delivered. Pure: the caller gives the time of sending and the secret.

- `webhook`: the notice as JSON (event, id, Chinese summary, link, the anomaly or the case as
  the API shows it; times ISO 8601 with offsets), signed with HMAC-SHA256 over
  ``<timestamp>.<body>`` (`X-Gateway-Signature: sha256=<hex>`, `X-Gateway-Timestamp` in Unix
  seconds) when the channel has a secret; `X-Gateway-Delivery` is the notice id, the
  receiver's idempotency key. Any 2xx answer is a delivery.
- `wecom` (企业微信群机器人): ``{"msgtype": "markdown", "markdown": {"content": ...}}``, the
  content at most 4096 bytes of UTF-8.
- `dingtalk` (钉钉自定义机器人): ``{"msgtype": "markdown", "markdown": {"title", "text"}}``,
  the text at most 4096 bytes; with a secret (加签) the address gets ``&timestamp=<ms>&sign=``
  the URL-encoded base64 of HMAC-SHA256(secret, ``<ms>\\n<secret>``).

Robots answer HTTP 200 with ``{"errcode": 0, ...}``; another errcode is a failed delivery.
Texts are Chinese, their times Beijing time (``2026-03-10 14:00``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from ..anomalies.messages import format_time, severity_label, state_label, type_label
from ..cases.model import STATE_LABELS
from .config import Kind, NoticeEvent
from .notices import Notice

ROBOT_MAX_BYTES = 4096
_ELLIPSIS = "…"

HEADINGS: dict[NoticeEvent, str] = {
    "anomaly_opened": "新异常",
    "anomaly_escalated": "异常升级为报警",
    "case_overdue": "案件超期",
    "case_unsigned": "案件超时未签收",
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP POST."""

    url: str
    headers: dict[str, str]
    body: bytes


def link(notice: Notice, link_base: str) -> str:
    """The page's address opening the notice's anomaly (with its case, 处置)."""
    base = link_base.split("#", 1)[0]
    return f"{base}#anomaly={quote(notice.anchor, safe='')}" if notice.anchor else base


def title(notice: Notice) -> str:
    """e.g. 【新异常】超标排放 · 测试厂"""
    what = " / ".join(type_label(t) for t in notice.types) if notice.anomaly else ""
    if notice.case is not None:
        what = f"案件 {notice.case['id']}"
    return f"【{HEADINGS[notice.event]}】{what} · {notice.enterprise_name}"


def facts(notice: Notice) -> list[tuple[str, str]]:
    """(label, value) lines the robots show above the summary."""
    who = notice.enterprise_name
    if notice.enterprise and notice.enterprise != who:
        who = f"{who}（{notice.enterprise}）"
    out = [("企业", who)]
    if notice.anomaly is not None:
        a = notice.anomaly
        out += [
            ("类型", type_label(a["type"])),
            ("级别", severity_label(a["severity"])),
            ("开始", format_time(a["started_at"])),
            ("状态", state_label(a["state"])),
        ]
    if notice.case is not None:
        c = notice.case
        out += [("状态", STATE_LABELS[c["state"]]), ("立案", format_time(c["opened_at"]))]
        if c.get("deadline"):
            out.append(("期限", format_time(c["deadline"])))
        if c.get("assignee"):
            out.append(("核查人", c["assignee"]))
    return out


def webhook_body(notice: Notice, link_base: str) -> bytes:
    body: dict[str, Any] = {
        "event": notice.event,
        "id": notice.id,
        "at": notice.at.isoformat(),
        "level": notice.level,
        "enterprise": notice.enterprise,
        "enterprise_name": notice.enterprise_name,
        "severity": notice.severity,
        "types": list(notice.types),
        "title": title(notice),
        "summary": notice.summary,
        "link": link(notice, link_base),
        "anomaly": notice.anomaly,
        "case": notice.case,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def webhook_signature(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>``."""
    mac = hmac.new(secret, str(timestamp_s).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_headers(
    notice: Notice, body: bytes, secret: bytes | None, timestamp_s: int
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Gateway-Event": notice.event,
        "X-Gateway-Delivery": notice.id,
        "X-Gateway-Timestamp": str(timestamp_s),
    }
    if secret is not None:
        headers["X-Gateway-Signature"] = webhook_signature(secret, timestamp_s, body)
    return headers


def _fit(head: str, text: str, tail: str, limit: int = ROBOT_MAX_BYTES) -> str:
    """head + text + tail within `limit` bytes of UTF-8, cutting `text` (never the link)."""
    room = limit - len((head + tail).encode())
    if len(text.encode()) <= room:
        return head + text + tail
    cut = text.encode()[: max(0, room - len(_ELLIPSIS.encode()))].decode(errors="ignore")
    return head + cut + _ELLIPSIS + tail


def wecom_content(notice: Notice, link_base: str) -> str:
    colour = "warning" if notice.severity == "alarm" else "comment"
    lines = [f"**{title(notice)}**"]
    for label, value in facts(notice):
        if label == "级别":
            value = f'<font color="{colour}">{value}</font>'
        lines.append(f"> {label}：{value}")
    head = "\n".join(lines) + "\n\n"
    tail = f"\n\n[在工作台查看]({link(notice, link_base)})"
    return _fit(head, notice.summary, tail)


def wecom_body(notice: Notice, link_base: str) -> bytes:
    content = wecom_content(notice, link_base)
    body = {"msgtype": "markdown", "markdown": {"content": content}}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def dingtalk_text(notice: Notice, link_base: str) -> str:
    lines = [f"#### {title(notice)}", ""]
    lines += [f"- {label}：{value}" for label, value in facts(notice)]
    head = "\n".join(lines) + "\n\n"
    tail = f"\n\n[在工作台查看]({link(notice, link_base)})"
    return _fit(head, notice.summary, tail)


def dingtalk_body(notice: Notice, link_base: str) -> bytes:
    markdown = {"title": title(notice), "text": dingtalk_text(notice, link_base)}
    body = {"msgtype": "markdown", "markdown": markdown}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The URL-encoded base64 HMAC-SHA256 of ``<ms>\\n<secret>`` keyed by the secret (加签)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    if not secret:
        return url
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def delivery(
    kind: Kind, url: str, notice: Notice, link_base: str, secret: str | None, now_ms: int
) -> Delivery:
    """The request that delivers `notice` on a channel of `kind`, signed as of `now_ms`."""
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    if kind == "webhook":
        body = webhook_body(notice, link_base)
        key = secret.encode() if secret else None
        return Delivery(url, webhook_headers(notice, body, key, now_ms // 1000), body)
    if kind == "wecom":
        return Delivery(url, json_type, wecom_body(notice, link_base))
    return Delivery(dingtalk_url(url, secret, now_ms), json_type, dingtalk_body(notice, link_base))


def refusal(kind: Kind, status: int, body: bytes) -> str | None:
    """Why an answer is not a delivery; None when it is one."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    if kind == "webhook":
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return f"HTTP {status} without a JSON answer"
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code == 0:
        return None
    message = str(answer.get("errmsg", ""))[:200] if isinstance(answer, dict) else ""
    return f"errcode {code}: {message}" if code is not None else "answer without errcode"
