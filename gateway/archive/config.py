"""The `[archive]` section: the raw frame archive under `<data_dir>/archive`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _size(value: object) -> int:
    from ..config import parse_size  # at call time: gateway.config imports this module

    return parse_size(value)


class ArchiveSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="archive every HJ 212 frame received")
    max_bytes: int = Field(
        8 << 30, description="day files in all; past it the oldest days are deleted"
    )
    retention_days: int = Field(
        180, ge=1, description="Beijing days kept beside today; older day files are deleted"
    )
    queue_bytes: int = Field(
        64 << 20,
        description="frames held in memory for the writer; past half, refused frames' "
        "records are dropped; when full, data uploads are refused (not acknowledged)",
    )

    _sizes = field_validator("max_bytes", "queue_bytes", mode="before")(lambda v: _size(v))

    @model_validator(mode="after")
    def _bounds(self) -> ArchiveSection:
        if self.max_bytes < 1 << 16:
            raise ValueError("max_bytes must be at least 64KiB")
        if self.queue_bytes < 1 << 16:
            raise ValueError("queue_bytes must be at least 64KiB")
        return self
