"""The guard record in the target environment (``<prefix>/envsetup-guard.json``).

Read from the profile's ``python.prefix`` without running anything; never raises: a record that
cannot be read is returned with the reason in ``unknown``.
"""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from envsetup.profile import GuardRecord

GUARD_FILE = "envsetup-guard.json"  # envsetup.guard.GUARD_FILE (that module imports more)


def probe_guard(prefix: Optional[str]) -> Optional[GuardRecord]:
    if not prefix:
        return None
    path = Path(prefix) / GUARD_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return GuardRecord(path=str(path), unknown={"record": f"cannot read it: {exc.strerror}"})
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        packages = data.get("packages") or {}
        if not isinstance(packages, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in packages.items()
        ):
            raise ValueError("packages is not an object of versions")
        builds = data.get("builds") or []
        if not isinstance(builds, list) or not all(isinstance(b, str) for b in builds):
            raise ValueError("builds is not a list of names")
        variant, index = data.get("variant"), data.get("index")
        record = GuardRecord(
            path=str(path),
            packages=dict(packages),
            variant=variant if isinstance(variant, str) else None,
            index=index if isinstance(index, str) else None,
            builds=tuple(builds),
        )
    except ValueError as exc:
        return GuardRecord(path=str(path), unknown={"record": f"not envsetup's record ({exc})"})
    constraints = data.get("constraints")
    conf = data.get("pip_conf")
    if isinstance(constraints, str) and isinstance(conf, str):
        parser = configparser.RawConfigParser()
        try:
            parser.read(conf, encoding="utf-8")
            value = parser.get("install", "constraint", fallback="")
        except (configparser.Error, OSError, UnicodeDecodeError) as exc:
            return replace(record, unknown={"active": str(exc)})
        uv = names_file(os.environ.get("UV_CONSTRAINT", ""), constraints)
        active = names_file(value, constraints)
        return replace(record, active=active, constraints=constraints, uv_constraint=uv)
    return record


def names_file(value: str, path: str) -> bool:
    """Whether a pip ``constraint`` value (whitespace-separated words) names ``path``, as a
    path or as its ``file:`` URL (how envsetup.guard writes a path with spaces in it)."""
    for word in value.split():
        if word == path:
            return True
        if word.startswith("file:"):
            from envsetup.paths import file_url_path

            if file_url_path(word) == Path(path):
                return True
    return False


def pip_token(path_or_url: Union[str, Path]) -> str:
    """A constraint file as one word pip reads back whole, on every platform and path.

    pip splits a configured ``constraint`` (and ``PIP_CONSTRAINT``) on whitespace, and reads its
    configuration files in the locale's encoding: ``/home/a/my envs/p/c.txt`` becomes two files,
    the first ``/home/a/my``, and every later pip command in the environment fails. A path that
    is not plain ASCII without spaces or quotes is written as its ``file:`` URL instead
    (``file:///home/a/my%20envs/p/c.txt``, ``file:///C:/Users/J%C3%B6rg/...``), which pip opens
    as a local file. Plain paths stay as they are, so the common case reads as before.
    """
    text = str(path_or_url)
    if text.isascii() and not any(c.isspace() or c in "'\"%" for c in text):
        return text
    if "://" in text:  # a URL already: quote what pip would split or mis-read
        from urllib.parse import quote

        return quote(text, safe=":/?&=@+,;~!$*()[]%")
    return Path(text).absolute().as_uri()
