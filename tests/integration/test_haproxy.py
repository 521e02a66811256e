"""The HJ 212 server behind a real HAProxy (`send-proxy`, `send-proxy-v2`) and behind headers
written by hand: devices keep their own address for the limits, the anomalies, the archive and
the metrics; a connection without a header is refused where one is required; with the setting
off a header is junk, as before. A missing haproxy binary is an error, never a skip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as METRICS

import adapters.hj212.connection as connection_module
from adapters.hj212.device import DeviceClient
from adapters.hj212.proxy import v1_header, v2_header
from devkit import localstack
from gateway.archive.files import day_files
from gateway.archive.record import decode
from gateway.config import LoadedConfig
from gateway.supervisor import Gateway
from tests.frames import qn_for, upload

PROXY = "127.0.0.1"  # HAProxy's address towards the gateway; the devices use 127.0.0.2 and up
MODES = ("send-proxy", "send-proxy-v2", "plain")


@pytest.fixture
def gateway_port() -> int:
    return localstack.free_port()


@pytest.fixture
def haproxy(tmp_path: Path, gateway_port: int) -> Iterator[localstack.HAProxyServer]:
    """A real HAProxy on loopback: one frontend per way of forwarding to the gateway."""
    routes = [
        localstack.Route(
            mode,
            localstack.free_port(),
            [("127.0.0.1", gateway_port)],
            option="" if mode == "plain" else mode,
            source=PROXY,
        )
        for mode in MODES
    ]
    proxy = localstack.haproxy(tmp_path / "haproxy", routes)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def counter(name: str, **labels: str) -> float:
    return METRICS.get_sample_value(name, labels) or 0.0


async def closed_by_server(client: DeviceClient, within_s: float = 5.0) -> bool:
    try:
        async with asyncio.timeout(within_s):
            return await client.reader.read(100) == b""
    except ConnectionError:  # reset
        return True
    except TimeoutError:
        return False


async def acked(client: DeviceClient, frame: bytes) -> bool:
    """Whether the gateway answers `frame` with a 9014 (False: the connection was closed)."""
    try:
        await client.send(frame)
        return (await client.read_frame()).cn == "9014"
    except ConnectionError:
        return False


async def connect_and_ack(port: int, sources: list[str]) -> tuple[list[DeviceClient], list[bool]]:
    """One device per source, each connected and its first upload sent before the next."""
    devices, answered = [], []
    for i, source in enumerate(sources):
        dev = await DeviceClient.connect("127.0.0.1", port, source=source)
        devices.append(dev)
        answered.append(await acked(dev, upload(qn=qn_for(i))))
    return devices, answered


def archived_peers(directory: Path) -> list[str]:
    """The `peer` of every frame in the archive."""
    return [
        decode(line).record.peer
        for _, path in day_files(directory)
        for line in path.read_bytes().splitlines(keepends=True)
    ]


class Lines:
    """Stands in for the connection's logger: each call is one log line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    info = warning


