"""A `FrameHandler` without sockets or spool: a registry of test devices, a pipeline whose
futures are done at once, a link that remembers nothing. For tests that feed frames by the
thousand and look at what the handler answers, stores and logs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from adapters.hj212.builder import build_encrypted_frame, build_frame, build_segment
from adapters.hj212.config import Hj212Config
from adapters.hj212.frame import Frame
from adapters.hj212.handler import Backfill, FrameHandler, Reply
from gateway.ingest.pipeline import Pipeline
from gateway.model import Point
from gateway.registry import Registry, RegistryFile

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_LOOP = asyncio.new_event_loop()  # futures need one; nothing runs on it
PASSWORD = "pw-7Qz#river"  # distinctive: a log line must never show it
WRONG_PASSWORD = "pw-wrong-K9v!lake"
KEY_TEXT = "k3Y-sm4-Secret!!"  # 16 ASCII characters
KEY = KEY_TEXT.encode()
MN_WATER = "23040281003022"  # also the MN of the published frames 25-27 (PW 123456)
MN_KEYED = "010000A8900016F000169DC0"  # the MN of the HJ 212-2025 examples
MN_MIGRATING = "MIGRATING0000000000000001"
MN_OPEN = "LD130133000015"
MN_PUBLISHED = "C201801010001"  # frame 22 (CRC-16/MODBUS, PW 123456)


def registry(*, example_key: bool = False, enterprise: str = "E1") -> Registry:
    """Test devices; `example_key` gives MN_KEYED the 2025 examples' key (16 x "0")."""
    outlets: list[dict[str, Any]] = [
        {"id": "DW1", "mn": MN_WATER, "password": PASSWORD},
        {
            "id": "DA1",
            "mn": MN_KEYED,
            "password": PASSWORD,
            "sm4_key": "0" * 16 if example_key else KEY_TEXT,
        },
        {
            "id": "DA2",
            "mn": MN_MIGRATING,
            "password": PASSWORD,
            "sm4_key": KEY_TEXT,
            "allow_plaintext": True,
        },
        {"id": "OPEN1", "mn": MN_OPEN, "open": True},
        {"id": "MB1", "mn": MN_PUBLISHED, "password": "123456"},
    ]
    data = {"enterprises": [{"id": enterprise, "outlets": outlets}]}
    return Registry(RegistryFile.model_validate(data))


class FakePipeline:
    """Takes every submission at once; keeps what was stored."""

    def __init__(self) -> None:
        self.stored: list[Point] = []

    def submit(
        self, points: Sequence[Point], judged: Sequence[Point] | None = None
    ) -> asyncio.Future[None] | None:
        self.stored += points
        fut: asyncio.Future[None] = _LOOP.create_future()
        fut.set_result(None)
        return fut

    def judge(self, points: Sequence[Point]) -> None:
        pass


@dataclass
class FakeLink:
    peer: str = "192.0.2.7:40000"
    address: str = "192.0.2.7"
    backfills: dict[str, Backfill] = field(default_factory=dict)

    def seen(self, frame: Frame) -> None:
        pass


def make_handler(
    *, example_key: bool = False, enterprise: str = "E1", **config: Any
) -> tuple[FrameHandler, FakePipeline, FakeLink]:
    pipeline = FakePipeline()
    handler = FrameHandler(
        Hj212Config(**config),
        registry(example_key=example_key, enterprise=enterprise),
        cast(Pipeline, pipeline),
        clock=lambda: NOW,
    )
    return handler, pipeline, FakeLink()


def acked(replies: list[Reply] | None) -> bool:
    """Whether the handler took the frame (None is a refusal)."""
    return replies is not None


def segment(
    *,
    mn: str = MN_WATER,
    cn: str = "2061",
    qn: str | None = "20261201110000123",
    pw: str = PASSWORD,
    cp: str = "DataTime=20261201100000;w01018-Avg=40.10,w01018-Flag=N;w21003-Avg=1.52,"
    "w21003-Flag=N",
    flag: int | None = 5,
    extra: Sequence[tuple[str, str | int]] = (),
) -> tuple[list[tuple[str, str | int]], str]:
    """(header fields, CP) of an upload."""
    fields: list[tuple[str, str | int]] = [] if qn is None else [("QN", qn)]
    fields += [("ST", "32"), ("CN", cn), ("PW", pw), ("MN", mn)]
    if flag is not None:
        fields.append(("Flag", flag))
    fields += list(extra)
    return fields, cp


def frame(*, key: bytes | None = None, crc: str = "hj212", **kwargs: Any) -> bytes:
    """A raw frame (no trailer) from `segment`'s arguments, encrypted with `key` if given."""
    fields, cp = segment(**kwargs)
    if key is not None:
        return build_encrypted_frame(fields, cp, key)[:-2]
    return build_frame(build_segment(fields, cp), crc=crc)[:-2]


def base_frames() -> dict[str, bytes]:
    """Valid frames the handler takes, one of each kind a device sends."""
    hour = "DataTime=20261201100000;"
    return {
        "2061 water": frame(),
        "2051 minutes": frame(
            cn="2051",
            qn="20261201104000001",
            cp="DataTime=20261201103000;a21026-Min=12.1,a21026-Avg=13.4,a21026-Max=15.0,"
            "a21026-Flag=N;a21002-Min=40.0,a21002-Avg=41.5,a21002-Max=43.2,a21002-Flag=N",
        ),
        "2011 rtd": frame(
            cn="2011",
            qn="20261201113000500",
            cp="DataTime=20261201113000;a21026-Rtd=12.5,a21026-ZsRtd=14.1,a21026-Flag=N;"
            "a34013-Rtd=3.2,a34013-Flag=N;a00000-Rtd=125000.0,a00000-Flag=N",
        ),
        "2005 bare": frame(
            mn=MN_OPEN,
            cn="2011",
            qn=None,
            flag=None,
            pw="123456",
            cp="DataTime=20261201113000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N",
        ),
        "2061 modbus": frame(crc="modbus", qn="20261201110000124"),
        "2021 facility": frame(cn="2021", qn="20261201110000125", cp=hour + "SB1-RS=1;SB2-RS=0"),
        "2041 running": frame(cn="2041", qn="20261201110000126", cp=hour + "SB1-RT=23.5"),
        "2061 encrypted": frame(
            mn=MN_KEYED,
            flag=9,
            qn="20261201110000127",
            key=KEY,
            cp=hour + "a21026-Avg=35.20,a21026-ZsAvg=40.11,a21026-Flag=N;a19001-Avg=8.1,"
            "a19001-Flag=N",
        ),
        "9015 heartbeat": frame(cn="9015", qn="20261201110500000", cp="", flag=5),
    }
