"""The guard: the torch build envsetup installed, recorded in the environment and defended
against a later ``pip install`` that would swap it, with pip's own documented mechanisms.

Three files in the environment's prefix (``sys.prefix``: the venv's directory):

- ``envsetup-guard.json``: the record (torch, torchvision, torchaudio exact versions, the variant,
  the index, packages built from source against torch); doctor reads it (``torch-replaced``).
- ``envsetup-constraints.txt``: a pip constraints file pinning those exact builds.
- ``pip.conf`` (``pip.ini`` on Windows): pip's *site* configuration file, which pip reads for
  every command run by that environment's interpreter, after the global and user files. Its
  ``[install] constraint`` names the constraints file, followed by the constraint files already
  in effect (a global or user ``constraint``, which a site value would otherwise replace). An
  existing site file is merged (configparser), never replaced, and restored on removal.

pip then refuses any install that would replace the builds: "ERROR: Cannot install torch==2.12.0
because these package versions have conflicting dependencies. ... The user requested
(constraint) torch!=0+pinned.by.envsetup.to.change.run.envsetup.install,==2.13.0+cpu". pip prints
a constraint's name and specifier only, so the specifier carries the words: a ``!=`` clause on a
version no index holds (``0+<label>``), true for every real build.

Not guarded: ``PIP_CONFIG_FILE=/dev/null`` (pip loads no file at all), a ``PIP_CONSTRAINT``
variable (it replaces the configured value), ``pip uninstall``. uv reads no configuration inside
an environment (its files are the project's ``pyproject.toml`` / ``uv.toml``, the user's and the
system's) and not pip's: a plain ``uv pip install`` is not guarded.
``UV_CONSTRAINT=<prefix>/envsetup-constraints.txt`` (or ``-c``) makes uv refuse the same swaps, in
its own words ("Because you require torch==2.5.1 and torch==2.4.1+cpu, ..."). doctor reports any
swap afterwards (``torch-replaced``). docs/STACK.md has the details.
"""

from __future__ import annotations

import configparser
import io
import json
import os
import shlex
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from envsetup.detect.guard import pip_token
from envsetup.errors import UsageError
from envsetup.plan import Plan

GUARD_FILE = "envsetup-guard.json"
CONSTRAINTS_FILE = "envsetup-constraints.txt"
GUARD_SCHEMA_VERSION = 1
FAMILY = ("torch", "torchvision", "torchaudio")
# A version no index holds: the clause is true for every real build, and pip prints it.
LABEL = "0+pinned.by.envsetup.to.change.run.envsetup.install"

_QUERY = r"""
import json, os, sys
try:
    import importlib.metadata as md
except ImportError:
    md = None
found = {}
if md is not None:
    for name in ("torch", "torchvision", "torchaudio"):
        try:
            found[name] = md.version(name)
        except Exception:
            pass
print(json.dumps({"prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix),
                  "executable": sys.executable, "windows": os.name == "nt", "installed": found}))
"""


@dataclass(frozen=True)
class Guard:
    """What ``envsetup-guard.json`` records."""

    prefix: str
    packages: dict[str, str]  # name -> exact installed version ("2.13.0+cpu")
    variant: Optional[str] = None
    index: Optional[str] = None  # where the torch family came from; None: the default index
    builds: tuple[str, ...] = ()  # packages built from source against torch
    constraints: str = ""  # the constraints file
    pip_conf: str = ""  # the site configuration file that names it
    site_before: Optional[str] = None  # the site file's [install] constraint before the guard
    envsetup_version: Optional[str] = None
    schema_version: int = GUARD_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        from envsetup.profile import to_dict

        d: dict[str, Any] = to_dict(self)
        return d


@dataclass(frozen=True)
class Target:
    """What the guard needs to know of an environment (asked of its interpreter when not
    given: the install transaction knows it already)."""

    python: str
    prefix: str
    windows: bool
    installed: dict[str, str]  # torch-family name -> installed version

    @property
    def files(self) -> tuple[Path, Path, Path]:
        """The guard's three files: the record, the constraints, pip's site configuration."""
        p = Path(self.prefix)
        return p / GUARD_FILE, p / CONSTRAINTS_FILE, p / _conf_name(self.windows)


def target(python_or_prefix: Union[str, Path]) -> Target:
    t = _target(python_or_prefix)
    return Target(
        python=t["python"],
        prefix=t["prefix"],
        windows=bool(t["windows"]),
        installed={k: v for k, v in t["installed"].items() if k in FAMILY},
    )


def _target(python_or_prefix: Union[str, Path]) -> dict[str, Any]:
    from envsetup.target import resolve_python, run_script

    python = resolve_python(str(python_or_prefix))
    data: dict[str, Any] = run_script(python, _QUERY, timeout=60)
    data["python"] = python
    return data


