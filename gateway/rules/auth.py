"""`unregistered_device` and `auth_failure`: refused frames, aggregated.

`unregistered_device` is one anomaly per sender address (subject `address:<ip>`), however
many MNs it makes up: it counts frames and distinct MNs and keeps the first MNs as a sample.
`auth_failure` is one anomaly per registered device and pattern: a wrong PW (`mn:<MN>`), an
encrypted CP area the registered SM4 key does not decrypt (`mn:<MN>/decrypt`), an encrypted
one from a device with no key in the registry (`mn:<MN>/no_key`); it counts frames and the
addresses they came from.

The first refused frame opens the anomaly, at the frame's own time (its DataTime, else its
QN, never after its receipt; the receipt time when it shows neither), so replaying the same
frames opens the same anomaly; later ones update its counts at most every `update_every_s`.
It closes when no refused frame of its own has come for `quiet_after_s` (received time, wall
clock) and ends at the last one. Accepted frames close nothing: an
impostor beside the real device, or a relay forwarding registered and unknown MNs, stays one
anomaly. At most `max_open` addresses have an `unregistered_device` of their own; frames from
further addresses go to one overflow anomaly (subject `address:*`) and are counted in
`refused_sources_dropped_total`. Distinct names are counted exactly while they fit in memory
(`MAX_DISTINCT_PER_SOURCE` per anomaly, `MAX_DISTINCT_TOTAL` in all), then as a lower bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway import metrics
from gateway.anomalies.model import Anomaly

from .base import BaseRule, DeviceEvent

UPDATE_EVERY_S = 300.0
QUIET_AFTER_S = 900.0
MAX_OPEN_SOURCES = 1000  # addresses with an unregistered_device of their own
SAMPLE_SIZE = 20  # names (MNs, addresses) kept in the evidence
SAMPLE_CHARS = 40  # a longer made-up MN is cut in the sample
MAX_DISTINCT_PER_SOURCE = 10_000  # names remembered per anomaly to count distinct ones
MAX_DISTINCT_TOTAL = 100_000  # and in all
OVERFLOW_SUBJECT = "address:*"
UNREGISTERED = "unregistered"  # the enterprise of the anomalies of unknown MNs
_REASONS = {"bad_password": "password", "bad_key": "decrypt", "no_key": "no_key"}


@dataclass(slots=True)
class _Tally:
    """What an open anomaly has counted. `what` names the distinct things: MNs or addresses;
    `distinct` is exact while `exact`, else a lower bound (the names no longer all fit)."""

    what: str
    fixed: dict[str, Any]  # evidence that does not change
    frames: int
    first_at: datetime
    last_at: datetime
    emitted_at: datetime  # when the anomaly was last reported
    sample: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # hashes of the names counted
    distinct: int = 0
    exact: bool = True
    last_accepted_at: datetime | None = None


class RefusedDevices(BaseRule):
    name = "refused_devices"

    def __init__(
        self,
        update_every_s: float = UPDATE_EVERY_S,
        quiet_after_s: float = QUIET_AFTER_S,
        max_open: int = MAX_OPEN_SOURCES,
    ) -> None:
        super().__init__()
        self.update_every_s = update_every_s
        self.quiet_after_s = quiet_after_s
        self.max_open = max_open
        self.tallies: dict[str, _Tally] = {}  # subject -> its open anomaly's counts
        self.sources = 0  # open unregistered_device anomalies but the overflow
        self.remembered = 0  # names held in all tallies' `seen`

    # -- events ---------------------------------------------------------------------------

    def on_device_event(self, event: DeviceEvent) -> list[Anomaly]:
        if event.kind == "contact":
            for suffix in ("", "/decrypt", "/no_key"):
                tally = self.tallies.get(event.device + suffix)
                if tally is not None:
                    tally.last_accepted_at = event.received_at
            return []
        at, address = event.received_at, event.address or "?"
        mn = event.device.removeprefix("mn:")
        out: list[Anomaly] = []
        if event.kind == "unknown_mn":
            type_, subject, name = "unregistered_device", f"address:{address}", mn
            fixed: dict[str, Any] = {"address": address}
            out += self._expire(subject, at)
            if subject not in self.open and self.sources >= self.max_open:
                metrics.REFUSED_SOURCES_DROPPED.inc()
                subject, name, fixed = OVERFLOW_SUBJECT, address, {"sources_max": self.max_open}
                out += self._expire(subject, at)
        else:
            reason = _REASONS[event.kind]
            type_, name = "auth_failure", address
            subject = event.device if reason == "password" else f"{event.device}/{reason}"
            fixed = {"mn": mn, "reason": reason}
            out += self._expire(subject, at)
        tally = self.tallies.get(subject)
        anomaly = self.open.get(subject)
        if tally is None or anomaly is None:
            out.append(self._open(type_, subject, name, fixed, event))
            return out
        tally.frames += 1
        tally.last_at = max(tally.last_at, at)
        self._remember(tally, name)
        if (at - tally.emitted_at).total_seconds() >= self.update_every_s:
            tally.emitted_at = at
            summary = _summary(anomaly.type, subject, tally)
            anomaly = anomaly.updated(at, summary=summary, **_evidence(tally))
            self.open[subject] = anomaly
            out.append(anomaly)
        return out

    def on_tick(self, now: datetime) -> list[Anomaly]:
        quiet = [
            subject
            for subject, tally in self.tallies.items()
            if (now - tally.last_at).total_seconds() >= self.quiet_after_s
        ]
        return [self._close(subject) for subject in quiet]

    # -- open, count, close ---------------------------------------------------------------

    def _open(
        self, type_: str, subject: str, name: str, fixed: dict[str, Any], event: DeviceEvent
    ) -> Anomaly:
        at = event.received_at
        tally = _Tally(_what(type_, subject), fixed, 1, first_at=at, last_at=at, emitted_at=at)
        self._remember(tally, name)
        shown = event.device_time  # the frame's own time: a replay opens the same anomaly
        anomaly = Anomaly(
            type=type_,
            severity="warning",
            enterprise=event.enterprise or UNREGISTERED,
            subject=subject,
            started_at=min(shown, at) if shown is not None else at,
            summary=_summary(type_, subject, tally),
            evidence=_evidence(tally) | {"quiet_after_s": self.quiet_after_s},
            rule=self.name,
            detected_at=at,
        )
        self._keep(anomaly, tally)
        return anomaly

    def _keep(self, anomaly: Anomaly, tally: _Tally) -> None:
        self.open[anomaly.subject] = anomaly
        self.tallies[anomaly.subject] = tally
        if _own_source(anomaly):
            self.sources += 1

    def _remember(self, tally: _Tally, name: str) -> None:
        """Count `name` as distinct if it is new; stop counting once the names do not fit."""
        key = hash(name)
        if not tally.exact or key in tally.seen:
            return
        if len(tally.seen) >= MAX_DISTINCT_PER_SOURCE or self.remembered >= MAX_DISTINCT_TOTAL:
            tally.exact = False
            return
        tally.seen.add(key)
        self.remembered += 1
        tally.distinct += 1
        if len(tally.sample) < SAMPLE_SIZE:
            tally.sample.append(name if len(name) <= SAMPLE_CHARS else name[:SAMPLE_CHARS] + "…")

    def _expire(self, subject: str, at: datetime) -> list[Anomaly]:
        """Close `subject`'s anomaly if it was quiet until `at` (no tick came in between)."""
        tally = self.tallies.get(subject)
        if tally is None or (at - tally.last_at).total_seconds() < self.quiet_after_s:
            return []
        return [self._close(subject)]

    def _close(self, subject: str) -> Anomaly:
        anomaly = self.open.pop(subject)
        tally = self.tallies.pop(subject)
        self.remembered -= len(tally.seen)
        if _own_source(anomaly):
            self.sources -= 1
        summary = _summary(anomaly.type, subject, tally)
        return anomaly.closed(
            tally.last_at,
            summary=f"{summary} None since {tally.last_at:%H:%M:%S} UTC for "
            f"{self.quiet_after_s / 60:g} min.",
            closed_as="quiet",
            quiet_after_s=self.quiet_after_s,
            **_evidence(tally),
        )

    def restore(self, open_anomalies: Sequence[Anomaly]) -> None:
        """Take back the open anomalies with their stored counts (frames since the last stored
        version are not known); a name counted but not in the sample stops the exact count."""
        for anomaly in open_anomalies:
            evidence = anomaly.evidence
            kind, _, ident = anomaly.subject.partition(":")
            fixed: dict[str, Any]
            if anomaly.type == "auth_failure":
                mn, _, reason = ident.partition("/")
                fixed = {"mn": mn, "reason": reason or "password"}
            elif anomaly.subject == OVERFLOW_SUBJECT:
                fixed = {"sources_max": evidence.get("sources_max", self.max_open)}
            else:  # `address:<ip>`; before addresses, `mn:<MN>`
                fixed = {"address": ident} if kind == "address" else {"mn": ident}
            what = _what(anomaly.type, anomaly.subject)
            default = [ident] if kind == "mn" and what == "mns" else []
            sample = [str(name) for name in evidence.get(f"{what}_sample", default)]
            distinct = int(evidence.get(f"distinct_{what}", len(sample)))
            complete = distinct <= len(sample) and not any(s.endswith("…") for s in sample)
            tally = _Tally(
                what,
                fixed,
                frames=int(evidence.get("frames", 1)),
                first_at=_time(evidence.get("first_at"), anomaly.started_at),
                last_at=_time(evidence.get("last_at"), anomaly.judged_until),
                emitted_at=anomaly.judged_until,
                sample=sample,
                seen={hash(name) for name in sample},
                distinct=max(distinct, len(sample)),
                exact=bool(evidence.get(f"distinct_{what}_exact", True)) and complete,
            )
            self._keep(anomaly, tally)
            self.remembered += len(tally.seen)


