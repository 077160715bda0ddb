"""The guard record in the target environment (``<prefix>/envsetup-guard.json``).

Read from the profile's ``python.prefix`` without running anything; never raises: a record that
cannot be read is returned with the reason in ``unknown``.
"""

from __future__ import annotations

import configparser
import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

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
        return replace(record, active=constraints in value.split())
    return record
