"""Dead-letter messages keep the payload as received, never a device's password."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from adapters.hj212.builder import build_frame, build_segment
from adapters.mqtt.adapter import _dead_letter_body
from adapters.mqtt.errors import PayloadError


def test_an_hj212_frame_in_a_dead_letter_has_its_password_masked() -> None:
    frame = build_frame(
        build_segment(
            [
                ("QN", "20260301080000000"),
                ("ST", "32"),
                ("CN", "2061"),
                ("PW", "s3cret-77"),
                ("MN", "MN1"),
                ("Flag", 5),
            ],
            "DataTime=20260301080000;w01018-Avg=1.0,w01018-Flag=N",
        )
    )
    body = _dead_letter_body(
        "pollution/hj212/MN1", frame, PayloadError("value", "refused"), datetime.now(UTC)
    )
    message = json.loads(body)
    assert "s3cret-77" not in body.decode() and "PW=***" in message["payload"]
    assert "w01018-Avg=1.0" in message["payload"]  # the rest as received