def _what(type_: str, subject: str) -> str:
    """What an anomaly counts as distinct: the MNs an address sent, else addresses."""
    own = type_ == "unregistered_device" and subject != OVERFLOW_SUBJECT
    return "mns" if own else "addresses"


def _own_source(anomaly: Anomaly) -> bool:
    return anomaly.type == "unregistered_device" and anomaly.subject != OVERFLOW_SUBJECT


def _time(text: object, default: datetime) -> datetime:
    return datetime.fromisoformat(text) if isinstance(text, str) else default


def _evidence(tally: _Tally) -> dict[str, Any]:
    out: dict[str, Any] = {
        **tally.fixed,
        "frames": tally.frames,
        f"distinct_{tally.what}": tally.distinct,
        f"distinct_{tally.what}_exact": tally.exact,
        f"{tally.what}_sample": list(tally.sample),
        "first_at": tally.first_at.isoformat(),
        "last_at": tally.last_at.isoformat(),
    }
    if tally.what == "addresses" and "mn" in tally.fixed:
        accepted = tally.last_accepted_at
        out["last_accepted_at"] = accepted.isoformat() if accepted else None
    return out


def _summary(type_: str, subject: str, tally: _Tally) -> str:
    distinct = f"{'' if tally.exact else 'at least '}{tally.distinct}"
    since = f"since {tally.first_at:%Y-%m-%d %H:%M} UTC."
    fixed = tally.fixed
    if subject == OVERFLOW_SUBJECT:
        return (
            f"Refused frames from more than {fixed['sources_max']} addresses at once: "
            f"{tally.frames} frame(s) with unregistered MNs from {distinct} further "
            f"address(es) {since}"
        )
    if type_ == "unregistered_device":
        where = f" from {fixed['address']}" if "address" in fixed else ""
        return f"{tally.frames} frame(s) from {distinct} unregistered MN(s) refused{where} {since}"
    frames, mn = tally.frames, fixed["mn"]
    if fixed["reason"] == "password":
        what = f"{frames} frame(s) with a wrong password from data logger {mn}"
    elif fixed["reason"] == "decrypt":
        what = (
            f"{frames} frame(s) from data logger {mn} that its registered SM4 key does not decrypt"
        )
    else:
        what = (
            f"{frames} encrypted frame(s) from data logger {mn}, which has no SM4 key registered,"
        )
    sources = f" from {distinct} address(es)" if tally.distinct else ""
    return f"{what} refused{sources} {since}"