def _conf_name(windows: bool) -> str:
    return "pip.ini" if windows else "pip.conf"


def constraint_line(name: str, version: str) -> str:
    """``torch!=0+pinned...,==2.13.0+cpu``: exact (``===`` for a version without a local part,
    which ``==`` would let a ``+cpu`` build satisfy)."""
    op = "==" if "+" in version else "==="
    return f"{name}!={LABEL},{op}{version}"


def other_constraints(python: str, prefix: Union[str, Path]) -> list[str]:
    """The constraint files pip's install uses in this environment, the guard's left out."""
    ours = Path(prefix) / CONSTRAINTS_FILE
    return _effective_constraints(python, {str(ours), pip_token(ours)})


def pip_env_without_guard(python: str, prefix: Path) -> dict[str, str]:
    """The environment for envsetup's own ``pip install`` (a resolve) in a guarded environment:
    ``PIP_CONSTRAINT`` naming the constraint files in effect but the guard's (a variable
    replaces the configured value; a blank one is no file). A ``PIP_CONSTRAINT`` the user has
    set already wins over the configuration, guard included: it is left as it is."""
    if "PIP_CONSTRAINT" in os.environ:
        return {}
    return {
        "PIP_CONSTRAINT": " ".join(pip_token(c) for c in other_constraints(python, prefix)) or " "
    }


def _effective_constraints(python: str, skip: set[str]) -> list[str]:
    """The constraint files pip's install already uses (global, user, site or PIP_CONFIG_FILE,
    as ``pip config list`` merges them), without ours."""
    from envsetup import proc

    res = proc.run([python, "-I", "-m", "pip", "config", "list"], timeout=60)
    if not res.ok:
        return []
    values: dict[str, str] = {}
    for line in res.stdout.splitlines():
        key, _, value = line.partition("=")
        if key in ("global.constraint", "install.constraint"):
            values[key] = value.strip().strip("'\"")
    chosen = values.get("install.constraint", values.get("global.constraint", ""))
    return [c for c in chosen.split() if c not in skip]


def _read_conf(path: Path) -> configparser.RawConfigParser:
    conf = configparser.RawConfigParser()
    if path.is_file():
        try:
            conf.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise UsageError(
                f"{path} is not a valid pip configuration file ({exc}); fix it, or pass --no-guard"
            ) from None
    return conf


def _write_conf(path: Path, conf: configparser.RawConfigParser) -> None:
    buf = io.StringIO()
    conf.write(buf)
    _atomic(path, buf.getvalue())


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.envsetup-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_guard(
    python_or_prefix: Union[str, Path],
    plan: Any,
    *,
    builds: tuple[str, ...] = (),
    known: Optional[Target] = None,
    keep: Optional[list[str]] = None,
) -> Guard:
    """Record and guard the torch build installed in the environment.

    ``plan`` is the Plan (or a :class:`envsetup.stack.Stack`, whose source-built packages are
    recorded too) that was installed; the versions recorded are the ones installed there now
    (read from the environment's metadata), so the guard holds what is really there.
    ``known`` (the environment, as just probed) and ``keep`` (:func:`other_constraints`) spare
    the two queries of the target.
    """
    from envsetup import __version__

    stack_builds: tuple[str, ...] = ()
    if hasattr(plan, "plan") and isinstance(plan.plan, Plan):
        stack_builds = tuple(b.name for b in plan.builds if b.against_torch)
        plan = plan.plan
    if not isinstance(plan, Plan):
        raise TypeError("write_guard takes a Plan or a Stack")
    t = known or target(python_or_prefix)
    installed = {k: v for k, v in t.installed.items() if k in FAMILY}
    if "torch" not in installed:
        raise UsageError(f"torch is not installed in {t.prefix}: there is no build to guard")
    prefix = Path(t.prefix)
    constraints = prefix / CONSTRAINTS_FILE
    conf_path = prefix / _conf_name(t.windows)
    old = read_guard(prefix)
    conf = _read_conf(conf_path)
    site_before = (
        old.site_before
        if old is not None
        else (
            conf.get("install", "constraint") if conf.has_option("install", "constraint") else None
        )
    )
    if keep is None:
        keep = _effective_constraints(t.python, {str(constraints), pip_token(constraints)})
    from envsetup.secrets import mask_url as mask

    index = mask(plan.index_url) if plan.index_url else None  # no credentials in the record
    header = [
        f"# Written by envsetup {__version__}: the torch build installed in {prefix}"
        f" (variant {plan.variant}, from {index or 'the default package index'}).",
        f"# pip refuses to replace it here: {conf_path} names this file ([install] constraint).",
        f"# To change torch on purpose: envsetup install --python {shlex.quote(t.python)}"
        " --torch VERSION"
        " [--variant V]; to drop the guard, delete this file and that setting.",
    ]
    lines = [constraint_line(n, installed[n]) for n in FAMILY if n in installed]
    _atomic(constraints, "\n".join([*header, *lines]) + "\n")
    if not conf.has_section("install"):
        conf.add_section("install")
    words = [pip_token(constraints), *(pip_token(c) for c in keep)]
    conf.set("install", "constraint", " ".join(words))
    _write_conf(conf_path, conf)
    guard = Guard(
        prefix=str(prefix),
        packages=installed,
        variant=plan.variant,
        index=index,
        builds=tuple(dict.fromkeys([*builds, *stack_builds])),
        constraints=str(constraints),
        pip_conf=str(conf_path),
        site_before=site_before,
        envsetup_version=__version__,
    )
    _atomic(prefix / GUARD_FILE, json.dumps(guard.to_dict(), indent=2) + "\n")
    return guard


