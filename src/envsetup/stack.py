"""The whole stack: the user's requirements resolved together with this machine's torch build.

``resolve_stack(profile, request, table, requirements, python=...)`` returns a :class:`Stack`,
the exact set to install (name, version, file URL, sha256, where it comes from), resolved by uv
(a dependency of envsetup) whichever installer then installs it (pip installs uv's pins): a
scratch project whose ``[[tool.uv.index]]`` for the chosen PyTorch variant is ``explicit = true``
and whose ``[tool.uv.sources]`` pins torch, torchvision and torchaudio to it, the user's paths and
URLs beside it; ``uv pip compile pyproject.toml [direct.in]`` writes a PEP 751 ``pylock.toml``
(the lock the install transaction stages from). An explicit index serves only the names pinned
to it, so everything else comes from the default index, and those names come from nowhere else:
no CPU or wrong-CUDA torch from the package index.

The target is an interpreter (``--python TARGET``), or with none, a profile's Python and platform
(``--python-version``, ``--python-platform``: :func:`profile_target`). An interpreter's
environment is resolved as it is: what is installed there is preferred where it fits (as the
preferences of uv's output file), as a plain ``uv pip install`` would keep it, and each package
the target already has at the resolved version is marked ``installed`` (the install leaves it
alone).

Requirements that constrain torch: the direct requirements' metadata (PEP 658, through
:mod:`envsetup.index`) is read first; a torch pin there narrows the torch request, and the
machine's valid builds (the Plan's accepted candidates) are searched for the newest build that
fits. When the resolver fails on a torch conflict deeper in the graph, a diagnosis resolve (torch
unpinned) finds which packages constrain torch, and the same search runs. When no valid build
fits: :class:`~envsetup.errors.NoBuildError` (exit 4) naming the chain and the way out.

Nothing here installs anything; envsetup never imports torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envsetup.errors import EnvsetupError, NoBuildError, UsageError
from envsetup.install.backends.uv import find_uv
from envsetup.plan import Plan, Request

TORCH_FAMILY = ("torch", "torchvision", "torchaudio")
STACK_SCHEMA_VERSION = 1
PROJECT = "your-requirements"  # the scratch project's name (never installed; uv's reports name it)


class StackError(EnvsetupError):
    """The resolver could not find a set for the requirements (not a torch-build question)."""

    code = "stack-unresolvable"


# --------------------------------------------------------------------------- requirements


@dataclass(frozen=True)
class UserRequirements:
    """What the user asked for (``PACKAGE...`` and ``-r FILE``), parsed and split.

    ``requirements`` are PEP 508 strings for everything but the torch family; ``torch`` holds
    the user's own torch/torchvision/torchaudio requirements (they narrow the torch request and
    never reach the resolver as written); ``constraints`` come from ``-c`` lines.
    """

    requirements: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    torch: tuple[str, ...] = ()
    direct: tuple[
        str, ...
    ] = ()  # requirement-file lines with no PEP 508 name: -e DIR, DIR, git+URL

    @property
    def names(self) -> list[str]:
        return [canonicalize_name(Requirement(r).name) for r in self.requirements]

    @property
    def arguments(self) -> tuple[str, ...]:
        """Everything but the torch family as an installer's command-line arguments."""
        split = [a for d in self.direct for a in (d.split(" ", 1) if d.startswith("-e ") else [d])]
        return (*self.requirements, *split)

    def for_export(self, kind: str) -> tuple[str, ...]:
        """The lines an export of ``kind`` carries: a requirements file or conda's pip list
        takes paths and URLs as written; a pyproject's dependencies need a name."""
        if kind == "uv" and self.direct:
            raise UsageError(
                f"--export uv: {self.direct[0]} has no name, which a pyproject dependency needs: "
                "write it as NAME @ URL (file:///path for a local project)"
            )
        return (*self.requirements, *self.direct)

    @property
    def empty(self) -> bool:
        """Nothing to resolve beside torch: no package, no torch line (constraints alone)."""
        return not (self.requirements or self.direct or self.torch)


