"""Which factor codes become InfluxDB series: the `pollutant`, `facility` and `code` tags (the
last of operating conditions and device logs). Pure.

A device chooses the codes it sends, but the tag space is everyone's: a device inventing codes
would create series without bound until InfluxDB refuses new tag values, for every device. So a
code becomes a tag only when it is

- in the vocabulary (`gateway.vocabulary`: the standard's codes, 2017 and 2005 forms), or
  declared for the device in the registry (its `pollutants`, `codes`), or
- of a standard code's shape (`a21026`, `w01018`, `e10101`, `i12001`, 2005's `02`, `S01`,
  `B02`, a facility's `SB1`) and among the first `max_extra_per_device` [32] such codes the
  device has sent since start.

Anything else is not dropped: the values of a record's other codes are kept verbatim in one
`emission_unrecognised` point of the device (tags `enterprise`, `outlet`, `mn`, `interval`;
fields `codes` (comma-separated), `values` (JSON object code -> suffix -> value), `count`),
so the device adds one series per interval at most, and the refusal is counted.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from gateway import metrics
from gateway.model import FieldValue, Point
from gateway.registry import Device
from gateway.vocabulary import CODES

UNRECOGNISED = "emission_unrecognised"
_STANDARD_SHAPE = re.compile(r"[a-z]\d{5}|\d{2,3}|[SB]\d{2}|SB\d{1,3}")
_KNOWN = frozenset(CODES) | frozenset(c.code_2005 for c in CODES.values() if c.code_2005)
_FIELDS_BACK = {
    "rtd": "Rtd",
    "avg": "Avg",
    "min": "Min",
    "max": "Max",
    "cou": "Cou",
    "zs_rtd": "ZsRtd",
    "zs_avg": "ZsAvg",
    "zs_min": "ZsMin",
    "zs_max": "ZsMax",
    "flag": "Flag",
    "eflag": "EFlag",
    "rs": "RS",
    "rt_hours": "RT",
}


@dataclass(slots=True)
class CodeGate:
    """Per device, the extra codes admitted so far (bounded in devices and codes)."""

    max_extra_per_device: int = 32
    max_devices: int = 100_000
    _extra: OrderedDict[str, set[str]] = field(default_factory=OrderedDict)

    def admitted(self, device: Device, code: str) -> bool:
        if code in _KNOWN or code in device.outlet.pollutants or code in device.outlet.codes:
            return True
        if _STANDARD_SHAPE.fullmatch(code) is None:
            return False
        extra = self._extra.get(device.outlet.mn)
        if extra is None:
            extra = self._extra[device.outlet.mn] = set()
            while len(self._extra) > self.max_devices:
                self._extra.popitem(last=False)
        if code in extra:
            return True
        if len(extra) >= self.max_extra_per_device:
            return False
        extra.add(code)
        return True

    def admit(self, device: Device, points: list[Point]) -> list[Point]:
        """The points with admitted codes, plus one `emission_unrecognised` point per record
        for the others."""
        kept: list[Point] = []
        held: dict[tuple[str, int], dict[str, dict[str, FieldValue]]] = {}
        device_tags: tuple[tuple[str, str], ...] = ()
        for point in points:
            code = _code(point)
            if code is None or self.admitted(device, code):
                kept.append(point)
                continue
            interval = point.tag("interval") or "state"
            values = {_FIELDS_BACK.get(k, k): v for k, v in point.fields if k != "backfill"}
            held.setdefault((interval, point.event_time_ns), {})[code] = values
            device_tags = (
                ("enterprise", point.tag("enterprise") or ""),
                ("outlet", point.tag("outlet") or device.outlet.id),
                ("mn", point.tag("mn") or ""),
            )
        for (interval, ns), codes in held.items():
            metrics.CODES_UNRECOGNISED.inc(len(codes))
            fields: tuple[tuple[str, str | int], ...] = (
                ("codes", ",".join(sorted(codes))),
                ("values", json.dumps(codes, ensure_ascii=False, sort_keys=True)),
                ("count", len(codes)),
            )
            kept.append(Point(UNRECOGNISED, (*device_tags, ("interval", interval)), fields, ns))
        return kept


def _code(point: Point) -> str | None:
    """The code a point makes a series of; None for those that make none of their own."""
    code = point.tag("pollutant") or point.tag("facility") or point.tag("code")
    return None if code == "RestartTime" else code  # 2081's one fixed parameter
