"""State that survives upgrades: versioned SQLite stores and spool segments, the state of the
first release (fixtures it wrote) read whole, newer state refused, and backups taken in use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import struct
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway import cli
from gateway import regime as regime_module
from gateway.anomalies import store as store_module
from gateway.anomalies.model import Anomaly
from gateway.anomalies.store import AnomalyStore
from gateway.backup import backup
from gateway.cases import schema as case_schema
from gateway.cases.model import case_json, open_case
from gateway.cases.store import CaseStore
from gateway.ingest.segments import FORMAT_VERSION, SEGMENT_HEADER, SEGMENT_MAGIC, Position
from gateway.ingest.spool import Spool
from gateway.migrations import StateError, migrate, user_version
from gateway.regime import AlertSpec, OrderSpec, Regime

RELEASE_0_1_0 = Path(__file__).resolve().parent / "fixtures" / "state" / "release-0.1.0"
CST = timezone(timedelta(hours=8))
T0 = datetime(2025, 11, 22, 8, 0, tzinfo=CST)


@pytest.fixture
def old_state(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the data folder pollution-gateway 0.1.0 wrote, and what it holds."""
    data = tmp_path / "data"
    shutil.copytree(RELEASE_0_1_0, data)
    expected = json.loads((data / "expected.json").read_text(encoding="utf-8"))
    return data, expected


