"""Refused devices: floods of made-up MNs, impostors, wrong keys, the bound and the restore."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as METRICS

import adapters.hj212.handler as handler_module
from adapters.hj212.builder import build_encrypted_frame
from adapters.hj212.config import Hj212Config
from adapters.hj212.handler import Backfill, FrameHandler
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.model import DeviceEvent, DeviceEventKind
from gateway.registry import Registry, RegistryFile
from gateway.rules.auth import MAX_DISTINCT_PER_SOURCE, OVERFLOW_SUBJECT, RefusedDevices
from gateway.rules.engine import RuleEngine
from tests.frames import upload

MN = "23040281003022"  # the real device
MN_2025 = "010000A8900016F000169DC0"  # a registered device that encrypts its CP area
T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
SCANNER, IMPOSTOR, REAL = "203.0.113.7", "198.51.100.23", "192.0.2.10"
QUIET = timedelta(minutes=15)

REGISTRY = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    "id": "E1",
                    "outlets": [
                        {"id": "DW001", "mn": MN, "password": "123456"},
                        {
                            "id": "DA001",
                            "mn": MN_2025,
                            "password": "123456",
                            "sm4_key": "0000000000000000",
                        },
                    ],
                }
            ]
        }
    )
)


def made_up(count: int, seed: int = 212) -> list[str]:
    """MNs a scanner makes up: 24 characters like a 2017 logger's, none registered."""
    rng = random.Random(seed)
    return [f"{rng.randrange(10**14):014d}{rng.randrange(10**10):010d}" for _ in range(count)]


def refused(
    kind: DeviceEventKind, mn: str, at: datetime, address: str, enterprise: str = ""
) -> DeviceEvent:
    return DeviceEvent(kind, f"mn:{mn}", at, enterprise, f"from {address}:40001", address=address)


def contact(at: datetime, address: str = REAL) -> DeviceEvent:
    return DeviceEvent("contact", f"mn:{MN}", at, "E1", f"from {address}:40002", address=address)


def dropped() -> float:
    return METRICS.get_sample_value("refused_sources_dropped_total") or 0.0


# -- unregistered_device: per source address ------------------------------------------------


def test_a_flood_of_made_up_mns_from_one_address_is_one_anomaly_with_counts() -> None:
    rule = RefusedDevices()
    mns = made_up(3000)
    out: list[Anomaly] = []
    times = [T0 + timedelta(seconds=3.5 * i / 3000) for i in range(3000)]
    for mn, at in zip(mns, times, strict=True):
        out += rule.on_device_event(refused("unknown_mn", mn, at, SCANNER))
    assert [(a.type, a.subject, a.enterprise, a.state) for a in out] == [
        ("unregistered_device", f"address:{SCANNER}", "unregistered", "open")
    ]
    last = times[-1]
    # a registered device accepted from the same address closes nothing
    assert rule.on_device_event(contact(last + timedelta(seconds=1), SCANNER)) == []
    assert rule.on_tick(last + QUIET - timedelta(seconds=1)) == []
    (closed,) = rule.on_tick(last + QUIET)
    assert (closed.id, closed.state, closed.ended_at) == (out[0].id, "closed", last)
    evidence = closed.evidence
    assert (evidence["frames"], evidence["distinct_mns"], evidence["distinct_mns_exact"]) == (
        3000,
        3000,
        True,
    )
    assert evidence["mns_sample"] == mns[:20]
    assert (evidence["address"], evidence["first_at"], evidence["last_at"]) == (
        SCANNER,
        T0.isoformat(),
        last.isoformat(),
    )
    assert evidence["closed_as"] == "quiet" and evidence["quiet_after_s"] == 900
    assert "3000 frame(s) from 3000 unregistered MN(s)" in closed.summary
    assert rule.on_tick(last + 2 * QUIET) == [] and not rule.open


