"""Load and validate the compatibility table (``compat/``): data, not code.

The table ships inside the wheel as ``envsetup/compat_data``; an editable install falls back to the
repository's top-level ``compat/``. Every problem in the data is reported as one line naming the
file, the key and the reason: ``compat/torch/2.4.json: variants.cu124.cuda: expected a string``.
The format is described in docs/RESOLVER.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Protocol, Union

from packaging.version import InvalidVersion, Version

from envsetup.errors import EXIT_USAGE, EnvsetupError

SCHEMA_VERSION = 2
COMPANIONS = ("torchvision", "torchaudio")
PLATFORMS = ("linux_x86_64", "linux_aarch64", "windows_x86_64", "macos_arm64", "macos_x86_64")
CONFIDENCES = ("high", "medium", "inferred")
BUILD_KINDS = ("cuda", "rocm", "cpu", "mps")
VARIANT_RE = re.compile(r"^(cpu|cu\d{3}|rocm\d+\.\d+(\.\d+)?)$")
PYTHON_RE = re.compile(r"^3\.\d+t?$")
# A companion wheel's Python: a cpXY[t] tag as "3.11" / "3.13t", or "py3" for a py3-none wheel
# (any CPython 3 its Requires-Python admits, free-threaded included).
WHEEL_PYTHON_RE = re.compile(r"^(3\.\d+t?|py3)$")
ARCH_RE = re.compile(r"^\d+\.\d+$")
RELEASE_RE = re.compile(r"^2\.\d+$")


class CompatTableError(EnvsetupError):
    """The compatibility table is corrupted or incomplete."""

    code = "compat-table"
    exit_code = EXIT_USAGE


class _Resource(Protocol):
    def joinpath(self, *child: str) -> Any: ...
    def read_text(self, encoding: Optional[str] = None) -> str: ...
    def is_file(self) -> bool: ...


@dataclass(frozen=True)
class Build:
    """One build of a torch release on one platform: a PyTorch-index variant or the default."""

    variant: str  # "cu121" | "cpu" | "rocm6.1" | "default" (the plain package-index build)
    kind: str  # cuda | rocm | cpu | mps
    local: Optional[str] = None  # local version label: "cu121" -> torch.__version__ "2.4.1+cu121"
    cuda: Optional[str] = None
    cudnn: Optional[str] = None
    rocm: Optional[str] = None
    arch: Optional[tuple[str, ...]] = None  # compute capabilities with kernels; None: unknown
    ptx: Optional[str] = None  # the arch whose PTX is embedded, where the sources say so
    confidence: str = "high"
    source: tuple[str, ...] = ()
    note: Optional[str] = None
    triton: Optional[str] = None  # the default build's Triton requirement ("==3.1.0", "~=3.9.0")
    patches: Optional[tuple[str, ...]] = None  # a variant published for these patches only

    @property
    def same_as(self) -> str:
        """The PyTorch-index variant name this build corresponds to ("cu121", "cpu")."""
        if self.variant != "default":
            return self.variant
        return self.local or self.kind


@dataclass(frozen=True)
class PlatformInfo:
    python: tuple[str, ...]  # "3.11", "3.13t" (free-threaded)
    default: Optional[Build]
    min_macos: Optional[str] = None
    min_macos_for: dict[str, str] = field(default_factory=dict)  # python -> min macOS
    source: tuple[str, ...] = ()


@dataclass(frozen=True)
class Choice:
    """The companion release installed beside one torch build, and how sure the table is."""

    version: str
    confidence: str = "high"
    note: Optional[str] = None


@dataclass(frozen=True)
class Patch:
    version: str
    date: Optional[str]
    # companion -> build key -> choice: the key is "default" (the package-index build), a variant
    # name ("cu126"), or "*" (every build not named); None: no release of it fits that build
    companions: dict[str, dict[str, Optional[Choice]]] = field(default_factory=dict)
    requires_python: Optional[str] = None
    yanked: Optional[str] = None  # the package index's reason, where every file is yanked
    source: tuple[str, ...] = ()

    @property
    def v(self) -> Version:
        return Version(self.version)

    def companion(self, name: str, variant: str) -> Optional[Choice]:
        """The ``name`` release paired with this patch's ``variant`` build ("default", "cu126")."""
        by = self.companions.get(name, {})
        return by[variant] if variant in by else by.get("*")

    def companion_versions(self, name: str) -> tuple[str, ...]:
        """Every release of ``name`` paired with some build of this patch, newest first."""
        vs = {c.version for c in self.companions.get(name, {}).values() if c is not None}
        return tuple(sorted(vs, key=Version, reverse=True))

    @property
    def torchvision(self) -> Optional[str]:
        c = self.companion("torchvision", "default")
        return c.version if c else None

    @property
    def torchaudio(self) -> Optional[str]:
        c = self.companion("torchaudio", "default")
        return c.version if c else None