def schema(path: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        db.close()


def file_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return user_version(db)
    finally:
        db.close()


async def drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while True:
        batch = spool.read(spool.cursor, 1000)
        if not batch.payloads:
            return out
        out += batch.payloads
        spool.commit(batch)


def segment_header(version: int) -> bytes:
    head = SEGMENT_MAGIC + struct.pack("<I", version)
    return head + struct.pack("<I", zlib.crc32(head))


def record(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def anomaly(subject: str, start: datetime) -> Anomaly:
    return Anomaly(
        type="over_limit",
        severity="alarm",
        enterprise="E1",
        subject=subject,
        started_at=start,
        summary=f"over limit at {subject}",
        evidence={"value": 12.5},
        rule="over_limit",
        detected_at=start,
    )


# -- the first release's files ------------------------------------------------------------


def test_anomaly_store_of_release_0_1_0_opens_with_every_row(
    old_state: tuple[Path, dict[str, Any]],
) -> None:
    data, expected = old_state
    path = data / "anomalies.sqlite"
    before = schema(path)
    assert file_version(path) == 0
    store = AnomalyStore(path)
    try:
        rows, total = store.query(limit=1000)
        assert total == len(expected["anomalies"]) == 3
        assert (
            sorted((a.stored_json() for a in rows), key=lambda d: d["id"])
            == (expected["anomalies"])
        )
        events = [
            {"seq": e.seq, "event": e.event, "id": e.anomaly.id} for e in store.events_after(0)
        ]
        assert events == expected["events"]
        assert store.last_seq() == expected["events"][-1]["seq"]
        # and it goes on: the stream continues after the old events
        event = store.record(anomaly("outlet:DA002/a21026", T0))
        assert event is not None and event.seq == store.last_seq() > expected["events"][-1]["seq"]
    finally:
        store.close()
    assert file_version(path) == store_module.SCHEMA_VERSION == 1
    assert schema(path) == before  # 0 -> 1 changes nothing in the first release's schema


def test_regime_store_of_release_0_1_0_opens_with_every_row(
    old_state: tuple[Path, dict[str, Any]],
) -> None:
    data, expected = old_state
    path = data / "regime.sqlite"
    before = schema(path)
    regime = Regime(path)
    # version 2 records who issued and withdrew: the first release's bodies have neither;
    # alerts may bring a layer of control, which theirs do not
    new_fields = {"withdrawn_at": None, "withdrawn_by": None, "withdraw_reason": None}
    try:
        assert [a.model_dump(mode="json") for a in regime.list_alerts()] == [
            {**a, "layer": None, "issued_by": "", **new_fields} for a in expected["alerts"]
        ]
        assert [o.model_dump(mode="json") for o in regime.list_orders()] == [
            {**o, **new_fields} for o in expected["orders"]
        ]
        assert len(expected["alerts"]) == 1 and len(expected["orders"]) == 2
        first = expected["orders"][0]["id"]
        assert regime.withdraw_order(first, by="admin", at=T0) is not None  # and they go on
    finally:
        regime.close()
    assert file_version(path) == regime_module.SCHEMA_VERSION == 2
    assert schema(path) == before  # 1 -> 2 changes what bodies may hold, not the tables
    again = Regime(path)  # a migrated file opens as it is
    try:
        assert len(again.list_orders()) == 2
        withdrawn = again.get_order(first)
        assert withdrawn is not None and withdrawn.withdrawn_by == "admin"
    finally:
        again.close()


async def test_spool_of_release_0_1_0_gives_every_undelivered_record(
    old_state: tuple[Path, dict[str, Any]],
) -> None:
    data, expected = old_state
    records = [r.encode() for r in expected["spool_records"]]
    spool = Spool(data / "spool", segment_bytes=512)
    await spool.open()
    assert spool.cursor == Position(3, 185)  # the first release's cursor, mid-segment
    assert spool.depth_bytes == sum(8 + len(r) for r in records)
    # new records after the old ones: the newest old segment is continued, then new ones follow
    new = [f"new {i} {'y' * 40}\n".encode() for i in range(30)]
    for r in new:
        await spool.append(r)
    await spool.close()
    headed = [
        p for p in (data / "spool").glob("seg-*.log") if p.read_bytes()[:16] == SEGMENT_HEADER
    ]
    assert headed, "no segment of the new format was started"
    again = Spool(data / "spool", segment_bytes=512)
    await again.open()
    assert await drain(again) == records + new
    assert again.depth_bytes == 0
    await again.close()


# -- versions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("open_store", "supported"),
    [(AnomalyStore, store_module.SCHEMA_VERSION), (Regime, regime_module.SCHEMA_VERSION)],
    ids=["anomalies", "regime"],
)
def test_a_store_newer_than_the_code_is_refused(
    tmp_path: Path, open_store: Any, supported: int
) -> None:
    path = tmp_path / "state.sqlite"
    open_store(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(StateError) as caught:
        open_store(path)
    message = str(caught.value)
    assert str(path) in message and "version 7" in message and f"up to {supported}" in message
    assert file_version(path) == 7  # left as it was


def test_a_fresh_store_is_created_at_the_current_version(tmp_path: Path) -> None:
    AnomalyStore(tmp_path / "a.sqlite").close()
    Regime(tmp_path / "r.sqlite").close()
    assert file_version(tmp_path / "a.sqlite") == 1
    assert file_version(tmp_path / "r.sqlite") == 2
    memory = Regime(":memory:")  # in memory too
    memory.close()


def test_migrations_run_in_order_in_one_transaction(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    seen: list[int] = []

    def second(conn: sqlite3.Connection) -> None:
        seen.append(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        conn.execute("INSERT INTO t VALUES ('two; with a semicolon')")

    steps: list[Any] = [
        (1, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('one');"),
        (2, second),
    ]
    assert migrate(db, "m.sqlite", "test store", steps) == 0
    assert seen == [1] and user_version(db) == 2
    assert migrate(db, "m.sqlite", "test store", steps) == 2  # nothing left to do
    assert seen == [1]

    def failing(conn: sqlite3.Connection) -> None:
        raise RuntimeError("half-way")

    bad: list[Any] = [*steps, (3, "CREATE TABLE u (v TEXT)"), (4, failing)]
    with pytest.raises(RuntimeError):
        migrate(db, "m.sqlite", "test store", bad)
    assert user_version(db) == 2  # all or nothing
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'u'").fetchone() is None
    with pytest.raises(ValueError):
        migrate(db, "m.sqlite", "test store", [(2, "SELECT 1"), (1, "SELECT 1")])
    db.close()


async def test_new_segments_start_with_magic_and_version(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=256)
    await spool.open()
    payloads = [f"r{i} {'z' * 50}\n".encode() for i in range(20)]
    for p in payloads:
        await spool.append(p)
    await spool.close()
    segments = sorted(tmp_path.glob("seg-*.log"))
    assert len(segments) > 3
    for seg in segments:
        head = seg.read_bytes()[:16]
        assert head == segment_header(FORMAT_VERSION) == SEGMENT_HEADER
    again = Spool(tmp_path, segment_bytes=256)
    await again.open()
    assert await drain(again) == payloads
    await again.close()


@pytest.mark.parametrize("newest", [True, False], ids=["newest-segment", "older-segment"])
async def test_a_segment_of_a_newer_format_is_refused(tmp_path: Path, newest: bool) -> None:
    (tmp_path / "seg-00000001.log").write_bytes(record(b"old\n"))
    future = tmp_path / ("seg-00000002.log" if newest else "seg-00000000.log")
    future.write_bytes(segment_header(FORMAT_VERSION + 1) + record(b"from the future\n"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    spool = Spool(tmp_path)
    with pytest.raises(StateError) as caught:
        await spool.open()
    message = str(caught.value)
    assert str(future) in message and f"version {FORMAT_VERSION + 1}" in message
    assert f"up to {FORMAT_VERSION}" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing cut


async def test_a_damaged_segment_header_is_refused(tmp_path: Path) -> None:
    header = bytearray(SEGMENT_HEADER)
    header[9] ^= 0x40  # the version, under its checksum
    (tmp_path / "seg-00000000.log").write_bytes(bytes(header) + record(b"acked\n"))
    with pytest.raises(StateError, match="damaged spool segment header"):
        await Spool(tmp_path).open()


@pytest.mark.parametrize("content", [b"", SEGMENT_HEADER[:5], SEGMENT_HEADER[:12]])
async def test_a_segment_cut_in_its_header_starts_again(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "seg-00000000.log").write_bytes(record(b"first\n"))
    (tmp_path / "seg-00000001.log").write_bytes(content)  # created, crashed in its header
    spool = Spool(tmp_path)
    await spool.open()
    await spool.append(b"second\n")
    assert await drain(spool) == [b"first\n", b"second\n"]
    await spool.close()
    assert (tmp_path / "seg-00000001.log").read_bytes()[:16] == SEGMENT_HEADER


# -- backup ----------------------------------------------------------------------------------


async def test_backup_of_stores_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = AnomalyStore(data / "anomalies.sqlite")
    regime = Regime(data / "regime.sqlite")
    spool = Spool(data / "spool", segment_bytes=2048)
    await spool.open()
    regime.add_order(
        OrderSpec(kind="shutdown", enterprise="E1", starts_at=T0, ends_at=T0 + timedelta(days=1))
    )
    acked: list[bytes] = []
    delivered: list[bytes] = []
    recorded = 0
    stop = asyncio.Event()

    async def write() -> None:
        nonlocal recorded
        i = 0
        while not stop.is_set():
            payload = f"m,k=v{i} f={i} {i}\n".encode()
            await spool.append(payload)
            acked.append(payload)
            store.record(anomaly(f"outlet:D{i}", T0 + timedelta(minutes=i)))
            recorded += 1
            if i % 10 == 0:
                regime.add_alert(
                    AlertSpec(
                        level="orange",
                        regions=["R1"],
                        starts_at=T0,
                        ends_at=T0 + timedelta(hours=i + 1),
                    )
                )
            i += 1

    async def forward() -> None:  # delivers 150 records behind, so old segments go meanwhile
        while not stop.is_set():
            batch = spool.read(spool.cursor, 7)
            if len(acked) - len(delivered) > 150:
                delivered.extend(batch.payloads)
                spool.commit(batch)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(write()), asyncio.create_task(forward())]
    try:
        while len(acked) < 300:
            await asyncio.sleep(0.01)
        acked_before, recorded_before = len(acked), recorded
        report = await asyncio.to_thread(backup, data, tmp_path / "copy")
        acked_after, delivered_after = len(acked), len(delivered)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    await spool.close()
    store.close()
    regime.close()
    assert report.stores == {"anomalies.sqlite": 1, "regime.sqlite": 2}
    assert report.spool is not None and report.spool.segments >= 2
    assert acked_after > acked_before, "no append happened while the copy ran"

    copy = tmp_path / "copy"
    copied_store = AnomalyStore(copy / "anomalies.sqlite")
    copied_regime = Regime(copy / "regime.sqlite")
    try:
        total = copied_store.query(limit=1)[1]
        assert recorded_before <= total <= recorded
        assert len(copied_store.events_after(0, limit=100_000)) == total  # one transaction each
        assert len(copied_regime.list_orders()) == 1
    finally:
        copied_store.close()
        copied_regime.close()
    assert not list(copy.glob("*-wal"))  # each store copy is one file

    copied = Spool(copy / "spool")
    await copied.open()
    records = await drain(copied)
    await copied.close()
    assert len(records) == report.spool.records
    # a contiguous run of what was acked: what it lacks at its start was delivered, and it
    # reaches at least the last record acked before the backup began
    first = acked.index(records[0])
    assert records == acked[first : first + len(records)]
    assert first <= delivered_after
    assert first + len(records) >= acked_before


def test_backup_command_reads_the_config_and_refuses_a_used_folder(
    tmp_path: Path, old_state: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    data, expected = old_state
    (tmp_path / "registry.toml").write_text("")
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\ndata_dir = "data"\nregistry = "registry.toml"\n')
    target = tmp_path / "backup"
    assert cli.main(["backup", str(target), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "anomalies.sqlite: copied (schema version 0)" in out  # copied as found, not migrated
    assert f"{len(expected['spool_records'])} records from the cursor (3 185) on" in out
    assert file_version(data / "anomalies.sqlite") == 0
    assert cli.main(["backup", str(target), "--config", str(config)]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    store = AnomalyStore(target / "anomalies.sqlite")
    with contextlib.closing(store):
        assert store.query()[1] == len(expected["anomalies"])


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"pollution-gateway {version('pollution-gateway')}"


def test_a_case_store_of_schema_1_gains_levels_and_keeps_its_cases(tmp_path: Path) -> None:
    """Cases written before levels existed are alarms (every alarm opened one)."""
    path = tmp_path / "cases.sqlite"
    db = sqlite3.connect(str(path), isolation_level=None)
    migrate(db, path, "case store", case_schema.MIGRATIONS[:1])
    at = datetime(2026, 3, 10, 8, tzinfo=timezone(timedelta(hours=8)))
    v1 = case_json(open_case("a1", "E1", at, at))
    del v1["level"]
    v1["id"] = 1
    db.execute(
        "INSERT INTO case_file (enterprise, day, state, opened_at, body) VALUES (?, ?, ?, ?, ?)",
        ("E1", "2026-03-10", "new", "2026-03-10T00:00:00.000000Z", json.dumps(v1)),
    )
    db.close()
    store = CaseStore(path)
    try:
        case = store.get(1)
        assert case is not None and case.level == "alarm" and case.anomalies == ("a1",)
        at_now = at + timedelta(days=1)
        assert [c.id for c in store.query(now=at_now, level="alarm")[0]] == [1]
        assert store.query(now=at_now, level="warning")[1] == 0
    finally:
        store.close()
    assert file_version(path) == case_schema.SCHEMA_VERSION == 2