def test_three_addresses_give_three_anomalies_and_repeated_mns_count_once() -> None:
    rule = RefusedDevices()
    addresses = [SCANNER, "203.0.113.8", "2001:db8::17"]
    mns = made_up(100)
    out: list[Anomaly] = []
    for i in range(3000):
        at = T0 + timedelta(milliseconds=i)
        out += rule.on_device_event(refused("unknown_mn", mns[i % 100], at, addresses[i % 3]))
    assert sorted(a.subject for a in out) == sorted(f"address:{a}" for a in addresses)
    closed = rule.on_tick(T0 + timedelta(seconds=3) + QUIET)
    assert [(a.evidence["frames"], a.evidence["distinct_mns"]) for a in closed] == [(1000, 100)] * 3


def test_distinct_mns_are_counted_exactly_up_to_a_bound() -> None:
    rule = RefusedDevices()
    for i, mn in enumerate(made_up(MAX_DISTINCT_PER_SOURCE + 2000)):
        rule.on_device_event(refused("unknown_mn", mn, T0 + timedelta(milliseconds=i), SCANNER))
    (closed,) = rule.on_tick(T0 + timedelta(hours=1))
    evidence = closed.evidence
    assert evidence["frames"] == MAX_DISTINCT_PER_SOURCE + 2000
    assert (evidence["distinct_mns"], evidence["distinct_mns_exact"]) == (
        MAX_DISTINCT_PER_SOURCE,
        False,
    )
    assert "at least" in closed.summary


def test_a_long_made_up_mn_is_cut_in_the_sample() -> None:
    rule = RefusedDevices()
    (opened,) = rule.on_device_event(refused("unknown_mn", "9" * 5000, T0, SCANNER))
    assert len(opened.evidence["mns_sample"][0]) <= 41 and len(opened.summary) < 300


def test_updates_come_at_most_every_update_interval_with_the_counts() -> None:
    rule = RefusedDevices(update_every_s=300)
    out: list[Anomaly] = []
    for i, mn in enumerate(made_up(601)):  # one frame a second for 10 min
        out += rule.on_device_event(refused("unknown_mn", mn, T0 + timedelta(seconds=i), SCANNER))
    assert [(a.state, a.evidence["frames"]) for a in out] == [
        ("open", 1),
        ("open", 301),
        ("open", 601),
    ]
    assert len({a.id for a in out}) == 1


def test_a_refused_frame_after_the_quiet_window_starts_a_new_anomaly() -> None:
    rule = RefusedDevices()
    (first,) = rule.on_device_event(refused("unknown_mn", "A" * 24, T0, SCANNER))
    later = T0 + QUIET + timedelta(minutes=1)  # no tick in between
    closed, opened = rule.on_device_event(refused("unknown_mn", "B" * 24, later, SCANNER))
    assert (closed.id, closed.state, closed.ended_at) == (first.id, "closed", T0)
    assert opened.state == "open" and opened.id != first.id and opened.started_at == later


# -- the bound on open anomalies --------------------------------------------------------------


def test_sources_beyond_the_bound_share_one_overflow_anomaly_and_are_counted() -> None:
    rule = RefusedDevices(max_open=1000)
    before = dropped()
    out: list[Anomaly] = []
    mns = made_up(1200)
    for n in range(1200):
        address = f"10.{n // 250}.{n % 250}.1"
        out += rule.on_device_event(
            refused("unknown_mn", mns[n], T0 + timedelta(milliseconds=n), address)
        )
    subjects = [a.subject for a in out]
    assert len(subjects) == len(set(subjects)) == 1001
    assert subjects[1000] == OVERFLOW_SUBJECT and len(rule.open) == 1001
    assert dropped() - before == 200
    # a registered device's wrong password still gets its own anomaly
    (auth,) = rule.on_device_event(
        refused("bad_password", MN, T0 + timedelta(seconds=2), IMPOSTOR, "E1")
    )
    assert auth.subject == f"mn:{MN}"
    closed = rule.on_tick(T0 + timedelta(seconds=2) + QUIET)
    overflow = next(a for a in closed if a.subject == OVERFLOW_SUBJECT)
    assert len(closed) == 1002 and not rule.open
    assert (overflow.evidence["frames"], overflow.evidence["distinct_addresses"]) == (200, 200)
    assert overflow.evidence["addresses_sample"][0] == "10.4.0.1"
    assert len(overflow.evidence["addresses_sample"]) == 20
    assert "more than 1000" in overflow.summary
    # room again: a new source gets its own anomaly
    (again,) = rule.on_device_event(refused("unknown_mn", mns[0], T0 + QUIET * 2, SCANNER))
    assert again.subject == f"address:{SCANNER}"


