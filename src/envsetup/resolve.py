"""Profile + Request + Table -> Plan: a pure function, with every candidate's verdict.

The policy (docs/RESOLVER.md): a build is valid when its platform and Python are published, the
driver meets its CUDA major's minor-version-compatibility floor, every visible GPU has kernels in
it and the request is satisfied. Among valid builds: GPU builds first on a GPU machine, then the
newest torch, then the CUDA variant the driver supports best (toolkit minimum met, newest CUDA).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from envsetup.compat import COMPANIONS, VARIANT_RE, Build, Patch, Release, Table
from envsetup.errors import NoBuildError, UsageError
from envsetup.gpu_arch import how_it_runs, ptx_target, sm
from envsetup.plan import PYTORCH_INDEX, Candidate, Pin, Plan, Refused, Request
from envsetup.profile import Gpu, Profile

ENV_INDEX = "ENVSETUP_TORCH_INDEX"
# The official "pytorch" conda channel stops after 2.5 (pytorch/pytorch#138506).


# --------------------------------------------------------------------------- inputs


def platform_key(profile: Profile) -> str:
    """linux_x86_64 | linux_aarch64 | windows_x86_64 | macos_arm64 | macos_x86_64."""
    os_name = profile.system.os.lower()
    arch = profile.system.arch.lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}.get(
        arch, arch
    )
    if os_name == "linux" and arch in ("x86_64", "aarch64", "arm64"):
        return "linux_x86_64" if arch == "x86_64" else "linux_aarch64"
    if os_name == "windows" and arch == "x86_64":
        return "windows_x86_64"
    if os_name in ("darwin", "macos") and arch in ("arm64", "aarch64", "x86_64"):
        return "macos_x86_64" if arch == "x86_64" else "macos_arm64"
    raise NoBuildError(
        f"torch publishes no wheels for {profile.system.os}/{profile.system.arch} "
        "(only Linux x86_64/aarch64, Windows x86_64 and macOS arm64/x86_64)"
    )


def python_tag(profile: Profile) -> str:
    """'3.11', or '3.13t' for a free-threaded build."""
    m = re.match(r"^(\d+)\.(\d+)", profile.python.version)
    if not m:
        raise UsageError(
            f"python.version {profile.python.version!r} is not a Python version (write e.g. "
            '"3.11.7")'
        )
    return f"{m.group(1)}.{m.group(2)}" + ("t" if profile.python.free_threaded else "")


def python_full(profile: Profile) -> str:
    """The interpreter's full release, '3.14.1' (what Requires-Python is checked against);
    '3.14' when the profile gives no patch level."""
    m = re.match(r"^(\d+\.\d+(?:\.\d+)?)", profile.python.version.strip())
    if not m:
        python_tag(profile)  # the one error message for a version that is none
    assert m is not None
    return m.group(1)


def parse_spec(spec: Optional[str]) -> Optional[SpecifierSet]:
    """'2.4' -> ==2.4.*, '2.4.1' -> ==2.4.1, '>=2.3,<2.6' as written, None/'latest' -> any.

    Each comma-separated part may be a bare version ('2.13.0,!=2.13.0' is ==2.13.0,!=2.13.0: a
    valid spec that matches nothing, which the resolver answers with "no build fits"). An empty
    spec is a usage error: ``--torch ''`` is not "latest".
    """
    if spec is None:
        return None
    s = spec.strip()
    hint = "use e.g. 2.4, 2.4.1, '>=2.3,<2.6' or latest"
    if not s:
        raise UsageError(f"empty torch version spec {spec!r}: {hint}")
    if s.lower() in ("latest", "newest", "*"):
        return None
    if "+" in s:
        raise UsageError(
            f"unknown torch version spec {spec!r}: give the public version (2.4.1) and the build "
            "with --variant (cu121)"
        )
    parts = []
    for part in s.split(","):
        x = part.strip()
        if re.match(r"^\d+\.\d+$", x):
            x = f"=={x}.*"
        elif re.match(r"^\d+\.\d+\.\d+$", x):
            x = f"=={x}"
        parts.append(x)
    try:
        ss = SpecifierSet(",".join(parts))
    except InvalidSpecifier:
        ss = None
    if ss is None or not any(ss) or not all(parts):
        raise UsageError(f"unknown torch version spec {spec!r}: {hint}")
    return ss


def check_variant(variant: str) -> str:
    v = variant.strip().lower()
    if v in ("auto", "default") or VARIANT_RE.match(v):
        return v
    raise UsageError(
        f"unknown variant {variant!r}: use auto, default (the plain package-index build), cpu, "
        "cuXYZ (cu126) or rocmX.Y (rocm6.1)"
    )


def check_index_url(url: str, what: str) -> str:
    """``url`` if it can be a package index (http, https or file), else a one-line UsageError.

    ``what`` names where the URL came from (``--index-url``, ``ENVSETUP_TORCH_INDEX``). The
    scheme may be written in any case and is returned in lower case; http(s) needs a host; a
    query or fragment is refused (a variant name is appended to the path).
    """
    from urllib.parse import urlsplit

    hint = "give an http(s):// or file:// URL such as https://download.pytorch.org/whl"
    if not url or url != url.strip() or any(c.isspace() for c in url):
        raise UsageError(f"{what} {url!r} is not a URL (empty or with spaces): {hint}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise UsageError(f"{what} {url!r} is not a valid URL ({exc}): {hint}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise UsageError(f"{what} {url!r} is not an http(s):// or file:// URL: {hint}")
    if scheme != "file" and not parts.hostname:
        raise UsageError(f"{what} {url!r} has no host name: {hint}")
    if scheme == "file" and not parts.path.strip("/"):
        raise UsageError(f"{what} {url!r} names no directory: give file:///path/to/index")
    if "?" in url or "#" in url:
        raise UsageError(
            f"{what} {url!r} has a query or fragment (?... or #...), which an index URL cannot "
            "carry (names are appended to its path): give the plain URL; credentials go in the "
            "host part (https://user:token@host/path)"
        )
    return scheme + url[len(parts.scheme) :]


def index_base_from(flag: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    """The PyTorch index base URL: --index-base, else $ENVSETUP_TORCH_INDEX, else the official
    one. A bad URL is a one-line UsageError naming the flag or the variable."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return check_index_url(flag, "--index-base").rstrip("/")
    value = env.get(ENV_INDEX, "")
    if value:
        return check_index_url(value, ENV_INDEX).rstrip("/")
    return PYTORCH_INDEX.rstrip("/")