@dataclass(frozen=True)
class Wheels:
    """The wheels a companion release publishes on one platform of the package index."""

    python: tuple[str, ...]  # "3.11", "3.13t", "py3"
    min_macos: Optional[str] = None
    min_macos_for: dict[str, str] = field(default_factory=dict)

    def macos_for(self, python: str) -> Optional[str]:
        return self.min_macos_for.get(python, self.min_macos)


@dataclass(frozen=True)
class CompanionRelease:
    """One torchvision/torchaudio release as the package index lists it."""

    project: str
    version: str
    date: Optional[str]
    requires_python: Optional[str]
    requires_torch: Optional[str]  # its Requires-Dist on torch ("==2.4.1", ">=2.14.0"); None: none
    platforms: dict[str, Wheels]
    yanked: Optional[str] = None
    source: tuple[str, ...] = ()


@dataclass(frozen=True)
class Release:
    minor: str  # "2.4"
    file: str  # "torch/2.4.json"
    patches: tuple[Patch, ...]
    platforms: dict[str, PlatformInfo]
    variants: dict[str, dict[str, Build]]  # variant -> platform -> build
    python_by_patch: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    variants_known: bool = True
    variants_note: Optional[str] = None
    unconfirmed: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def python_for(self, patch: str, platform: str) -> tuple[str, ...]:
        override = self.python_by_patch.get(patch, {})
        if platform in override:
            return override[platform]
        info = self.platforms.get(platform)
        return info.python if info else ()

    def builds(self, platform: str, patch: Optional[str] = None) -> list[Build]:
        """The named PyTorch-index variants on this platform (of ``patch``, when given), then the
        default build."""
        out = []
        for by in self.variants.values():
            b = by.get(platform)
            if b is not None and (patch is None or b.patches is None or patch in b.patches):
                out.append(b)
        info = self.platforms.get(platform)
        if info is not None and info.default is not None:
            out.append(info.default)
        return out


@dataclass(frozen=True)
class CudaFloor:
    major: str
    linux: str
    windows: Optional[str]
    windows_confidence: str = "high"
    note: Optional[str] = None


@dataclass(frozen=True)
class Table:
    releases: tuple[Release, ...]  # oldest first
    floors: dict[str, CudaFloor]  # CUDA major -> minor-version-compatibility driver floor
    toolkit: dict[str, tuple[Optional[str], Optional[str]]]  # "12.4" -> (linux, windows)
    sources: dict[str, str]
    collected: Optional[str] = None
    location: str = "compat"
    companions: dict[str, dict[str, CompanionRelease]] = field(default_factory=dict)

    def companion(self, name: str, version: str) -> Optional[CompanionRelease]:
        return self.companions.get(name, {}).get(version)

    def patches(self) -> list[tuple[Patch, Release]]:
        """Every torch patch release, newest first."""
        out = [(p, r) for r in self.releases for p in r.patches]
        out.sort(key=lambda pr: pr[0].v, reverse=True)
        return out

    def release_of(self, version: str) -> Optional[tuple[Patch, Release]]:
        want = Version(version).public
        for p, r in self.patches():
            if p.version == want:
                return p, r
        return None

    def floor(self, cuda: str, os_family: str) -> Optional[tuple[str, str]]:
        """(driver, confidence) for a CUDA version under minor-version compatibility."""
        f = self.floors.get(cuda.split(".")[0])
        if f is None:
            return None
        if os_family == "windows":
            return (f.windows, f.windows_confidence) if f.windows else None
        return f.linux, "high"

    def toolkit_min(self, cuda: str, os_family: str) -> Optional[str]:
        t = self.toolkit.get(cuda)
        if t is None:
            return None
        return t[1] if os_family == "windows" else t[0]

    @property
    def newest(self) -> str:
        return self.patches()[0][0].version

    @property
    def oldest(self) -> str:
        return self.patches()[-1][0].version


