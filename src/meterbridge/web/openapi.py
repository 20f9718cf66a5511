"""The OpenAPI 3.1 document of the dashboard's JSON API, built from one table of operations.

Each entry of ``OPERATIONS`` names a path, its query parameters and the schema of its answer; the app's
routes are checked against this table by the tests, so the document cannot drift from what is served.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["OPERATIONS", "openapi_document"]


def _q(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_STR: Final = {"type": "string"}
_INT: Final = {"type": "integer"}
_NUM_OR_NULL: Final = {"type": ["number", "null"]}
_STR_OR_NULL: Final = {"type": ["string", "null"]}
_INT_OR_NULL: Final = {"type": ["integer", "null"]}
_TIME: Final = {"type": "string", "description": "epoch milliseconds or ISO 8601 (no offset: UTC)"}
_METER_PATH: Final = {
    "name": "meter_id",
    "in": "path",
    "required": True,
    "description": "meter id",
    "schema": _STR,
}
_RANGE_PARAMS: Final = [
    _q("start", "start of the range (inclusive)", _TIME),
    _q("end", "end of the range (exclusive); default now", _TIME),
    _q("range", "preset length ending at `end` (default day)", {"enum": ["hour", "day", "week", "month"]}),
]

_FLAGGED: Final = _q(
    "flagged",
    "1: include readings flagged not monotonic, out of range or meter error (left out by default)",
    {"enum": ["0", "1", "true", "false"]},
)

SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _STR},
    },
    "Value": {
        "type": "object",
        "required": ["key", "name", "value", "text", "unit", "ts", "quality"],
        "properties": {
            "key": {"type": "string", "description": "OBIS code A-B:C.D.E.F or the driver's key"},
            "name": _STR,
            "value": {**_NUM_OR_NULL, "description": "numeric value (null when not a number)"},
            "text": {**_STR_OR_NULL, "description": "the exact value as stored"},
            "unit": _STR_OR_NULL,
            "ts": {"type": "integer", "description": "epoch ms UTC"},
            "quality": {"type": "array", "items": _STR},
        },
    },
    "MeterSummary": {
        "type": "object",
        "required": ["id", "name", "kind", "last_seen", "state", "state_detail", "values"],
        "properties": {
            "id": _STR,
            "name": _STR,
            "kind": _STR_OR_NULL,
            "protocol": _STR_OR_NULL,
            "last_seen": _INT_OR_NULL,
            "state": {"enum": ["ok", "warning", "stale", "unknown"]},
            "state_detail": _STR,
            "values": {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
            "more_values": {
                "type": "integer",
                "minimum": 0,
                "description": "Numeric values not in `values` (shown on the meter page)",
            },
        },
    },
    "Inventory": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {
            "id": _STR,
            "name": _STR,
            "kind": _STR_OR_NULL,
            "protocol": _STR_OR_NULL,
            "address": _STR_OR_NULL,
            "serial": _STR_OR_NULL,
            "manufacturer": _STR_OR_NULL,
            "firmware": _STR_OR_NULL,
            "last_seen": _INT_OR_NULL,
        },
    },
    "Series": {
        "type": "object",
        "required": ["meter_id", "key", "unit", "start", "end", "raw", "bucket_ms", "total", "t"],
        "description": "raw: `t` and `value` are the stored rows; else one point per bucket of `bucket_ms` "
        "starting at `t` with min/avg/max/count",
        "properties": {
            "meter_id": _STR,
            "key": _STR,
            "name": _STR,
            "unit": _STR_OR_NULL,
            "start": _INT,
            "end": _INT,
            "raw": {"type": "boolean"},
            "flagged": {"type": "boolean", "description": "flagged readings included"},
            "bucket_ms": _INT,
            "total": {"type": "integer", "description": "stored rows the points stand for"},
            "t": {"type": "array", "items": _INT},
            "value": {"type": "array", "items": {"type": "number"}},
            "min": {"type": "array", "items": {"type": "number"}},
            "avg": {"type": "array", "items": {"type": "number"}},
            "max": {"type": "array", "items": {"type": "number"}},
            "count": {"type": "array", "items": _INT},
        },
    },
    "Energy": {
        "type": "object",
        "required": ["meter_id", "period", "tz", "register", "unit", "keys", "buckets"],
        "properties": {
            "meter_id": _STR,
            "period": {"enum": ["day", "month"]},
            "tz": _STR,
            "register": {"enum": ["1.8", "2.8"]},
            "unit": _STR_OR_NULL,
            "keys": {"type": "object", "additionalProperties": _STR},
            "buckets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["label", "start", "end"],
                    "properties": {
                        "label": _STR,
                        "start": _INT,
                        "end": _INT,
                        "t1": _NUM_OR_NULL,
                        "t2": _NUM_OR_NULL,
                        "total": _NUM_OR_NULL,
                        "t1_text": _STR_OR_NULL,
                        "t2_text": _STR_OR_NULL,
                        "total_text": _STR_OR_NULL,
                    },
                },
            },
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "meter_id", "kind", "message", "ts", "active"],
        "properties": {
            "id": _INT,
            "meter_id": _STR,
            "kind": _STR,
            "key": _STR_OR_NULL,
            "value": _STR_OR_NULL,
            "threshold": _STR_OR_NULL,
            "message": _STR,
            "ts": _INT,
            "active": {"type": "boolean"},
        },
    },
    "Report": {
        "type": "object",
        "required": ["name", "format", "size", "modified", "url"],
        "properties": {
            "name": _STR,
            "format": {"enum": ["html", "json"]},
            "size": _INT,
            "modified": _INT,
            "url": _STR,
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "required": sorted(props), "properties": props}


#: (path, summary, parameters, response media type, response schema)
OPERATIONS: Final[list[tuple[str, str, list[dict[str, Any]], str, dict[str, Any]]]] = [
    (
        "/api/meters",
        "Every meter with its live key values, last seen and quality state (the overview)",
        [],
        "application/json",
        _obj(meters={"type": "array", "items": _ref("MeterSummary")}),
    ),
    (
        "/api/meters/{meter_id}",
        "One meter: inventory, state, active events and the newest value of every register",
        [_METER_PATH],
        "application/json",
        _obj(
            meter=_ref("Inventory"),
            state=_STR,
            state_detail=_STR,
            active_events={"type": "array", "items": {"type": "object"}},
            quantities={"type": "array", "items": _ref("Value")},
            tariffs={"type": "object", "additionalProperties": _STR},
            consumption_key={"type": ["string", "null"]},
        ),
    ),
    (
        "/api/meters/{meter_id}/series",
        "Plot data of one register, downsampled on the server to at most `points` points",
        [
            _METER_PATH,
            _q("key", "register key (OBIS code or driver key)", _STR, required=True),
            *_RANGE_PARAMS,
            _q(
                "points",
                "most points wanted (1-2000, default 1000)",
                {"type": "integer", "minimum": 1, "maximum": 2000},
            ),
        ],
        "application/json",
        _ref("Series"),
    ),
    (
        "/api/meters/{meter_id}/series.csv",
        "The same points as /series (same parameters) as CSV; stored rows with exact values when raw",
        [
            _METER_PATH,
            _q("key", "register key", _STR, required=True),
            *_RANGE_PARAMS,
            _q(
                "points",
                "most points (1-2000, default 1000)",
                {"type": "integer", "minimum": 1, "maximum": 2000},
            ),
        ],
        "text/csv",
        {"type": "string"},
    ),
    (
        "/api/meters/{meter_id}/energy",
        "Energy per local day or month per tariff (T1 = C.8.1, T2 = C.8.2): counter differences at the "
        "bucket boundaries",
        [
            _METER_PATH,
            _q("period", "day (default) or month", {"enum": ["day", "month"]}),
            _q(
                "start",
                "first day YYYY-MM-DD (default 30 days / 12 months back)",
                {"type": "string", "format": "date"},
            ),
            _q("end", "last day YYYY-MM-DD (default today)", {"type": "string", "format": "date"}),
            _q("register", "1.8 import (default) or 2.8 export", {"enum": ["1.8", "2.8"]}),
            _q("tz", "IANA time zone of the day boundaries (default the gateway's)", _STR),
            _q("key", "one counter instead of the tariff registers (e.g. a heat meter's energy)", _STR),
        ],
        "application/json",
        _ref("Energy"),
    ),
    (
        "/api/events",
        "Quality events, newest first, with filters",
        [
            _q("meter", "only this meter", _STR),
            _q("kind", "only this kind", _STR),
            _q("start", "from (inclusive)", _TIME),
            _q("end", "until (exclusive)", _TIME),
            _q("active", "raised or cleared", {"enum": ["raised", "cleared"]}),
            _q(
                "limit",
                "most events (1-10000, default 200)",
                {"type": "integer", "minimum": 1, "maximum": 10000},
            ),
        ],
        "application/json",
        _obj(
            events={"type": "array", "items": _ref("Event")},
            kinds={"type": "object", "additionalProperties": _STR},
            meters={"type": "array", "items": _STR},
        ),
    ),
    (
        "/api/bus",
        "Meters per bus: addresses, serials, collisions, errors, silences, readings in the last 24 h",
        [],
        "application/json",
        _obj(
            buses={
                "type": "array",
                "items": _obj(name=_STR, meters={"type": "array", "items": _ref("Inventory")}),
            }
        ),
    ),
    (
        "/api/reports",
        "Commissioning reports (HTML and JSON) in the reports directory, newest first",
        [],
        "application/json",
        _obj(reports={"type": "array", "items": _ref("Report")}),
    ),
    (
        "/api/stream",
        "Server-sent events: `meter` events carrying a MeterSummary whenever a meter's values change",
        [],
        "text/event-stream",
        {"type": "string"},
    ),
]


def openapi_document(version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, summary, params, media, schema in OPERATIONS:
        responses: dict[str, Any] = {"200": {"description": "OK", "content": {media: {"schema": schema}}}}
        if params:
            responses["400"] = {
                "description": "a parameter is malformed",
                "content": {"application/json": {"schema": _ref("Error")}},
            }
        if "{meter_id}" in path:
            responses["404"] = {
                "description": "no such meter",
                "content": {"application/json": {"schema": _ref("Error")}},
            }
        op_id = (
            path.removeprefix("/api/").replace("/{meter_id}", "_meter").replace("/", "_").replace(".", "_")
        )
        operation: dict[str, Any] = {
            "operationId": "get_" + op_id,
            "summary": summary,
            "responses": responses,
        }
        if params:
            operation["parameters"] = params
        paths[path] = {"get": operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meterbridge dashboard API",
            "version": version,
            "description": "Read-only JSON API behind every page of the meterbridge dashboard. Times are "
            "epoch milliseconds UTC. With a token configured, send `Authorization: Bearer <token>` "
            "or `?token=`.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