# -- auth_failure: per device, closed after the quiet window ---------------------------------


def test_an_impostor_interleaved_with_the_real_device_is_one_auth_failure(tmp_path: Path) -> None:
    store = AnomalyStore(tmp_path / "a.sqlite")
    now = [T0]
    engine = RuleEngine(store, [RefusedDevices()], clock=lambda: now[0])
    for i in range(300):  # a wrong-PW frame every 0.1 s for 30 s, the real device between
        at = T0 + timedelta(milliseconds=100 * i)
        engine.on_device_event(refused("bad_password", MN, at, IMPOSTOR, "E1"))
        engine.on_device_event(contact(at + timedelta(milliseconds=50)))
        now[0] = at + timedelta(milliseconds=60)
        engine.tick()
    last = T0 + timedelta(milliseconds=100 * 299)
    for minute in range(1, 15):
        now[0] = last + timedelta(minutes=minute)
        engine.tick()
    assert store.query(type_="auth_failure")[0][0].state == "open"
    now[0] = last + QUIET
    engine.tick()
    events = store.events_after(0)
    assert [e.event for e in events] == ["opened", "closed"]
    anomaly = events[-1].anomaly
    assert (anomaly.subject, anomaly.enterprise, anomaly.ended_at) == (f"mn:{MN}", "E1", last)
    evidence = anomaly.evidence
    assert (evidence["frames"], evidence["reason"], evidence["mn"]) == (300, "password", MN)
    assert (evidence["distinct_addresses"], evidence["addresses_sample"]) == (1, [IMPOSTOR])
    assert evidence["last_accepted_at"] == (last + timedelta(milliseconds=50)).isoformat()
    assert "300 frame(s) with a wrong password" in anomaly.summary


def test_one_wrong_password_then_good_frames_and_reconnects_is_one_anomaly(
    tmp_path: Path,
) -> None:
    store = AnomalyStore(tmp_path / "a.sqlite")
    now = [T0]
    engine = RuleEngine(store, [RefusedDevices()], clock=lambda: now[0])
    engine.on_device_event(refused("bad_password", MN, T0, REAL, "E1"))
    for minute in range(1, 120):  # then only good frames; it reconnects every 10 min
        now[0] = T0 + timedelta(minutes=minute)
        engine.on_device_event(contact(now[0], REAL))
        engine.tick()
    events = store.events_after(0)
    assert [e.event for e in events] == ["opened", "closed"]
    assert events[-1].anomaly.ended_at == T0 and events[-1].anomaly.evidence["frames"] == 1


def test_a_frame_the_registered_key_cannot_decrypt_is_an_auth_failure_of_its_own() -> None:
    rule = RefusedDevices()
    key = rule.on_device_event(refused("bad_key", MN_2025, T0, REAL, "E1"))
    password = rule.on_device_event(refused("bad_password", MN_2025, T0, REAL, "E1"))
    no_key = rule.on_device_event(refused("no_key", MN_2025, T0, REAL, "E1"))
    assert [(a.type, a.subject, a.evidence["reason"]) for a in key + password + no_key] == [
        ("auth_failure", f"mn:{MN_2025}/decrypt", "decrypt"),
        ("auth_failure", f"mn:{MN_2025}", "password"),
        ("auth_failure", f"mn:{MN_2025}/no_key", "no_key"),
    ]
    assert len({a.id for a in key + password + no_key}) == 3
    assert "SM4 key" in key[0].summary
    for i in range(1, 50):
        assert (
            rule.on_device_event(refused("bad_key", MN_2025, T0 + timedelta(seconds=i), REAL, "E1"))
            == []
        )
    closed = rule.on_tick(T0 + timedelta(seconds=49) + QUIET)
    frames = {a.subject: a.evidence["frames"] for a in closed}
    assert frames[f"mn:{MN_2025}/decrypt"] == 50


# -- restore after a restart ------------------------------------------------------------------


