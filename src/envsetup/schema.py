"""The JSON Schema of the Profile, derived from its dataclasses.

The shipped copy is ``envsetup/profile.schema.json``; regenerate it after changing profile.py
with ``python -m envsetup.schema > src/envsetup/profile.schema.json`` (a test checks they agree).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any

from envsetup.profile import SCHEMA_VERSION, Profile

SCHEMA_FILE = Path(__file__).with_name("profile.schema.json")


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return {"anyOf": [_schema(inner[0], defs), {"type": "null"}]}
    if dataclasses.is_dataclass(tp):
        name: str = getattr(tp, "__name__")  # noqa: B009
        if name not in defs:
            defs[name] = {}  # reserve: recursion guard
            hints = typing.get_type_hints(tp)
            fields = dataclasses.fields(tp)
            required = [
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            defs[name] = {
                "type": "object",
                "additionalProperties": False,
                "properties": {f.name: _schema(hints[f.name], defs) for f in fields},
                **({"required": required} if required else {}),
            }
        return {"$ref": f"#/$defs/{name}"}
    if origin is tuple:
        return {"type": "array", "items": _schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], defs)}
    simple = {str: "string", int: "integer", bool: "boolean", float: "number"}
    return {"type": simple[tp]}


def profile_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    root = _schema(Profile, defs)
    body = defs.pop("Profile")
    body["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"envsetup-profile-v{SCHEMA_VERSION}",
        "title": "envsetup Profile",
        **body,
        "$defs": defs,
        "$comment": f"generated from envsetup.profile ({root['$ref']})",
    }


def doctor_schema() -> dict[str, Any]:
    """The schema of ``envsetup doctor --json``: the profile and the findings."""
    finding = {
        "type": "object",
        "additionalProperties": False,
        "required": ["severity", "code", "message", "fix"],
        "properties": {
            "severity": {"enum": ["error", "warning", "info"]},
            "code": {"type": "string", "pattern": "^[a-z0-9-]+$"},
            "message": {"type": "string"},
            "fix": {"type": ["string", "null"]},
        },
    }
    shipped = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    defs = shipped.pop("$defs")
    shipped.pop("$id", None)  # nested: its $refs resolve against this document
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["profile", "findings"],
        "properties": {"profile": shipped, "findings": {"type": "array", "items": finding}},
        "$defs": defs,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(profile_schema(), indent=2) + "\n")
