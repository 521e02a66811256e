"""A device's clock as the rules judge lateness by it: the latest time the device showed (a
frame's QN, a record's time), advanced by the wall time since it showed it, never past the wall
clock. For a live device that is the wall clock; a replayed day stays on its own clock."""

from __future__ import annotations

from datetime import datetime, timedelta


class DeviceClocks:
    """Per MN: (the latest device time shown, the wall time when it was shown)."""

    def __init__(self) -> None:
        self.shown: dict[str, tuple[datetime, datetime]] = {}

    def saw(self, mn: str, device_time: datetime, wall: datetime) -> None:
        known = self.shown.get(mn)
        if known is None or device_time > known[0]:
            self.shown[mn] = (device_time, wall)

    def now(self, mn: str, wall_now: datetime) -> datetime | None:
        """The device's time at `wall_now`; None before it showed one. Never ahead of the wall
        clock: a device whose clock runs fast raises nothing early."""
        known = self.shown.get(mn)
        if known is None:
            return None
        shown, wall = known
        return min(shown + max(wall_now - wall, timedelta(0)), wall_now)
