"""The `[cluster]` section: the JetStream log between ingestion and the InfluxDB writers."""

from __future__ import annotations

import re
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")  # a stream or consumer name
_SUBJECT = re.compile(r"^[A-Za-z0-9_*>-]+(\.[A-Za-z0-9_*>-]+)*$")

Role = Literal["ingest", "writer", "rules"]


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether NATS `subject` falls under `pattern` (`*` one token, `>` the rest)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


class ClusterSection(BaseModel):
    """Off by default: the single process with its local spool."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    node: str = Field("", description="this node's name in logs and message ids (host name)")
    servers: list[str] = Field(
        ["nats://127.0.0.1:4222"], description="NATS server URLs (any of the cluster's)"
    )
    stream: str = Field("POLLUTION_POINTS", description="the JetStream stream of points")
    subjects: list[str] = Field(["pollution.points.>"], description="the stream's subjects")
    subject: str = Field("pollution.points.ingest", description="what ingestion publishes to")
    consumer: str = Field("influx-writers", description="the writers' shared durable consumer")
    replicas: int = Field(3, ge=1, le=5, description="stream replicas (a quorum stores each)")
    max_bytes: int = Field(
        1 << 30,
        description="points not yet written to InfluxDB the stream holds; when full, "
        "publishes are refused and devices are not acknowledged",
    )
    role: list[Role] = Field(["ingest", "writer"], description="what this node runs")
    max_message_bytes: int = Field(
        256 << 10, description="appends of one moment are published as one message up to this"
    )
    max_inflight: int = Field(256, ge=1, description="publishes awaiting their ack at once")
    max_pending_bytes: int = Field(
        16 << 20, description="bytes waiting to be published; past it appends are refused"
    )
    ack_timeout_s: float = Field(5.0, gt=0, description="publish ack wait before a retry")
    publish_deadline_s: float = Field(
        30.0, gt=0, description="retries of one message stop after this: its devices get no ack"
    )
    fetch_batch: int = Field(200, ge=1, description="messages a writer takes at once")
    ack_wait_s: float = Field(
        30.0, gt=0, description="a writer's unacked message is redelivered after this"
    )
    max_ack_pending: int = Field(5000, ge=1, description="unacked messages of the consumer")
    poison_max_bytes: int = Field(256 << 20, description="lines InfluxDB refused, kept up to")
    rule_workers: bool = Field(
        False,
        description="the rules run in rule workers (role rules) over enterprise partitions: "
        "ingestion publishes what they judge to the rules stream and runs no rules",
    )
    partitions: int = Field(16, ge=1, le=1024, description="enterprise partitions of the rules")
    rules_stream: str = Field("POLLUTION_RULES", description="the stream the rule workers read")
    rules_prefix: str = Field("pollution", description="its subjects: <prefix>.rules.<partition>")
    rules_max_bytes: int = Field(1 << 30, description="what the rules stream holds at most")
    rules_max_age_s: float = Field(
        3 * 86400.0, gt=0, description="how long the rules stream keeps a message"
    )
    replay_s: float = Field(
        2 * 86400.0, gt=0, description="a partition taken over is replayed from this far back"
    )
    reorder_s: float = Field(
        0.5,
        ge=0,
        le=60,
        description="a rule worker holds what it hears this long, then judges it in the order "
        "the ingestion nodes took it (what two nodes published the other way round)",
    )
    lease_bucket: str = Field("pollution_rule_leases", description="the partitions' leases (KV)")
    lease_ttl_s: float = Field(
        6.0, ge=1.0, description="a lease not renewed for this long is free to take"
    )
    lease_renew_s: float = Field(1.0, gt=0, description="how often a worker renews its leases")
    command_timeout_s: float = Field(
        2.0,
        gt=0,
        description="a rule worker's device command without a reply within this: no "
        "ingestion process holds the device",
    )
    postgres_dsn: str = Field(
        "",
        description="PostgreSQL for the anomaly store and the control regime, shared by the "
        "nodes (postgresql://user@host:port/db); empty: the SQLite files of the data folder",
    )

    @field_validator(
        "max_bytes",
        "max_message_bytes",
        "max_pending_bytes",
        "poison_max_bytes",
        "rules_max_bytes",
        mode="before",
    )
    @classmethod
    def _size(cls, value: object) -> int:
        from gateway.config import parse_size  # the one size syntax of the config file

        return parse_size(value)

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one NATS server URL")
        for url in value:
            if not re.match(r"^(nats|tls)://[^/\s]+:\d+$", url):
                raise ValueError(f"{url!r}: a server is nats://host:port or tls://host:port")
        return value

    @field_validator("postgres_dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^postgres(ql)?://[^\s]+$", value):
            raise ValueError("a PostgreSQL URL: postgresql://user[:password]@host[:port]/db")
        return value

    @field_validator("stream", "consumer", "rules_stream", "lease_bucket", "rules_prefix")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError("letters, digits, '_' and '-' only")
        return value

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one subject")
        for subject in value:
            if not _SUBJECT.match(subject):
                raise ValueError(f"{subject!r} is not a NATS subject")
        return value

    @field_validator("role")
    @classmethod
    def _role(cls, value: list[Role]) -> list[Role]:
        if not value:
            raise ValueError("a node runs ingest, writer, rules, or several of them")
        return sorted(set(value))

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSection:
        if not _SUBJECT.match(self.subject) or any(c in self.subject for c in "*>"):
            raise ValueError(f"subject {self.subject!r} must be a NATS subject without wildcards")
        if not any(subject_matches(p, self.subject) for p in self.subjects):
            raise ValueError(f"subject {self.subject!r} is not among the stream's subjects")
        if self.max_message_bytes > self.max_pending_bytes:
            raise ValueError("max_message_bytes must not exceed max_pending_bytes")
        if self.max_message_bytes > self.max_bytes:
            raise ValueError("max_message_bytes must not exceed max_bytes")
        if self.rule_workers:
            if any(subject_matches(p, self.rules_subject(0)) for p in self.subjects):
                raise ValueError(
                    f"rules_prefix {self.rules_prefix!r}: {self.rules_subject(0)!r} falls under "
                    "the points stream's subjects"
                )
            if self.lease_renew_s * 2 > self.lease_ttl_s:
                raise ValueError("lease_renew_s must be at most half of lease_ttl_s")
            if self.replay_s > self.rules_max_age_s:
                raise ValueError("replay_s must not exceed rules_max_age_s")
        elif "rules" in self.role:
            raise ValueError("role rules needs rule_workers = true")
        return self

    def rules_subject(self, partition: int) -> str:
        """The subject of one partition of the rules stream."""
        return f"{self.rules_prefix}.rules.{partition}"

    @property
    def node_name(self) -> str:
        return self.node or socket.gethostname()

    @property
    def ingest(self) -> bool:
        return self.enabled and "ingest" in self.role

    @property
    def writer(self) -> bool:
        return self.enabled and "writer" in self.role

    @property
    def rules_worker(self) -> bool:
        """A rule worker: owns partitions of the rules stream and runs the rules over them."""
        return self.enabled and self.rule_workers and "rules" in self.role
