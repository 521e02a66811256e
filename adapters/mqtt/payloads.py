"""JSON payloads of the power and gate topics (contracts.md 1.2) as validated models. Pure.

`parse_payload` turns the bytes of one MQTT message into models or raises `PayloadError`, and
nothing else, whatever the bytes. A message is one JSON object or a non-empty array of them; it
is accepted or rejected whole (the dead letter then carries the whole message and the item at
fault). Unknown keys are ignored; values arrive normalised (normalise.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, Self, TypeVar, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from . import normalise as norm
from .errors import PayloadError, Reason, shown

__all__ = ["GatePayload", "PayloadError", "PowerPayload", "parse_payload"]

MAX_PAYLOAD_BYTES = 1 << 20
MAX_RECORDS = 1000
MAX_NESTING = 16  # arrays/objects inside each other; a valid payload needs 2
# pydantic error types that mean "right type, impossible value"; any other type is `schema`
_VALUE_ERRORS = frozenset(
    {
        "value",
        "value_error",
        "finite_number",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "int_parsing_size",
    }
)

T = TypeVar("T")


def _checked(normaliser: Callable[[object], T]) -> Callable[[object], T]:
    """A normaliser whose `PayloadError` becomes a pydantic error of type `value` or `schema`."""

    def validate(raw: object) -> T:
        try:
            return normaliser(raw)
        except PayloadError as exc:
            raise PydanticCustomError(exc.reason, exc.message) from None

    return validate


def _optional(normaliser: Callable[[object], T]) -> PlainValidator:
    """Validation of an optional field: JSON null stays None, anything else is normalised."""
    checked = _checked(normaliser)
    return PlainValidator(lambda raw: None if raw is None else checked(raw))


def _no_bool(raw: object) -> object:
    if isinstance(raw, bool):
        raise PydanticCustomError("schema", "a number is expected, not true/false")
    return raw


def _text(name: str, max_chars: int) -> PlainValidator:
    return _optional(lambda raw: norm.text(name, raw, max_chars))


EventTime = Annotated[datetime, PlainValidator(_checked(norm.parse_time))]


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class PowerPayload(_Payload):
    """One meter reading. Numbers may be JSON numbers or numeric strings, never true/false.
    Bounds reject what no meter measures (they are not plausibility rules): voltages 0..500 kV
    (no enterprise connects above 500 kV), currents 0..1 MA, |p_kw| <= 10 GW, kwh 0..1e12,
    pf -1..1. `p_kw` may be negative (export)."""

    time: EventTime
    p_kw: Annotated[float, Field(ge=-1e7, le=1e7)] | None = None
    kwh: Annotated[float, Field(ge=0, le=1e12)] | None = None
    ua: Annotated[float, Field(ge=0, le=500_000)] | None = None
    ub: Annotated[float, Field(ge=0, le=500_000)] | None = None
    uc: Annotated[float, Field(ge=0, le=500_000)] | None = None
    ia: Annotated[float, Field(ge=0, le=1e6)] | None = None
    ib: Annotated[float, Field(ge=0, le=1e6)] | None = None
    ic: Annotated[float, Field(ge=0, le=1e6)] | None = None
    pf: Annotated[float, Field(ge=-1, le=1)] | None = None
    switch: Annotated[int | None, Field(ge=0, le=255)] = None  # true/false become 1/0

    @field_validator("p_kw", "kwh", "ua", "ub", "uc", "ia", "ib", "ic", "pf", mode="before")
    @classmethod
    def _numbers_not_bool(cls, raw: object) -> object:
        return _no_bool(raw)

    @model_validator(mode="after")
    def _power_or_energy(self) -> Self:
        if self.p_kw is None and self.kwh is None:
            raise PydanticCustomError("schema", "one of p_kw or kwh is required")
        return self


class GatePayload(_Payload):
    """One vehicle passage. `stage_raw` and `plate_color_raw` keep what the vendor sent (set
    from `emission_stage` / `plate_color`; keys of those names in the payload are ignored)."""

    time: EventTime
    direction: Annotated[norm.Direction, PlainValidator(_checked(norm.direction))]
    plate: Annotated[str, PlainValidator(_checked(norm.plate))]
    plate_color: Annotated[norm.PlateColor | None, _optional(norm.plate_color)] = None
    plate_color_raw: str | None = None
    vin: Annotated[str | None, _optional(norm.vin)] = None
    engine_no: Annotated[str | None, _text("engine_no", 32)] = None
    emission_stage: Annotated[norm.StageCode | None, _optional(norm.emission_stage)] = None
    stage_raw: str | None = None
    fuel: Annotated[norm.Fuel | None, _optional(norm.fuel)] = None
    vehicle_class: Annotated[norm.VehicleClass | None, _optional(norm.vehicle_class)] = None
    registration_date: Annotated[date | None, _optional(norm.parse_date)] = None
    registration_code: Annotated[str | None, _optional(norm.registration_code)] = None
    cargo: Annotated[str | None, _text("cargo", 100)] = None
    tonnage: Annotated[float, Field(ge=0, le=999.9)] | None = None  # ledger number(4,1), t
    fleet: Annotated[str | None, _text("fleet", 100)] = None
    photo_url: Annotated[str | None, _text("photo_url", 2048)] = None

    @field_validator("tonnage", mode="before")
    @classmethod
    def _numbers_not_bool(cls, raw: object) -> object:
        return _no_bool(raw)

    @model_validator(mode="before")
    @classmethod
    def _keep_raw(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kept = {k: v for k, v in data.items() if k not in ("stage_raw", "plate_color_raw")}
        for key, raw_key in (("emission_stage", "stage_raw"), ("plate_color", "plate_color_raw")):
            value = data.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                kept[raw_key] = str(value)
        return kept


_MODELS: dict[str, type[PowerPayload] | type[GatePayload]] = {
    "power": PowerPayload,
    "gate": GatePayload,
}


@overload
def parse_payload(kind: Literal["power"], raw: bytes) -> list[PowerPayload]: ...
@overload
def parse_payload(kind: Literal["gate"], raw: bytes) -> list[GatePayload]: ...
def parse_payload(kind: Literal["power", "gate"], raw: bytes) -> list[Any]:
    """The records of one message of topic kind `power` or `gate`, or `PayloadError`."""
    model = _MODELS[kind]
    fast = _parse_fast(model, raw)
    if fast is not None:
        return fast
    document = _decode(raw)
    if _too_deep(document):
        raise PayloadError("schema", f"payload nests more than {MAX_NESTING} arrays/objects")
    items = _records(document)
    return [
        _validate(model, item, index if len(items) > 1 else None)
        for index, item in enumerate(items)
    ]


_ARRAYS: dict[type[BaseModel], TypeAdapter[list[Any]]] = {
    PowerPayload: TypeAdapter(list[PowerPayload]),
    GatePayload: TypeAdapter(list[GatePayload]),
}
_LONG_INT = re.compile(rb"[0-9]{4300}")


def _parse_fast(model: type[PowerPayload] | type[GatePayload], raw: bytes) -> list[Any] | None:
    """The records of a valid payload, parsed and validated by pydantic's JSON parser in one
    pass; None for anything else (also for what only the checks of the slow path would
    refuse), so that every refusal is made, and worded, by the slow path."""
    if len(raw) > MAX_PAYLOAD_BYTES or raw.count(b"{") + raw.count(b"[") > MAX_NESTING:
        return None  # fewer brackets than MAX_NESTING cannot nest deeper
    if len(raw) >= 4300 and _LONG_INT.search(raw):
        return None  # json.loads refuses such integers, even in an ignored key
    try:
        if raw.lstrip()[:1] == b"{":
            return [model.model_validate_json(raw)]
        items = _ARRAYS[model].validate_json(raw)
    except ValidationError:
        return None
    return items if 0 < len(items) <= MAX_RECORDS else None


def _decode(raw: bytes) -> object:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError("size", f"payload of {len(raw)} bytes, at most {MAX_PAYLOAD_BYTES}")
    try:
        return json.loads(raw.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as exc:
        raise PayloadError(
            "json", f"payload is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    except RecursionError:
        raise PayloadError("json", "payload nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than 4300 digits
        raise PayloadError("json", f"payload is not JSON: {exc}") from None


def _too_deep(document: object) -> bool:
    """Whether containers nest deeper than MAX_NESTING (checked without recursion, so that no
    later repr or validation of the document can exhaust the stack)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list | dict):
            if depth > MAX_NESTING:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def _records(document: object) -> list[dict[str, Any]]:
    items = document if isinstance(document, list) else [document]
    if not items:
        raise PayloadError("schema", "payload is an empty array")
    if len(items) > MAX_RECORDS:
        raise PayloadError("size", f"payload has {len(items)} records, at most {MAX_RECORDS}")
    records: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            where = f"item {index}" if isinstance(document, list) else "payload"
            raise PayloadError("schema", f"{where} is a JSON {_json_type(item)}, not an object")
        records.append(item)
    return records


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names = {str: "string", list: "array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _validate(
    model: type[PowerPayload] | type[GatePayload], item: dict[str, Any], index: int | None
) -> PowerPayload | GatePayload:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        reason: Reason = "value" if all(e["type"] in _VALUE_ERRORS for e in errors) else "schema"
        where = "" if index is None else f"item {index}: "
        raise PayloadError(reason, where + "; ".join(_describe(e) for e in errors)) from None


def _describe(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] in ("value", "schema"):  # ours: the message names the field and the value
        return (
            message if field and message.startswith(field) else f"{field or 'payload'}: {message}"
        )
    if error["type"] == "missing":
        return f"{field}: required"
    return f"{field}: {message} (got {shown(error['input'])})"
