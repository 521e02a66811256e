"""Simulated HJ 212 data loggers: frames as each version writes them, replies awaited, the
platform's history requests answered from what the logger recorded, on the logger's clock."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

from adapters.hj212.builder import (
    HISTORY_COMMANDS,
    build_encrypted_frame,
    build_frame,
    build_segment,
    execution_answer,
    request_answer,
)
from adapters.hj212.cp import parse_cp, parse_hj212_time
from adapters.hj212.device import DeviceClient
from adapters.hj212.frame import Frame
from devkit.simulator.devices import FLOW, HOUR, O2, TEN_MIN, LoggerSpec, Upload, source_of
from gateway.registry import parse_key

REPLY_TIMEOUT_S = 10.0
RETRY_PAUSE_S = 0.2  # between sends of a frame past the second, when a logger persists
LAST_PART = (O2, FLOW)  # what a splitting logger sends in the last packet


def split_cp(cp: str) -> list[str]:
    """An hourly data area in two packets: the pollutants first, O2 and flow last (each with
    the DataTime)."""
    head, _, body = cp.partition(";")
    groups = body.split(";")
    last = [g for g in groups if g.partition("-")[0] in LAST_PART]
    first = [g for g in groups if g not in last]
    return [f"{head};{';'.join(first)}", f"{head};{';'.join(last)}"]


def encode(spec: LoggerSpec, upload: Upload, qn: str, *, backfill: bool = False) -> list[bytes]:
    """The frames of one upload: split in two packets when the logger splits hourly data,
    SM4-encrypted for 2025 loggers with a key, with the checksum the upload names; without QN
    and Flag when the upload is `bare`."""
    parts = split_cp(upload.cp) if spec.split_hourly and upload.cn == "2061" else [upload.cp]
    flag = spec.flag_version << 2 | 1 | (2 if len(parts) > 1 else 0)
    frames = []
    for pno, part in enumerate(parts, 1):
        fields: list[tuple[str, str | int]] = [] if upload.bare else [("QN", qn)]
        fields += [("ST", spec.st), ("CN", upload.cn), ("PW", spec.password), ("MN", spec.mn)]
        if not upload.bare:
            fields.append(("Flag", flag))
        if len(parts) > 1:
            fields += [("PNUM", len(parts)), ("PNO", pno)]
        if backfill:
            fields.append(("RF", 1))
        if spec.sm4_key and part:
            frames.append(build_encrypted_frame(fields, part, parse_key(spec.sm4_key)))
        else:
            frames.append(build_frame(build_segment(fields, part), crc=upload.crc))
    return frames


class Logger:
    """One logger's TCP connection, reconnected when the platform drops it. A frame is sent
    again on a new connection when the connection breaks or its reply does not come in time:
    once, or for up to `retry_for_s` seconds (as loggers that keep trying do)."""

    def __init__(
        self,
        spec: LoggerSpec,
        address: tuple[str, int],
        history: dict[tuple[str, str, datetime], str],
        *,
        retry_for_s: float = 0.0,
    ) -> None:
        self.spec = spec
        self.address = address
        self.history = history
        self.retry_for_s = retry_for_s
        self.client: DeviceClient | None = None
        self.sent = 0
        self.acked: list[Upload] = []  # uploads whose every packet the platform answered
        self.resent = 0  # frames sent again after a broken connection or a missing reply
        self.backfilled: list[datetime] = []
        self.requested: list[tuple[str, datetime, datetime]] = []  # history requests: CN, period
        self.clock: datetime | None = None  # the device's time: that of its latest upload

    async def upload(self, upload: Upload, *, backfill: bool = False) -> None:
        """Send an upload; wait for each packet's reply if it asks for one."""
        self.sent += 1
        self.clock = max(upload.at, self.clock or upload.at)
        qn = f"{upload.at:%Y%m%d%H%M%S}{self.sent % 1000:03d}"
        answered = upload.expect_reply and not upload.bare
        for raw in encode(self.spec, upload, qn, backfill=backfill):
            await self._exchange(raw, qn if answered else None)
        if answered:
            self.acked.append(upload)

    async def _exchange(self, raw: bytes, qn: str | None) -> None:
        give_up = time.monotonic() + self.retry_for_s
        attempt = 0
        while True:
            attempt += 1
            try:
                if self.client is None:
                    host, port = self.address
                    source = source_of(self.spec.k) if host.startswith("127.") else None
                    self.client = await DeviceClient.connect(host, port, source=source)
                await self.client.send(raw)
                if qn is not None:
                    await self._until_reply(qn)
                return
            except (ConnectionError, OSError):  # a reply not in time too (TimeoutError)
                await self.close()
                if attempt >= 2 and time.monotonic() >= give_up:
                    raise
                self.resent += 1
                if attempt >= 2:
                    await asyncio.sleep(RETRY_PAUSE_S)

    async def _until_reply(self, qn: str) -> None:
        """Read until the reply to `qn`; answer history requests that arrive meanwhile."""
        assert self.client is not None
        while True:
            frame = await self.client.read_frame(REPLY_TIMEOUT_S)
            if frame.cn in ("9013", "9014") and frame.qn == qn:
                return
            if frame.cn in HISTORY_COMMANDS:
                await self._backfill(frame)

    async def _backfill(self, request: Frame) -> None:
        """9011, the recorded uploads of the period (RF=1), then 9012."""
        assert self.client is not None
        await self.client.send(request_answer(request))
        params = parse_cp(request.cp).params
        begin = parse_hj212_time(params["BeginTime"])
        end = parse_hj212_time(params["EndTime"])
        self.requested.append((request.cn, begin, end))
        step = HOUR if request.cn == "2061" else TEN_MIN
        now = self.clock or begin
        moment = begin
        while moment <= end:
            recorded = self.history.get((self.spec.mn, request.cn, moment))
            if recorded is not None:
                await self.upload(
                    Upload(now, self.spec, request.cn, recorded, moment), backfill=True
                )
                self.backfilled.append(moment)
            moment += step
        await self.client.send(execution_answer(request))

    async def heartbeat(self, at: datetime) -> None:
        await self.upload(Upload(at, self.spec, "9015"))

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await client.close()
