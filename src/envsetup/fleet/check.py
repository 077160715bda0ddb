"""Is this JSON a Profile? Answered for thousands of nodes without building the dataclasses.

``Profile.from_dict`` builds about twenty frozen dataclasses per node (0.1-0.7 ms each profile);
a fleet report only needs to know that every node's file *would* read back, and the machine
fields it groups on. :func:`is_profile` walks the JSON with checks compiled once from the same
dataclass annotations ``from_dict`` converts with, and accepts exactly what ``from_dict``
accepts (the tests compare the two on every kind of bad value). Only a node that fails it is
read again with ``from_dict``, for its one-line message.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable

from envsetup.profile import SCHEMA_VERSION, Profile

Check = Callable[[Any], bool]
_COMPILED: dict[type, Check] = {}


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_bool(v: Any) -> bool:
    return v is True or v is False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_any(v: Any) -> bool:
    return True


def _compile(tp: Any) -> Check:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        inner = _compile(next(a for a in args if a is not type(None)))
        if type(None) in args:
            return lambda v: v is None or inner(v)
        return lambda v: v is not None and inner(v)
    if dataclasses.is_dataclass(tp):
        return _dataclass_check(tp)  # type: ignore[arg-type]
    if origin is tuple:
        item = _compile(args[0])
        return lambda v: type(v) is list and all(item(x) for x in v)
    if origin is dict:
        return lambda v: type(v) is dict and all(type(x) is str for x in v.values())
    if tp is str:
        return _is_str
    if tp is bool:
        return _is_bool
    if tp is int:
        return _is_int
    return _is_any


def _dataclass_check(cls: type) -> Check:
    done = _COMPILED.get(cls)
    if done is not None:
        return done
    fields: dict[str, Check] = {}
    required: list[str] = []

    def check(v: Any) -> bool:
        if type(v) is not dict:
            return False
        for key, value in v.items():
            c = fields.get(key)
            if c is None or not c(value):
                return False
        return all(r in v for r in required)

    _COMPILED[cls] = check  # before the fields: a dataclass may nest itself
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        fields[f.name] = _compile(hints[f.name])
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return check


def is_profile(data: Any) -> bool:
    """True when ``Profile.from_dict(data)`` would succeed."""
    if type(data) is not dict:
        return False
    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        return False
    return _dataclass_check(Profile)(data)


def profile_error(data: Any) -> str:
    """The one-line reason ``Profile.from_dict`` gives for ``data`` ("" when it reads)."""
    try:
        Profile.from_dict(data)
    except ValueError as exc:
        return str(exc)
    return ""