def read_guard(python_or_prefix: Union[str, Path]) -> Optional[Guard]:
    """The guard recorded in an environment (a prefix directory, or its interpreter), or None.
    A record that is not envsetup's JSON is None too (doctor says so through detect.guard)."""
    p = Path(python_or_prefix)
    prefix = p if p.is_dir() else Path(_target(p)["prefix"])
    return load(prefix / GUARD_FILE)


def load(path: Path) -> Optional[Guard]:
    from envsetup.profile import from_dict

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return from_dict(Guard, data)
    except (OSError, ValueError, TypeError):
        return None


def remove_guard(python_or_prefix: Union[str, Path]) -> bool:
    """Remove the guard: the record, the constraints file, and our setting in the site pip
    configuration (its previous value put back). Returns whether there was one."""
    p = Path(python_or_prefix)
    prefix = p if p.is_dir() else Path(_target(p)["prefix"])
    g = load(prefix / GUARD_FILE)
    if g is None:
        return False
    conf_path = Path(g.pip_conf) if g.pip_conf else prefix / "pip.conf"
    conf = _read_conf(conf_path)
    if conf.has_section("install"):
        if g.site_before is not None:
            conf.set("install", "constraint", g.site_before)
        elif conf.has_option("install", "constraint"):
            conf.remove_option("install", "constraint")
        if not conf.options("install"):
            conf.remove_section("install")
    if conf.sections():
        _write_conf(conf_path, conf)
    else:
        conf_path.unlink(missing_ok=True)
    for name in (g.constraints or str(prefix / CONSTRAINTS_FILE), str(prefix / GUARD_FILE)):
        Path(name).unlink(missing_ok=True)
    return True


def save(paths: Iterable[Path]) -> dict[Path, Optional[bytes]]:
    """The guard files' bytes (None: absent), for :func:`put_back`."""
    out: dict[Path, Optional[bytes]] = {}
    for path in paths:
        try:
            out[path] = path.read_bytes()
        except FileNotFoundError:
            out[path] = None
    return out


def put_back(saved: Mapping[Path, Optional[bytes]]) -> None:
    """Put the saved guard files back as they were (a file that is already so is left alone)."""
    for path, data in saved.items():
        try:
            now: Optional[bytes] = path.read_bytes()
        except FileNotFoundError:
            now = None
        if now == data:
            continue
        if data is None:
            path.unlink(missing_ok=True)
        else:
            tmp = path.with_name(f".{path.name}.envsetup-tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)


@contextmanager
def lift_guard(
    python_or_prefix: Union[str, Path],
    after: Optional[Any] = None,
    *,
    guard: bool = True,
) -> Iterator[Optional[Guard]]:
    """Lift the guard for envsetup's own install, and set it again after.

    Inside the block pip sees no envsetup constraint (the other constraints stay). When the
    block ends normally: with ``guard`` (the default), the guard is written for ``after`` (the
    Plan or Stack just installed; None: the installed build is guarded again as it is now);
    with ``guard=False`` (``--no-guard``) no guard is left. When the block raises (a failed or
    interrupted install), the three files are put back byte for byte, so the environment's
    guard is what it was. Yields the guard that was lifted, or None.
    """
    t = target(python_or_prefix)
    prefix = Path(t.prefix)
    saved = save(t.files)
    old = load(prefix / GUARD_FILE)
    if old is not None:
        remove_guard(prefix)
    try:
        yield old
    except BaseException:
        put_back(saved)
        raise
    if not guard:
        return
    if after is None:
        if old is None:
            return
        after = Plan(
            torch=old.packages.get("torch", ""),
            variant=old.variant or "default",
            pins=(),
            index_url=old.index,
            platform="",
            python="",
        )
    try:
        write_guard(t.python, after, builds=old.builds if old else ())
    except BaseException:
        put_back(saved)
        raise