# --------------------------------------------------------------------------- checks


def _ver(v: Optional[str]) -> Optional[Version]:
    if not v:
        return None
    try:
        return Version(v)
    except InvalidVersion:
        return None


def _spec(text: Optional[str]) -> Optional[SpecifierSet]:
    if not text:
        return None
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


@dataclass
class _Verdict:
    patch: Patch
    release: Release
    build: Build
    reasons: list[str] = field(default_factory=list)  # why refused (empty: accepted)
    groups: list[str] = field(default_factory=list)  # the same reasons, in words shared by many
    fixes: list[str] = field(default_factory=list)
    fix_of: dict[str, list[str]] = field(default_factory=dict)  # a group -> fixes that lift it
    notes: list[str] = field(default_factory=list)  # why accepted, in words
    warnings: list[str] = field(default_factory=list)
    medium: list[str] = field(default_factory=list)  # the facts below high confidence it rests on
    companions: dict[str, str] = field(default_factory=dict)  # name -> version picked
    companion_only: bool = True  # every refusal is about a companion
    toolkit_met: bool = True
    soft: bool = False  # refused only for being the wrong kind of build for this machine
    cpu_fallback: bool = False  # a CUDA package-index build taken on a machine without a GPU

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def name(self) -> str:
        return self.build.variant

    def refuse(
        self, reason: str, fix: Optional[str] = None, *, group: str = "", companion: bool = False
    ) -> None:
        self.reasons.append(reason)
        self.groups.append(group or reason)
        if not companion:
            self.companion_only = False
        if fix:
            self.fixes.append(fix)
            self.fix_of.setdefault(group or reason, []).append(fix)


@dataclass(frozen=True)
class _Machine:
    platform: str
    python: str  # "3.13t"
    python_full: str  # "3.13.2" (or "3.13" when the profile gives no patch level)
    driver_family: str  # linux | windows (Windows and WSL: the Windows driver)
    driver: Optional[str]
    gpus: tuple[Gpu, ...]
    amd: bool
    macos: Optional[str]
    cuda_driver: Optional[str]
    nvidia_without_driver: bool

    @property
    def nvidia(self) -> bool:
        return bool(self.gpus) and self.driver is not None

    @property
    def exact_python(self) -> bool:
        return self.python_full.count(".") == 2


_WORDS = {
    "linux_x86_64": "Linux x86_64",
    "linux_aarch64": "Linux aarch64",
    "windows_x86_64": "Windows x86_64",
    "macos_arm64": "macOS arm64",
    "macos_x86_64": "macOS x86_64",
}