def test_open_anomalies_continue_after_a_restart(tmp_path: Path) -> None:
    store = AnomalyStore(tmp_path / "a.sqlite")
    now = [T0]
    engine = RuleEngine(store, [RefusedDevices()], clock=lambda: now[0])
    mns = made_up(40)
    for i, mn in enumerate(mns[:10]):  # stored at the first frame and at 320 s (9 frames)
        engine.on_device_event(refused("unknown_mn", mn, T0 + timedelta(seconds=40 * i), SCANNER))
    engine.on_device_event(refused("bad_password", MN, T0, IMPOSTOR, "E1"))
    engine.on_device_event(refused("bad_password", MN, T0 + timedelta(seconds=400), IMPOSTOR))
    # restart: a new rule takes back the open anomalies as last stored
    engine = RuleEngine(store, [RefusedDevices()], clock=lambda: now[0])
    later = T0 + timedelta(minutes=10)
    for i, mn in enumerate(mns[5:]):  # 4 MNs it knows, 31 it has not seen
        engine.on_device_event(refused("unknown_mn", mn, later + timedelta(seconds=i), SCANNER))
    engine.on_device_event(refused("bad_password", MN, later, IMPOSTOR, "E1"))
    assert store.query(state="open")[1] == 2
    now[0] = later + timedelta(seconds=34) + QUIET
    engine.tick()
    items, total = store.query(state="closed")
    assert total == 2
    by_type = {a.type: a for a in items}
    flood = by_type["unregistered_device"]
    assert (flood.subject, flood.started_at) == (f"address:{SCANNER}", T0)
    evidence = flood.evidence
    assert (evidence["frames"], evidence["distinct_mns"], evidence["distinct_mns_exact"]) == (
        44,
        40,
        True,
    )
    assert evidence["mns_sample"] == mns[:20]
    assert by_type["auth_failure"].evidence["frames"] == 3
    assert [e.event for e in store.events_after(0) if e.anomaly.type == "auth_failure"] == [
        "opened",
        "updated",
        "closed",
    ]


def test_an_anomaly_of_the_former_per_mn_kind_closes_after_the_quiet_window() -> None:
    old = Anomaly(
        type="unregistered_device",
        severity="warning",
        enterprise="unregistered",
        subject="mn:SIM0001X00000000000000",
        started_at=T0,
        summary="3 frame(s) from an unregistered MN refused.",
        evidence={
            "frames": 3,
            "first_at": T0.isoformat(),
            "last_at": (T0 + timedelta(seconds=2)).isoformat(),
            "detail": "from 127.0.0.1:5000",
        },
        rule="refused_devices",
        detected_at=T0,
    )
    rule = RefusedDevices()
    rule.restore([old])
    assert rule.on_tick(T0 + QUIET) == []
    (closed,) = rule.on_tick(T0 + timedelta(seconds=2) + QUIET)
    assert (closed.id, closed.state, closed.evidence["frames"]) == (old.id, "closed", 3)


# -- the HJ 212 handler: addresses, log lines, undecryptable frames --------------------------


@dataclass
class FakeLink:
    peer: str
    address: str
    backfills: dict[str, Backfill] = field(default_factory=dict)

    def seen(self, frame: Any) -> None:
        pass


