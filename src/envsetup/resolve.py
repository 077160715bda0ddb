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

from envsetup.compat import VARIANT_RE, Build, Patch, Release, Table
from envsetup.errors import NoBuildError, UsageError
from envsetup.plan import PYTORCH_INDEX, Candidate, Pin, Plan, Request
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


def parse_spec(spec: Optional[str]) -> Optional[SpecifierSet]:
    """'2.4' -> ==2.4.*, '2.4.1' -> ==2.4.1, '>=2.3,<2.6' as written, None/'latest' -> any."""
    if spec is None or spec.strip().lower() in ("", "latest", "newest", "*"):
        return None
    s = spec.strip()
    if "+" in s:
        raise UsageError(
            f"unknown torch version spec {spec!r}: give the public version (2.4.1) and the build "
            "with --variant (cu121)"
        )
    if re.match(r"^\d+\.\d+$", s):
        return SpecifierSet(f"=={s}.*")
    if re.match(r"^\d+\.\d+\.\d+$", s):
        return SpecifierSet(f"=={s}")
    try:
        ss = SpecifierSet(s)
    except InvalidSpecifier:
        ss = None
    if ss is None or not s or not any(ss):
        raise UsageError(
            f"unknown torch version spec {spec!r}: use e.g. 2.4, 2.4.1, '>=2.3,<2.6' or latest"
        )
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


def _cc(s: Optional[str]) -> Optional[tuple[int, int]]:
    if not s:
        return None
    m = re.match(r"^(?:sm_)?(\d+)\.?(\d)?$", s.strip())
    if not m:
        return None
    if "." in s:
        a, b = s.split(".", 1)
        return int(a), int(b)
    n = m.group(1)  # "86" -> (8, 6), "120" -> (12, 0)
    return int(n[:-1]), int(n[-1])


def sm(cc: str) -> str:
    c = _cc(cc)
    return f"sm_{c[0]}{c[1]}" if c else cc


def has_kernels(arch: tuple[str, ...], cc: str) -> bool:
    """Whether a build with these targets runs on compute capability ``cc``.

    Targets are the table's "8.6" or torch.cuda.get_arch_list()'s "sm_86", "compute_90",
    "sm_90a". Binary compatibility: SASS for major.m runs on major.n with m <= n; PTX
    (compute_XY) is JIT-compiled for any GPU of capability >= X.Y; arch-specific SASS
    (sm_90a) runs on exactly that capability.
    """
    g = _cc(cc)
    if g is None:
        return False
    for a in arch:
        m = re.fullmatch(r"compute_(\d+)", a)
        if m:
            p = _cc(m.group(1))
            if p and p <= g:
                return True
            continue
        m = re.fullmatch(r"sm_(\d+)a", a)
        if m:
            if _cc(m.group(1)) == g:
                return True
            continue
        b = _cc(a)
        if b and b[0] == g[0] and b[1] <= g[1]:
            return True
    return False


def _ver(v: Optional[str]) -> Optional[Version]:
    if not v:
        return None
    try:
        return Version(v)
    except InvalidVersion:
        return None


@dataclass
class _Verdict:
    patch: Patch
    release: Release
    build: Build
    reasons: list[str] = field(default_factory=list)  # why refused (empty: accepted)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why accepted, in words
    warnings: list[str] = field(default_factory=list)
    toolkit_met: bool = True
    soft: bool = False  # refused only for being the wrong kind of build for this machine
    cpu_fallback: bool = False  # a CUDA package-index build taken on a machine without a GPU

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def name(self) -> str:
        return self.build.variant

    def refuse(self, reason: str, fix: Optional[str] = None) -> None:
        self.reasons.append(reason)
        if fix:
            self.fixes.append(fix)


