"""Delivery against a real HTTP receiver (aiohttp.web on a free port): the webhook's signature
and the robots' bodies as received, retries while the receiver answers 500, a robot's errcode
or is down, giving up after the stated age, and nothing lost or sent twice across a restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as METRICS

from gateway.anomalies.store import AnomalyStore
from gateway.notify.config import NotifySection
from gateway.notify.formats import dingtalk_text, wecom_content
from gateway.notify.notices import anomaly_notices
from gateway.notify.service import Notifier
from gateway.registry import Registry
from tests.notify.conftest import T0, Clock, event, over_limit
from tests.notify.receiver import Receiver

HOOK_SECRET = "hook-secret-1"
DING_SECRET = "SEC0123456789abcdef"
PAGE = "http://page/"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(webhook_secret=HOOK_SECRET.encode(), dingtalk_secret=DING_SECRET)
    await r.start()
    yield r
    await r.stop()


def hook(url: str, name: str = "hook") -> dict[str, Any]:
    return {"name": name, "kind": "webhook", "url": f"{url}/hook", "secret_env": "T_HOOK_SECRET"}


def wecom(url: str) -> dict[str, Any]:
    return {"name": "wecom", "kind": "wecom", "url": f"{url}/cgi-bin/webhook/send?key=k-1"}


def dingtalk(url: str) -> dict[str, Any]:
    return {
        "name": "ding",
        "kind": "dingtalk",
        "url": f"{url}/robot/send?access_token=t-1",
        "secret_env": "T_DING_SECRET",
    }


class Running:
    """A notifier on real files in `folder`, its `run` as a task."""

    def __init__(self, folder: Path, registry: Registry, section: NotifySection, clock: Any):
        self.anomalies = AnomalyStore(folder / "anomalies.sqlite")
        self.notifier = Notifier(section, folder / "notify.sqlite", lambda: registry, clock=clock)
        self.outbox = self.notifier.outbox
        self.anomalies.add_listener(self.notifier.on_anomaly)
        self.task = asyncio.create_task(self.notifier.run())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.notifier.close()
        self.anomalies.close()


@pytest.fixture
async def start(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Running]]:
    monkeypatch.setenv("T_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("T_DING_SECRET", DING_SECRET)
    made: list[Running] = []

    def make(*channels: dict[str, Any], clock: Any = None, **values: Any) -> Running:
        fast = {"retry_initial_s": 0.02, "retry_max_s": 0.1, "timeout_s": 0.5}
        section = NotifySection.model_validate(
            {**fast, **values, "link_base": PAGE, "channels": list(channels)}
        )
        running = Running(tmp_path, registry, section, clock or (lambda: datetime.now(UTC)))
        made.append(running)
        return running

    yield make
    for running in made:
        await running.stop()


def metric(name: str, channel: str) -> float:
    return METRICS.get_sample_value(name, {"channel": channel}) or 0.0


def anomalies(count: int) -> list[Any]:
    return [over_limit("E1", at=T0 + timedelta(hours=i)) for i in range(count)]


async def test_each_kind_is_received_signed_in_its_format(
    receiver: Receiver, start: Callable[..., Running], registry: Registry
) -> None:
    running = start(hook(receiver.url), wecom(receiver.url), dingtalk(receiver.url))
    anomaly = over_limit("E1")
    running.anomalies.record(anomaly)
    got = {r.path: r for r in await receiver.wait_for(3)}
    assert receiver.bad_signatures == 0  # the receiver verified the HMAC and the 加签
    assert set(got) == {"/hook", "/cgi-bin/webhook/send", "/robot/send"}
    (notice,) = anomaly_notices(event(anomaly), None, T0, registry)
    webhook = got["/hook"]
    body = webhook.json()
    assert (body["event"], body["id"], body["anomaly"]["id"]) == (
        "anomaly_opened",
        notice.id,
        anomaly.id,
    )
    assert webhook.headers["X-Gateway-Delivery"] == notice.id
    assert webhook.headers["X-Gateway-Signature"].startswith("sha256=")
    assert body["link"] == f"{PAGE}#anomaly={anomaly.id}"
    robot = got["/cgi-bin/webhook/send"]
    assert robot.query == {"key": "k-1"}
    assert robot.json() == {
        "msgtype": "markdown",
        "markdown": {"content": wecom_content(notice, PAGE)},
    }
    ding = got["/robot/send"]
    assert ding.query["access_token"] == "t-1" and ding.query["sign"]
    assert ding.json()["markdown"]["text"] == dingtalk_text(notice, PAGE)
    for channel in ("hook", "wecom", "ding"):  # marked once the sender has read the answer
        assert await receiver.wait_until(lambda c=channel: running.outbox.pending(c) == 0)
        assert [r[1] for r in running.outbox.rows(channel)] == ["delivered"]


async def test_retries_while_the_receiver_answers_500_then_delivers_in_order(
    receiver: Receiver, start: Callable[..., Running]
) -> None:
    receiver.answer("fail")
    failed_before = metric("notify_failed_attempts_total", "h500")
    running = start(hook(receiver.url, "h500"))
    items = anomalies(3)
    for anomaly in items:
        running.anomalies.record(anomaly)
    assert await receiver.wait_until(lambda: receiver.refused >= 4)
    assert receiver.accepted == []
    assert running.outbox.pending("h500") == 3
    assert metric("notify_failed_attempts_total", "h500") >= failed_before + 4
    receiver.answer("ok")
    await receiver.wait_for(3)
    assert [r.json()["anomaly"]["id"] for r in receiver.accepted] == [a.id for a in items]
    assert await receiver.wait_until(lambda: running.outbox.pending("h500") == 0)


async def test_a_robots_nonzero_errcode_is_retried(
    receiver: Receiver, start: Callable[..., Running]
) -> None:
    receiver.answer("errcode")
    running = start(wecom(receiver.url))
    running.anomalies.record(over_limit("E1"))
    assert await receiver.wait_until(lambda: receiver.refused >= 2)
    assert running.outbox.pending("wecom") == 1
    receiver.answer("ok")
    await receiver.wait_for(1)
    assert await receiver.wait_until(lambda: running.outbox.pending("wecom") == 0)
    assert len(receiver.accepted) == 1


async def test_retries_while_the_receiver_is_down(
    receiver: Receiver, start: Callable[..., Running]
) -> None:
    await receiver.stop()
    running = start(hook(receiver.url, "down"))
    before = metric("notify_failed_attempts_total", "down")
    running.anomalies.record(over_limit("E1"))
    assert await receiver.wait_until(
        lambda: metric("notify_failed_attempts_total", "down") >= before + 3
    )
    (row,) = running.outbox.rows("down")
    assert row[1] == "pending" and row[2] >= 3  # attempts recorded
    await receiver.start()  # the same port
    await receiver.wait_for(1)
    assert await receiver.wait_until(lambda: running.outbox.pending("down") == 0)
    assert len(receiver.accepted) == 1


async def test_a_notice_failing_past_its_age_is_given_up(
    receiver: Receiver, start: Callable[..., Running], clock: Clock
) -> None:
    receiver.answer("fail")
    before = metric("notify_given_up_total", "old")
    running = start(hook(receiver.url, "old"), clock=clock, give_up_after_h=1)
    first, second = anomalies(2)
    running.anomalies.record(first)
    assert await receiver.wait_until(lambda: receiver.refused >= 2)
    assert metric("notify_given_up_total", "old") == before
    clock.advance(hours=1, minutes=1)
    assert await receiver.wait_until(lambda: metric("notify_given_up_total", "old") == before + 1)
    assert [r[1] for r in running.outbox.rows("old")] == ["given_up"]
    receiver.answer("ok")
    running.anomalies.record(second)
    await receiver.wait_for(1)
    assert [r.json()["anomaly"]["id"] for r in receiver.accepted] == [second.id]


async def test_nothing_lost_or_sent_twice_across_a_restart(
    receiver: Receiver, start: Callable[..., Running]
) -> None:
    items = anomalies(5)
    first = start(hook(receiver.url, "restart"))
    for anomaly in items[:2]:
        first.anomalies.record(anomaly)
    await receiver.wait_for(2)
    assert await receiver.wait_until(lambda: first.outbox.pending("restart") == 0)
    await receiver.stop()
    for anomaly in items[2:]:
        first.anomalies.record(anomaly)
    # rows go out in order: the first pending one is tried, the two behind it wait
    assert await receiver.wait_until(lambda: first.outbox.rows("restart")[2][2] >= 1)
    await first.stop()  # three rows pending
    await receiver.start()
    second = start(hook(receiver.url, "restart"))
    assert second.outbox.pending("restart") == 3
    await receiver.wait_for(5)
    assert await receiver.wait_until(lambda: second.outbox.pending("restart") == 0)
    # the same events again (a replay) raise nothing new
    for anomaly in items:
        second.notifier.raise_notice(anomaly_notices(event(anomaly), None, T0, None)[0])
    assert second.outbox.pending("restart") == 0
    ids = receiver.delivery_ids()
    assert len(ids) == 5 and len(set(ids)) == 5
    assert [r.json()["anomaly"]["id"] for r in receiver.accepted] == [a.id for a in items]
