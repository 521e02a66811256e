"""Spool fault injection: a write that fails (file size limit, like a full disk) acknowledges
nothing of its batch, leaves no partial record, and the spool goes on afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, resource, signal, sys
    from pathlib import Path
    from gateway.ingest.spool import Spool

    async def main(directory):
        spool = Spool(Path(directory), max_bytes=1 << 20, segment_bytes=1 << 16)
        await spool.open()
        acked, failed = [], []
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, resource.RLIM_INFINITY))
        for i in range(60):
            payload = f"record {i:03d} {'x' * 80}\\n".encode()
            try:
                await spool.append(payload)
                acked.append(payload.decode())
            except OSError as exc:
                failed.append((i, exc.errno))
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        for i in range(60, 70):
            payload = f"record {i:03d} after\\n".encode()
            await spool.append(payload)
            acked.append(payload.decode())
        batch = spool.read(spool.cursor, 1000)
        await spool.close()
        again = Spool(Path(directory))
        await again.open()
        replay = again.read(again.cursor, 1000)
        await again.close()
        print(json.dumps({"acked": acked, "failed": failed,
                          "read": [p.decode() for p in batch.payloads],
                          "replay": [p.decode() for p in replay.payloads]}))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_failed_write_acks_nothing_and_leaves_no_partial_record(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
        check=True,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["failed"], "the file size limit never made a write fail"
    assert all(errno == 27 for _, errno in data["failed"])  # EFBIG
    assert len(data["acked"]) + len(data["failed"]) == 70
    # exactly what was acknowledged is in the spool, in order, before and after a reopen
    assert data["read"] == data["acked"]
    assert data["replay"] == data["acked"]
