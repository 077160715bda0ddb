"""Record what an install will replace, and put it back exactly when the install fails.

Before installing, every distribution the install may replace is saved as a wheel built from
its installed files (the files its RECORD lists, read back from disk), so a restore needs no
network and gives back the very bytes that were there, whatever index they once came from.
On failure: the distributions the install added or changed are removed (with the installer,
then file by file for what a killed installer left half-written), the saved wheels are
reinstalled by name with ``--no-deps``, and the result is compared with the record.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename

from envsetup.errors import EnvsetupError
from envsetup.install.target import TargetInfo, normalize
from envsetup.target import run_script

# Runs in the target: where each named distribution's files are.
_FILES = r"""
import json, sys
import importlib.metadata as md
want = set(sys.argv[1:])
out = {}
for d in md.distributions():
    name = d.metadata["Name"] or ""
    key = name.lower().replace("_", "-").replace(".", "-")
    while "--" in key:
        key = key.replace("--", "-")
    if key not in want or key in out:
        continue
    files = [str(d.locate_file(f)) for f in (d.files or [])]
    eps = [e.name for e in d.entry_points if e.group in ("console_scripts", "gui_scripts")]
    out[key] = {"name": name, "version": d.version, "location": str(d.locate_file("")),
                "dist_info": str(getattr(d, "_path", "")), "files": files, "scripts": eps}