@dataclass(frozen=True)
class _Machine:
    platform: str
    python: str
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
        return f"use a Python with torch wheels on {m.platform} (Python {m.python} has none)"
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
        )
        return
    need, conf = floor
    tk = table.toolkit_min(b.cuda, m.driver_family)
    if m.driver is None:
        if explicit:
            v.warnings.append(
                f"no NVIDIA driver known for this machine: {label} needs a "
                f"{m.driver_family} driver "
                f">= {need}"
            )
        return
    have = Version(m.driver)
    major = b.cuda.split(".")[0]
    if have < Version(need):
        v.refuse(
            f"driver {m.driver} is older than {need}, the minimum for CUDA {major}.x builds",
            f"upgrade the driver to >= {need} for CUDA {major}.x builds (torch "
            f"{v.patch.version} {label})",
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


def _arch_check(v: _Verdict, m: _Machine) -> None:
    b = v.build
    label = b.same_as
    if b.arch is None:
        v.refuse(f"the compiled GPU architectures of {label} on {m.platform} are not known")
        return
    shown = ", ".join(sm(a) for a in b.arch)
    for g in m.gpus:
        name = f"GPU {g.index}" + (f" ({g.name})" if g.name else "")
        if g.compute_capability is None:
            v.warnings.append(f"{name}: compute capability unknown, kernels not checked")
            continue
        cc = g.compute_capability
        if has_kernels(b.arch, cc):
            v.notes.append(f"{name}, {sm(cc)}: kernels in {label} ({shown})")
            continue
        pg, px = _cc(cc), _cc(b.ptx)
        if px is not None and pg is not None and px <= pg:
            v.warnings.append(
                f"{name}, {sm(cc)}: no kernels in {label}, only PTX for {sm(b.ptx or '')}; it runs "
                "through JIT compilation (slow first start, not what the release intends)"
            )
            continue
        v.refuse(f"{name}, {sm(cc)}: no kernels in {label} ({shown})", f"arch:{cc}")


def _judge(
    patch: Patch, rel: Release, b: Build, m: _Machine, req: Request, variant: str, table: Table
) -> _Verdict:
    v = _Verdict(patch, rel, b)
    pys = rel.python_for(patch.version, m.platform)
    if m.python not in pys:
        shown = ", ".join(pys) or "none"
        v.refuse(
            f"no wheel for Python {m.python} on {m.platform} (published: {shown})",
            _python_hint(table, m),
        )
    info = rel.platforms[m.platform]
    if m.platform.startswith("macos"):
        need = info.min_macos_for.get(m.python, info.min_macos)
        if need and m.macos and _ver(m.macos) and Version(m.macos) < Version(need):
            v.refuse(
                f"needs macOS >= {need} (this machine: {m.macos})",
                f"upgrade macOS to >= {need} for torch {patch.version}",
            )
        elif need and not m.macos:
            v.warnings.append(f"macOS version unknown; these wheels need macOS >= {need}")
    if req.vision and not patch.torchvision:
        v.refuse(f"no torchvision release for torch {patch.version}", "drop torchvision")
    if req.audio and not patch.torchaudio:
        v.refuse(
            f"no torchaudio release for torch {patch.version} (torchaudio's last release is "
            "2.11.0)",
            "drop torchaudio or ask for torch <= 2.11",
        )
    if req.vision and patch.torchvision_confidence != "high":
        v.warnings.append(
            f"torchvision {patch.torchvision} for torch {patch.version} is "
            f"{patch.torchvision_confidence}"
            + (f": {patch.torchvision_note}" if patch.torchvision_note else "")
        )

    auto = variant == "auto"
    if b.kind == "cuda":
        if auto and not m.nvidia and b.variant != "default":
            v.refuse(f"CUDA build ({b.same_as}); this machine has no NVIDIA GPU with a driver")
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
            v.refuse("ROCm build; this machine has no AMD GPU")
            v.soft = True
        else:
            v.notes.append(f"ROCm {b.rocm} build (GPU architectures are not checked for ROCm)")
    elif auto and m.nvidia:
        v.refuse(
            f"{'CPU' if b.kind == 'cpu' else b.kind.upper()}-only build; this machine has "
            "an NVIDIA "
            "GPU (ask for --variant cpu to take it)"
        )
        v.soft = True
    if b.confidence != "high":
        v.warnings.append(
            f"the table's facts for {b.same_as} in torch {rel.minor} are {b.confidence} confidence "
            f"(sources: {', '.join(b.source)})"
        )
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


# --------------------------------------------------------------------------- resolve


def resolve(profile: Profile, request: Request, table: Table) -> Plan:
    """The best build for ``profile`` that satisfies ``request``; NoBuildError when none fits."""
    m = _machine(profile)
    _interpreter_check(profile, m, table)
    spec = parse_spec(request.torch)
    variant = check_variant(request.variant)
    base = request.index_base.rstrip("/")

    patches = [
        (p, r) for p, r in table.patches() if spec is None or spec.contains(p.v, prereleases=True)
    ]
    if not patches:
        raise NoBuildError(
            f"no torch release in the table matches {request.torch!r} (the table covers "
            f"{table.oldest} - {table.newest}; `envsetup compat check` tells whether it is stale)"
        )

    verdicts: list[_Verdict] = []
    skipped: list[str] = []
    for patch, rel in patches:
        if m.platform not in rel.platforms:
            skipped.append(f"torch {patch.version}: no wheels for {m.platform}")
            continue
        builds = rel.builds(m.platform)
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
                    f"torch {patch.version}: the table does not know its PyTorch-index variants "
                    "(only the package-index build)"
                )
            else:
                skipped.append(f"torch {patch.version}: no {variant} build for {m.platform}")
            continue
        if variant == "auto" and not rel.variants_known:
            skipped.append(
                f"torch {patch.version}: only the package-index build is known to the table "
                "(its PyTorch-index variants are not)"
            )
        for b in builds:
            verdicts.append(_judge(patch, rel, b, m, request, variant, table))

    accepted = sorted((v for v in verdicts if v.ok), key=_rank, reverse=True)
    refused = [v for v in verdicts if not v.ok]
    if not accepted:
        raise NoBuildError(_refusal(m, request, variant, refused, skipped, table))
    best = accepted[0]
    b, patch = best.build, best.patch

    pins = [Pin("torch", patch.version)]
    if request.vision and patch.torchvision:
        pins.append(Pin("torchvision", patch.torchvision))
    if request.audio and patch.torchaudio:
        pins.append(Pin("torchaudio", patch.torchaudio))

    why = [
        f"torch {patch.version} is the newest release matching "
        f"{request.torch or 'latest'!s} with a valid "
        f"{'GPU' if _accel(b) and not best.cpu_fallback else 'CPU'} build for {m.platform}, "
        f"Python {m.python}",
    ]
    if b.variant == "default":
        why.append(
            f"the plain package-index build ({b.same_as}) from the installer's default index"
        )
    else:
        why.append(f"variant {b.variant} from {base}/{b.variant}")
    if b.kind == "cuda" and len(accepted) > 1:
        others = sorted(
            {v.build.same_as for v in accepted if v.patch is patch and v.build.same_as != b.same_as}
        )
        if others:
            why.append(
                f"{b.same_as} is the newest CUDA the driver fully supports among the valid "
                f"builds of {patch.version} (also valid: {', '.join(others)})"
            )
    why.extend(best.notes)
    why.extend(skipped[:5])

    warnings = list(dict.fromkeys(best.warnings))
    if m.nvidia_without_driver and b.kind != "cuda":
        warnings.append(
            "an NVIDIA GPU is present but no driver was found: install the NVIDIA driver and "
            "plan again for a CUDA build"
        )
    ordered = accepted + sorted(refused, key=lambda v: v.patch.v, reverse=True)
    candidates = tuple(
        Candidate(
            torch=v.patch.version,
            variant=v.name if v.name != "default" else f"default ({v.build.same_as})",
            accepted=v.ok,
            reasons=tuple(v.reasons) if not v.ok else tuple(v.notes + v.warnings),
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
        local_version=f"{patch.version}+{b.local}" if b.local else patch.version,
        cuda=b.cuda,
        rocm=b.rocm,
        cudnn=b.cudnn,
        arch=b.arch or (),
        why=tuple(why),
        candidates=candidates,
        warnings=tuple(warnings),
    )


def _arch_hint(table: Table, m: _Machine, cc: str) -> str:
    for p, r in table.patches():
        if m.python not in r.python_for(p.version, m.platform):
            continue
        for b in r.builds(m.platform):
            if b.kind == "cuda" and b.arch and has_kernels(b.arch, cc):
                floor = table.floor(b.cuda or "", m.driver_family)
                need = f", driver >= {floor[0]}" if floor else ""
                newest = f"torch {p.version} {b.same_as}{need}"
                return f"{sm(cc)} needs a build with its kernels (newest: {newest})"
    return f"no build in the table has kernels for {sm(cc)}"


def _refusal(
    m: _Machine,
    req: Request,
    variant: str,
    refused: list[_Verdict],
    skipped: list[str],
    table: Table,
) -> str:
    what = f"torch {req.torch or 'latest'}, variant {variant}"
    if req.audio:
        what += ", with torchaudio"
    refused = sorted(refused, key=lambda v: v.patch.v, reverse=True)
    hard = [v for v in refused if not v.soft] or refused
    reasons: list[str] = []
    for v in hard:
        for r in v.reasons:
            if r not in reasons:
                reasons.append(r)
    if not reasons:
        reasons = list(dict.fromkeys(skipped))
    fixes: list[str] = []
    seen: set[str] = set()
    arch_ccs: list[str] = []
    # Candidates refused for one reason only are the nearest to fitting: their fixes first.
    for v in sorted(hard, key=lambda v: (len(v.reasons), tuple(-x for x in v.patch.v.release))):
        for f in v.fixes:
            if f.startswith("arch:"):
                cc = f[5:]
                if cc not in arch_ccs:
                    arch_ccs.append(cc)
                    fixes.append(_arch_hint(table, m, cc))
                continue
            key = f.split(" (torch ")[0]
            if key not in seen:
                seen.add(key)
                fixes.append(f)
    if len(arch_ccs) > 1 or (arch_ccs and len({g.compute_capability for g in m.gpus}) > 1):
        fixes.insert(
            0, "no build has kernels for every visible GPU: hide one with CUDA_VISIBLE_DEVICES"
        )
    if variant == "auto" and m.nvidia:
        fixes.append("or plan a CPU build with --variant cpu")
    msg = f"no torch build fits {m.platform}, Python {m.python} ({what}): " + "; ".join(reasons[:3])
    if fixes:
        msg += ". To make it fit: " + "; ".join(fixes[:3])
    return msg
