"""The durable spool on a real file system: order, recovery, bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.ingest.segments import Position
from gateway.ingest.spool import Spool


async def drain(spool: Spool, start: Position | None = None) -> list[bytes]:
    pos = start or spool.cursor
    out: list[bytes] = []
    while True:
        batch = spool.read(pos, 1000)
        if not batch.payloads:
            return out
        out += batch.payloads
        spool.commit(batch)
        pos = batch.end


async def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 24, segment_bytes=1 << 16)
    await spool.open()
    payloads = [f"line {i} {'x' * (i % 300)}\n".encode() for i in range(3000)]
    for start in range(0, len(payloads), 200):  # group commits; segments are a soft size
        await asyncio.gather(*(spool.append(p) for p in payloads[start : start + 200]))
    assert len(list(tmp_path.glob("seg-*.log"))) > 3
    assert await drain(spool) == payloads
    assert spool.depth_bytes == 0
    await spool.close()
    # delivered segments are deleted; the current one stays
    assert len(list(tmp_path.glob("seg-*.log"))) == 1


async def test_undelivered_records_survive_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1 << 16)
    await spool.open()
    await asyncio.gather(*(spool.append(f"a{i}\n".encode()) for i in range(100)))
    first = spool.read(spool.cursor, 40)
    spool.commit(first)
    await spool.close()
    again = Spool(tmp_path, segment_bytes=1 << 16)
    await again.open()
    assert await drain(again) == [f"a{i}\n".encode() for i in range(40, 100)]
    await again.close()


async def test_torn_tail_is_cut_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.open()
    await asyncio.gather(*(spool.append(f"r{i}\n".encode()) for i in range(10)))
    await spool.close()
    segment = next(tmp_path.glob("seg-*.log"))
    with segment.open("ab") as f:
        f.write(b"\x20\x00\x00\x00\x01\x02")  # a record header whose body never arrived
    again = Spool(tmp_path)
    await again.open()
    await again.append(b"after\n")
    assert await drain(again) == [f"r{i}\n".encode() for i in range(10)] + [b"after\n"]
    await again.close()


async def test_full_spool_holds_acks_until_space_is_freed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 16, segment_bytes=1 << 16)
    await spool.open()
    record = b"y" * 1000 + b"\n"
    futures = [spool.append(record) for i in range(100)]  # ~100 KB into a 64 KB spool
    await asyncio.sleep(0.2)
    done = sum(f.done() for f in futures)
    assert 50 <= done < 100, done
    assert spool.waiting == 100 - done
    assert spool.depth_bytes <= 1 << 16
    batch = spool.read(spool.cursor, 1000)
    spool.commit(batch)  # delivered: room again
    await asyncio.wait_for(asyncio.gather(*futures), 5)
    assert await drain(spool) == [record] * (100 - len(batch.payloads))
    await spool.close()


async def test_append_after_close_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.open()
    await spool.close()
    with pytest.raises(RuntimeError):
        spool.append(b"x\n")


async def test_wait_for_data_wakes_on_append(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.open()
    waiter = asyncio.create_task(spool.wait_for_data(spool.cursor, 5))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await spool.append(b"z\n")
    assert await asyncio.wait_for(waiter, 1) is True
    assert await spool.wait_for_data(spool.read(spool.cursor, 10).end, 0.05) is False
    await spool.close()