def _machine(profile: Profile) -> _Machine:
    plat = platform_key(profile)
    gpus = tuple(g for g in profile.nvidia.gpus if g.visible)
    driver = profile.nvidia.driver_version
    if driver is not None and _ver(driver) is None:
        raise UsageError(f"nvidia.driver_version {driver!r} is not a driver version (570.124.06)")
    for g in gpus:
        if g.compute_capability is not None and not re.match(r"^\d+\.\d$", g.compute_capability):
            raise UsageError(
                f"nvidia.gpus[{g.index}].compute_capability {g.compute_capability!r} is not "
                'like "8.6"'
            )
    family = "windows" if plat.startswith("windows") or profile.system.wsl else "linux"
    return _Machine(
        platform=plat,
        python=python_tag(profile),
        python_full=python_full(profile),
        driver_family=family,
        driver=driver,
        gpus=gpus if driver is not None else (),
        amd=profile.other.amd_gpus > 0 and plat == "linux_x86_64",
        macos=profile.system.macos_version,
        cuda_driver=profile.nvidia.cuda_driver_version,
        nvidia_without_driver=driver is None and (bool(gpus) or profile.nvidia.pci_devices > 0),
    )


def _interpreter_check(profile: Profile, m: _Machine, table: Table) -> None:
    """torch publishes wheels for 64-bit CPython only (tags cp3X on 64-bit platforms)."""
    impl = (profile.python.implementation or "").strip().lower()
    bits = profile.python.bits
    problems = []
    if impl != "cpython":
        problems.append(f"a {profile.python.implementation} interpreter")
    if bits != 64:
        problems.append(f"a {bits}-bit interpreter")
    if not problems:
        return
    have = sorted(
        {py for p, r in table.patches() for py in r.python_for(p.version, m.platform)},
        key=lambda t: (int(t.split(".")[1].rstrip("t")), t),
    )
    plain = [t for t in have if not t.endswith("t")]
    fits = f" {plain[0]}-{plain[-1]}" if plain else ""
    where = profile.python.executable or f"Python {profile.python.version}"
    raise NoBuildError(
        f"no torch build fits {where}: it is {' and '.join(problems)}, and torch publishes wheels "
        f"for 64-bit CPython only. To make it fit: use a 64-bit CPython{fits} (--python PATH)"
    )


def _python_hint(table: Table, m: _Machine) -> str:
    have = [p.v for p, r in table.patches() if m.python in r.python_for(p.version, m.platform)]
    if not have:
        pys = {py for p, r in table.patches() for py in r.python_for(p.version, m.platform)}
        plain = sorted((p for p in pys if not p.endswith("t")), key=lambda t: int(t[2:]))
        newest = max(
            (p.v for p, r in table.patches() if r.python_for(p.version, m.platform)), default=None
        )
        if not plain or newest is None:
            return f"use a Python with torch wheels on {m.platform}"
        return (
            f"use Python {plain[0]}-{plain[-1]}: torch's wheels for {m.platform} cover those "
            f"(up to torch {newest}); Python {m.python} has none"
        )
    lo, hi = min(have), max(have)
    if lo == Version(table.oldest):
        return f"Python {m.python} needs torch <= {hi}"
    if hi == Version(table.newest):
        return f"Python {m.python} needs torch >= {lo}"
    return f"Python {m.python} needs torch {lo} - {hi}"


