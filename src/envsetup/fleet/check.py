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
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _INT_END


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


# How a field is checked, inline in the dataclass's loop (a call per field costs more than the
# test itself): a plain type, the same or null, or a compiled check for anything else.
_STR, _OPT_STR, _BOOL, _INT, _OPT_INT, _CALL = range(6)
_INT_END = 1 << 53  # profile.from_dict: every integer is a count, size or index


def _kind(tp: Any) -> tuple[int, Check]:
    args = typing.get_args(tp)
    nullable = typing.get_origin(tp) is typing.Union and type(None) in args
    inner = next((a for a in args if a is not type(None)), tp) if nullable else tp
    if inner is str:
        return (_OPT_STR if nullable else _STR), _is_str
    if inner is int and nullable:
        return _OPT_INT, _is_int
    if tp is int:
        return _INT, _is_int
    if tp is bool:
        return _BOOL, _is_bool
    return _CALL, _compile(tp)


def _dataclass_check(cls: type) -> Check:
    done = _COMPILED.get(cls)
    if done is not None:
        return done
    fields: dict[str, tuple[int, Check]] = {}
    required: list[str] = []

    def check(v: Any) -> bool:
        if type(v) is not dict:
            return False
        for key, value in v.items():
            spec = fields.get(key)
            if spec is None:
                return False
            kind = spec[0]
            t = type(value)
            if kind == _OPT_STR:
                if value is not None and t is not str:
                    return False
            elif kind == _STR:
                if t is not str:
                    return False
            elif kind == _BOOL:
                if t is not bool:
                    return False
            elif kind == _INT:
                if t is not int or not 0 <= value < _INT_END:
                    return False
            elif kind == _OPT_INT:
                if value is not None and (t is not int or not 0 <= value < _INT_END):
                    return False
            elif not spec[1](value):
                return False
        if required:
            return all(r in v for r in required)
        return True

    _COMPILED[cls] = check  # before the fields: a dataclass may nest itself
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        fields[f.name] = _kind(hints[f.name])
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
