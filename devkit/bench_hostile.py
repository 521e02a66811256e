"""Bad connections for the benchmark, held open from a separate process.

Three kinds, a third each, spread over many loopback source addresses so that the per-address
caps do not decide the run: silent connections that never send a byte, slow senders that drip a
frame one byte every two seconds, and junk senders that write bytes no frame begins with. A
connection the gateway closes is opened again, as a hostile device would. The process runs until
it is terminated; it prints one line with how many it holds once they are all open.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import sys
from multiprocessing.process import BaseProcess

from adapters.hj212.builder import build_frame, build_segment

_ADDRESSES = 200  # 127.0.0.10 .. 127.0.0.209
_SLOW = build_frame(
    build_segment(
        [("QN", "20260101000000000"), ("ST", "31"), ("CN", "2011"), ("PW", "000000")],
        "DataTime=20260101000000;a21026-Rtd=1.0",
    )
)


async def _one(port: int, i: int, opened: asyncio.Event, count: list[int]) -> None:
    kind = i % 3
    source = f"127.0.0.{10 + i % _ADDRESSES}"
    first = True
    while True:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
        except OSError:
            await asyncio.sleep(1.0)
            continue
        if first:
            count[0] += 1
            first = False
            if count[0] == count[1]:
                opened.set()
        try:
            if kind == 0:  # silent
                await reader.read()
            else:
                k = 0
                while not reader.at_eof():
                    chunk = _SLOW[k % len(_SLOW) : k % len(_SLOW) + 1] if kind == 1 else b"x"
                    writer.write(chunk)
                    k += 1
                    await writer.drain()
                    await asyncio.sleep(2.0 if kind == 1 else 1.0)
        except OSError:
            pass
        writer.close()


async def _hold(port: int, count: int) -> None:
    opened = asyncio.Event()
    counter = [0, count]
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_one(port, i, opened, counter)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # do not overrun the listen backlog
    await opened.wait()
    print(f"holding {count} bad connections", flush=True)
    await asyncio.gather(*tasks)


def _main(port: int, count: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.stdout.flush()
    asyncio.run(_hold(port, count))


def start(port: int, count: int) -> BaseProcess:
    """A process holding `count` bad connections to the HJ 212 listener on `port`."""
    proc = multiprocessing.get_context("spawn").Process(
        target=_main, args=(port, count), daemon=True
    )
    proc.start()
    return proc