def _driver_check(v: _Verdict, m: _Machine, table: Table, explicit: bool) -> None:
    b = v.build
    assert b.cuda is not None
    floor = table.floor(b.cuda, m.driver_family)
    label = b.same_as
    if floor is None:
        v.refuse(
            f"no minimum {m.driver_family} driver is known for CUDA {b.cuda}",
            f"pick a variant other than {label}",
            group=f"no minimum driver known for CUDA {b.cuda}",
        )
        return
    need, conf = floor
    tk = table.toolkit_min(b.cuda, m.driver_family)
    if m.driver is None:
        if explicit:
            v.warnings.append(
                f"no NVIDIA driver known for this machine: {label} needs a {m.driver_family} "
                f"driver >= {need}"
            )
        return
    have = Version(m.driver)
    major = b.cuda.split(".")[0]
    if have < Version(need):
        v.refuse(
            f"driver {m.driver} is older than {need}, the minimum for CUDA {major}.x builds",
            f"upgrade the driver to >= {need} for CUDA {major}.x builds (torch "
            f"{v.patch.version} {label})",
            group=f"driver {m.driver} is older than {need}, the minimum for CUDA {major}.x",
        )
        return
    v.notes.append(f"driver {m.driver} >= {need} (CUDA {major}.x minor-version compatibility)")
    if conf != "high":
        v.warnings.append(
            f"the {m.driver_family} driver minimum for CUDA {major}.x is not published exactly; "
            f"{need} is NVIDIA's major floor ({conf})"
        )
    if tk is not None and have < Version(tk):
        v.toolkit_met = False
        v.warnings.append(
            f"driver {m.driver} runs {label} through minor-version compatibility but is older than "
            f"{tk}, the CUDA {b.cuda} toolkit driver: features that JIT-compile PTX may fail"
        )
    if m.cuda_driver:
        cd = _ver(m.cuda_driver)
        if cd is not None and cd.release[0] < int(major):
            v.warnings.append(
                f"the driver reports CUDA {m.cuda_driver}, older than the build's CUDA {b.cuda}, "
                f"although driver {m.driver} should support it: check nvidia-smi"
            )


def _targets(b: Build) -> tuple[str, ...]:
    return (*(b.arch or ()), *((ptx_target(b.ptx),) if b.ptx else ()))


def _arch_check(v: _Verdict, m: _Machine) -> None:
    b = v.build
    label = b.same_as
    if b.arch is None:
        v.refuse(
            f"the compiled GPU architectures of {label} on {m.platform} are not known",
            group="their compiled GPU architectures are not known",
        )
        return
    shown = ", ".join(sm(a) for a in b.arch)
    for g in m.gpus:
        name = f"GPU {g.index}" + (f" ({g.name})" if g.name else "")
        if g.compute_capability is None:
            v.warnings.append(f"{name}: compute capability unknown, kernels not checked")
            continue
        cc = g.compute_capability
        how = how_it_runs(_targets(b), cc)
        if how == "sass":
            v.notes.append(f"{name}, {sm(cc)}: kernels in {label} ({shown})")
        elif how == "ptx":
            v.warnings.append(
                f"{name}, {sm(cc)}: no kernels in {label}, only PTX for {sm(b.ptx or '')}; it runs "
                "through JIT compilation (slow first start, not what the release intends)"
            )
        else:
            v.refuse(
                f"{name}, {sm(cc)}: no kernels in {label} ({shown})",
                f"arch:{cc}",
                group=f"no kernels for {name}, {sm(cc)}",
            )


def _companion_check(v: _Verdict, m: _Machine, req: Request, table: Table) -> None:
    """torchvision/torchaudio judged on their own wheels: the machine's full Python version,
    its ABI, the platform and the minimum macOS."""
    label = f"torch {v.patch.version} {v.build.same_as}"
    for name, wanted in zip(COMPANIONS, (req.vision, req.audio)):
        if not wanted:
            continue
        drop = f"plan without {name} (--no-{'vision' if name == 'torchvision' else 'audio'})"
        choice = v.patch.companion(name, v.build.variant)
        if choice is None:
            v.refuse(
                f"no {name} release goes with {label}",
                drop,
                group=f"no {name} release goes with them",
                companion=True,
            )
            continue
        rel = table.companion(name, choice.version)
        if rel is None:  # the loader guarantees it; a table built in code may not
            v.refuse(f"{name} {choice.version} is not in the table", drop, companion=True)
            continue
        what = f"{name} {choice.version}"
        wheels = rel.platforms.get(m.platform)
        if rel.yanked is not None:
            v.refuse(f"{what} is yanked ({rel.yanked})", drop, group=f"{what} is yanked")
        if wheels is None:
            v.refuse(
                f"{what} has no wheels for {_WORDS[m.platform]}",
                drop,
                group=f"{name} has no wheels for {_WORDS[m.platform]}",
                companion=True,
            )
            continue
        if m.python not in wheels.python and "py3" not in wheels.python:
            v.refuse(
                f"{what} has no wheel for Python {m.python} on {_WORDS[m.platform]} (published: "
                f"{', '.join(wheels.python)})",
                drop,
                group=f"{name} has no wheel for Python {m.python}",
                companion=True,
            )
            continue
        spec = _spec(rel.requires_python)
        if spec is not None and not spec.contains(m.python_full, prereleases=True):
            v.fixes.append(drop)
            v.refuse(
                f"{what} requires Python {spec}, and this is {m.python_full}",
                f"python:{name}",
                group=f"{name} excludes Python {m.python_full} (Requires-Python {spec})",
                companion=True,
            )
            continue
        if spec is not None and not m.exact_python:
            excluded = [
                f"{m.python_full}.{n}"
                for n in range(40)
                if not spec.contains(f"{m.python_full}.{n}", prereleases=True)
            ]
            if excluded:
                v.warnings.append(
                    f"{what} excludes Python {', '.join(excluded)} (Requires-Python {spec}); the "
                    f"profile gives Python {m.python_full} without its patch level"
                )
        need = wheels.macos_for(m.python) or wheels.macos_for("py3")
        mac = _ver(m.macos) if m.platform.startswith("macos") else None
        if need and mac is not None and mac < Version(need):
            v.refuse(
                f"{what} needs macOS >= {need} for Python {m.python} (this machine: {m.macos})",
                f"upgrade macOS to >= {need} ({what})",
                group=f"{name} needs a newer macOS than {m.macos}",
                companion=True,
            )
            continue
        v.companions[name] = choice.version
        if choice.confidence != "high":
            v.medium.append(f"{what} with {v.build.same_as}")