print(json.dumps(out))
"""

_SKIP_META = {"RECORD", "INSTALLER", "WHEEL"}  # direct_url.json stays: freeze shows it


@dataclass(frozen=True)
class Saved:
    name: str  # normalised
    version: str
    wheel: Path


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def _pack(entry: dict[str, Any], info: TargetInfo, dest: Path) -> Path:
    """Write a wheel holding the installed files of one distribution."""
    name = re.sub(r"[-_.]+", "_", entry["name"])
    version = entry["version"]
    data = f"{name}-{version}.data"
    location = Path(entry["location"]).resolve()
    dist_info = Path(entry["dist_info"]).resolve() if entry["dist_info"] else None
    prefix = Path(info.prefix).resolve()
    scripts_dir = Path(info.scripts).resolve() if info.scripts else None
    generated = set(entry["scripts"])  # console scripts: the installer writes them anew
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    record: list[str] = []
    info_dir = f"{dist_info.name}" if dist_info else f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        for raw in entry["files"]:
            src = Path(raw)
            if not src.is_file():
                continue
            real = src.resolve()
            if dist_info and real.parent == dist_info and real.name in _SKIP_META:
                continue
            try:
                arc = real.relative_to(location).as_posix()
            except ValueError:
                if scripts_dir is not None and real.parent == scripts_dir:
                    if real.name in generated:
                        continue
                    arc = f"{data}/scripts/{real.name}"
                else:
                    try:
                        arc = f"{data}/data/{real.relative_to(prefix).as_posix()}"
                    except ValueError:
                        continue  # outside the environment: not ours to restore
            if "__pycache__" in arc:
                continue
            zf.write(real, arc)
            record.append(f"{arc},{_hash(real)},{real.stat().st_size}")
        purelib = os.path.realpath(info.purelib) == str(location)
        wheel_meta = (
            "Wheel-Version: 1.0\nGenerator: envsetup (saved installed files)\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info_dir}/WHEEL", wheel_meta)
        record.append(f"{info_dir}/WHEEL,,")
        record.append(f"{info_dir}/RECORD,,")
        zf.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return wheel


def save(info: TargetInfo, names: Iterable[str], dest: Path) -> list[Saved]:
    """Save each named installed distribution (normalised names) as a wheel under ``dest``."""
    wanted = sorted({normalize(n) for n in names if normalize(n) in info.dists})
    if not wanted:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    found = run_script(info.python, _FILES, tuple(wanted), timeout=120)
    out = []
    for key in wanted:
        entry = found.get(key)
        if entry is None:
            raise EnvsetupError(f"could not read the installed files of {key} in {info.python}")
        out.append(Saved(key, entry["version"], _pack(entry, info, dest)))
    return out


def listing(info: TargetInfo) -> set[str]:
    """The top-level entries of site-packages and of the scripts directory."""
    seen: set[str] = set()
    for d in {info.purelib, info.platlib, info.scripts}:
        if d and os.path.isdir(d):
            seen.update(os.path.join(d, n) for n in os.listdir(d))
    return seen


def wheel_identity(path: Path) -> tuple[str, str]:
    """(normalised name, version) of a wheel file, or of an installed ``.dist-info`` dir."""
    if path.name.endswith(".dist-info"):
        name, _, version = path.name[: -len(".dist-info")].rpartition("-")
        return normalize(name), version
    wname, wversion, _, _ = parse_wheel_filename(path.name)
    return normalize(str(wname)), str(wversion)


def manifest(source: Path) -> tuple[list[str], list[str], int]:
    """What a staged distribution puts in site-packages: (paths, console scripts, bytes).

    ``source`` is a wheel, or the ``.dist-info`` directory of a scratch install (its RECORD).
    """
    if source.is_dir():
        paths: list[str] = []
        size = 0
        with contextlib.suppress(OSError):
            for line in (source / "RECORD").read_text("utf-8", "replace").splitlines():
                parts = line.rsplit(",", 2)
                if len(parts) == 3 and parts[0] and not parts[0].startswith(("/", "..")):
                    paths.append(parts[0])
                    size += int(parts[2]) if parts[2].isdigit() else 0
        eps: list[str] = []
        with contextlib.suppress(OSError):
            eps = _entry_points_text((source / "entry_points.txt").read_text("utf-8", "replace"))
        return paths, eps, size
    with zipfile.ZipFile(source) as zf:
        infos = zf.infolist()
        return [i.filename for i in infos], _entry_points(zf), sum(i.file_size for i in infos)


def scrub(info: TargetInfo, wheels: Iterable[Path], before: set[str]) -> None:
    """Delete what these staged distributions (wheels or scratch-installed ``.dist-info``
    directories) would have put in the environment, and new stash entries.

    Used after a failed (possibly killed) install, before the saved wheels are put back.
    """
    roots = [Path(p) for p in {info.purelib, info.platlib} if p]
    scripts = Path(info.scripts) if info.scripts else None
    dirs: set[Path] = set()
    for wheel in wheels:
        try:
            names, eps, _ = manifest(wheel)
        except (OSError, zipfile.BadZipFile):
            continue
        for arc in names:
            parts = arc.split("/")
            if parts[0].endswith(".data"):
                if len(parts) == 3 and parts[1] == "scripts" and scripts is not None:
                    _unlink(scripts / parts[2])
                continue
            for root in roots:
                target = root / arc
                if _unlink(target):
                    dirs.update(target.parents)
        if scripts is not None:
            for ep in eps:
                _unlink(scripts / ep)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        if d in roots or not any(r in d.parents for r in roots):
            continue
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty
    # What an interrupted pip leaves: renamed stash directories (``~orch``) and empty dirs.
    for entry in listing(info) - before:
        base = os.path.basename(entry)
        if base.startswith("~"):
            if os.path.isdir(entry) and not os.path.islink(entry):
                shutil.rmtree(entry, ignore_errors=True)
            else:
                _unlink(Path(entry))
        elif os.path.isdir(entry) and not os.listdir(entry):
            os.rmdir(entry)


def _entry_points(zf: zipfile.ZipFile) -> list[str]:
    out: list[str] = []
    for arc in zf.namelist():
        if arc.endswith(".dist-info/entry_points.txt"):
            out += _entry_points_text(zf.read(arc).decode("utf-8", "replace"))
    return out


def _entry_points_text(text: str) -> list[str]:
    out: list[str] = []
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section in ("console_scripts", "gui_scripts"):
            out.append(line.split("=", 1)[0].strip())
    return out


def _unlink(path: Path) -> bool:
    try:
        if path.is_file() or path.is_symlink():
            path.unlink()
            return True
    except OSError:
        pass
    return False


def differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two ``name → version`` records, in words."""
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"{name} {b} added")
        elif b is None:
            out.append(f"{name} {a} missing")
        else:
            out.append(f"{name} {a} became {b}")
    return out
