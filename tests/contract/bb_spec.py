"""Validate Learn responses against the official spec (blackboard-learn-openapi.json, 3900.123.0).

The spec declares list bodies only as ``{"type": "object"}``; a list's items are validated against
the model of the matching single-item operation (reference §0). Java collection definitions
(``java.util.List<…>``, an object with one ``empty`` flag — a generator artifact) are read as
arrays. Every object model is made strict (``additionalProperties: false``), so a field the spec
does not define fails too; ``date-time`` strings must parse as ISO 8601.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "reference"
    / ("blackboard-learn-openapi.json")
)
P = "/learn/api/public"
# list path → (path, method) of the operation whose 200 model is the item (reference §0 table)
_ITEM_OF = {
    f"{P}/v3/courses": (f"{P}/v3/courses/{{courseId}}", "get"),
    f"{P}/v1/courses/{{courseId}}/users": (f"{P}/v1/courses/{{courseId}}/users/{{userId}}", "get"),
    f"{P}/v1/users": (f"{P}/v1/users/{{userId}}", "get"),
    f"{P}/v2/courses/{{courseId}}/gradebook/columns": (
        f"{P}/v2/courses/{{courseId}}/gradebook/columns/{{columnId}}",
        "get",
    ),
    f"{P}/v2/courses/{{courseId}}/gradebook/columns/{{columnId}}/users": (
        f"{P}/v2/courses/{{courseId}}/gradebook/columns/{{columnId}}/users/{{userId}}",
        "patch",
    ),
    f"{P}/v2/courses/{{courseId}}/gradebook/columns/{{columnId}}/attempts": (
        f"{P}/v2/courses/{{courseId}}/gradebook/columns/{{columnId}}/attempts/{{attemptId}}",
        "get",
    ),
    f"{P}/v1/courses/{{courseId}}/meetings": (
        f"{P}/v1/courses/{{courseId}}/meetings/{{meetingId}}",
        "get",
    ),
    f"{P}/v1/courses/{{courseId}}/meetings/{{meetingId}}/users": (
        f"{P}/v1/courses/{{courseId}}/meetings/{{meetingId}}/users/{{userId}}",
        "get",
    ),
}
_REST_EXCEPTION = "blackboard.platform.restspring.exception.RestException"


@cache
def _spec() -> dict:
    return json.loads(SPEC.read_text())


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and out.get("type", "object") == "object":
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@cache
def _definitions() -> dict:
    defs = copy.deepcopy(_spec()["definitions"])
    for name in defs:
        if name.startswith(("java.util.List<", "java.util.Set<", "java.util.Collection<")):
            defs[name] = {"type": "array"}
        elif name.startswith("java.util.Map<"):
            defs[name] = {"type": "object"}
    return _strict(defs)


_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _validate(instance: Any, ref: str) -> None:
    schema = {"definitions": _definitions(), "$ref": ref}
    jsonschema.Draft4Validator(schema, format_checker=_FORMATS).validate(instance)


def _template(path: str) -> str | None:
    """The spec path template a concrete request path matches."""
    for template in _spec()["paths"]:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            # Prefer literal segments (…/users/lastChanged) over parameters.
            return template
    return None


def _response_ref(template: str, method: str, status: str = "200") -> str | None:
    schema = _spec()["paths"][template][method].get("responses", {}).get(status, {}).get("schema")
    return schema.get("$ref") if schema else None


def validate_response(method: str, path: str, status: int, body: bytes) -> str:
    """Validate one response; returns the model it was checked against."""
    data = json.loads(body)
    if status >= 400:
        _validate(data, f"#/definitions/{_REST_EXCEPTION}")
        return "RestException"
    template = _template(path)
    assert template is not None, f"{path} is not an operation of the spec"
    if template in _ITEM_OF:
        item_ref = _response_ref(*_ITEM_OF[template])
        assert item_ref, template
        assert isinstance(data, dict) and set(data) <= {"results", "paging"}, list(data)
        assert isinstance(data["results"], list)
        for item in data["results"]:
            _validate(item, item_ref)
        if "paging" in data:
            assert set(data["paging"]) == {"nextPage"}
            assert data["paging"]["nextPage"].startswith(P + "/")
        return item_ref.rsplit(".", 1)[-1] + "[]"
    ref = _response_ref(template, method.lower())
    assert ref, f"no 200 model for {method} {template}"
    _validate(data, ref)
    return ref.rsplit(".", 1)[-1]