def _judge(
    patch: Patch, rel: Release, b: Build, m: _Machine, req: Request, variant: str, table: Table
) -> _Verdict:
    v = _Verdict(patch, rel, b)
    pys = rel.python_for(patch.version, m.platform)
    if patch.yanked is not None:
        v.refuse(f"torch {patch.version} is yanked ({patch.yanked})", group="yanked")
    if m.python not in pys:
        shown = ", ".join(pys) or "none"
        v.refuse(
            f"no wheel for Python {m.python} on {m.platform} (published: {shown})",
            _python_hint(table, m),
            group=f"no wheels for Python {m.python}",
        )
    spec = _spec(patch.requires_python)
    if spec is not None and m.python in pys and not spec.contains(m.python_full, True):
        v.refuse(
            f"torch {patch.version} requires Python {patch.requires_python}, and this is "
            f"{m.python_full}",
            "use another Python patch release",
            group=f"torch excludes Python {m.python_full}",
        )
    info = rel.platforms[m.platform]
    if m.platform.startswith("macos"):
        need = info.min_macos_for.get(m.python, info.min_macos)
        if need and m.macos and _ver(m.macos) and Version(m.macos) < Version(need):
            v.refuse(
                f"needs macOS >= {need} (this machine: {m.macos})",
                f"upgrade macOS to >= {need} for torch {patch.version}",
                group=f"need a newer macOS than {m.macos}",
            )
        elif need and not m.macos:
            v.warnings.append(f"macOS version unknown; these wheels need macOS >= {need}")

    auto = variant == "auto"
    if b.kind == "cuda":
        if auto and not m.nvidia and b.variant != "default":
            v.refuse(
                f"CUDA build ({b.same_as}); this machine has no NVIDIA GPU with a driver",
                group="no NVIDIA GPU with a driver",
            )
            v.soft = True
        elif auto and not m.nvidia:
            v.cpu_fallback = True
            v.warnings.append(
                f"the package-index build carries CUDA ({b.same_as}) libraries this machine cannot "
                "use; it runs on the CPU"
            )
        else:
            _driver_check(v, m, table, explicit=not auto)
            if m.gpus:
                _arch_check(v, m)
    elif b.kind == "rocm":
        if auto and not m.amd:
            v.refuse("ROCm build; this machine has no AMD GPU", group="no AMD GPU")
            v.soft = True
        else:
            v.notes.append(f"ROCm {b.rocm} build (GPU architectures are not checked for ROCm)")
    elif auto and m.nvidia:
        v.refuse(
            f"{'CPU' if b.kind == 'cpu' else b.kind.upper()}-only build; this machine has an "
            "NVIDIA GPU (ask for --variant cpu to take it)",
            group="this machine has an NVIDIA GPU (--variant cpu takes one)",
        )
        v.soft = True
    if not v.reasons or v.companion_only:
        _companion_check(v, m, req, table)
    if b.confidence != "high":
        v.medium.append(f"the {b.same_as} build of torch {rel.minor} ({', '.join(b.source)})")
    return v


def _accel(b: Build) -> int:
    return 0 if b.kind == "cpu" else 1


def _rank(v: _Verdict) -> tuple[object, ...]:
    b = v.build
    gpu = _ver(b.cuda) or _ver(b.rocm) or Version("0")
    named_first = (
        (b.variant != "default") if b.kind in ("cuda", "rocm") else (b.variant == "default")
    )
    accel = -1 if v.cpu_fallback else _accel(b)
    return (accel, v.patch.v, v.toolkit_met, gpu, named_first)


