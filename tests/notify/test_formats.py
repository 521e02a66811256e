"""The delivery formats, on exact bodies: the generic webhook's JSON and its signature, the
WeCom and DingTalk robots' markdown, DingTalk's 加签, and what counts as delivered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from gateway.cases.model import Case
from gateway.notify import formats
from gateway.notify.notices import Notice, anomaly_notices, case_notice
from gateway.registry import Registry
from tests.notify.conftest import T0, event, over_limit

LINK_BASE = "http://127.0.0.1:9280/"
ANOMALY_ID = "ec8033ac4e8309088b02"
SUMMARY = "超标排放：苏州一厂 排放口DW001化学需氧量(w01018)，自2026-03-10 14:00起，仍在进行中。"


def opened(registry: Registry) -> Notice:
    (notice,) = anomaly_notices(event(over_limit()), None, T0 + timedelta(minutes=5), registry)
    return notice


def test_webhook_body_is_the_notice_with_the_anomaly_as_the_api_shows_it(
    registry: Registry,
) -> None:
    notice = opened(registry)
    expected = (
        '{"event":"anomaly_opened","id":"' + notice.id + '","at":"2026-03-10T06:05:00+00:00",'
        '"level":1,"enterprise":"E1","enterprise_name":"苏州一厂","severity":"alarm",'
        '"types":["over_limit"],"title":"【新异常】超标排放 · 苏州一厂",'
        '"summary":"' + SUMMARY + '",'
        '"link":"http://127.0.0.1:9280/#anomaly=' + ANOMALY_ID + '",'
        '"anomaly":{"id":"' + ANOMALY_ID + '","type":"over_limit",'
        '"family":"abnormal_operation","severity":"alarm","enterprise":"E1",'
        '"subject":"outlet:E1/DW001/w01018","state":"open",'
        '"started_at":"2026-03-10T06:00:00+00:00","ended_at":null,'
        '"detected_at":"2026-03-10T06:05:00+00:00","summary":"' + SUMMARY + '",'
        '"evidence":{"pollutant":"w01018","limit":50,"unit":"mg/L",'
        '"hours":[{"hour":"2026-03-10T06:00:00+00:00","value":65.0}],"max":65.0},'
        '"rule":"over_limit"},"case":null}'
    )
    assert formats.webhook_body(notice, LINK_BASE).decode() == expected


def test_webhook_signature_is_hmac_sha256_over_timestamp_dot_body(registry: Registry) -> None:
    notice = opened(registry)
    secret = "hook-secret"
    request = formats.delivery("webhook", "http://r/hook", notice, LINK_BASE, secret, 1773122700123)
    stamp = request.headers["X-Gateway-Timestamp"]
    assert stamp == "1773122700"  # seconds
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["X-Gateway-Signature"] == "sha256=" + mac.hexdigest()
    assert request.headers["X-Gateway-Delivery"] == notice.id
    assert request.headers["X-Gateway-Event"] == "anomaly_opened"
    assert request.body == formats.webhook_body(notice, LINK_BASE)
    # one changed byte of the body no longer verifies
    forged = request.body.replace(b"65.0", b"45.0")
    forged_mac = hmac.new(secret.encode(), stamp.encode() + b"." + forged, hashlib.sha256)
    assert "sha256=" + forged_mac.hexdigest() != request.headers["X-Gateway-Signature"]
    unsigned = formats.delivery("webhook", "http://r/hook", notice, LINK_BASE, None, 0)
    assert "X-Gateway-Signature" not in unsigned.headers


def test_wecom_markdown_body(registry: Registry) -> None:
    body = formats.wecom_body(opened(registry), LINK_BASE)
    content = (
        "**【新异常】超标排放 · 苏州一厂**\n"
        "> 企业：苏州一厂（E1）\n"
        "> 类型：超标排放\n"
        '> 级别：<font color="warning">报警</font>\n'
        "> 开始：2026-03-10 14:00\n"
        "> 状态：进行中\n"
        "\n" + SUMMARY + "\n\n"
        "[在工作台查看](http://127.0.0.1:9280/#anomaly=" + ANOMALY_ID + ")"
    )
    assert json.loads(body) == {"msgtype": "markdown", "markdown": {"content": content}}
    assert (
        body
        == json.dumps(
            {"msgtype": "markdown", "markdown": {"content": content}},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )


def test_dingtalk_markdown_body(registry: Registry) -> None:
    body = json.loads(formats.dingtalk_body(opened(registry), LINK_BASE))
    text = (
        "#### 【新异常】超标排放 · 苏州一厂\n\n"
        "- 企业：苏州一厂（E1）\n"
        "- 类型：超标排放\n"
        "- 级别：报警\n"
        "- 开始：2026-03-10 14:00\n"
        "- 状态：进行中\n\n" + SUMMARY + "\n\n"
        "[在工作台查看](http://127.0.0.1:9280/#anomaly=" + ANOMALY_ID + ")"
    )
    assert body == {
        "msgtype": "markdown",
        "markdown": {"title": "【新异常】超标排放 · 苏州一厂", "text": text},
    }


def test_dingtalk_sign_is_appended_to_the_address() -> None:
    secret, stamp = "SECxyz", 1773122700000
    url = formats.dingtalk_url(
        "https://oapi.dingtalk.com/robot/send?access_token=abc", secret, stamp
    )
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["abc"] and query["timestamp"] == [str(stamp)]
    digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]  # parse_qs decodes it
    assert url.endswith("&sign=zwAjdN8lsvGXkgckSLONtbEnMLKfe8zhQyRoTIomnsk%3D")  # URL-encoded
    assert formats.dingtalk_url("https://r/robot", None, stamp) == "https://r/robot"
    assert formats.dingtalk_url("https://r/robot", secret, stamp).startswith(
        "https://r/robot?timestamp="
    )


def test_robot_texts_stay_within_4096_bytes_and_keep_the_link(registry: Registry) -> None:
    big = replace(opened(registry), summary="超标排放" * 2000)
    content = formats.wecom_content(big, LINK_BASE)
    assert len(content.encode()) <= 4096
    assert content.endswith(f"[在工作台查看](http://127.0.0.1:9280/#anomaly={ANOMALY_ID})")
    assert "…" in content
    text = formats.dingtalk_text(big, LINK_BASE)
    assert len(text.encode()) <= 4096 and text.endswith(f"#anomaly={ANOMALY_ID})")


def test_case_notices_read_in_chinese_with_beijing_times(registry: Registry) -> None:
    case = Case(
        id=7,
        enterprise="E2",
        day=T0.date(),
        anomalies=("a1",),
        opened_at=T0,
        updated_at=T0,
        state="checking",
        assignee="张三",
        deadline=T0 + timedelta(hours=26),
    )
    now = T0 + timedelta(hours=27)
    notice = case_notice("case_overdue", case, now, [over_limit("E2")], registry)
    assert notice.summary == (
        "吴中二厂的案件 7（2026-03-10）已超过处置期限 2026-03-11 16:00，"
        "当前状态：核查中，核查人：张三。"
    )
    assert formats.title(notice) == "【案件超期】案件 7 · 吴中二厂"
    assert formats.facts(notice) == [
        ("企业", "吴中二厂（E2）"),
        ("状态", "核查中"),
        ("立案", "2026-03-10 14:00"),
        ("期限", "2026-03-11 16:00"),
        ("核查人", "张三"),
    ]
    assert formats.link(notice, LINK_BASE + "#old") == "http://127.0.0.1:9280/#anomaly=a1"
    body = json.loads(formats.webhook_body(notice, LINK_BASE))
    assert body["case"]["state_label"] == "核查中" and body["case"]["overdue"] is True
    assert body["case"]["deadline"] == "2026-03-11T08:00:00+00:00"
    assert body["anomaly"] is None and body["level"] == 1


def test_what_counts_as_delivered() -> None:
    assert formats.refusal("webhook", 204, b"") is None
    assert formats.refusal("webhook", 500, b"") == "HTTP 500"
    assert formats.refusal("webhook", 302, b"") == "HTTP 302"
    assert formats.refusal("wecom", 200, b'{"errcode":0,"errmsg":"ok"}') is None
    assert formats.refusal("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}') == (
        "errcode 310000: sign not match"
    )
    assert formats.refusal("wecom", 200, b"<html>") == "HTTP 200 without a JSON answer"
    assert formats.refusal("dingtalk", 200, b"{}") == "answer without errcode"