# --------------------------------------------------------------------------- validation


class _Doc:
    """Typed access to one JSON file; every error names the file and the key."""

    def __init__(self, name: str, sources: Optional[dict[str, str]] = None):
        self.name = name
        self.sources = sources

    def fail(self, key: str, reason: str) -> CompatTableError:
        return CompatTableError(f"compat/{self.name}: {key}: {reason}")

    def obj(self, data: Any, key: str, allowed: Optional[set[str]] = None) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(key, f"expected an object, got {_kind(data)}")
        if allowed is not None:
            for k in data:
                if k not in allowed:
                    raise self.fail(_join(key, k), "unknown key")
        return data

    def get(self, d: dict[str, Any], key: str, path: str, *, required: bool = True) -> Any:
        if key not in d:
            if required:
                raise self.fail(_join(path, key), "missing")
            return None
        return d[key]

    def string(
        self,
        d: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        nullable: bool = False,
    ) -> Optional[str]:
        v = self.get(d, key, path, required=required)
        if v is None:
            if required and not nullable:
                raise self.fail(_join(path, key), "must not be null")
            return None
        if not isinstance(v, str) or not v:
            raise self.fail(_join(path, key), f"expected a non-empty string, got {_kind(v)}")
        return v

    def version(
        self, d: dict[str, Any], key: str, path: str, *, required: bool = True
    ) -> Optional[str]:
        v = self.string(d, key, path, required=required, nullable=not required)
        if v is not None:
            _check_version(self, v, _join(path, key))
        return v

    def strings(
        self, d: dict[str, Any], key: str, path: str, pattern: re.Pattern[str]
    ) -> tuple[str, ...]:
        v = self.get(d, key, path)
        p = _join(path, key)
        if not isinstance(v, list):
            raise self.fail(p, f"expected a list, got {_kind(v)}")
        for i, x in enumerate(v):
            if not isinstance(x, str) or not pattern.match(x):
                raise self.fail(f"{p}[{i}]", f"{x!r} does not look like {_example(pattern)}")
        return tuple(v)

    def source(self, d: dict[str, Any], path: str, *, required: bool = True) -> tuple[str, ...]:
        v = self.get(d, "source", path, required=required)
        if v is None:
            return ()
        p = _join(path, "source")
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise self.fail(p, "expected a non-empty list of source keys")
        if self.sources is not None:
            for x in v:
                if x not in self.sources:
                    raise self.fail(p, f"source {x!r} is not defined in compat/sources.json")
        return tuple(v)

    def confidence(self, d: dict[str, Any], key: str, path: str) -> str:
        v = d.get(key, "high")
        if v not in CONFIDENCES:
            raise self.fail(_join(path, key), f"{v!r} is not one of {', '.join(CONFIDENCES)}")
        return str(v)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


def _example(p: re.Pattern[str]) -> str:
    return {PYTHON_RE: "a Python version (3.11, 3.13t)", ARCH_RE: "a compute capability (8.6)"}.get(
        p, p.pattern
    )


def _check_version(doc: _Doc, v: str, path: str) -> None:
    try:
        Version(v)
    except InvalidVersion:
        raise doc.fail(path, f"{v!r} is not a version") from None