def _kind_word(b: Build) -> str:
    return {"cuda": "CUDA", "rocm": "ROCm", "cpu": "CPU", "mps": "MPS"}[b.kind]


def _versions(vs: list[Version]) -> str:
    lo, hi = min(vs), max(vs)
    return str(lo) if lo == hi else f"{lo} - {hi}"


def _group_refused(refused: list[_Verdict]) -> tuple[Refused, ...]:
    """Refused candidates grouped by their first reason, the largest groups first."""
    groups: dict[str, list[_Verdict]] = {}
    for v in refused:
        groups.setdefault(v.groups[0], []).append(v)
    out = []
    for reason, vs in groups.items():
        kinds = {_kind_word(v.build) for v in vs}
        out.append(
            Refused(
                reason=reason,
                count=len(vs),
                kind=kinds.pop() if len(kinds) == 1 else "",
                torch=_versions([v.patch.v for v in vs]),
            )
        )
    out.sort(key=lambda g: -g.count)
    return tuple(out)


# --------------------------------------------------------------------------- resolve


def _candidates(
    m: _Machine, request: Request, variant: str, table: Table, spec: Optional[SpecifierSet]
) -> tuple[list[_Verdict], list[str]]:
    verdicts: list[_Verdict] = []
    skipped: list[str] = []
    for patch, rel in table.patches():
        if spec is not None and not spec.contains(patch.v, prereleases=True):
            continue
        if m.platform not in rel.platforms:
            skipped.append(f"torch {patch.version}: no wheels for {m.platform}")
            continue
        builds = rel.builds(m.platform, patch.version)
        if variant == "auto":
            builds = [b for b in builds if b.kind != "rocm" or m.amd]
        elif variant == "default":
            builds = [b for b in builds if b.variant == "default"]
        elif variant == "cpu":
            builds = [
                b
                for b in builds
                if b.variant == "cpu" or (b.variant == "default" and b.kind != "cuda")
            ]
        else:
            builds = [b for b in builds if b.variant == variant]
        if not builds:
            if variant not in ("auto", "default") and not rel.variants_known:
                skipped.append(
                    f"torch {patch.version}: its PyTorch-index builds are not in the table"
                )
            else:
                skipped.append(f"torch {patch.version}: no {variant} build for {m.platform}")
            continue
        for b in builds:
            verdicts.append(_judge(patch, rel, b, m, request, variant, table))
    return verdicts, skipped


def resolve(profile: Profile, request: Request, table: Table) -> Plan:
    """The best build for ``profile`` that satisfies ``request``; NoBuildError when none fits."""
    m = _machine(profile)
    _interpreter_check(profile, m, table)
    spec = parse_spec(request.torch)
    variant = check_variant(request.variant)
    base = request.index_base.rstrip("/")

    if spec is not None and not any(spec.contains(p.v, True) for p, _ in table.patches()):
        raise NoBuildError(
            f"no torch release in the table matches {request.torch!r} (the table covers "
            f"{table.oldest} - {table.newest}; `envsetup compat refresh --check` tells whether "
            "it is behind the index)"
        )
    verdicts, skipped = _candidates(m, request, variant, table, spec)
    accepted = sorted((v for v in verdicts if v.ok), key=_rank, reverse=True)
    refused = [v for v in verdicts if not v.ok]
    if not accepted:
        raise NoBuildError(_refusal(profile, m, request, variant, refused, skipped, table))
    best = accepted[0]
    b, patch = best.build, best.patch

    pins = [Pin("torch", patch.version)]
    for name in COMPANIONS:
        if name in best.companions:
            pins.append(Pin(name, best.companions[name]))

    why = _why(m, request, best, accepted, refused, base, spec)
    warnings = list(dict.fromkeys(best.warnings))
    if m.nvidia_without_driver and b.kind != "cuda":
        warnings.append(
            "an NVIDIA GPU is present but no driver was found: install the NVIDIA driver and "
            "plan again for a CUDA build"
        )
    if best.medium:
        warnings.append(
            "this plan rests on medium-confidence facts (docs/RESOLVER.md): "
            + "; ".join(dict.fromkeys(best.medium))
        )
    ordered = accepted + sorted(refused, key=lambda v: v.patch.v, reverse=True)
    candidates = tuple(
        Candidate(
            torch=v.patch.version,
            variant=v.name,
            accepted=v.ok,
            reasons=tuple(v.reasons) if not v.ok else tuple(v.notes + v.warnings),
            same_as=v.build.same_as if v.name == "default" else None,
        )
        for v in ordered
    )
    return Plan(
        torch=patch.version,
        variant=b.variant,
        pins=tuple(pins),
        index_url=None if b.variant == "default" else f"{base}/{b.variant}",
        platform=m.platform,
        python=m.python,
        python_version=m.python_full,
        local_version=f"{patch.version}+{b.local}" if b.local else patch.version,
        cuda=b.cuda,
        rocm=b.rocm,
        cudnn=b.cudnn,
        arch=b.arch or (),
        why=tuple(why),
        candidates=candidates,
        warnings=tuple(warnings),
        refused=_group_refused(refused),
    )


