"""Settings of the MQTT adapter (the ``[mqtt]`` section of the gateway config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    tls: bool = False
    ca_file: str | None = Field(None, description="CA bundle for TLS (default: the system's)")
    client_id: str = Field("pollution-gateway", min_length=1, description="the persistent session")
    topic_prefix: str = Field("pollution", min_length=1)
    shared_group: str | None = Field(None, description="subscribe as $share/<group>/... (MQTT 5)")
    keepalive_s: int = Field(30, ge=5)
    max_inflight: int = Field(1000, ge=1, description="messages received and not yet acked")
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    unknown_devices: Literal["store", "refuse"] = Field(
        "store",
        description="meters and gates missing from the registry: store (role/gate as sent, "
        "counted and logged) or refuse (dead-lettered)",
    )
    error_log_interval_s: float = Field(60.0, ge=0)