class Lines:
    """Stands in for the handler's logger: each call is one log line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    info = warning


def make_handler(
    monkeypatch: pytest.MonkeyPatch, config: Hj212Config | None = None
) -> tuple[FrameHandler, list[DeviceEvent], Lines]:
    lines = Lines()
    monkeypatch.setattr(handler_module, "log", lines)
    config = config or Hj212Config()
    handler = FrameHandler(config, REGISTRY, None, lambda: T0)  # type: ignore[arg-type]
    events: list[DeviceEvent] = []
    handler.on_event = events.append
    return handler, events, lines


def test_made_up_mns_make_one_log_line_per_address_and_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, events, lines = make_handler(monkeypatch)
    links = [FakeLink(f"{SCANNER}:{40000 + i}", SCANNER) for i in range(3)]  # 3 connections
    for i, mn in enumerate(made_up(3000)):
        assert handler.process(upload(mn=mn).rstrip(), links[i % 3]) is None
    for _ in range(300):
        handler.process(upload(pw="wrong").rstrip(), FakeLink(f"{IMPOSTOR}:50000", IMPOSTOR))
    rejected = [kw for event, kw in lines.lines if event == "frame rejected"]
    assert [(kw["reason"], kw["peer"].partition(":")[0]) for kw in rejected] == [
        ("unknown_mn", SCANNER),
        ("bad_password", IMPOSTOR),
    ]
    assert handler.limiter.suppressed == 3298 and handler.limiter.allowed == 2
    assert len(events) == 3300
    assert {(e.kind, e.address) for e in events} == {
        ("unknown_mn", SCANNER),
        ("bad_password", IMPOSTOR),
    }
    assert events[-1].enterprise == "E1" and events[-1].device == f"mn:{MN}"


def test_suppressed_lines_are_counted_in_the_next_line(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Hj212Config(error_log_interval_s=0.3)
    handler, _events, lines = make_handler(monkeypatch, config)
    link = FakeLink(f"{SCANNER}:40000", SCANNER)
    mns = made_up(4)
    for mn in mns[:3]:
        handler.reject(link, mn, "unknown_mn", "not registered")
    time.sleep(0.35)
    handler.reject(link, mns[3], "unknown_mn", "not registered")
    assert [(kw["mn"], kw["suppressed_since_last"]) for _, kw in lines.lines] == [
        (mns[0], 0),
        (mns[3], 2),
    ]


def encrypted(mn: str, key: bytes) -> bytes:
    """A 2025 hourly upload of 20 pollutants with its CP area SM4-encrypted under `key`."""
    fields: list[tuple[str, str | int]] = [
        ("QN", "20260301140000000"),
        ("ST", "22"),
        ("CN", "2061"),
        ("PW", "123456"),
        ("MN", mn),
        ("Flag", 9),
    ]
    cp = "DataTime=20260301130000;" + ";".join(
        f"a{n:05d}-Avg={n}.5,a{n:05d}-Flag=N" for n in range(20)
    )
    return build_encrypted_frame(fields, cp, key).rstrip()


def test_a_frame_sent_with_another_sm4_key_raises_an_auth_failure_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, events, _lines = make_handler(monkeypatch)
    assert (
        handler.process(encrypted(MN_2025, b"wrong key 16 byt"), FakeLink(f"{REAL}:1", REAL))
        is None
    )
    assert [(e.kind, e.device, e.enterprise, e.address) for e in events] == [
        ("bad_key", f"mn:{MN_2025}", "E1", REAL)
    ]


def test_encrypted_frames_without_a_registered_key(monkeypatch: pytest.MonkeyPatch) -> None:
    handler, events, _lines = make_handler(monkeypatch)
    link = FakeLink(f"{SCANNER}:40000", SCANNER)
    assert handler.process(encrypted(MN, b"0000000000000000"), link) is None  # keyless device
    assert handler.process(encrypted("9" * 24, b"0000000000000000"), link) is None  # unknown
    assert [(e.kind, e.device, e.enterprise, e.address) for e in events] == [
        ("no_key", f"mn:{MN}", "E1", SCANNER),
        ("unknown_mn", f"mn:{'9' * 24}", "", SCANNER),
    ]


def test_the_anomaly_starts_at_the_frame_s_own_time_so_a_replay_opens_the_same_one() -> None:
    sent = T0 - timedelta(days=3)  # a day replayed three days later
    event = replace(refused("bad_password", MN, T0, IMPOSTOR, "E1"), device_time=sent)
    (first,) = RefusedDevices().on_device_event(event)
    again = replace(event, received_at=T0 + timedelta(hours=2))
    (second,) = RefusedDevices().on_device_event(again)  # after a restart, or the next day
    assert first.started_at == second.started_at == sent and first.id == second.id
    future = replace(event, device_time=T0 + timedelta(days=1))  # a clock ahead: its receipt
    (ahead,) = RefusedDevices().on_device_event(future)
    assert ahead.started_at == T0
    (plain,) = RefusedDevices().on_device_event(refused("unknown_mn", "X1", T0, IMPOSTOR))
    assert plain.started_at == T0