def _why(
    m: _Machine,
    req: Request,
    best: _Verdict,
    accepted: list[_Verdict],
    refused: list[_Verdict],
    base: str,
    spec: Optional[SpecifierSet],
) -> list[str]:
    """The reasons for the pick, in the words that matter to the user."""
    b, patch = best.build, best.patch
    gpu = f", NVIDIA driver {m.driver}" if m.nvidia else ""
    machine = f"{_WORDS[m.platform]}, Python {m.python_full}{'t' if m.python.endswith('t') else ''}"
    if m.platform.startswith("macos") and m.macos:
        machine += f", macOS {m.macos}"
    matching = f" matching {req.torch}" if spec is not None else ""
    if best.cpu_fallback:
        first = f"torch {patch.version} is the newest release{matching} that installs here"
    else:
        kind = _kind_word(b)
        a = "an" if kind == "MPS" else "a"
        first = f"torch {patch.version} is the newest release{matching} with {a} {kind} build here"
    why = [f"{first} ({machine}{gpu})"]
    if b.variant == "default":
        run = ", run on the CPU: no NVIDIA GPU uses its CUDA libraries" if best.cpu_fallback else ""
        why.append(f"the {b.same_as} build from the package index (a plain pip install){run}")
    else:
        why.append(f"the {b.variant} build from {base}/{b.variant}")
    if b.kind == "cuda" and not best.cpu_fallback:
        others = sorted(
            {v.build.same_as for v in accepted if v.patch is patch and v.build.same_as != b.same_as}
        )
        if others:
            why.append(
                f"{b.same_as} is the newest CUDA this driver fully supports among the builds of "
                f"torch {patch.version} that fit (also fits: {', '.join(others)})"
            )
    why.extend(best.notes)
    for name, ver in best.companions.items():
        why.append(f"{name} {ver} goes with it and has wheels for Python {m.python_full} here")
    # The newest releases passed over, and what would get them.
    newer = sorted(
        (v for v in refused if v.patch.v > patch.v and not v.soft),
        key=lambda v: v.patch.v,
        reverse=True,
    )
    if newer:
        top = newer[0]
        versions = sorted({v.patch.v for v in newer})
        shown = _versions(versions)
        line = f"torch {shown} {'is' if len(versions) == 1 else 'are'} newer but do not fit: "
        line = line.replace("is newer but do not", "is newer but does not")
        why.append(line + top.groups[0])
        if all(v.companion_only for v in newer if v.patch.v == top.patch.v):
            names = {g.split(" ")[0] for g in top.groups if g.split(" ")[0] in COMPANIONS}
            hints = []
            if any(r.startswith(tuple(names)) and "requires Python" in r for r in top.reasons):
                hints.append(f"another Python {m.python.rstrip('t')} patch release")
            hints.append("planning without " + " and ".join(sorted(names)) if names else "")
            hints = [h for h in hints if h]
            if hints:
                why.append(f"{' or '.join(hints)} would get torch {top.patch.version}")
    return why


def _arch_hint(table: Table, m: _Machine, cc: str) -> str:
    for p, r in table.patches():
        if m.python not in r.python_for(p.version, m.platform):
            continue
        for b in r.builds(m.platform, p.version):
            if b.kind == "cuda" and b.arch and how_it_runs(_targets(b), cc):
                floor = table.floor(b.cuda or "", m.driver_family)
                need = f", driver >= {floor[0]}" if floor else ""
                newest = f"torch {p.version} {b.same_as}{need}"
                return f"{sm(cc)} needs a build with its kernels (newest: {newest})"
    return f"no build in the table has kernels for {sm(cc)}"


