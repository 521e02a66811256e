"""What the platform does with one raw HJ 212 frame, whatever carried it (TCP or MQTT).

`FrameHandler.process` parses, checks (CRC policy, length, MN, PW; for data uploads the use of
SM4, the data area, its values and time, the QN, what InfluxDB takes), makes the data durable
through the pipeline and returns the replies to send, each with the future that must complete
first. The transport sends them in order; it never sends a data answer before its future is
done. A frame is stored and answered whole, or refused (counted, logged in one line at most per
interval) and neither; whatever its bytes, no exception but SpoolFull / SpoolClosed leaves
`process`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

import structlog

from gateway import metrics
from gateway.archive import FrameArchive, FrameRecord
from gateway.influx.lineproto import unstorable
from gateway.ingest import Pipeline, PowerConverter, PowerSample, SpoolClosed, SpoolFull
from gateway.model import DeviceEvent, DeviceEventKind, Point, from_ns
from gateway.ratelimit import LogLimiter
from gateway.registry import Device, Registry

from . import builder
from .codes import CodeGate
from .config import Hj212Config
from .convert import (
    DATA_COMMANDS,
    LOG_COMMANDS,
    Source,
    TimeWindow,
    check_upload,
    device_log_points,
    normalize,
    number,
)
from .cp import CpData, parse_cp, parse_hj212_time
from .crc import accepts
from .errors import HJ212Error
from .frame import Frame, parse_frame
from .qn_memory import QnMemory
from .reassembly import Reassembler

log = structlog.get_logger("adapters.hj212")
ADAPTER = "hj212"
UPLOAD_PREFIXES = ("2", "3")  # data and device-info uploads are answered with 9014
_RECEIVED = metrics.FRAMES_RECEIVED.labels(adapter=ADAPTER)
CONTACT_EVERY_S = 5.0
CLOCK_STEP = timedelta(minutes=5)


@dataclass(slots=True)
class Backfill:
    """A history request the gateway sent and that is still open."""

    cn: str
    begin: datetime
    end: datetime
    qn: str
    deadline: float


class Reply(NamedTuple):
    """Something to send back: `data` (or nothing) once `durable` (if any) is done."""

    durable: asyncio.Future[None] | None
    data: bytes | None
    cn: str


class Link(Protocol):
    """The transport a frame came over, as the handler sees it."""

    @property
    def peer(self) -> str: ...

    @property
    def address(self) -> str:
        """Where frames come from, as limits and refused-device anomalies group them (the IP
        of a TCP peer, not ip:port)."""
        ...

    @property
    def backfills(self) -> dict[str, Backfill]: ...

    def seen(self, frame: Frame) -> None:
        """An accepted frame from `frame.mn` came over this link."""


class FrameHandler:
    """Shared by every link. `registry` is read at each use: given a callable (the gateway's
    registry holder), a reload takes effect at the next frame."""

    def __init__(
        self,
        config: Hj212Config,
        registry: Registry | Callable[[], Registry],
        pipeline: Pipeline,
        clock: Callable[[], datetime],
        power: PowerConverter | None = None,
    ) -> None:
        self.config = config
        self.power = power
        self._registry = registry if callable(registry) else lambda: registry
        self.pipeline = pipeline
        self.clock = clock
        self.default_tz = ZoneInfo(config.timezone)
        self.reassembler: Reassembler[tuple[Source, bool]] = Reassembler(
            ttl_s=config.split_window_s
        )
        self.limiter = LogLimiter(config.error_log_interval_s)
        self.crc_seen: dict[str, str] = {}  # MN -> CRC variant it uses
        self.codes = CodeGate()
        self.window = TimeWindow(
            timedelta(days=config.max_past_days), timedelta(seconds=config.max_future_s)
        )
        self.qns = QnMemory(config.qn_window_s)
        self.on_event: Callable[[DeviceEvent], None] | None = None  # the rules, when wired
        # MN -> (when its last contact was reported, the device clock it showed)
        self._contacts: dict[str, tuple[float, datetime | None]] = {}
        # archive: every frame's record (gateway/archive), when wired; what is known of the
        # frame being handled: (MN, CRC variant, DataTime) and the reason it was refused for
        self.archive: FrameArchive | None = None
        self._seen: tuple[str, str, datetime | None] = ("", "", None)
        self._refused: str | None = None

    @property
    def registry(self) -> Registry:
        """The registry in force."""
        return self._registry()

    def key_for(self, mn: str) -> bytes | None:
        device = self.registry.device(mn)
        return device.sm4_key if device is not None else None

    def process(
        self, raw: bytes, link: Link, *, expected_mn: str | None = None
    ) -> list[Reply] | None:
        """Handle one raw frame: the replies to send, in order, or None when it is refused.
        With an archive, the frame's record is queued before this returns (so before the
        spool writes its points) with its verdict: accepted, or the reason it was refused."""
        _RECEIVED.inc()
        archive = self.archive
        if archive is None:
            return self._process(raw, link, expected_mn)
        self._seen, self._refused = ("", "", None), None
        verdict = "error"  # a bug: counted in errors_total by the transport
        try:
            replies = self._process(raw, link, expected_mn)
            verdict = self._refused or "accepted"
            return replies
        except (SpoolFull, SpoolClosed) as exc:  # ArchiveFull too: not stored, not answered
            verdict = getattr(exc, "reason", "spool_full")
            raise
        finally:
            mn, crc, data_time = self._seen
            serial = getattr(link, "serial", 0)  # a TCP connection's; MQTT topics have none
            record = FrameRecord(self.clock(), link.peer, serial, mn, crc, verdict, raw, data_time)
            archive.put(record)

    def _process(self, raw: bytes, link: Link, expected_mn: str | None) -> list[Reply] | None:
        try:
            frame = parse_frame(raw, self.key_for)
        except HJ212Error as exc:
            mn = exc.mn  # None when the header could not be read
            self.reject(link, mn, exc.reason, str(exc))
            # not decrypted, so not CRC-checked either (the CRC covers the plaintext)
            if mn is not None and exc.reason in ("decrypt", "no_key"):
                known = self.registry.device(mn)
                address = link.address
                if known is None:
                    self._event("unknown_mn", mn, "", link.peer, address=address)
                else:
                    kind: DeviceEventKind = "bad_key" if exc.reason == "decrypt" else "no_key"
                    self._event(kind, mn, known.enterprise, link.peer, address=address)
                self._contacts.pop(mn, None)
            return None
        self._seen = (frame.mn, frame.crc, None)
        if expected_mn is not None and frame.mn != expected_mn:
            self.reject(link, frame.mn, "mn_mismatch", f"frame MN is not {expected_mn!r}")
            return None
        device = self.registry.device(frame.mn)
        policy = (device.outlet.crc_policy if device else None) or self.config.crc_policy
        if not accepts(policy, frame.crc):  # first: line noise must not pass for a bad MN or PW
            self.reject(link, frame.mn, "crc", f"CRC {frame.crc_sent} matches no variant")
            return None
        if not frame.length_ok:  # a byte lost or added, which the 8-bit CRC may not see
            self.reject(
                link,
                frame.mn,
                "length_mismatch",
                f"length field {frame.declared_length} counts neither the "
                f"{frame.segment_length} bytes nor the {frame.char_length} characters",
            )
            return None
        if device is None:
            self.reject(link, frame.mn, "unknown_mn", f"MN {frame.mn!r} is not registered")
            address = link.address
            shown = _frame_time(frame, self.default_tz)
            self._event("unknown_mn", frame.mn, "", link.peer, shown, address=address)
            self._contacts.pop(frame.mn, None)
            return None
        if not device.outlet.open and frame.pw != device.outlet.password:
            self.reject(link, frame.mn, "bad_password", "PW does not match the registry")
            address = link.address
            shown = _frame_time(frame, device.timezone or self.default_tz)
            self._event(
                "bad_password", frame.mn, device.enterprise, link.peer, shown, address=address
            )
            self._contacts.pop(frame.mn, None)
            return None
        self._note_crc(frame)
        link.seen(frame)
        self._contact(frame, device, link.peer)
        cn = frame.cn
        if cn in ("9011", "9012", "9013", "9014"):
            self._answer_received(frame, link)
            return []
        if cn == "1013":
            replies = [Reply(None, builder.notice_ack(frame), "9013")]
            if self.config.answer_time_requests:
                replies.append(Reply(None, self._time_setting(frame, device), "1012"))
            return replies
        if cn in ("9015", "9021"):
            return [Reply(None, builder.notice_ack(frame), "9013")] if frame.wants_reply else []
        if cn in DATA_COMMANDS:
            return self._store(frame, device, link, raw)
        if cn in LOG_COMMANDS:
            return self._store_log(frame, device, link, raw)
        if cn.startswith(UPLOAD_PREFIXES) and frame.wants_reply:
            return [Reply(None, builder.data_ack(frame), "9014")]
        return []

    def _contact(self, frame: Frame, device: Device, peer: str) -> None:
        """Tell the rules a device spoke, with its clock (the frame's QN): at once after a
        refusal, else at most every 5 s, or sooner when its clock moved on by 5 min (a
        replayed day)."""
        now = time.monotonic()
        own = frame.cn.startswith(UPLOAD_PREFIXES) or frame.cn in ("9015", "9021")
        # only the device's own frames show its clock: a 9011/9012/9014 carries the QN of the
        # gateway's request, and a 1013 asks for the time because its clock may be wrong
        shown = _qn_time(frame.qn, device.timezone or self.default_tz) if own else None
        last = self._contacts.get(frame.mn)
        clock_moved = shown is not None and (
            last is None or last[1] is None or shown - last[1] >= CLOCK_STEP
        )
        if last is None or now - last[0] >= CONTACT_EVERY_S or clock_moved:
            self._contacts[frame.mn] = (now, shown or (last[1] if last else None))
            self._event("contact", frame.mn, device.enterprise, peer, shown)

    def _event(
        self,
        kind: DeviceEventKind,
        mn: str,
        enterprise: str,
        peer: str,
        device_time: datetime | None = None,
        address: str = "",
    ) -> None:
        if self.on_event is not None:
            event = DeviceEvent(
                kind, f"mn:{mn}", self.clock(), enterprise, f"from {peer}", device_time, address
            )
            self.on_event(event)

    def reject(self, link: Link, mn: str | None, reason: str, detail: str) -> None:
        """Count a refused frame; log it at most once per sender address, reason and interval
        (not per MN: a sender can make up a new one for every frame)."""
        metrics.FRAMES_REJECTED.labels(adapter=ADAPTER, reason=reason).inc()
        self._refused = reason
        if mn is not None and not self._seen[0]:
            self._seen = (mn, "", None)
        address = link.address
        suppressed = self.limiter.allow((address, reason), time.monotonic())
        if suppressed >= 0:
            log.warning(
                "frame rejected",
                peer=link.peer,
                mn=mn if mn is None or len(mn) <= 40 else mn[:40] + "…",
                reason=reason,
                detail=detail,
                suppressed_since_last=suppressed,
            )

    def _note_crc(self, frame: Frame) -> None:
        if self.crc_seen.get(frame.mn) != frame.crc:
            self.crc_seen[frame.mn] = frame.crc
            if frame.crc != "hj212":
                log.info("device uses a non-standard CRC", mn=frame.mn, variant=frame.crc)
        metrics.crc_variant(frame.crc).inc()

    def _store(self, frame: Frame, device: Device, link: Link, raw: bytes) -> list[Reply] | None:
        """Store a data upload whole and answer it, or refuse it whole (nothing stored)."""
        if device.sm4_key is not None and not frame.encrypted:
            if not device.outlet.allow_plaintext:
                self.reject(link, frame.mn, "plaintext", "data upload in clear; the MN has a key")
                return None
            metrics.PLAINTEXT_UPLOADS.inc()
            suppressed = self.limiter.allow((frame.mn, "plaintext_taken"), time.monotonic())
            if suppressed >= 0:
                log.warning(
                    "data upload taken in clear (allow_plaintext)",
                    peer=link.peer,
                    mn=frame.mn,
                    suppressed_since_last=suppressed,
                )
        tz = device.timezone or self.default_tz
        source = Source(device.enterprise, device.outlet.id, tz)
        now = self.clock()
        try:
            cp = parse_cp(frame.cp, strict=True)
            moment = check_upload(cp, source, now, self.window, st=frame.st or "", cn=frame.cn)
        except HJ212Error as exc:
            self.reject(link, frame.mn, exc.reason, str(exc))
            return None
        self._seen = (frame.mn, frame.crc, moment)
        seen_at = time.monotonic()
        qn_key = self.qns.key(frame, cp)
        if qn_key is not None and self.qns.reused(qn_key, hash(raw), seen_at):
            self.reject(
                link,
                frame.mn,
                "qn_reused",
                f"QN {frame.qn} of CN {frame.cn} came back with other content",
            )
            return None
        backfill = frame.backfill or _in_backfill(link.backfills.get(frame.mn), frame, cp, tz)
        power: list[Point] = []
        if device.outlet.power_codes and self.power is not None:
            cp, power = self._power_points(cp, device, moment)
        result = normalize(frame, cp, source, now, backfill=backfill)
        stored = self.codes.admit(device, result.points)  # invented codes make no series
        if result.skipped_values:  # check_upload passed every value: a bug, not the device
            self.reject(link, frame.mn, "bad_value", f"{result.skipped_values} non-numeric values")
            return None
        points = stored + power
        problem = next(filter(None, map(unstorable, points)), None)
        if problem is not None:  # what InfluxDB would refuse is refused before the answer
            self.reject(link, frame.mn, "unstorable", problem)
            return None
        if self.archive is not None:  # its record must be taken before the points are stored
            self.archive.make_room(raw)  # ArchiveFull (a SpoolFull): the transport decides
        judged: list[Point] | None = None  # the rules judge whole records only
        if frame.is_split:
            whole = self.reassembler.add(frame, cp, time.monotonic(), (source, backfill))
            judged = power
            if whole is not None:
                whole_points = normalize(frame, whole, source, now, backfill=backfill).points
                judged = self.codes.admit(device, whole_points) + power
        fut = self.pipeline.submit(points, judged)  # SpoolFull: the transport decides
        if qn_key is not None:
            self.qns.remember(qn_key, hash(raw), seen_at)
        if frame.wants_reply:
            return [Reply(fut, builder.data_ack(frame), "9014")]
        return [Reply(fut, None, "")] if fut is not None else []

    def _store_log(
        self, frame: Frame, device: Device, link: Link, raw: bytes
    ) -> list[Reply] | None:
        """Store a device log (2081, 3020) and answer it, or refuse it whole (a CP that does
        not parse, a value InfluxDB would refuse). Its age refuses nothing."""
        source = Source(device.enterprise, device.outlet.id, device.timezone or self.default_tz)
        try:
            cp = parse_cp(frame.cp, strict=True)
        except HJ212Error as exc:
            self.reject(link, frame.mn, exc.reason, str(exc))
            return None
        points = self.codes.admit(device, device_log_points(frame, cp, source, self.clock()))
        problem = next(filter(None, map(unstorable, points)), None)
        if problem is not None:
            self.reject(link, frame.mn, "unstorable", problem)
            return None
        shown = from_ns(points[0].event_time_ns) if points else None
        self._seen = (frame.mn, frame.crc, shown)
        if self.archive is not None:
            self.archive.make_room(raw)
        fut = self.pipeline.submit(points, []) if points else None
        if frame.wants_reply:
            return [Reply(fut, builder.data_ack(frame), "9014")]
        return [Reply(fut, None, "")] if fut is not None else []

    def expire_uploads(self, now: float) -> int:
        """Hand the rules the split uploads whose window ran out, as they are (their parts
        are durable already); each point says how many parts it was judged on."""
        expired = self.reassembler.expire(now)
        for upload in expired:
            source, backfill = upload.context
            device = self.registry.device(upload.frame.mn)
            if device is None:  # unregistered meanwhile (a reload)
                continue
            result = normalize(upload.frame, upload.cp, source, self.clock(), backfill=backfill)
            parts = ("upload_parts", f"{len(upload.parts)}/{upload.pnum}")
            points = self.codes.admit(device, result.points)
            self.pipeline.judge([p._replace(fields=(*p.fields, parts)) for p in points])
        if expired:
            metrics.SPLIT_UPLOADS_INCOMPLETE.inc(len(expired))
        return len(expired)

    def _power_points(
        self, cp: CpData, device: Device, moment: datetime
    ) -> tuple[CpData, list[Point]]:
        """Split off the codes the registry maps to meter quantities: (the rest, power points)."""
        assert self.power is not None
        rest = CpData(cp.params, {})
        readings: dict[str, dict[str, float | int]] = {}
        for code, values in cp.items.items():
            target = device.outlet.power_codes.get(code)
            if target is None:
                rest.items[code] = values
                continue
            raw = values.get("Rtd", values.get("Avg"))
            reading = number(raw) if raw is not None else None
            if reading is not None:
                value = int(reading) if target.quantity == "switch" else reading
                readings.setdefault(target.meter, {})[target.quantity] = value
        points = [
            self.power.point(device.enterprise, meter, PowerSample(moment, **quantities))  # type: ignore[arg-type]
            for meter, quantities in readings.items()
        ]
        return rest, points

    def _answer_received(self, frame: Frame, link: Link) -> None:
        fill = link.backfills.get(frame.mn)
        if fill is None or frame.qn != fill.qn:
            return
        try:
            answer = parse_cp(frame.cp).params
        except HJ212Error:
            answer = {}
        if frame.cn == "9012":
            del link.backfills[frame.mn]
            log.info("back-fill finished", mn=frame.mn, cn=fill.cn, exe_rtn=_code(answer, "ExeRtn"))
        elif frame.cn == "9011" and answer.get("QnRtn") != "1":
            del link.backfills[frame.mn]
            log.warning("back-fill request refused", mn=frame.mn, qn_rtn=_code(answer, "QnRtn"))

    def _time_setting(self, frame: Frame, device: Device) -> bytes:
        local = self.clock().astimezone(device.timezone or self.default_tz)
        fields: list[tuple[str, str | int]] = [
            ("QN", builder.new_qn(local)),
            ("ST", frame.st or "32"),
            ("CN", "1012"),
            ("PW", frame.pw or ""),
            ("MN", frame.mn),
            ("Flag", frame.version << 2 | 1),
        ]
        cp = f"SystemTime={local.strftime('%Y%m%d%H%M%S')}"
        return builder.build_frame(builder.build_segment(fields, cp))


def _code(params: dict[str, str], key: str) -> str | None:
    """A device's short answer code (QnRtn, ExeRtn) for a log line; None if it is not one."""
    value = params.get(key)
    ok = value is not None and len(value) <= 4 and value.isascii() and value.isdigit()
    return value if ok else None


_DATA_TIME = re.compile(r"(?:^|[;,])DataTime=(\d{14})")


def _frame_time(frame: Frame, tz: tzinfo) -> datetime | None:
    """A refused frame's own time, in UTC: its DataTime when it reads, else its QN's."""
    found = _DATA_TIME.search(frame.cp)
    return _qn_time(found.group(1) if found else frame.qn, tz)


def _qn_time(qn: str | None, tz: tzinfo) -> datetime | None:
    """The device's clock from a QN (yyyyMMddHHmmssSSS, local time), in UTC; None if absent."""
    if not qn:
        return None
    try:
        return parse_hj212_time(qn).replace(tzinfo=tz).astimezone(UTC)
    except (HJ212Error, OverflowError):
        return None


def _in_backfill(fill: Backfill | None, frame: Frame, cp: CpData, tz: tzinfo) -> bool:
    """Whether an upload answers an open history request (same CN, DataTime in its window)."""
    if fill is None or fill.cn != frame.cn or cp.data_time is None:
        return False
    try:
        moment = parse_hj212_time(cp.data_time).replace(tzinfo=tz)
    except HJ212Error:
        return False
    return fill.begin <= moment <= fill.end
