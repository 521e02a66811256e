"""Which channels a notice goes to. Pure.

A channel takes a notice when its level and events take the notice's event and every filter it
sets matches: `enterprises` (the notice's enterprise is one of them), `regions` (the
enterprise's region is one of them or lies under one, by the registry's hierarchy), `types`
(the anomaly's type; a case: any of its anomalies' types) and `severities`. A notice of no
enterprise (an unregistered device) matches no enterprise or region filter.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..regions import Hierarchy
from .config import Channel
from .notices import Notice


def matches(channel: Channel, notice: Notice, regions: Hierarchy) -> bool:
    if not channel.takes(notice.event):
        return False
    if channel.enterprises and (
        not notice.enterprise or notice.enterprise not in channel.enterprises
    ):
        return False
    if channel.regions and not regions.within(notice.region, channel.regions):
        return False
    if channel.types and not set(notice.types) & set(channel.types):
        return False
    return not channel.severities or notice.severity in channel.severities


def route(notice: Notice, channels: Sequence[Channel], regions: Hierarchy) -> list[Channel]:
    """The channels that take `notice`, in the configured order."""
    return [c for c in channels if matches(c, notice, regions)]
