"""Settings of the HJ 212 TCP adapter (the ``[hj212]`` section of the gateway config)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.registry import CrcPolicy, check_timezone


class Hj212Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    listen: str = Field("0.0.0.0:9212", description="host:port the platform listens on")
    reuse_port: bool = Field(
        False,
        description="SO_REUSEPORT: several processes listen on the same port and the kernel "
        "spreads the connections over them (Linux)",
    )
    crc_policy: CrcPolicy = "tolerant"
    timezone: str = Field(
        "Asia/Shanghai", description="zone of DataTime unless a device says otherwise"
    )
    idle_timeout_s: float = Field(
        600.0, gt=0, description="close a connection without a complete frame this long"
    )
    partial_frame_timeout_s: float = Field(30.0, gt=0)
    frame_timeout_s: float = Field(
        30.0, gt=0, description="close a connection whose frame begun is not complete this soon"
    )
    first_frame_timeout_s: float = Field(
        60.0, gt=0, description="close a connection without an accepted frame this long"
    )
    max_buffer_bytes: int = Field(16384, ge=1100, description="bytes held without a whole frame")
    max_connections: int = Field(60000, ge=1)
    max_connections_per_address: int = Field(
        4096, ge=1, description="connections from one address, with or without a frame"
    )
    max_unproven_per_address: int = Field(
        64, ge=1, description="connections from one address without an accepted frame yet"
    )
    max_inflight_per_connection: int = Field(256, ge=1, description="unacknowledged frames")
    write_buffer_high_bytes: int = Field(
        65536, ge=1024, description="unsent bytes past which reading from the device pauses"
    )
    write_buffer_max_bytes: int = Field(
        262144, ge=1024, description="unsent bytes past which the connection is closed"
    )
    write_blocked_timeout_s: float = Field(
        60.0, gt=0, description="close a connection that does not take its replies this long"
    )
    answer_time_requests: bool = Field(True, description="send 1012 with the time after 9013")
    split_window_s: float = Field(
        600.0, gt=0, description="how long the parts of a split upload wait for the others"
    )
    backfill_timeout_s: float = Field(900.0, gt=0, description="how long a history request is open")
    error_log_interval_s: float = Field(60.0, ge=0, description="per source address and reason")
    max_past_days: float = Field(
        3660.0, gt=0, le=36500, description="oldest DataTime taken, in days before receipt"
    )
    max_future_s: float = Field(
        86400.0, ge=0, le=366 * 86400, description="latest DataTime taken, after receipt"
    )
    qn_window_s: float = Field(
        600.0, ge=0, description="how long a device's QN may not come back with other content"
    )

    proxy_protocol: Literal["off", "optional", "required"] = Field(
        "off", description="PROXY protocol headers from the proxies of proxy_from"
    )
    proxy_from: list[str] = Field(
        default_factory=list, description="addresses or networks allowed to send a PROXY header"
    )
    proxy_header_timeout_s: float = Field(
        5.0, gt=0, description="close a proxy's connection without a whole header this long"
    )

    _tz = field_validator("timezone")(check_timezone)

    @field_validator("proxy_from")
    @classmethod
    def _proxy_from(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item)
            except ValueError as exc:
                raise ValueError(f"proxy_from: {exc}") from None
        return value

    @model_validator(mode="after")
    def _proxies_named(self) -> Hj212Config:
        if self.proxy_protocol != "off" and not self.proxy_from:
            raise ValueError("proxy_protocol needs proxy_from: the proxies allowed to send one")
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("listen must be host:port")
        return value