def _parse_json(doc: _Doc, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CompatTableError(
            f"compat/{doc.name}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})"
        ) from None


def _schema(doc: _Doc, data: dict[str, Any]) -> None:
    v = data.get("schema_version")
    if v is None:
        raise doc.fail("schema_version", "missing")
    if v != SCHEMA_VERSION:
        raise doc.fail(
            "schema_version", f"{v!r} is not supported (this envsetup reads {SCHEMA_VERSION})"
        )


_BUILD_KEYS = {"arch", "ptx", "confidence", "source", "note"}
_PATCH_KEYS = {"date", "requires_python", "yanked", "source"}


def _build(doc: _Doc, d: Any, path: str, *, variant: str, kind: str, base: dict[str, Any]) -> Build:
    d = doc.obj(d, path, _BUILD_KEYS | {"build", "local", "cuda", "cudnn", "triton"})
    arch: Optional[tuple[str, ...]] = None
    if kind == "cuda":
        if "arch" not in d:
            raise doc.fail(_join(path, "arch"), "missing (write null when it is not known)")
        if d["arch"] is not None:
            arch = doc.strings(d, "arch", path, ARCH_RE)
    ptx = doc.string(d, "ptx", path, required=False)
    if ptx is not None:
        if not ARCH_RE.match(ptx):
            raise doc.fail(_join(path, "ptx"), f"{ptx!r} is not a compute capability")
        if arch is None or ptx not in arch:
            raise doc.fail(_join(path, "ptx"), f"{ptx} is not in the build's arch list")
    conf = doc.confidence(d, "confidence", path)
    if "confidence" not in d:
        conf = base.get("confidence", "high")
    return Build(
        variant=variant,
        kind=kind,
        local=base.get("local"),
        cuda=base.get("cuda"),
        cudnn=base.get("cudnn"),
        rocm=base.get("rocm"),
        arch=arch,
        ptx=ptx,
        confidence=conf,
        source=doc.source(d, path, required=False) or tuple(base.get("source", ())),
        note=doc.string(d, "note", path, required=False) or base.get("note"),
        triton=doc.string(d, "triton", path, required=False),
        patches=base.get("patches"),
    )


def _release(doc: _Doc, data: Any) -> Release:
    data = doc.obj(
        data,
        "",
        {
            "schema_version", "release", "patches", "platforms", "variants", "python_by_patch",
            "variants_known", "variants_note", "unconfirmed", "notes",
        },
    )  # fmt: skip
    _schema(doc, data)
    minor = doc.string(data, "release", "")
    assert minor is not None
    if not RELEASE_RE.match(minor):
        raise doc.fail("release", f"{minor!r} is not a torch 2.x release (2.4)")
    expected = f"torch/{minor}.json"
    if doc.name != expected:
        raise doc.fail("release", f"{minor} belongs in compat/{expected}")

    patches: list[Patch] = []
    pd = doc.obj(doc.get(data, "patches", ""), "patches")
    if not pd:
        raise doc.fail("patches", "no patch releases listed")
    for ver, p in pd.items():
        path = f"patches.{ver}"
        _check_version(doc, ver, path)
        if not (ver.startswith(minor + ".") and ver.count(".") == 2):
            raise doc.fail(path, f"{ver} is not a patch release of {minor}")
        allowed = _PATCH_KEYS | {
            f"{c}{x}" for c in COMPANIONS for x in ("", "_confidence", "_note")
        }
        p = doc.obj(p, path, allowed)
        comps: dict[str, dict[str, Optional[Choice]]] = {}
        for c in COMPANIONS:
            if c not in p:
                raise doc.fail(_join(path, c), "missing (write null when there is none)")
            comps[c] = _pairing(doc, p, c, path)
        rp = doc.string(p, "requires_python", path, required=False)
        if rp is not None:
            _check_specifier(doc, rp, _join(path, "requires_python"))
        patches.append(
            Patch(
                version=ver,
                date=doc.string(p, "date", path, required=False),
                companions=comps,
                requires_python=rp,
                yanked=p.get("yanked") if isinstance(p.get("yanked"), str) else None,
                source=doc.source(p, path),
            )
        )

    platforms: dict[str, PlatformInfo] = {}
    pl = doc.obj(doc.get(data, "platforms", ""), "platforms")
    for name, info in pl.items():
        path = f"platforms.{name}"
        if name not in PLATFORMS:
            raise doc.fail(path, f"unknown platform (one of {', '.join(PLATFORMS)})")
        info = doc.obj(info, path, {"python", "default", "min_macos", "min_macos_for", "source"})
        default: Optional[Build] = None
        if info.get("default") is not None:
            dp = f"{path}.default"
            dd = doc.obj(info["default"], dp)
            kind = doc.string(dd, "build", dp)
            if kind not in ("cuda", "cpu", "mps"):
                raise doc.fail(_join(dp, "build"), f"{kind!r} is not one of cuda, cpu, mps")
            base: dict[str, Any] = {"local": doc.string(dd, "local", dp, required=False)}
            if kind == "cuda":
                base["cuda"] = doc.version(dd, "cuda", dp)
                base["cudnn"] = doc.string(dd, "cudnn", dp, required=False)
            default = _build(doc, dd, dp, variant="default", kind=kind, base=base)
        if name.startswith("macos") and "min_macos" not in info:
            raise doc.fail(_join(path, "min_macos"), "missing (macOS wheels carry a minimum macOS)")
        pythons = doc.strings(info, "python", path, PYTHON_RE)
        platforms[name] = PlatformInfo(
            python=pythons,
            default=default,
            min_macos=doc.version(info, "min_macos", path, required=False),
            min_macos_for=_min_macos_for(doc, info, path, pythons),
            source=doc.source(info, path),
        )

    variants: dict[str, dict[str, Build]] = {}
    vd = doc.obj(doc.get(data, "variants", ""), "variants")
    for name, v in vd.items():
        path = f"variants.{name}"
        if not VARIANT_RE.match(name):
            raise doc.fail(path, "a variant is named cpu, cuXYZ or rocmX.Y")
        v = doc.obj(
            v,
            path,
            {"cuda", "cudnn", "rocm", "platforms", "source", "confidence", "note", "patches"},
        )
        kind = "cpu" if name == "cpu" else "cuda" if name.startswith("cu") else "rocm"
        base = {
            "local": name,
            "source": doc.source(v, path),
            "confidence": doc.confidence(v, "confidence", path),
            "note": doc.string(v, "note", path, required=False),
        }
        if "patches" in v:
            only = doc.strings(v, "patches", path, re.compile(r"^\d+\.\d+\.\d+$"))
            for i, x in enumerate(only):
                if x not in pd:
                    raise doc.fail(f"{path}.patches[{i}]", f"{x} is not one of the patches")
            base["patches"] = only
        if kind == "cuda":
            cuda = doc.version(v, "cuda", path)
            assert cuda is not None
            if "cu" + cuda.replace(".", "") != name:
                raise doc.fail(
                    _join(path, "cuda"), f"{cuda} does not match the variant name {name}"
                )
            if cuda.count(".") != 1:
                raise doc.fail(_join(path, "cuda"), f"{cuda} should be MAJOR.MINOR")
            base["cuda"] = cuda
            base["cudnn"] = doc.string(v, "cudnn", path, required=False, nullable=True)
        if kind == "rocm":
            rocm = doc.version(v, "rocm", path)
            if "rocm" + str(rocm) != name:
                raise doc.fail(
                    _join(path, "rocm"), f"{rocm} does not match the variant name {name}"
                )
            base["rocm"] = rocm
        plats = doc.obj(doc.get(v, "platforms", path), f"{path}.platforms")
        if not plats:
            raise doc.fail(f"{path}.platforms", "no platforms listed")
        variants[name] = {}
        for pname, pb in plats.items():
            pp = f"{path}.platforms.{pname}"
            if pname not in PLATFORMS:
                raise doc.fail(pp, f"unknown platform (one of {', '.join(PLATFORMS)})")
            if pname not in platforms:
                raise doc.fail(pp, f"{pname} has no entry under platforms (its Python versions)")
            variants[name][pname] = _build(doc, pb, pp, variant=name, kind=kind, base=base)

    by_patch: dict[str, dict[str, tuple[str, ...]]] = {}
    bp = doc.obj(data.get("python_by_patch", {}), "python_by_patch")
    for ver, per in bp.items():
        path = f"python_by_patch.{ver}"
        if ver not in pd:
            raise doc.fail(path, f"{ver} is not one of the patches")
        per = doc.obj(per, path)
        by_patch[ver] = {}
        for pname in per:
            if pname not in platforms:
                raise doc.fail(_join(path, pname), "unknown platform for this release")
            by_patch[ver][pname] = doc.strings(per, pname, path, PYTHON_RE)

    known = data.get("variants_known", True)
    if not isinstance(known, bool):
        raise doc.fail("variants_known", "expected true or false")
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise doc.fail("notes", "expected a list of strings")
    unconfirmed = _unconfirmed(doc, data)
    return Release(
        minor=minor,
        file=doc.name,
        patches=tuple(sorted(patches, key=lambda p: p.v)),
        platforms=platforms,
        variants=variants,
        python_by_patch=by_patch,
        variants_known=known,
        variants_note=doc.string(data, "variants_note", "", required=False),
        unconfirmed=unconfirmed,
        notes=tuple(notes),
    )


def _pairing(doc: _Doc, p: dict[str, Any], name: str, path: str) -> dict[str, Optional[Choice]]:
    """A patch's ``torchvision``/``torchaudio``: a version for every build, null for none, or an
    object keyed by build ("default", a variant, "*" for the rest) whose values are a version,
    null, or {"version", "confidence", "note"}."""
    key = _join(path, name)
    conf = doc.confidence(p, f"{name}_confidence", path)
    note = doc.string(p, f"{name}_note", path, required=False)
    v = p[name]
    if v is None:
        return {"*": None}
    if isinstance(v, str):
        _check_version(doc, v, key)
        return {"*": Choice(v, conf, note)}
    v = doc.obj(v, key)
    if not v:
        raise doc.fail(key, "an empty object: write null when there is none")
    out: dict[str, Optional[Choice]] = {}
    for build, c in v.items():
        bk = _join(key, build)
        if build not in ("*", "default") and not VARIANT_RE.match(build):
            raise doc.fail(bk, 'the key is "default", a variant (cu126) or "*"')
        if c is None:
            out[build] = None
        elif isinstance(c, str):
            _check_version(doc, c, bk)
            out[build] = Choice(c, conf, note)
        else:
            c = doc.obj(c, bk, {"version", "confidence", "note"})
            ver = doc.version(c, "version", bk)
            assert ver is not None
            out[build] = Choice(
                ver,
                doc.confidence(c, "confidence", bk) if "confidence" in c else conf,
                doc.string(c, "note", bk, required=False) or note,
            )
    return out


def _check_specifier(doc: _Doc, text: str, path: str) -> None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        raise doc.fail(path, f"{text!r} is not a version specifier (>=3.10,!=3.14.1)") from None


def _companion_file(doc: _Doc, data: Any, name: str) -> dict[str, CompanionRelease]:
    data = doc.obj(data, "", {"schema_version", "project", "source", "note", "releases"})
    _schema(doc, data)
    if data.get("project") != name:
        raise doc.fail("project", f"expected {name!r}, got {data.get('project')!r}")
    doc.source(data, "")
    out: dict[str, CompanionRelease] = {}
    for ver, r in doc.obj(doc.get(data, "releases", ""), "releases").items():
        path = f"releases.{ver}"
        _check_version(doc, ver, path)
        r = doc.obj(
            r,
            path,
            {"date", "requires_python", "requires_torch", "yanked", "platforms", "source"},
        )
        specs: dict[str, Optional[str]] = {}
        for k in ("requires_python", "requires_torch"):
            spec = doc.string(r, k, path, required=False, nullable=True)
            if spec is not None:
                _check_specifier(doc, spec, _join(path, k))
            specs[k] = spec
        plats: dict[str, Wheels] = {}
        for pname, w in doc.obj(doc.get(r, "platforms", path), f"{path}.platforms").items():
            pp = f"{path}.platforms.{pname}"
            if pname not in PLATFORMS:
                raise doc.fail(pp, f"unknown platform (one of {', '.join(PLATFORMS)})")
            w = doc.obj(w, pp, {"python", "min_macos", "min_macos_for"})
            pys = doc.strings(w, "python", pp, WHEEL_PYTHON_RE)
            if pname.startswith("macos") and "min_macos" not in w:
                raise doc.fail(_join(pp, "min_macos"), "missing (macOS wheels carry a minimum)")
            plats[pname] = Wheels(
                python=pys,
                min_macos=doc.version(w, "min_macos", pp, required=False),
                min_macos_for=_min_macos_for(doc, w, pp, pys, WHEEL_PYTHON_RE),
            )
        y = r.get("yanked")
        out[ver] = CompanionRelease(
            project=name,
            version=ver,
            date=doc.string(r, "date", path, required=False),
            requires_python=specs["requires_python"],
            requires_torch=specs["requires_torch"],
            platforms=plats,
            yanked=y if isinstance(y, str) else None,
            source=doc.source(r, path, required=False),
        )
    return out


def _min_macos_for(
    doc: _Doc,
    info: dict[str, Any],
    path: str,
    pythons: tuple[str, ...],
    pattern: re.Pattern[str] = PYTHON_RE,
) -> dict[str, str]:
    """{Python: minimum macOS} where a Python's wheels need a newer macOS than the platform's."""
    p = _join(path, "min_macos_for")
    mm = doc.obj(info.get("min_macos_for", {}), p)
    out: dict[str, str] = {}
    for k in mm:
        if not pattern.match(k):
            raise doc.fail(_join(p, k), f"{k!r} does not look like {_example(PYTHON_RE)}")
        if k not in pythons:
            raise doc.fail(_join(p, k), f"Python {k} is not in {_join(path, 'python')}")
        v = doc.version(mm, k, p)
        assert v is not None
        out[k] = v
    return out


def _unconfirmed(doc: _Doc, data: dict[str, Any]) -> dict[str, str]:
    """{"cu134" or "cu128 linux_aarch64": why it is not confirmed}."""
    uc = doc.obj(data.get("unconfirmed", {}), "unconfirmed")
    out: dict[str, str] = {}
    for k in uc:
        words = k.split(" ")
        if not (1 <= len(words) <= 2 and VARIANT_RE.match(words[0])) or (
            len(words) == 2 and words[1] not in PLATFORMS
        ):
            raise doc.fail(
                _join("unconfirmed", k),
                "the key is a variant, optionally with a platform (cu134, cu128 linux_aarch64)",
            )
        v = doc.string(uc, k, "unconfirmed")
        assert v is not None
        out[k] = v
    return out


def _cuda(
    doc: _Doc, data: Any
) -> tuple[dict[str, CudaFloor], dict[str, tuple[Optional[str], Optional[str]]]]:
    data = doc.obj(data, "", {"schema_version", "source", "minor_version_floor", "toolkit", "note"})
    _schema(doc, data)
    doc.source(data, "")
    floors: dict[str, CudaFloor] = {}
    for major, f in doc.obj(
        doc.get(data, "minor_version_floor", ""), "minor_version_floor"
    ).items():
        path = f"minor_version_floor.{major}"
        if not major.isdigit():
            raise doc.fail(path, "the key is a CUDA major version (12)")
        f = doc.obj(f, path, {"linux", "windows", "windows_confidence", "source", "note"})
        doc.source(f, path)
        linux = doc.version(f, "linux", path)
        assert linux is not None
        floors[major] = CudaFloor(
            major=major,
            linux=linux,
            windows=doc.version(f, "windows", path, required=False),
            windows_confidence=doc.confidence(f, "windows_confidence", path),
            note=doc.string(f, "note", path, required=False),
        )
    toolkit: dict[str, tuple[Optional[str], Optional[str]]] = {}
    for ver, t in doc.obj(doc.get(data, "toolkit", ""), "toolkit").items():
        path = f"toolkit.{ver}"
        _check_version(doc, ver, path)
        t = doc.obj(t, path, {"linux", "windows", "release"})
        toolkit[ver] = (
            doc.version(t, "linux", path, required=False),
            doc.version(t, "windows", path, required=False),
        )
    return floors, toolkit


def newer_than_table(table: Table, versions: Iterable[str]) -> Optional[str]:
    """The line naming a final torch 2.x release an index has and the table does not cover
    (newer than its newest), for whoever talks to an index anyway (plan --online, install)."""
    newest = Version(table.newest)
    found: Optional[Version] = None
    for v in versions:
        try:
            x = Version(v)
        except InvalidVersion:
            continue
        if x.is_prerelease or x.is_devrelease or x.major != 2:
            continue
        x = Version(x.public)
        if x > newest and (found is None or x > found):
            found = x
    if found is None:
        return None
    return (
        f"torch {found} is on the index but not in this table (collected "
        f"{table.collected or 'unknown'}): upgrade envsetup"
    )


def dump_json(data: Any) -> str:
    """The table's JSON style: two-space indents, one key per line, a list of scalars on one
    line where it fits in 100 columns (so that a diff of a refreshed file reads line by line)."""

    def dump(v: Any, ind: int, used: int) -> str:
        sp = "  " * ind
        if isinstance(v, dict):
            if not v:
                return "{}"
            items = []
            for k, x in v.items():
                key = json.dumps(k, ensure_ascii=False)
                items.append(f"{sp}  {key}: {dump(x, ind + 1, len(sp) + 4 + len(key))}")
            return "{\n" + ",\n".join(items) + "\n" + sp + "}"
        if isinstance(v, list):
            if all(not isinstance(x, (dict, list)) for x in v):
                one = "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in v) + "]"
                if used + len(one) + 1 <= 100:
                    return one
            items = [f"{sp}  {dump(x, ind + 1, len(sp) + 2)}" for x in v]
            return "[\n" + ",\n".join(items) + "\n" + sp + "]"
        return json.dumps(v, ensure_ascii=False)

    return dump(data, 0, 0) + "\n"