# -- through HAProxy ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["send-proxy", "send-proxy-v2"])
async def test_devices_through_haproxy_keep_their_own_address(
    mode: str,
    gateway_config: Callable[..., LoadedConfig],
    gateway_port: int,
    haproxy: localstack.HAProxyServer,
) -> None:
    hj212 = {
        "listen": f"127.0.0.1:{gateway_port}",
        "proxy_protocol": "required",
        "proxy_from": [PROXY],
        "max_connections_per_address": 64,
    }
    gw = Gateway(gateway_config(hj212=hj212))
    version = "1" if mode == "send-proxy" else "2"
    headers_before = counter("hj212_proxy_headers_total", version=version)
    refused_before = counter("hj212_connections_closed_total", reason="max_connections_per_address")
    await gw.start()
    port = haproxy.ports[mode]
    try:
        # 64 devices from one address (its limit) and one from another: 65 through one proxy
        devices, answered = await connect_and_ack(port, ["127.0.0.2"] * 64 + ["127.0.0.3"])
        assert answered == [True] * 65
        assert gw.hj212.per_address == {"127.0.0.2": 64, "127.0.0.3": 1}
        own = {"{}:{}".format(*d.writer.get_extra_info("sockname")) for d in devices}
        assert {c.peer for c in gw.hj212.connections} == own

        # the limit is the device address's: a 65th from 127.0.0.2 is refused, not the proxy
        extra = await DeviceClient.connect("127.0.0.1", port, source="127.0.0.2")
        assert await closed_by_server(extra)
        refused = counter("hj212_connections_closed_total", reason="max_connections_per_address")
        assert refused == refused_before + 1

        # an unregistered device's anomaly names its own address
        stranger = await DeviceClient.connect("127.0.0.1", port, source="127.0.0.9")
        await stranger.send(upload(mn="99999999999999", qn=qn_for(100)))
        assert gw.anomalies is not None
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline and not gw.anomalies.query(type_="unregistered_device")[0]
        ):
            await asyncio.sleep(0.05)
        (anomaly,), _ = gw.anomalies.query(type_="unregistered_device")
        assert anomaly.subject == "address:127.0.0.9"
        assert counter("hj212_proxy_headers_total", version=version) == headers_before + 67
        for dev in [*devices, extra, stranger]:
            await dev.close()
    finally:
        await gw.shutdown()
    peers = archived_peers(gw.loaded.data_dir / "archive")
    assert len(peers) == 66
    assert set(peers) == own | {"{}:{}".format(*stranger.writer.get_extra_info("sockname"))}


async def test_without_proxy_protocol_the_proxy_is_one_address(
    gateway_config: Callable[..., LoadedConfig],
    gateway_port: int,
    haproxy: localstack.HAProxyServer,
) -> None:
    hj212 = {"listen": f"127.0.0.1:{gateway_port}", "max_connections_per_address": 64}
    gw = Gateway(gateway_config(hj212=hj212))
    await gw.start()
    port = haproxy.ports["plain"]
    try:
        devices, answered = await connect_and_ack(port, [f"127.0.0.{2 + i % 5}" for i in range(65)])
        assert answered == [True] * 64 + [False]  # every device is the proxy's address
        assert gw.hj212.per_address == {PROXY: 64}
        for dev in devices:
            await dev.close()
    finally:
        await gw.shutdown()


@pytest.mark.parametrize("mode", ["send-proxy", "send-proxy-v2"])
async def test_off_a_header_is_junk_as_before(
    mode: str,
    gateway_config: Callable[..., LoadedConfig],
    gateway_port: int,
    haproxy: localstack.HAProxyServer,
) -> None:
    gw = Gateway(gateway_config(hj212={"listen": f"127.0.0.1:{gateway_port}"}))
    junk_before = counter("hj212_junk_bytes_total")
    await gw.start()
    try:
        dev = await DeviceClient.connect("127.0.0.1", haproxy.ports[mode], source="127.0.0.2")
        assert await acked(dev, upload(qn=qn_for(1)))
        assert gw.hj212.per_address == {PROXY: 1}
        assert counter("hj212_junk_bytes_total") > junk_before  # the header, skipped
        await dev.close()
    finally:
        await gw.shutdown()


# -- headers written by hand -----------------------------------------------------------------