def _refusal(
    profile: Profile,
    m: _Machine,
    req: Request,
    variant: str,
    refused: list[_Verdict],
    skipped: list[str],
    table: Table,
) -> str:
    what = f"torch {req.torch or 'latest'}, variant {variant}"
    with_ = [n for n, on in zip(COMPANIONS, (req.vision, req.audio)) if on]
    if with_:
        what += ", with " + " and ".join(with_)
    refused = sorted(refused, key=lambda v: v.patch.v, reverse=True)
    hard = [v for v in refused if not v.soft] or refused
    # A reason every candidate shares (Python 2.7, a platform) is the one to name: no other
    # change alone makes anything fit, so the others would mislead ("no kernels for sm_90" to
    # a machine whose GPU every build serves). Otherwise every reason, nearest candidates first.
    common = [g for g in hard[0].groups if all(g in v.groups for v in hard)] if hard else []
    reasons: list[str] = list(common)
    for v in [] if common else hard:
        for r in v.groups:
            if r not in reasons:
                reasons.append(r)
    if not reasons:
        reasons = list(dict.fromkeys(skipped))
    fixes: list[str] = []
    seen: set[str] = set()
    arch_ccs: list[str] = []
    # Candidates refused for one reason only are the nearest to fitting: their fixes first.
    for v in sorted(hard, key=lambda v: (len(v.reasons), tuple(-x for x in v.patch.v.release))):
        other = {f for g, fs in v.fix_of.items() if g not in common for f in fs} if common else ()
        for f in [f for f in v.fixes if f not in other]:
            if f.startswith("arch:"):
                cc = f[5:]
                if cc not in arch_ccs:
                    arch_ccs.append(cc)
                    fixes.append(_arch_hint(table, m, cc))
                continue
            if f.startswith("python:"):
                f = f"use another Python {m.python.rstrip('t')} patch release than {m.python_full}"
            key = f.split(" (torch ")[0]
            if key not in seen:
                seen.add(key)
                fixes.append(f)
    if len(arch_ccs) > 1 or (arch_ccs and len({g.compute_capability for g in m.gpus}) > 1):
        fixes.insert(
            0, "no build has kernels for every visible GPU: hide one with CUDA_VISIBLE_DEVICES"
        )
    if with_ and all(v.companion_only for v in hard) and req.torch is not None:
        older = _older_fit(profile, req, table)
        if older:
            fixes.insert(0, older)
    jetson = _jetson(m)
    if jetson:
        fixes.insert(0, jetson)
    if variant == "auto" and m.nvidia and not common:
        fixes.append("or plan a CPU build with --variant cpu")
    msg = f"no torch build fits {m.platform}, Python {m.python_full} ({what}): " + "; ".join(
        reasons[:3]
    )
    if fixes:
        msg += ". To make it fit: " + "; ".join(fixes[:4])
    return msg


# NVIDIA's page "Installing PyTorch for Jetson Platform" (the JetPack wheels, by JetPack
# release); the address as NVIDIA's own docs and PyTorch's Torch-TensorRT JetPack guide
# (pytorch.org/TensorRT, getting_started/jetpack) give it.
JETSON_WHEELS = (
    "https://docs.nvidia.com/deeplearning/frameworks/install-pytorch-jetson-platform/index.html"
)


def _jetson(m: _Machine) -> Optional[str]:
    """A Jetson (Linux aarch64 with a Tegra GPU: Xavier sm_72, Orin sm_87, ...): the PyTorch
    index's aarch64 builds are for server GPUs; NVIDIA builds torch for JetPack."""
    from envsetup.gpu_arch import TEGRA, parse_cc

    if m.platform != "linux_aarch64":
        return None
    tegra = [g for g in m.gpus if parse_cc(g.compute_capability) in TEGRA]
    if not tegra:
        return None
    g = tegra[0]
    return (
        f"GPU {g.index} ({g.name or '?'}, {sm(g.compute_capability or '')}) is a Jetson's: the "
        "PyTorch index has no builds for it; install NVIDIA's torch wheel for your JetPack "
        f"release ({JETSON_WHEELS})"
    )


def _older_fit(profile: Profile, req: Request, table: Table) -> Optional[str]:
    """ "ask for torch X (torchvision Y fits)" when a release outside the spec fits."""
    from dataclasses import replace

    try:
        other = resolve(profile, replace(req, torch=None), table)
    except NoBuildError:
        return None
    pins = " and ".join(f"{p.name} {p.version}" for p in other.pins[1:])
    return f"ask for --torch {other.torch} ({pins} fit{'s' if len(other.pins) == 2 else ''})"