_SOURCE_OPTIONS = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--no-index",
    "--trusted-host",
)
_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _lines(path: Path, environ: Mapping[str, str]) -> list[tuple[int, str]]:
    """Logical lines of a pip requirements file: comments dropped, continuations joined,
    ``${VAR}`` expanded (pip's format)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"-r {path}: cannot read it ({exc})") from None
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for no, line in enumerate(raw.splitlines(), 1):
        if not buf:
            start = no
        line = re.sub(r"(^|\s+)#.*$", "", line)
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        buf += line
        text = _VAR.sub(lambda m: environ.get(m.group(1), m.group(0)), buf).strip()
        buf = ""
        if text:
            out.append((start, text))
    return out


def _parse_line(text: str, where: str) -> Requirement:
    # pip's per-requirement options (--hash=..., --config-settings ...) follow the requirement
    req_text = _strip_options(text)
    try:
        req = Requirement(req_text)
    except InvalidRequirement as exc:
        raise UsageError(
            f"{where}: {req_text!r} is not a requirement ({exc}); use a PEP 508 requirement such "
            "as transformers>=4.40, a path, or a URL"
        ) from None
    return req


def _strip_options(text: str) -> str:
    return re.split(r"\s+--?[a-zA-Z]", " " + text, maxsplit=1)[0].strip() or text


_VCS = ("git+", "hg+", "svn+", "bzr+")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ARCHIVE = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\s*[\[<>=!~;,]|\s*$)(?!.*[/\\@])")


def _direct(text: str, base: Path, editable: bool, where: str) -> Optional[str]:
    """A path or URL requirement with no PEP 508 name (``./dir``, ``x.whl``, ``git+https://...``,
    ``-e DIR``), as a line for the resolver's requirements file (paths made absolute); None for
    anything else (a PEP 508 requirement)."""
    if _PLAIN.match(text) and not text.endswith(_ARCHIVE) and not editable:
        return None  # a name, extras, versions, markers: PEP 508 (the most common line, fast)
    text = _strip_options(text)
    if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@", text):
        return None  # NAME @ URL: a PEP 508 requirement
    if text.startswith(_VCS) or _URL.match(text):
        line = text
    else:
        raw = Path(text).expanduser()
        path = raw if raw.is_absolute() else base / raw
        looks = text.startswith((".", "/", "~", "\\")) or text.endswith(_ARCHIVE)
        looks = looks or bool(re.match(r"^[A-Za-z]:[\\/]", text))
        if not (editable or looks or (re.search(r"[\\/]", text) and path.exists())):
            return None
        if not path.exists():
            raise UsageError(f"{where}: {text}: no such file or directory")
        line = str(path.resolve())
    name = _direct_name(line)
    if name in TORCH_FAMILY:
        raise UsageError(
            f"{where}: {text} is {name}, of torch's family: envsetup installs torch, torchvision "
            "and torchaudio as the build it plans; remove the line and choose the build with "
            "--torch and --variant"
        )
    return f"-e {line}" if editable else line


def _direct_name(line: str) -> Optional[str]:
    """The project name a path or URL requirement names, where it can be known without
    building it: ``#egg=NAME``, a wheel's file name, a local project's pyproject.toml."""
    m = re.search(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if m:
        return canonicalize_name(m.group(1))
    tail = line.split("#", 1)[0].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if tail.endswith(".whl"):
        return canonicalize_name(tail.split("-", 1)[0])
    if not (_URL.match(line) or line.startswith(_VCS)):
        project = Path(line) / "pyproject.toml"
        try:
            name = _toml_loads(project.read_text(encoding="utf-8")).get("project", {}).get("name")
        except (OSError, ValueError, AttributeError):
            return None
        return canonicalize_name(name) if isinstance(name, str) else None
    return None


def read_requirements(
    packages: Sequence[str] = (),
    files: Sequence[str] = (),
    *,
    environ: Optional[Mapping[str, str]] = None,
) -> UserRequirements:
    """Parse ``PACKAGE...`` arguments and ``-r FILE`` requirement files.

    The lines are read with ``packaging.requirements`` (the PEP 508 parser pip and uv share); the
    file format handled is pip's: comments, ``\\`` continuations, ``${VAR}``, nested ``-r`` and
    ``-c`` (relative to the file), ``-e`` (editable) paths and URLs. A path (``./dir``,
    ``x.whl``) or URL (``git+https://...``, ``https://.../x.whl``) with no name goes to the
    resolver as written (paths made absolute); ``NAME @ URL`` is a PEP 508 requirement. Options
    that set where packages come from (``--index-url``, ``--find-links``, ...) are refused: the
    stack chooses the sources. None of these may be torch's family. Every problem is a one-line
    UsageError naming the file and line.
    """
    env = os.environ if environ is None else environ
    reqs: list[Requirement] = []
    cons: list[Requirement] = []
    direct: list[str] = []
    seen: set[Path] = set()

    def read(path: Path, constraint: bool, depth: int) -> None:
        path = path.expanduser()
        key = path.resolve()
        if key in seen or depth > 20:
            return
        seen.add(key)
        if not path.is_file():
            raise UsageError(f"-r {path}: no such file")
        for no, text in _lines(path, env):
            where = f"{path}:{no}"
            first = text.split(None, 1)[0]
            opt = first.split("=", 1)[0]
            rest = text[len(first) :].strip() if "=" not in first else first.split("=", 1)[1]
            if opt in ("-r", "--requirement", "-c", "--constraint"):
                if not rest:
                    raise UsageError(f"{where}: {opt} needs a file name")
                read(path.parent / rest, constraint or opt in ("-c", "--constraint"), depth + 1)
                continue
            if opt in _SOURCE_OPTIONS:
                raise UsageError(
                    f"{where}: {opt} sets where packages come from, which envsetup chooses (torch "
                    "from the PyTorch index, the rest from your default index): remove the line, "
                    "or set your default index with PIP_INDEX_URL / UV_DEFAULT_INDEX"
                )
            editable = opt in ("-e", "--editable")
            if editable and not rest:
                raise UsageError(f"{where}: {opt} needs a path or URL")
            if opt.startswith("-") and not editable:
                raise UsageError(f"{where}: option {opt} is not supported in a requirement file")
            line = _direct(rest if editable else text, path.parent, editable, where)
            if line is not None and constraint:
                raise UsageError(f"{where}: a constraint names a version, not a path or URL")
            if line is not None:
                direct.append(line)
            else:
                (cons if constraint else reqs).append(_parse_line(text, where))

    for i, p in enumerate(packages):
        if p.startswith("-"):
            raise UsageError(f"{p}: not a package (give requirements, or -r FILE)")
        line = _direct(p, Path.cwd(), False, f"package {i + 1}")
        if line is not None:
            direct.append(line)
        else:
            reqs.append(_parse_line(p, f"package {i + 1}"))
    for f in files:
        read(Path(f), False, 0)
    for r in [*reqs, *cons]:
        if canonicalize_name(r.name) in TORCH_FAMILY:
            if r.url:
                raise UsageError(
                    f"{r}: {r.name} from a URL is of torch's family, which envsetup installs as "
                    "the build it plans: choose the build with --torch and --variant"
                )
            if any("+" in s.version for s in r.specifier):
                raise UsageError(
                    f"{r}: give the public version ({r.name}==2.4.1) and the build with --variant"
                )
    family = [str(r) for r in [*reqs, *cons] if canonicalize_name(r.name) in TORCH_FAMILY]
    return UserRequirements(
        requirements=tuple(str(r) for r in reqs if canonicalize_name(r.name) not in TORCH_FAMILY),
        constraints=tuple(str(r) for r in cons if canonicalize_name(r.name) not in TORCH_FAMILY),
        torch=tuple(family),
        direct=tuple(dict.fromkeys(direct)),
    )


# --------------------------------------------------------------------------- the target


# Runs inside the target (python -I -c): the marker environment and the wheel tags it accepts,
# in pip's order of preference. The tags come from packaging (or pip's vendored copy).
_TARGET = r"""
import json, os, platform, sys
def fmt(info):
    v = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        v += info.releaselevel[0] + str(info.serial)
    return v
env = {
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
tags = None
try:
    from packaging import tags as t
except Exception:
    try:
        from pip._vendor.packaging import tags as t
    except Exception:
        t = None
if t is not None:
    try:
        tags = [str(x) for x in t.sys_tags()]
    except Exception:
        tags = None
installed = {}
try:
    import importlib.metadata as md
    for d in md.distributions():  # sys.path order: the first copy of a name is the one imported
        name = d.metadata["Name"]
        if name and name not in installed:
            installed[name] = d.version
except Exception:
    pass
print(json.dumps({"markers": env, "tags": tags, "executable": sys.executable,
                  "gil": bool(getattr(sys, "_is_gil_enabled", lambda: True)()),
                  "prefix": sys.prefix, "installed": installed}))
"""


@dataclass(frozen=True)
class TargetEnv:
    """The target interpreter's marker environment and accepted wheel tags (best first)."""

    python: str
    markers: dict[str, str]
    tags: tuple[str, ...]
    prefix: str = ""  # sys.prefix: where the guard lies
    installed: dict[str, str] = field(default_factory=dict)  # normalised name -> version
    fresh: bool = False  # a new environment, resolved with an interpreter of the same Python
    platform: Optional[str] = None  # no interpreter: uv's --python-platform (profile_target)

    @property
    def version(self) -> str:
        return self.markers["python_full_version"]

    @property
    def label(self) -> str:
        """The interpreter, or the Python and platform a profile names."""
        return f"Python {self.version} on {self.platform}" if self.platform else self.python

    def uv_args(self) -> list[str]:
        """What tells ``uv pip compile`` which Python it resolves for; for a profile, envsetup's
        own interpreter runs what must run (a source build's metadata), and uv downloads none."""
        if self.platform:
            return ["--python", sys.executable, "--python-version", self.version,
                    "--python-platform", self.platform, "--no-python-downloads"]  # fmt: skip
        return ["--python", self.python]

    def has(self, name: str, version: str) -> bool:
        """Whether the target has this very version of ``name`` installed."""
        have = self.installed.get(canonicalize_name(name))
        return have is not None and _same(have, version)


def target_env(python: str) -> TargetEnv:
    """Ask the target for its markers and tags (packaging's, or pip's vendored copy); where it
    has neither, the tags are computed here for its Python version on this machine's platform."""
    from envsetup.target import run_script

    try:
        data = run_script(python, _TARGET, timeout=60)
    except EnvsetupError as exc:
        raise UsageError(f"the target interpreter does not run: {exc.message}") from None
    markers = {str(k): str(v) for k, v in data["markers"].items()}
    tags = data.get("tags")
    if not tags:
        from packaging import tags as ptags

        major, minor = (int(x) for x in markers["python_version"].split("."))
        abi = f"cp{major}{minor}" + ("" if data.get("gil", True) else "t")
        plats = list(ptags.platform_tags())
        tags = [
            str(t)
            for t in [
                *ptags.cpython_tags((major, minor), [abi, "abi3", "none"], plats),
                *ptags.compatible_tags((major, minor), f"cp{major}{minor}", plats),
            ]
        ]
    raw = data.get("installed")
    installed = (
        {str(canonicalize_name(str(k))): str(v) for k, v in raw.items()}
        if isinstance(raw, dict)
        else {}
    )
    return TargetEnv(
        python=python,
        markers=markers,
        tags=tuple(tags),
        prefix=str(data.get("prefix") or ""),
        installed=installed,
    )


# uv's --python-platform names for glibc Linux: the newest at or below the machine's glibc.
_MANYLINUX = ((2, 40), (2, 39), (2, 38), (2, 37), (2, 36), (2, 35), (2, 34), (2, 33), (2, 32),
              (2, 31), (2, 28), (2, 17))  # fmt: skip


def uv_platform(system: Any) -> str:
    """uv's ``--python-platform`` for a profile's system (os, arch, libc): ``x86_64-manylinux_2_36``
    for glibc 2.36, ``aarch64-apple-darwin``, ``x86_64-pc-windows-msvc``, ...; a UsageError for
    a platform uv cannot resolve for."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(str(system.arch).lower(), system.arch)
    if system.os == "darwin":
        return f"{arch}-apple-darwin"
    if system.os == "windows":
        return f"{arch}-pc-windows-msvc"
    if system.os == "linux" and arch in ("x86_64", "aarch64"):
        if system.libc == "musl":
            return f"{arch}-unknown-linux-musl"
        try:
            have = tuple(int(x) for x in str(system.libc_version).split(".")[:2])
        except ValueError:
            have = (2, 28)  # unknown: what uv takes for x86_64-unknown-linux-gnu
        ok = next((v for v in _MANYLINUX if v <= have), (2, 17))
        return f"{arch}-manylinux_{ok[0]}_{ok[1]}"
    raise UsageError(
        f"the profile's platform ({system.os} {system.arch}) is not one packages can be resolved "
        "for without its interpreter: give --python PATH on that machine"
    )


def profile_target(profile: Any) -> TargetEnv:
    """The target a profile describes, with no interpreter of its kind at hand: its marker
    environment and wheel tags from its Python and platform (a new environment: nothing
    installed), resolved by uv with ``--python-version`` and ``--python-platform``."""
    from packaging import tags as ptags

    system, py = profile.system, profile.python
    platform = uv_platform(system)
    try:
        version = Version(py.version)
        major, minor = version.release[0], version.release[1]
    except (InvalidVersion, IndexError):
        raise UsageError(f"the profile's Python version {py.version!r} is not a version") from None
    arch = platform.split("-", 1)[0]
    if system.os == "windows":
        plats = ["win_amd64" if arch == "x86_64" else "win_arm64"]
        osname, sysplat, system_name = "nt", "win32", "Windows"
        machine = "AMD64" if arch == "x86_64" else "ARM64"
    elif system.os == "darwin":
        m = re.match(r"(\d+)(?:\.(\d+))?", str(system.macos_version or ""))
        mac = (int(m.group(1)), int(m.group(2) or 0)) if m else (11, 0)
        plats = list(ptags.mac_platforms(mac, "arm64" if arch == "aarch64" else arch))
        osname, sysplat, system_name = "posix", "darwin", "Darwin"
        machine = "arm64" if arch == "aarch64" else arch
    else:
        if "musl" in platform:
            m = re.match(r"(\d+)\.(\d+)", str(system.libc_version or "1.2"))
            top = int(m.group(2)) if m else 2
            plats = [f"musllinux_1_{i}_{arch}" for i in range(top, -1, -1)]
        else:
            glibc = int(platform.rsplit("_", 1)[1])
            plats = [f"manylinux_2_{i}_{arch}" for i in range(glibc, 4, -1)]
            plats += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
        plats.append(f"linux_{arch}")
        osname, sysplat, system_name, machine = "posix", "linux", "Linux", arch
    abi = f"cp{major}{minor}" + ("t" if py.free_threaded else "")
    tags = [
        str(t)
        for t in [
            *ptags.cpython_tags((major, minor), [abi, "abi3", "none"], plats),
            *ptags.compatible_tags((major, minor), f"cp{major}{minor}", plats),
        ]
    ]
    full = str(version.public)
    markers = {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": osname,
        "platform_machine": machine,
        "platform_release": str(system.release or ""),
        "platform_system": system_name,
        "platform_version": "",
        "python_full_version": full,
        "platform_python_implementation": "CPython",
        "python_version": f"{major}.{minor}",
        "sys_platform": sysplat,
    }
    return TargetEnv(python="", markers=markers, tags=tuple(tags), fresh=True, platform=platform)


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Locked:
    """One package of the resolved set, as the install transaction will stage it."""

    name: str  # normalised
    version: str  # as resolved, local part included: "2.4.1+cu121"
    source: str  # "pytorch": the chosen PyTorch index | "index": the default index | "url"
    index: Optional[str] = None  # the index it was resolved from; None: the installer's default
    url: Optional[str] = None  # the file
    sha256: Optional[str] = None
    kind: str = "wheel"  # wheel | sdist | directory (a local project) | vcs (a git commit)
    requested: bool = False  # a user requirement or a torch-family pin
    installed: bool = False  # the target has this very version already: the install leaves it
    editable: bool = False  # a local project installed in place (-e)


@dataclass(frozen=True)
class BuildNeed:
    """A package with no wheel for the target: it compiles at install time."""

    name: str
    version: str
    against_torch: bool  # its metadata requires torch (an extension built against it)
    needs: tuple[str, ...]  # in words: "nvcc from CUDA 12.x (torch 2.4.1+cu121 is CUDA 12.1)"


@dataclass(frozen=True)
class Stack:
    plan: Plan  # the torch build, after the requirements' constraints
    packages: tuple[Locked, ...]
    resolver: str  # uv (a record from before envsetup depended on uv may say pip)
    python: str  # the target interpreter
    requirements: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    torch_index: Optional[str] = None  # where the torch family comes from
    default_index: Optional[str] = None  # None: the installer's own default
    command: tuple[str, ...] = ()  # the resolve that fixed the set
    pylock: Optional[str] = None  # uv: the PEP 751 lock it wrote (what the install stages)
    builds: tuple[BuildNeed, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. why torch is not the newest valid build
    seconds: float = 0.0
    schema_version: int = STACK_SCHEMA_VERSION
    direct: tuple[str, ...] = ()  # the user's path and URL requirements, as given to uv

    def package(self, name: str) -> Optional[Locked]:
        n = canonicalize_name(name)
        return next((p for p in self.packages if p.name == n), None)

    def torch_family(self) -> list[Locked]:
        return [p for p in self.packages if p.name in TORCH_FAMILY]

    def requirements_lock(self) -> str:
        """The set as a pip requirements file: every file by URL with its hash (``pip download
        --no-deps --require-hashes -r``); packages with no known URL by exact version."""
        lines = [f"# {self.resolver}-resolved by envsetup for {self.python}"]
        for p in self.packages:
            line = _reference(p) if p.url else f"{p.name}=={p.version}"
            if p.sha256:
                line += f" --hash=sha256:{p.sha256}"
            lines.append(line)
        return "\n".join(lines) + "\n"

    def describe(self, mask: Any = str) -> list[str]:
        """The set in words, one line a package (then the source builds and the notes): what
        ``plan`` and ``install --dry-run`` print."""
        width = max((len(f"{p.name} {p.version}") for p in self.packages), default=0)
        lines = []
        for p in self.packages:
            if p.installed:
                where = "installed already"
            elif p.source == "pytorch":
                where = f"from the PyTorch index {mask(p.index or '')}".rstrip()
            elif p.source == "url":
                where = "from " + mask(p.url or "a direct URL")
            else:
                where = f"from the index {mask(p.index)}" if p.index else "from the default index"
            asked = ", asked for" if p.requested and p.name not in TORCH_FAMILY else ""
            lines.append(f"{p.name} {p.version}".ljust(width) + f"  {where}{asked}")
        todo = {p.name for p in self.packages if not p.installed}
        for b in (b for b in self.builds if b.name in todo):
            when = (
                "after the install, without build isolation"
                if b.against_torch
                else "by the installer"
            )
            lines.append(
                f"{b.name} {b.version} is built from source {when}; needs {'; '.join(b.needs)}"
            )
        lines += [f"note: {n}" for n in self.notes]
        return lines

    def changes(self) -> list[Locked]:
        """What an install changes: every package the target lacks at its resolved version,
        but the source builds against torch (:meth:`source_builds`, a step of their own)."""
        later = {p.name for p in self.source_builds()}
        return [p for p in self.packages if not p.installed and p.name not in later]

    def source_builds(self) -> list[Locked]:
        """The packages compiled against torch at install time, in a second step once torch is
        installed, without build isolation (an isolated build would compile against another
        torch, fetched into the build environment from the default index)."""
        names = {b.name for b in self.builds if b.against_torch}
        return [p for p in self.packages if p.name in names and not p.installed]

    def pinned(self, packages: Sequence[Locked]) -> str:
        """``name==version --hash=sha256:...`` lines (every hash, or none where one is
        unknown): what an installer takes from its indexes, these very files and no other
        (pip keeps the candidates whose hash matches, uv checks them)."""
        hashed = all(p.sha256 for p in packages)
        lines = [
            (_reference(p) if p.source == "url" else f"{p.name}=={p.version}")
            + (f" --hash=sha256:{p.sha256}" if hashed else "")
            for p in packages
        ]
        return "".join(f"{ln}\n" for ln in lines)

    def lock(self, packages: Sequence[Locked]) -> str:
        """A PEP 751 ``pylock.toml`` of ``packages``: each file by URL with its hash, what
        ``uv pip install -r pylock.toml`` installs as registry packages (no direct-URL record,
        so ``pip freeze`` shows ``name==version``)."""
        lines = ['lock-version = "1.0"', 'created-by = "envsetup"', ""]
        for p in packages:
            if not p.url:
                raise StackError(f"{p.name} {p.version} was resolved without a file URL: plan "
                                 "again")  # fmt: skip
            if p.kind in ("directory", "vcs"):
                lines += ["[[packages]]", f"name = {_toml_str(p.name)}", _direct_entry(p), ""]
                continue
            url = p.url.split("#", 1)[0]
            hashes = f", hashes = {{ sha256 = {_toml_str(p.sha256)} }}" if p.sha256 else ""
            entry = f"{{ url = {_toml_str(url)}{hashes} }}"
            lines += [
                "[[packages]]",
                f"name = {_toml_str(p.name)}",
                f"version = {_toml_str(p.version)}",
            ]
            lines.append(f"wheels = [{entry}]" if p.kind == "wheel" else f"sdist = {entry}")
            lines.append("")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from envsetup.profile import to_dict

        d: dict[str, Any] = to_dict(self)
        d["plan"] = self.plan.to_dict()
        return d

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Stack:
        from envsetup.profile import from_dict

        if not isinstance(data, dict) or not isinstance(data.get("plan"), dict):
            raise ValueError("a stack must be an object with a plan")
        rest = {k: v for k, v in data.items() if k != "plan"}
        rest["plan"] = {}
        stub = from_dict(_StackShape, rest)
        return cls(
            plan=Plan.from_dict(data["plan"]),
            **{f: getattr(stub, f) for f in _StackShape.__dataclass_fields__ if f != "plan"},
        )


def _reference(p: Locked) -> str:
    """A direct reference as pip and uv read it in a requirements file."""
    url = (p.url or "").split("#", 1)[0]
    if p.editable and url.startswith("file:"):
        return f"-e {_file_path(url)}"
    return f"{p.name} @ {url}"


def _file_path(url: str) -> str:
    from envsetup.paths import file_url_path

    return str(file_url_path(url))


def _direct_entry(p: Locked) -> str:
    """A local project or a git commit as a pylock.toml package's source."""
    url = p.url or ""
    if p.kind == "vcs":
        kind, _, rest = url.partition("+")
        where, _, commit = rest.rpartition("@")
        fields = f"type = {_toml_str(kind)}, url = {_toml_str(where)}"
        return f"vcs = {{ {fields}, commit-id = {_toml_str(commit)} }}"
    editable = "true" if p.editable else "false"
    return f"directory = {{ path = {_toml_str(_file_path(url))}, editable = {editable} }}"


@dataclass(frozen=True)
class _StackShape:
    """Stack's fields for from_dict (the plan is read by Plan.from_dict)."""

    plan: dict[str, str]
    packages: tuple[Locked, ...]
    resolver: str
    python: str
    requirements: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    torch_index: Optional[str] = None
    default_index: Optional[str] = None
    command: tuple[str, ...] = ()
    pylock: Optional[str] = None
    builds: tuple[BuildNeed, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    schema_version: int = STACK_SCHEMA_VERSION
    direct: tuple[str, ...] = ()


# --------------------------------------------------------------------------- torch constraints


@dataclass(frozen=True)
class Constrains:
    """A package (of the user's requirements or their dependencies) that constrains torch."""

    name: str
    version: str
    family: str  # torch | torchvision | torchaudio
    spec: str  # "==2.6.0"

    def __str__(self) -> str:
        if not self.version:  # the user's own requirement lines
            return f"{self.name} require {self.family}{self.spec}"
        return f"{self.name} {self.version} requires {self.family}{self.spec}"


def family_requirements(
    metadata: str, markers: Mapping[str, str], extras: Iterable[str] = ()
) -> dict[str, SpecifierSet]:
    """The torch-family requirements in a core-metadata text, for this marker environment."""
    from email.parser import HeaderParser

    msg = HeaderParser().parsestr(metadata)
    out: dict[str, SpecifierSet] = {}
    wanted = ["", *extras]
    for line in msg.get_all("Requires-Dist") or []:
        try:
            r = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(r.name)
        if name not in TORCH_FAMILY:
            continue
        if r.marker is not None and not any(
            r.marker.evaluate({**markers, "extra": e}) for e in wanted
        ):
            continue
        out[name] = out.get(name, SpecifierSet()) & r.specifier
    return out


def _compatible(f: Any, env: TargetEnv, tags: set[str]) -> bool:
    if f.yanked is not None:
        return False
    if f.requires_python:
        try:
            if not SpecifierSet(f.requires_python).contains(env.version, prereleases=True):
                return False
        except InvalidSpecifier:
            pass
    if f.kind == "wheel":
        return any(t in tags for t in f.tags)
    return bool(f.kind == "sdist")


def _versions(files: Sequence[Any], env: TargetEnv) -> list[tuple[Version, Any]]:
    """(version, the file a resolver would take) for each usable version, newest first."""
    tags = set(env.tags)
    best: dict[Version, Any] = {}
    for f in files:
        if not _compatible(f, env, tags):
            continue
        try:
            v = Version(f.version)
        except InvalidVersion:
            continue
        if v not in best or (best[v].kind != "wheel" and f.kind == "wheel"):
            best[v] = f
    return sorted(best.items(), key=lambda kv: kv[0], reverse=True)


class _Meta:
    """Metadata reads from one index, through envsetup.index, cached per file."""

    def __init__(self, url: str):
        from envsetup.index import open_source

        self.source = open_source(url)
        self._files: dict[str, Optional[list[Any]]] = {}
        self.broken: Optional[EnvsetupError] = None  # the first failure: no read after it

    def files(self, name: str) -> list[Any]:
        if self.broken is not None:
            raise self.broken
        if name not in self._files:
            try:
                self._files[name] = self.source.files(name)
            except EnvsetupError as exc:
                self.broken = exc
                raise
        return self._files[name] or []

    def metadata(self, f: Any) -> Optional[str]:
        if self.broken is not None:
            raise self.broken
        return self.source.metadata(f)

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


def _direct_constraints(meta: _Meta, reqs: Sequence[str], env: TargetEnv) -> list[Constrains]:
    """The torch-family pins of the newest version of each direct requirement a resolver
    would take (its specifier, Requires-Python, the target's tags)."""

    def one(text: str) -> list[Constrains]:
        r = Requirement(text)
        if r.url or (r.marker is not None and not r.marker.evaluate(env.markers)):
            return []
        name = canonicalize_name(r.name)
        for v, f in _versions(meta.files(name), env):
            if r.specifier.contains(v, prereleases=bool(r.specifier.prereleases)):
                text_meta = meta.metadata(f)
                if text_meta is None:
                    return []
                fam = family_requirements(text_meta, env.markers, r.extras)
                return [Constrains(name, str(v), k, str(s)) for k, s in fam.items() if str(s)]
        return []

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [c for cs in pool.map(one, reqs) for c in cs]


def _accepted(plan: Plan) -> list[tuple[str, str]]:
    """(torch version, variant) of the plan's valid candidates, preferred first, one per
    version."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for c in plan.candidates:
        if c.accepted and c.torch not in seen:
            seen.add(c.torch)
            out.append((c.torch, c.variant))
    return out


def _combine(specs: Iterable[str]) -> SpecifierSet:
    out = SpecifierSet()
    for s in specs:
        out &= SpecifierSet(s)
    return out


def _fits(spec: SpecifierSet, version: str) -> bool:
    return spec.contains(Version(version), prereleases=True)


def pick_build(
    profile: Any,
    request: Request,
    table: Any,
    specs: Mapping[str, SpecifierSet],
    base: Plan,
) -> Optional[Plan]:
    """The most preferred valid build whose torch (and companions) satisfy ``specs``, or None.

    ``base`` is ``resolve(profile, request, table)``: its accepted candidates, in the resolver's
    order of preference, are the machine's valid builds.
    """
    from envsetup.resolve import resolve

    torch_spec = specs.get("torch", SpecifierSet())
    for version, _ in _accepted(base):
        if not _fits(torch_spec, version):
            continue
        plan = resolve(profile, replace(request, torch=f"=={version}"), table)
        pins = {p.name: p.version for p in plan.pins}
        if all(
            _fits(specs[n], pins[n])
            for n in ("torchvision", "torchaudio")
            if n in specs and n in pins
        ):
            return plan
    return None


def _local_label(profile: Any, request: Request, table: Any, version: str) -> str:
    from envsetup.resolve import resolve

    try:
        p = resolve(profile, replace(request, torch=f"=={version}"), table)
    except NoBuildError:
        return version
    return p.local_version or p.torch


def _refused_reasons(base: Plan, spec: SpecifierSet) -> list[str]:
    hard: list[str] = []
    soft: list[str] = []
    for c in base.candidates:
        if c.accepted or not _fits(spec, c.torch):
            continue
        for r in c.reasons:
            bucket = soft if ("ask for --variant" in r or "this machine has no" in r) else hard
            if r not in bucket:
                bucket.append(r)
    reasons = hard or soft
    kernels: dict[str, list[str]] = {}
    for r in reasons:
        m = re.match(r"^(GPU \d+(?: \([^)]*\))?, sm_\d+): no kernels in (\S+)", r)
        if m:
            kernels.setdefault(m.group(1), []).append(m.group(2))
    if kernels and all("no kernels" in r for r in reasons):
        return [
            f"none has kernels for {gpu}: {', '.join(dict.fromkeys(vs))} lack them"
            for gpu, vs in kernels.items()
        ]
    return reasons[:2]


def _way_out(
    meta: Optional[_Meta], culprit: Constrains, env: TargetEnv, valid: Sequence[str]
) -> Optional[str]:
    """Another release of ``culprit`` whose torch requirement lets a valid build in."""
    if meta is None or not culprit.version:
        return None
    try:
        versions = [
            (v, f) for v, f in _versions(meta.files(culprit.name), env) if str(v) != culprit.version
        ][:12]
    except EnvsetupError:
        return None

    def check(item: tuple[Version, Any]) -> Optional[str]:
        v, f = item
        text = meta.metadata(f)
        if text is None:
            return None
        spec = family_requirements(text, env.markers).get(culprit.family)
        if spec is None:
            return f"{culprit.name} {v} does not pin {culprit.family}"
        if any(_fits(spec, x) for x in valid):
            return f"{culprit.name} {v} allows it ({culprit.family}{spec})"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        for found in pool.map(check, versions):
            if found:
                return found
    return None


def no_fit_message(
    profile: Any,
    request: Request,
    table: Any,
    base: Plan,
    culprits: Sequence[Constrains],
    env: TargetEnv,
    meta: Optional[_Meta],
) -> str:
    """'libX 1.2 requires torch==2.6.0; no torch 2.6.0 build fits this machine (<reasons>);
    the first it can run is 2.7.0+cu128: libX 1.3 allows it (torch>=2.7)'."""
    torch_c = [c for c in culprits if c.family == "torch"] or list(culprits)
    spec = _combine(c.spec for c in torch_c if c.family == "torch")
    shown = [c for c in torch_c if not _fits(SpecifierSet(c.spec), base.torch)] or torch_c
    chain = "; ".join(str(c) for c in shown)
    wanted = f"torch{spec}" if str(spec) else "that torch"
    reasons = _refused_reasons(base, spec)
    if not reasons:
        reasons = (
            [f"--torch {request.torch} asks for another"]
            if request.torch
            else ["the table knows no such release"]
        )
    msg = f"{chain}; no {wanted} build fits this machine ({'; '.join(reasons)})"
    valid = [v for v, _ in _accepted(base)]
    if valid:
        ordered = sorted(Version(x) for x in valid)
        above = [v for v in ordered if _above(spec, v)]
        first = str(above[0]) if above else str(ordered[-1])
        word = "the first" if above else "the newest"
        msg += f", {word} it can run is {_local_label(profile, request, table, first)}"
    outs = [w for w in (_way_out(meta, c, env, valid) for c in shown) if w]
    msg += (": " + "; ".join(outs)) if outs else ""
    if not outs and all(not c.version for c in shown):
        msg += ": loosen that requirement, or plan for another machine"
    elif not outs:
        msg += ". To make it fit: require another release of " + " or ".join(
            sorted({c.name for c in shown})
        )
    return msg


def _above(spec: SpecifierSet, v: Version) -> bool:
    """Whether ``v`` lies above what ``spec`` allows: it fails an upper bound or a pin."""
    for s in spec:
        if s.contains(v, prereleases=True):
            continue
        try:
            bound = Version(s.version.replace(".*", ""))
        except InvalidVersion:
            continue
        if s.operator in ("<", "<=", "==", "===", "~=") and v >= bound:
            return True
    return False


# --------------------------------------------------------------------------- resolvers


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _toml_loads(text: str) -> dict[str, Any]:
    import importlib

    mod = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    data: dict[str, Any] = mod.loads(text)
    return data


@dataclass
class _Run:
    ok: bool
    argv: tuple[str, ...]
    packages: list[Locked] = field(default_factory=list)
    pylock: Optional[str] = None
    error: str = ""
    via: dict[str, list[str]] = field(default_factory=dict)  # diagnosis: family -> parents
    versions: dict[str, str] = field(default_factory=dict)  # diagnosis: name -> version


ERROR_LINES = 30  # of uv's own report, shown under envsetup's line


def uv_error(text: str) -> str:
    """uv's own error report (from its first ``error:`` or ``×`` line: "No solution found ...",
    "Failed to build ...", "Failed to fetch ..."), each line indented, at most ERROR_LINES."""
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    start = next(
        (i for i, ln in enumerate(lines) if ln.lstrip().startswith(("error:", "×", "x "))), 0
    )
    keep = lines[start:]
    if len(keep) > ERROR_LINES:
        keep = [*keep[: ERROR_LINES - 1], f"... ({len(keep) - ERROR_LINES + 1} more lines)"]
    return "\n".join(f"    {ln}" for ln in keep) or "    (uv wrote nothing)"


def _family_pins(plan: Plan, extras: Mapping[str, str]) -> list[str]:
    return [f"{p.name}{extras.get(p.name, '')}=={_pin_version(plan, p)}" for p in plan.pins]


def _pin_version(plan: Plan, pin: Any) -> str:
    """The version to pin: torch's full local version for a PyTorch-index variant (only that
    build matches it); the public version otherwise (the package index's files carry none,
    even where torch.__version__ says +cu121)."""
    if pin.name == "torch" and plan.index_url and plan.local_version:
        return plan.local_version
    return str(pin.version)


def _uv_project(deps: Sequence[str], torch_index: Optional[str], family: Iterable[str]) -> str:
    lines = ["[project]", f"name = {_toml_str(PROJECT)}", 'version = "0"', "dependencies = ["]
    lines += [f"  {_toml_str(d)}," for d in deps]
    lines += ["]", ""]
    if torch_index:
        lines += ["[[tool.uv.index]]", 'name = "pytorch"', f"url = {_toml_str(torch_index)}"]
        lines += ["explicit = true", ""]
    names = list(family)
    if torch_index and names:
        lines.append("[tool.uv.sources]")
        lines += [f'{n} = {{ index = "pytorch" }}' for n in names]
    return "\n".join(lines) + "\n"


def _uv_compile(
    uv: str,
    env: TargetEnv,
    work: Path,
    deps: Sequence[str],
    user: UserRequirements,
    torch_index: Optional[str],
    default_index: Optional[str],
    family: Sequence[str],
    *,
    diagnose: bool = False,
    offline: bool = False,
) -> _Run:
    """``uv pip compile``: the project (torch pins bound to the PyTorch index, the user's named
    requirements) and the user's path and URL requirements, for the target's Python.
    ``offline``: the default index did not answer, so uv tries once, without retries."""
    from envsetup import proc

    work.mkdir(parents=True, exist_ok=True)
    (work / "pyproject.toml").write_text(_uv_project(deps, torch_index, family), encoding="utf-8")
    out = "requirements.txt" if diagnose else "pylock.toml"
    # What the target has installed, as the existing output file: uv prefers those versions
    # where they fit, as a plain `uv pip install` keeps what is installed.
    if env.installed:
        (work / out).write_text(_preferences(env, diagnose), encoding="utf-8")
    argv = [uv, "pip", "compile", "pyproject.toml"]
    if user.direct:
        (work / "direct.in").write_text("\n".join(user.direct) + "\n", encoding="utf-8")
        argv.append("direct.in")
    argv += [*env.uv_args(), "--no-header", "--output-file", out]
    if diagnose:
        argv += ["--annotation-style", "split"]
    else:
        argv.append("--quiet")
    if user.constraints:
        (work / "constraints.txt").write_text("\n".join(user.constraints) + "\n", encoding="utf-8")
        argv += ["--constraints", "constraints.txt"]
    extra = {"UV_HTTP_RETRIES": "0"} if offline and "UV_HTTP_RETRIES" not in os.environ else {}
    if default_index:  # a setting of uv's own (UV_NO_CONFIG leaves the project's out), unprinted
        extra["UV_DEFAULT_INDEX"] = default_index
    res = proc.run(argv, timeout=600, cwd=work, env=proc.clean_env(extra))
    run = _Run(ok=res.ok, argv=tuple(argv))
    if not res.ok:
        why = res.error or f"uv exited with status {res.returncode}"
        run.error = uv_error(res.stderr) if res.stderr.strip() else f"    {why}"
        return run
    text = (work / out).read_text(encoding="utf-8")
    if diagnose:
        _parse_annotated(text, run)
        return run
    run.pylock = text
    run.packages = [_locked(pkg) for pkg in _toml_loads(text).get("packages", [])]
    return run


def _locked(pkg: Mapping[str, Any]) -> Locked:
    """One package of uv's pylock.toml: from an index (a wheel or sdist file), or a direct
    reference (an archive URL, a local directory, a git commit)."""
    name, version = canonicalize_name(str(pkg["name"])), str(pkg.get("version", ""))
    wheels = pkg.get("wheels") or []
    f = wheels[0] if wheels else (pkg.get("sdist") or pkg.get("archive") or {})
    sha = (f.get("hashes") or {}).get("sha256")
    if "directory" in pkg:
        d = pkg["directory"]
        url = Path(str(d.get("path", "."))).resolve().as_uri()
        return Locked(name, version, "url", url=url, kind="directory",
                      editable=bool(d.get("editable")))  # fmt: skip
    if "vcs" in pkg:
        v = pkg["vcs"]
        url = f"{v.get('type', 'git')}+{v.get('url')}@{v.get('commit-id')}"
        return Locked(name, version, "url", url=url, kind="vcs")
    at: Optional[str] = f.get("url") or (
        Path(str(f["path"])).resolve().as_uri() if f.get("path") else None
    )
    kind = "wheel" if wheels or str(at).endswith(".whl") else "sdist"
    source = "url" if "archive" in pkg else ""
    return Locked(name, version, source, index=pkg.get("index"), url=at, sha256=sha, kind=kind)


def _preferences(env: TargetEnv, requirements_txt: bool) -> str:
    """The target's installed distributions (not the torch family: the plan pins it) as uv's
    preferences: a requirements file, or a ``pylock.toml`` of names and versions."""
    prefs = sorted((n, v) for n, v in env.installed.items() if n not in TORCH_FAMILY)
    if requirements_txt:
        return "".join(f"{n}=={v}\n" for n, v in prefs)
    body = [f"[[packages]]\nname = {_toml_str(n)}\nversion = {_toml_str(v)}\n" for n, v in prefs]
    return 'lock-version = "1.0"\ncreated-by = "envsetup"\n\n' + "\n".join(body)


def _parse_annotated(text: str, run: _Run) -> None:
    """uv's requirements output with ``# via`` annotations: versions, and who pulls whom."""
    current: Optional[str] = None
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)", line)
        if m:
            current = canonicalize_name(m.group(1))
            run.versions[current] = m.group(3)
            continue
        if current in TORCH_FAMILY and line.startswith("#"):
            body = line.lstrip("#").strip()
            if body.startswith("via"):
                body = body[3:].strip()
            name = body.split(" ", 1)[0]
            if name and not name.startswith("-"):
                run.via.setdefault(current, []).append(canonicalize_name(name))


# --------------------------------------------------------------------------- the whole


def _family_extras(user: UserRequirements) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in user.torch:
        r = Requirement(text)
        if r.extras:
            out[canonicalize_name(r.name)] = "[" + ",".join(sorted(r.extras)) + "]"
    return out


def _user_specs(user: UserRequirements, markers: Mapping[str, str]) -> dict[str, SpecifierSet]:
    out: dict[str, SpecifierSet] = {}
    for text in user.torch:
        r = Requirement(text)
        if r.marker is not None and not r.marker.evaluate(dict(markers)):
            continue
        n = canonicalize_name(r.name)
        out[n] = out.get(n, SpecifierSet()) & r.specifier
    return out


def narrowed_plan(profile: Any, request: Request, table: Any, user: UserRequirements) -> Plan:
    """The plan for a machine whose interpreter is not at hand (``plan --profile ... --export
    uv``): the build narrowed by the user's own torch-family lines (a line whose marker needs
    the interpreter to decide counts). The libraries' own torch pins are for ``uv lock`` to
    check there. Raises NoBuildError (exit 4) naming the lines when no valid build fits."""
    from envsetup.resolve import resolve

    base = resolve(profile, request, table)
    specs: dict[str, SpecifierSet] = {}
    for text in user.torch:
        r = Requirement(text)
        n = canonicalize_name(r.name)
        specs[n] = specs.get(n, SpecifierSet()) & r.specifier
    if not specs:
        return base
    plan = pick_build(profile, request, table, specs, base)
    if plan is None:
        lines = ", ".join(user.torch)
        valid = ", ".join(v for v, _ in _accepted(base)[:4])
        raise NoBuildError(
            f"the requirements require {lines}; no such build fits this machine (it can run "
            f"torch {valid}): loosen that requirement, or plan for another machine"
        )
    return plan


def resolve_stack(
    profile: Any,
    request: Request,
    table: Any,
    user: UserRequirements,
    *,
    python: Optional[str],
    default_index: Optional[str] = None,
    torch_index: Optional[str] = None,
    work_dir: Optional[Path] = None,
    fresh: bool = False,
) -> Stack:
    """Resolve ``user``'s requirements with this machine's torch build, by uv, for ``python``
    (None: for the profile's Python and platform, with no interpreter of that kind at hand).

    ``request`` is the torch request (``--torch``, ``--variant``, ``--with``); the user's own
    torch-family requirements narrow it. ``default_index`` is the index for everything but the
    torch family (None: uv's own default, as its configuration says); ``torch_index`` replaces
    the plan's PyTorch variant index (``install --index-url``). ``fresh``: the set is for a new
    environment of ``python``'s version (a venv yet to be made): what ``python`` has installed
    is not looked at. A resolve longer than a second shows its progress on stderr. Raises
    NoBuildError (exit 4) when no valid build fits the requirements, StackError (exit 1, with
    uv's own report) when uv finds no set for another reason, UsageError for a bad requirement.
    """
    from envsetup.index import default_index_url
    from envsetup.resolve import resolve

    start = time.monotonic()
    uv = find_uv()
    if uv is None:
        raise UsageError("uv is not found (envsetup resolves with it): pip install uv")
    env = target_env(python) if python else profile_target(profile)
    if fresh:
        env = replace(env, prefix="", installed={}, fresh=True)
    wants = {canonicalize_name(Requirement(t).name) for t in user.torch}
    request = replace(
        request,
        vision=request.vision or "torchvision" in wants,
        audio=request.audio or "torchaudio" in wants,
    )
    base = resolve(profile, request, table)  # the machine's valid builds for --torch/--variant
    with _progress(_summary(user), env.label):
        return _resolve(profile, request, table, user, env, uv, base, start, default_index or None,
                        torch_index, work_dir, default_index or default_index_url())  # fmt: skip


def _index_for_uv(url: str) -> Optional[str]:
    """The default index envsetup reads (``PIP_INDEX_URL``, pip's configuration) for uv, which
    reads neither, so that pip installs from the index the set was resolved from; None where uv
    has a setting of its own, or where it is the index client's default."""
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    if os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL"):
        return None
    return None if url.rstrip("/") == str(PYPI_SIMPLE_ENDPOINT).rstrip("/") else url


def _summary(user: UserRequirements) -> str:
    names = [*(Requirement(r).name for r in user.requirements[:3]), *user.direct[:3]][:3]
    more = len(user.requirements) + len(user.direct) - len(names)
    shown = ", ".join(names) + (f" and {more} more" if more else "")
    return f"{shown or 'torch'} with torch"


def _progress(what: str, where: str) -> Any:
    """Progress of a resolve on stderr once it has taken a second: a rich status with the
    elapsed seconds on a terminal; elsewhere one line when it ends."""
    import contextlib
    import threading

    @contextlib.contextmanager
    def show() -> Any:
        start, done = time.monotonic(), threading.Event()
        text = f"resolving {what} for {where} (uv)"
        tty = sys.stderr.isatty() if hasattr(sys.stderr, "isatty") else False

        def spin() -> None:
            if done.wait(1.0):
                return
            from rich.console import Console

            with Console(stderr=True).status(text) as status:
                while not done.wait(0.2):
                    status.update(f"{text}: {time.monotonic() - start:.0f} s")

        thread = threading.Thread(target=spin, daemon=True) if tty else None
        if thread is not None:
            thread.start()
        ok = False
        try:
            yield
            ok = True
        finally:
            done.set()
            if thread is not None:
                thread.join()
            took = time.monotonic() - start
            if not tty and took >= 1.0:
                word = text.replace("resolving", "resolved" if ok else "could not resolve", 1)
                sys.stderr.write(f"envsetup: {word} in {took:.1f} s\n")
                sys.stderr.flush()

    return show()


def _resolve(
    profile: Any,
    request: Request,
    table: Any,
    user: UserRequirements,
    env: TargetEnv,
    uv: str,
    base: Plan,
    start: float,
    default_index: Optional[str],
    torch_index: Optional[str],
    work_dir: Optional[Path],
    meta_url: str,
) -> Stack:
    from envsetup.resolve import resolve

    notes: list[str] = []
    specs = _user_specs(user, env.markers)
    uv_index = default_index or _index_for_uv(meta_url)
    meta: Optional[_Meta] = _Meta(meta_url)
    offline: Optional[str] = None  # why the default index cannot be read
    try:
        try:
            # one read first: an index that does not answer is known at once, not per line
            if meta is not None and user.requirements:
                meta.files(canonicalize_name(Requirement(user.requirements[0]).name))
            direct = _direct_constraints(meta, user.requirements, env) if meta else []
        except EnvsetupError as exc:  # the index cannot be read here: uv will say
            notes.append(f"the requirements' torch pins were not read first: {exc.message}")
            direct, meta, offline = [], None, exc.message
        plan = _constrained(profile, request, table, base, specs, direct, env, meta, notes)
        extras = _family_extras(user)
        work = Path(tempfile.mkdtemp(prefix="envsetup-stack-", dir=work_dir))
        try:
            for attempt in range(3):
                run = _attempt(uv, env, work / f"try{attempt}", plan, user, extras, torch_index,
                               uv_index, offline is not None)  # fmt: skip
                if run.ok:
                    pulled = _pulled_companions(run, plan)
                    if not pulled:
                        break
                    request = replace(
                        request,
                        vision=request.vision or "torchvision" in pulled,
                        audio=request.audio or "torchaudio" in pulled,
                    )
                    plan = resolve(profile, replace(request, torch=f"=={plan.torch}"), table)
                    missing = [n for n in pulled if n not in {p.name for p in plan.pins}]
                    if missing:
                        raise NoBuildError(
                            f"the requirements need {', '.join(missing)}, which torch "
                            f"{plan.torch} has no release of: require a torch with one"
                        )
                    notes.append(
                        f"{', '.join(pulled)} pulled in by the requirements: taken from the "
                        "PyTorch index too"
                    )
                    continue
                culprits = (
                    []
                    if offline
                    else _diagnose(uv, env, work / f"why{attempt}", user, uv_index, meta)
                )
                bad = _excluding(culprits, plan)
                if offline:
                    raise StackError(f"{offline}; uv says:\n{run.error}")
                if not bad:
                    raise StackError(
                        f"uv found no set for {_summary(user)} "
                        f"{plan.local_version or plan.torch} ({env.label}); uv says:\n{run.error}"
                    )
                new_specs = dict(specs)
                for c in culprits:
                    new_specs[c.family] = new_specs.get(c.family, SpecifierSet()) & SpecifierSet(
                        c.spec
                    )
                new = pick_build(profile, request, table, new_specs, base)
                if new is None:
                    raise NoBuildError(
                        no_fit_message(profile, request, table, base, culprits, env, meta)
                    )
                notes.append(
                    f"torch {new.local_version or new.torch}, not "
                    f"{plan.local_version or plan.torch}: " + "; ".join(str(c) for c in bad)
                )
                plan, specs = new, new_specs
            else:
                raise StackError(f"uv found no set for {_summary(user)}; uv says:\n{run.error}")
            packages = _label(run.packages, plan, user, torch_index, default_index, env)
            _check_trap(packages, plan)
            builds = build_needs(packages, plan, env, meta)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if meta is not None:
            meta.close()
    return Stack(
        plan=plan,
        packages=tuple(packages),
        resolver="uv",
        python=env.label,
        requirements=user.requirements,
        constraints=user.constraints,
        torch_index=torch_index or plan.index_url,
        default_index=default_index,
        command=run.argv,
        pylock=run.pylock,
        builds=tuple(builds),
        notes=tuple(dict.fromkeys(notes)),
        seconds=round(time.monotonic() - start, 3),
        direct=user.direct,
    )


def _constrained(
    profile: Any,
    request: Request,
    table: Any,
    base: Plan,
    specs: dict[str, SpecifierSet],
    direct: list[Constrains],
    env: TargetEnv,
    meta: Optional[_Meta],
    notes: list[str],
) -> Plan:
    """The plan after the user's own torch requirements and their direct requirements' pins."""
    for c in direct:
        specs[c.family] = specs.get(c.family, SpecifierSet()) & SpecifierSet(c.spec)
    if not specs:
        return base
    plan = pick_build(profile, request, table, specs, base)
    if plan is None:
        culprits = direct or [
            Constrains("the requirements", "", n, str(s)) for n, s in specs.items()
        ]
        raise NoBuildError(no_fit_message(profile, request, table, base, culprits, env, meta))
    if plan.torch != base.torch and direct:
        notes.append(
            f"torch {plan.local_version or plan.torch}, not {base.local_version or base.torch}: "
            + "; ".join(str(c) for c in direct if c.family == "torch")
        )
    return plan


def _attempt(
    uv: str,
    env: TargetEnv,
    work: Path,
    plan: Plan,
    user: UserRequirements,
    extras: Mapping[str, str],
    torch_index: Optional[str],
    default_index: Optional[str],
    offline: bool,
) -> _Run:
    index = torch_index or plan.index_url
    pins = _family_pins(plan, extras)
    return _uv_compile(
        uv, env, work, [*pins, *user.requirements], user, index, default_index,
        [p.name for p in plan.pins] if index else [], offline=offline,
    )  # fmt: skip


def _excluding(culprits: Sequence[Constrains], plan: Plan) -> list[Constrains]:
    """The constraints that the plan's torch (or a pinned companion) does not satisfy."""
    pins = {p.name: p.version for p in plan.pins}
    return [
        c for c in culprits if c.family in pins and not _fits(SpecifierSet(c.spec), pins[c.family])
    ]


def _pulled_companions(run: _Run, plan: Plan) -> list[str]:
    pinned = {p.name for p in plan.pins}
    return [p.name for p in run.packages if p.name in TORCH_FAMILY and p.name not in pinned]


def _diagnose(
    uv: str,
    env: TargetEnv,
    work: Path,
    user: UserRequirements,
    default_index: Optional[str],
    meta: Optional[_Meta],
) -> list[Constrains]:
    """Resolve the requirements with torch unpinned (a dry run, never installed) and return the
    packages that constrain the torch family."""
    out: list[Constrains] = []
    run = _uv_compile(
        uv, env, work, list(user.requirements), user, None, default_index, [], diagnose=True
    )
    if not run.ok or meta is None:
        return out
    parents = sorted({p for ps in run.via.values() for p in ps if p in run.versions})

    def read(name: str) -> list[Constrains]:
        assert meta is not None
        version = run.versions[name]
        try:
            files = meta.files(name)
        except EnvsetupError:
            return []
        for f in files:
            if f.version == version or _same(f.version, version):
                text = meta.metadata(f)
                if text:
                    fam = family_requirements(text, env.markers)
                    return [Constrains(name, version, k, str(s)) for k, s in fam.items() if str(s)]
                break
        return []

    with ThreadPoolExecutor(max_workers=8) as pool:
        for cs in pool.map(read, parents):
            out.extend(cs)
    return out


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def _label(
    packages: Sequence[Locked],
    plan: Plan,
    user: UserRequirements,
    torch_index: Optional[str],
    default_index: Optional[str],
    env: TargetEnv,
) -> list[Locked]:
    index = torch_index or plan.index_url
    asked = {canonicalize_name(Requirement(r).name) for r in user.requirements}
    pinned = {p.name for p in plan.pins}
    out = []
    for p in packages:
        if p.name in pinned and index:
            source, where = "pytorch", index
        elif p.source == "url":
            source, where = "url", None
        else:
            source, where = "index", p.index or default_index
        out.append(
            replace(
                p,
                source=source,
                index=where,
                requested=p.name in asked | pinned or p.source == "url",
                installed=env.has(p.name, p.version),
            )
        )
    return sorted(out, key=lambda p: (p.name not in TORCH_FAMILY, p.name))


def _check_trap(packages: Sequence[Locked], plan: Plan) -> None:
    """The resolved torch must be the planned build: never the package index's plain one."""
    torch = next((p for p in packages if p.name == "torch"), None)
    if torch is None:
        raise StackError("the resolver returned no torch: this is a bug in envsetup")
    want = plan.local_version if plan.index_url and plan.local_version else plan.torch
    if Version(torch.version) != Version(want):
        raise StackError(
            f"the resolver chose torch {torch.version}, not the planned {want}: refusing it "
            f"(source {torch.url})"
        )


def build_needs(
    packages: Sequence[Locked], plan: Plan, env: TargetEnv, meta: Optional[_Meta]
) -> list[BuildNeed]:
    """The packages with no wheel for the target, and what building them needs."""
    out = []
    for p in packages:
        if p.kind != "sdist":
            continue
        against = False
        if meta is not None:
            try:
                for f in meta.files(p.name):
                    if f.kind == "sdist" and _same(f.version, p.version):
                        text = meta.metadata(f)
                        against = bool(text and "torch" in family_requirements(text, env.markers))
                        break
            except EnvsetupError:
                pass
        out.append(BuildNeed(p.name, p.version, against, tuple(toolkit_needs(plan, against))))
    return out


def toolkit_needs(plan: Plan, against_torch: bool) -> list[str]:
    """What compiling a package needs, in words; against torch, the nvcc of torch's CUDA major
    (torch.utils.cpp_extension refuses a CUDA major other than the one torch was built with)."""
    needs = ["a C/C++ compiler"]
    if against_torch and plan.cuda:
        major = plan.cuda.split(".")[0]
        needs.append(
            f"nvcc from CUDA {major}.x (torch {plan.local_version or plan.torch} is built with "
            f"CUDA {plan.cuda}; set CUDA_HOME to that toolkit)"
        )
    if against_torch:
        needs.append("torch installed first (build isolation off: pip --no-build-isolation)")
    return needs