async def test_required_refuses_a_connection_without_a_header(
    gateway_config: Callable[..., LoadedConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = Lines()
    monkeypatch.setattr(connection_module, "log", lines)
    hj212 = {"proxy_protocol": "required", "proxy_from": [PROXY], "proxy_header_timeout_s": 0.3}
    gw = Gateway(gateway_config(hj212=hj212))
    before = {
        r: counter("hj212_proxy_rejected_total", reason=r)
        for r in ("missing", "untrusted", "malformed", "timeout")
    }
    await gw.start()
    port = gw.hj212.port
    try:
        for i in range(3):  # a device straight to the port, from the proxy's address
            dev = await DeviceClient.connect("127.0.0.1", port, source=PROXY)
            await dev.send(upload(qn=qn_for(i)))
            assert await closed_by_server(dev)
        elsewhere = await DeviceClient.connect("127.0.0.1", port, source="127.0.0.5")
        assert await closed_by_server(elsewhere)  # not a proxy: refused before any byte
        broken = await DeviceClient.connect("127.0.0.1", port, source=PROXY)
        await broken.send(b"PROXY TCP4 10.0.0.1 10.0.0.2 99999 9212\r\n" + upload(qn=qn_for(5)))
        assert await closed_by_server(broken)
        silent = await DeviceClient.connect("127.0.0.1", port, source=PROXY)
        await silent.send(b"PROXY TCP4 10.0.0.1")  # and never the rest
        assert await closed_by_server(silent)

        after = {r: counter("hj212_proxy_rejected_total", reason=r) - before[r] for r in before}
        assert after == {"missing": 3, "untrusted": 1, "malformed": 1, "timeout": 1}
        assert gw.hj212.connections == set()
        assert gw.hj212.awaiting_header == {}
        refused = [kw["reason"] for event, kw in lines.lines if event == "PROXY header refused"]
        assert sorted(refused) == ["malformed", "missing", "timeout", "untrusted"]  # one each
    finally:
        await gw.shutdown()


async def test_required_takes_headers_in_pieces_and_health_checks(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    hj212 = {"proxy_protocol": "required", "proxy_from": ["127.0.0.0/30"]}
    gw = Gateway(gateway_config(hj212=hj212))
    await gw.start()
    port = gw.hj212.port
    try:
        v1 = await DeviceClient.connect("127.0.0.1", port)
        for byte in v1_header(("192.0.2.7", 40001), ("198.51.100.1", 9212)):
            await v1.send(bytes([byte]))
        assert await acked(v1, upload(qn=qn_for(1)))

        v2 = await DeviceClient.connect("127.0.0.1", port, source="127.0.0.2")
        header = v2_header(("2001:db8::7", 40002), ("2001:db8::1", 9212), tlvs=b"\x04\x00\x01x")
        frame = upload(qn=qn_for(2))
        await v2.send(header[:5])
        await v2.send(header[5:20])
        await v2.send(header[20:] + frame[:10])  # the frame begins in the header's last piece
        assert await acked(v2, frame[10:])

        check = await DeviceClient.connect("127.0.0.1", port)  # a LOCAL health check
        assert await acked(check, v2_header(None, None, local=True) + upload(qn=qn_for(3)))

        peers = {c.peer for c in gw.hj212.connections}
        local = "{}:{}".format(*check.writer.get_extra_info("sockname"))
        assert peers == {"192.0.2.7:40001", "2001:db8::7:40002", local}
        assert gw.hj212.per_address == {"192.0.2.7": 1, "2001:db8::7": 1, "127.0.0.1": 1}
        for dev in (v1, v2, check):
            await dev.close()
    finally:
        await gw.shutdown()


async def test_optional_never_lets_a_device_spoof_its_address(
    gateway_config: Callable[..., LoadedConfig],
) -> None:
    hj212 = {"proxy_protocol": "optional", "proxy_from": [PROXY], "proxy_header_timeout_s": 0.3}
    gw = Gateway(gateway_config(hj212=hj212))
    await gw.start()
    port = gw.hj212.port
    try:
        # a device elsewhere claims another address: its header is junk, its address its own
        spoof = await DeviceClient.connect("127.0.0.1", port, source="127.0.0.4")
        fake = v1_header(("203.0.113.9", 1234), ("127.0.0.1", port))
        assert await acked(spoof, fake + upload(qn=qn_for(1)))
        # a device at a proxy's address without a header: served as itself
        direct = await DeviceClient.connect("127.0.0.1", port, source=PROXY)
        assert await acked(direct, upload(qn=qn_for(2)))
        # ... and one that waits past the header timeout before its first frame, too
        quiet = await DeviceClient.connect("127.0.0.1", port, source=PROXY)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and gw.hj212.awaiting_header:
            await asyncio.sleep(0.05)
        assert gw.hj212.awaiting_header == {}
        assert await acked(quiet, upload(qn=qn_for(3)))
        # the proxy's own connection with a header
        proxied = await DeviceClient.connect("127.0.0.1", port, source=PROXY)
        assert await acked(
            proxied, v2_header(("10.9.8.7", 5), ("10.0.0.1", 9212)) + upload(qn=qn_for(4))
        )
        assert gw.hj212.per_address == {"127.0.0.4": 1, PROXY: 2, "10.9.8.7": 1}
        for dev in (spoof, direct, quiet, proxied):
            await dev.close()
    finally:
        await gw.shutdown()