Root = Union[Path, _Resource]


def _read(root: Root, rel: str) -> str:
    res = root.joinpath(*rel.split("/"))
    try:
        text: str = res.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise CompatTableError(f"compat/{rel}: file missing from the table") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CompatTableError(f"compat/{rel}: cannot be read ({exc})") from None
    return text


def _default_root() -> Root:
    from importlib import resources

    try:
        data: Any = resources.files("envsetup").joinpath("compat_data")
        if data.joinpath("index.json").is_file():
            return data  # type: ignore[no-any-return]
    except (ModuleNotFoundError, OSError):  # pragma: no cover - odd installs
        pass
    return Path(__file__).resolve().parents[2] / "compat"


def load_table(path: Optional[Path] = None) -> Table:
    """Load and validate the table in ``path`` (a directory), or the one shipped with envsetup."""
    if path is None:
        return _load_default()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> Table:
    return _load(_default_root())


def _load(root: Root) -> Table:
    idx = _Doc("index.json")
    index = idx.obj(
        _parse_json(idx, _read(root, "index.json")),
        "",
        {"schema_version", "collected", "releases", "cuda", "sources", "companions"},
    )
    _schema(idx, index)
    src_name = idx.string(index, "sources", "")
    cuda_name = idx.string(index, "cuda", "")
    assert src_name is not None and cuda_name is not None
    files = idx.get(index, "releases", "")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise idx.fail("releases", "expected a non-empty list of file names")

    sd = _Doc(src_name)
    sdata = sd.obj(_parse_json(sd, _read(root, src_name)), "", {"schema_version", "sources"})
    _schema(sd, sdata)
    sources = sd.obj(sd.get(sdata, "sources", ""), "sources")
    for k, v in sources.items():
        if not isinstance(v, str) or not v:
            raise sd.fail(f"sources.{k}", "expected a description")

    cd = _Doc(cuda_name, sources)
    floors, toolkit = _cuda(cd, _parse_json(cd, _read(root, cuda_name)))

    companions: dict[str, dict[str, CompanionRelease]] = {}
    cfiles = idx.obj(idx.get(index, "companions", ""), "companions", set(COMPANIONS))
    for name in COMPANIONS:
        cname = idx.string(cfiles, name, "companions")
        assert cname is not None
        cdoc = _Doc(cname, sources)
        companions[name] = _companion_file(cdoc, _parse_json(cdoc, _read(root, cname)), name)

    releases: list[Release] = []
    seen: dict[str, str] = {}
    for f in files:
        doc = _Doc(f, sources)
        rel = _release(doc, _parse_json(doc, _read(root, f)))
        for p in rel.patches:
            if p.version in seen:
                raise doc.fail(f"patches.{p.version}", f"also listed in compat/{seen[p.version]}")
            seen[p.version] = f
        for vname, by in rel.variants.items():
            for b in by.values():
                if b.cuda and b.cuda.split(".")[0] not in floors:
                    raise doc.fail(
                        f"variants.{vname}.cuda",
                        f"CUDA {b.cuda.split('.')[0]}.x has no driver floor in compat/{cuda_name}",
                    )
        for p in rel.patches:
            for name in COMPANIONS:
                for build, c in p.companions[name].items():
                    if c is not None and c.version not in companions[name]:
                        raise doc.fail(
                            f"patches.{p.version}.{name}" + ("" if build == "*" else f".{build}"),
                            f"{name} {c.version} is not in compat/{cfiles[name]}",
                        )
        releases.append(rel)
    releases.sort(key=lambda r: Version(r.minor))
    return Table(
        releases=tuple(releases),
        floors=floors,
        toolkit=toolkit,
        sources={str(k): str(v) for k, v in sources.items()},
        collected=idx.string(index, "collected", "", required=False),
        location=str(root),
        companions=companions,
    )
