"""``compat refresh``: rewrite the facts of compat/ that the index listings hold.

Read through ``envsetup.index`` (PEP 691/503 listings, PEP 658 metadata, read out of the wheel
by HTTP range requests where an index serves no metadata file):

- the package index's torch, torchvision and torchaudio listings: releases, first upload dates,
  yanks, Requires-Python; Python, ABI and platform tags per platform; minimum macOS per Python;
  the metadata of the default Linux builds (their CUDA, pinned cuDNN and Triton) and of every
  companion release (its Requires-Dist on torch);
- the PyTorch index's ``<variant>/torch``, ``<variant>/torchvision`` and ``<variant>/torchaudio``
  pages, for the variants the table knows: on which platforms and patches each variant is
  published, and which companion releases each variant page has.

What no listing holds stays as written by hand (arch lists, PTX, driver floors, the PyTorch-index
variants' cuDNN, the pairing of companions with torch builds): a listing that contradicts one of
those facts is reported, never rewritten. ``refresh`` works on the JSON documents (so a rewrite
keeps every hand-written key and its order) and returns new documents, a diff and a report; the
command writes only with ``--write``.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion, Version

from envsetup.compat import COMPANIONS, dump_json
from envsetup.index import File, Index

PROJECTS = ("torch", *COMPANIONS)
# The first companion releases of the torch 2.x era (the table's): older ones are not read.
FIRST = {"torch": "2.0.0", "torchvision": "0.15.0", "torchaudio": "2.0.0"}
# Linux platforms whose default build carries CUDA, learnt from the wheel's metadata.
METADATA_PLATFORMS = ("linux_x86_64", "linux_aarch64")
_MACHINE = {"linux_x86_64": "x86_64", "linux_aarch64": "aarch64"}


# --------------------------------------------------------------------------- wheel tags


def platform_of(tag_platform: str) -> list[tuple[str, Optional[str]]]:
    """[(table platform, minimum macOS)] for a wheel's platform tag; [] for others."""
    p = tag_platform
    if p.endswith("_x86_64") and ("linux" in p):
        return [("linux_x86_64", None)]
    if p.endswith("_aarch64") and "linux" in p:
        return [("linux_aarch64", None)]
    if p == "win_amd64":
        return [("windows_x86_64", None)]
    if p.startswith("macosx_"):
        parts = p.split("_")
        if len(parts) >= 4:
            mac = f"{parts[1]}.{parts[2]}"
            arch = "_".join(parts[3:])
            out: list[tuple[str, Optional[str]]] = []
            if arch in ("arm64", "universal2"):
                out.append(("macos_arm64", mac if arch == "arm64" else max(mac, "11.0", key=_v)))
            if arch in ("x86_64", "universal2", "intel"):
                out.append(("macos_x86_64", mac))
            return out
    return []


def python_of(interpreter: str, abi: str) -> Optional[str]:
    """``cp311``/``cp311`` -> "3.11", ``cp313``/``cp313t`` -> "3.13t", ``py3``/``none`` -> "py3"."""
    if interpreter in ("py3", "py2.py3"):
        return "py3"
    if interpreter.startswith("cp3") and interpreter[3:].isdigit():
        py = f"3.{int(interpreter[3:])}"
        return py + "t" if abi.endswith("t") and abi.startswith("cp") else py
    return None


def _v(s: str) -> Version:
    return Version(s)


def _py_key(p: str) -> tuple[int, int]:
    if p == "py3":
        return (0, 0)
    return (int(p.split(".")[1].rstrip("t")), 1 if p.endswith("t") else 0)


@dataclass
class _Dist:
    """What the listing says about one release of a project."""

    version: str
    date: Optional[str] = None
    requires_python: Counter[str] = field(default_factory=Counter)
    yanked: list[Optional[str]] = field(default_factory=list)  # one per file
    # platform -> python -> lowest minimum macOS (None off macOS)
    wheels: dict[str, dict[str, Optional[str]]] = field(default_factory=dict)
    files: list[File] = field(default_factory=list)
    locals_: set[str] = field(default_factory=set)
    requires_torch: Optional[str] = None  # a companion's, once its metadata is known

    @property
    def all_yanked(self) -> Optional[str]:
        if self.yanked and all(y is not None for y in self.yanked):
            return next((y for y in self.yanked if y), "yanked")
        return None

    @property
    def rp(self) -> Optional[str]:
        return self.requires_python.most_common(1)[0][0] if self.requires_python else None


def _dists(files: Iterable[File], *, local: Optional[str] = None) -> dict[str, _Dist]:
    """Final releases in a listing, by public version (``local``: only that local label)."""
    out: dict[str, _Dist] = {}
    for f in files:
        if f.kind != "wheel":
            continue
        try:
            v = Version(f.version)
        except InvalidVersion:
            continue
        if v.is_prerelease or v.is_devrelease or v.is_postrelease:
            continue
        if local is not None and v.local != local:
            continue
        d = out.setdefault(v.public, _Dist(v.public))
        d.files.append(f)
        if v.local:
            d.locals_.add(v.local)
        if f.upload_time:
            day = f.upload_time[:10]
            d.date = min(d.date, day) if d.date else day
        if f.requires_python:
            d.requires_python[f.requires_python] += 1
        d.yanked.append(f.yanked)
        try:
            _, _, _, tags = parse_wheel_filename(f.filename)
        except ValueError:
            continue
        for t in tags:
            py = python_of(t.interpreter, t.abi)
            if py is None:
                continue
            for plat, mac in platform_of(t.platform):
                pys = d.wheels.setdefault(plat, {})
                if py not in pys or (
                    mac is not None and (pys[py] is None or _v(mac) < _v(str(pys[py])))
                ):
                    pys[py] = mac
    return out


def _macos(pys: dict[str, Optional[str]]) -> tuple[Optional[str], dict[str, str]]:
    """(minimum macOS of the platform, {Python: minimum} where a Python needs more)."""
    macs = [m for m in pys.values() if m]
    if not macs:
        return None, {}
    low = min(macs, key=_v)
    order = sorted(pys, key=_py_key)
    return low, {p: str(pys[p]) for p in order if pys[p] and _v(str(pys[p])) > _v(low)}


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class BuildFacts:
    """What a torch wheel's metadata says about its build."""

    cuda: Optional[str]  # "12.8"; None: no CUDA libraries (a CPU build)
    cudnn: Optional[str]
    triton: Optional[str]  # the requirement's specifier, "==3.6.0", "~=3.9.0"


def _requirements(metadata: str) -> list[Requirement]:
    out = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            try:
                out.append(Requirement(line.split(":", 1)[1].strip()))
            except InvalidRequirement:
                continue
    return out


def build_facts(metadata: str, platform: str, python: str) -> BuildFacts:
    """CUDA, cuDNN and Triton of the wheel, from the Requires-Dist that apply to ``platform``."""
    env = {
        "platform_system": "Linux",
        "sys_platform": "linux",
        "platform_machine": _MACHINE.get(platform, "x86_64"),
        "python_version": python.rstrip("t"),
        "python_full_version": python.rstrip("t") + ".0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    cuda = cudnn = triton = None
    for r in _requirements(metadata):
        if r.marker is not None and not r.marker.evaluate(env):
            continue
        pins = [s.version for s in r.specifier if s.operator in ("==", "===")]
        name = r.name.lower().replace("_", "-")
        if name in ("cuda-toolkit", "nvidia-cuda-runtime") or name.startswith(
            "nvidia-cuda-runtime-cu"
        ):
            if pins:
                cuda = ".".join(pins[0].split(".")[:2])
        elif name.startswith("nvidia-cudnn-cu") and pins:
            cudnn = pins[0]
        elif name in ("triton", "pytorch-triton"):
            triton = str(r.specifier) or None
    return BuildFacts(cuda, cudnn if cuda else None, triton if cuda else None)


def requires_torch(metadata: str) -> Optional[str]:
    """A companion's Requires-Dist on torch ("==2.4.1", ">=2.14.0"); None when it has none."""
    for r in _requirements(metadata):
        if r.name.lower() == "torch" and (r.marker is None or r.marker.evaluate({"extra": ""})):
            return str(r.specifier) or None
    return None


# --------------------------------------------------------------------------- reading


@dataclass
class Listings:
    """Everything refresh read, so that it can be derived from (and tested) without a network."""

    package: dict[str, list[File]]  # project -> files
    metadata: dict[str, Optional[str]]  # wheel file name -> METADATA (None: not served)
    pytorch: Optional[dict[str, dict[str, Optional[list[File]]]]] = None  # variant -> project
    package_index: str = ""
    pytorch_index: Optional[str] = None


def _pick(files: list[File], platform: str) -> Optional[File]:
    """The wheel pip would take for the oldest CPython on ``platform`` (highest build tag)."""
    best: Optional[tuple[tuple[int, int], int, File]] = None
    for f in files:
        try:
            _, _, build, tags = parse_wheel_filename(f.filename)
        except ValueError:
            continue
        for t in tags:
            py = python_of(t.interpreter, t.abi)
            if (
                py is None
                or py.endswith("t")
                or not any(p == platform for p, _ in platform_of(t.platform))
            ):
                continue
            key = (_py_key(py), -(build[0] if build else 0), f)
            if best is None or key[:2] < best[:2]:
                best = key
    return best[2] if best else None


def wanted_metadata(package: dict[str, list[File]], since: str = "2.0.0") -> list[File]:
    """The wheels whose metadata refresh reads: one per torch release and Linux platform, one
    per companion release that can go with torch >= ``since``."""
    out: list[File] = []
    for v, d in sorted(_dists(package.get("torch", [])).items(), key=lambda x: _v(x[0])):
        if _v(v) < _v(since):
            continue
        for plat in METADATA_PLATFORMS:
            f = _pick(d.files, plat)
            if f is not None:
                out.append(f)
    for name in COMPANIONS:
        for v, d in _dists(package.get(name, [])).items():
            if _v(v) < _v(FIRST[name]):
                continue
            f = _pick(d.files, "linux_x86_64") or (d.files[0] if d.files else None)
            if f is not None:
                out.append(f)
    return out


def variants_to_read(docs: dict[str, Any]) -> list[str]:
    """The PyTorch-index variant pages refresh reads: every variant the table names, listed or
    unconfirmed."""
    names: set[str] = set()
    for f in docs["index.json"]["releases"]:
        rel = docs.get(f, {})
        names |= set(rel.get("variants", {}))
        names |= {k.split(" ")[0] for k in rel.get("unconfirmed", {})}
    return sorted(names)


def read_listings(
    package_index: str,
    pytorch_index: Optional[str],
    variants: Iterable[str] = (),
    *,
    metadata: bool = True,
) -> Listings:
    """Read the listings (and the metadata refresh needs) from the two indexes.

    Each index answers one listing before the long part (the package index's metadata, some
    hundred reads) begins, so an index that cannot be reached fails in a second or two, not
    after the other one's minute of reads."""
    package: dict[str, list[File]] = {}
    meta: dict[str, Optional[str]] = {}
    pt: Optional[dict[str, dict[str, Optional[list[File]]]]] = None
    with Index(package_index) as idx:
        package[PROJECTS[0]] = idx.files(PROJECTS[0]) or []
        if pytorch_index is not None:
            pt = {}
            base = pytorch_index.rstrip("/")
            for v in sorted(set(variants)):
                with Index(f"{base}/{v}") as vi:
                    pt[v] = {p: vi.files(p) for p in PROJECTS}
        for p in PROJECTS[1:]:
            package[p] = idx.files(p) or []
        if metadata:
            for f in wanted_metadata(package):
                meta[f.filename] = idx.metadata(f, from_wheel=True)
    return Listings(package, meta, pt, package_index, pytorch_index)


# --------------------------------------------------------------------------- derivation


@dataclass
class Report:
    changes: list[str] = field(default_factory=list)  # listing facts the table was behind on
    contradictions: list[str] = field(default_factory=list)  # hand-sourced facts a listing denies
    todo: list[str] = field(default_factory=list)  # what a person must add by hand

    def change(self, text: str) -> None:
        if text not in self.changes:
            self.changes.append(text)

    def contradict(self, text: str) -> None:
        if text not in self.contradictions:
            self.contradictions.append(text)


def _minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def _set(d: dict[str, Any], key: str, value: Any, report: Report, what: str) -> None:
    """Set ``d[key]`` (None removes it), recording a change when it differs."""
    old = d.get(key)
    if value is None:
        if key in d and old is not None:
            report.change(f"{what}: {key} {old!r} removed")
        d.pop(key, None)
        return
    if old != value:
        report.change(
            f"{what}: {key} {old!r} -> {value!r}" if key in d else f"{what}: {key} {value!r}"
        )
    d[key] = value


def _insert_after(d: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    if key in d or after not in d:
        d[key] = value
        return d
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[k] = v
        if k == after:
            out[key] = value
    d.clear()
    d.update(out)
    return d


def derive(
    docs: dict[str, Any], listings: Listings, *, today: Optional[str] = None
) -> tuple[dict[str, Any], Report]:
    """New table documents (a deep copy of ``docs`` with the listing facts rewritten)."""
    new: dict[str, Any] = json.loads(json.dumps(docs))
    report = Report()
    comps = _derive_companions(new, listings, report)
    _derive_torch(new, listings, comps, report)
    if listings.pytorch is not None:
        _derive_pytorch_index(new, listings.pytorch, report)
    if report.changes:
        day = today or datetime.now(timezone.utc).date().isoformat()
        new["index.json"]["collected"] = day
    return new, report


def _derive_companions(
    new: dict[str, Any], listings: Listings, report: Report
) -> dict[str, dict[str, _Dist]]:
    index = new["index.json"]
    out: dict[str, dict[str, _Dist]] = {}
    for name in COMPANIONS:
        fname = index.get("companions", {}).get(name, f"companions/{name}.json")
        doc = new.setdefault(
            fname,
            {"schema_version": index.get("schema_version", 2), "project": name,
             "source": ["pypi"], "releases": {}},
        )  # fmt: skip
        rels: dict[str, Any] = doc.setdefault("releases", {})
        dists = {
            v: d
            for v, d in _dists(listings.package.get(name, [])).items()
            if _v(v) >= _v(FIRST[name])
        }
        out[name] = dists
        for v in sorted(dists, key=_v):
            d = dists[v]
            what = f"{name} {v}"
            fresh = v not in rels
            r = rels.setdefault(v, {})
            if fresh:
                report.change(f"{what}: new release on the package index")
            # a new release's fields are part of that one change
            sink = Report() if fresh else report
            _set(r, "date", d.date, sink, what)
            _set(r, "requires_python", d.rp, sink, what)
            f = next((f for f in d.files if f.filename in listings.metadata), None)
            meta = listings.metadata.get(f.filename) if f else None
            if meta is not None:
                _set(r, "requires_torch", requires_torch(meta), sink, what)
            _set(r, "yanked", d.all_yanked, sink, what)
            d.requires_torch = r.get("requires_torch")
            plats: dict[str, Any] = {}
            for plat in sorted(
                d.wheels,
                key=lambda p: (
                    "linux_x86_64",
                    "linux_aarch64",
                    "windows_x86_64",
                    "macos_arm64",
                    "macos_x86_64",
                ).index(p),
            ):
                pys = d.wheels[plat]
                entry: dict[str, Any] = {"python": sorted(pys, key=_py_key)}
                low, per = _macos(pys)
                if low:
                    entry["min_macos"] = low
                if per:
                    entry["min_macos_for"] = per
                plats[plat] = entry
            if r.get("platforms") != plats:
                sink.change(f"{what}: wheels (Python, platforms, macOS) from the listing")
            r["platforms"] = plats
        for v in list(rels):
            if v not in dists:
                report.contradict(f"{name} {v} is in the table but not on the package index")
        doc["releases"] = {v: rels[v] for v in sorted(rels, key=_v)}
    return out


def _derive_torch(
    new: dict[str, Any], listings: Listings, comps: dict[str, dict[str, _Dist]], report: Report
) -> None:
    index = new["index.json"]
    dists = _dists(listings.package.get("torch", []))
    oldest = min((_v(p) for f in index["releases"] for p in new[f]["patches"]), default=_v("2.0.0"))
    by_minor: dict[str, list[str]] = defaultdict(list)
    for v in dists:
        if _v(v) >= oldest and _v(v).major == 2:
            by_minor[_minor(v)].append(v)
    files = {new[f]["release"]: f for f in index["releases"]}
    for minor in sorted(by_minor, key=_v):
        versions = sorted(by_minor[minor], key=_v)
        fname = files.get(minor)
        if fname is None:
            fname = f"torch/{minor}.json"
            new[fname] = {
                "schema_version": index.get("schema_version", 2), "release": minor, "patches": {},
                "platforms": {}, "variants_known": False,
                "variants_note": "The PyTorch-index variants of this release are not in the table yet.",
                "variants": {},
            }  # fmt: skip
            index["releases"] = sorted([*index["releases"], fname], key=lambda f: _v(f[6:-5]))
            files[minor] = fname
            report.change(f"torch {minor}: new release file {fname}")
            report.todo.append(
                f"torch {minor}: add its PyTorch-index variants, arch lists and sources by hand "
                "(docs/ADDING-A-RELEASE.md)"
            )
        rel = new[fname]
        _derive_release(rel, versions, dists, listings, comps, report)
    for f in index["releases"]:
        for p in new[f]["patches"]:
            if p not in dists:
                report.contradict(f"torch {p} is in the table but not on the package index")


def _derive_release(
    rel: dict[str, Any],
    versions: list[str],
    dists: dict[str, _Dist],
    listings: Listings,
    comps: dict[str, dict[str, _Dist]],
    report: Report,
) -> None:
    minor = rel["release"]
    patches: dict[str, Any] = rel.setdefault("patches", {})
    for v in versions:
        d = dists[v]
        what = f"torch {v}"
        if v not in patches:
            report.change(f"{what}: new patch release")
            patches[v] = _new_patch(v, d, comps, report)
        p = patches[v]
        _set(p, "date", d.date, report, what)
        if "requires_python" not in p and d.rp:
            _insert_after(p, "date", "requires_python", d.rp)
            report.change(f"{what}: requires_python {d.rp!r}")
        else:
            _set(p, "requires_python", d.rp, report, what)
        if d.all_yanked or "yanked" in p:
            _set(p, "yanked", d.all_yanked, report, what)
        _check_pairing(v, p, comps, report)
    rel["patches"] = {k: patches[k] for k in sorted(patches, key=_v)}

    order = ("linux_x86_64", "linux_aarch64", "windows_x86_64", "macos_arm64", "macos_x86_64")
    seen_plats = sorted({pl for v in versions for pl in dists[v].wheels}, key=order.index)
    plats: dict[str, Any] = rel.setdefault("platforms", {})
    by_patch: dict[str, Any] = rel.get("python_by_patch", {})
    for plat in seen_plats:
        have = [v for v in versions if plat in dists[v].wheels]
        top = max(have, key=_v)
        pys = dists[top].wheels[plat]
        info = plats.get(plat)
        what = f"torch {minor} {plat}"
        if info is None:
            info = {"python": [], "source": ["pypi"]}
            plats[plat] = info
            report.change(f"{what}: new platform on the package index")
        listed = sorted(pys, key=_py_key)
        _set(info, "python", listed, report, what)
        if plat.startswith("macos"):
            low, per = _macos(pys)
            _set(info, "min_macos", low, report, what)
            if per or "min_macos_for" in info:
                _set(info, "min_macos_for", per or None, report, what)
        for v in versions:
            mine = sorted(dists[v].wheels.get(plat, {}), key=_py_key)
            cur = by_patch.get(v, {})
            if mine != listed:
                if cur.get(plat) != mine:
                    report.change(
                        f"torch {v} {plat}: Python {', '.join(mine) or 'none'} (differs from the release's list)"
                    )
                by_patch.setdefault(v, {})[plat] = mine
            elif plat in cur:
                report.change(f"torch {v} {plat}: Python now the same as the release's list")
                del cur[plat]
        if plat in METADATA_PLATFORMS:
            _default_from_metadata(info, top, dists[top], plat, listings, report)
            for v in have:
                if v != top:
                    _check_patch_default(info, v, dists[v], plat, listings, report)
        else:
            info.setdefault("default", _guess_default(plat))
            info.setdefault("source", ["pypi"])
    for plat in list(plats):
        if plat not in seen_plats:
            report.contradict(
                f"torch {minor} {plat}: in the table, but the package index has no wheels for it"
            )
    by_patch = {v: by_patch[v] for v in sorted(by_patch, key=_v) if by_patch[v]}
    if by_patch:
        rel["python_by_patch"] = by_patch
        if list(rel) != _ordered_keys(rel):
            _reorder(rel)
    else:
        rel.pop("python_by_patch", None)


def _ordered_keys(rel: dict[str, Any]) -> list[str]:
    order = ["schema_version", "release", "patches", "platforms", "python_by_patch", "variants_known",
             "variants_note", "variants", "unconfirmed", "notes"]  # fmt: skip
    return sorted(rel, key=lambda k: order.index(k) if k in order else len(order))


def _reorder(rel: dict[str, Any]) -> None:
    items = [(k, rel[k]) for k in _ordered_keys(rel)]
    rel.clear()
    rel.update(items)


def _guess_default(plat: str) -> dict[str, Any]:
    kind = "mps" if plat == "macos_arm64" else "cpu"
    return {"build": kind, "local": None, "source": ["pypi"]}


def _default_from_metadata(
    info: dict[str, Any], version: str, d: _Dist, plat: str, listings: Listings, report: Report
) -> None:
    f = _pick(d.files, plat)
    meta = listings.metadata.get(f.filename) if f else None
    what = f"torch {version} {plat} default build"
    if meta is None:
        if f is not None and f.filename not in listings.metadata:
            return  # not read (refresh without metadata)
        report.todo.append(
            f"{what}: no metadata was served; its CUDA, cuDNN and Triton are unchecked"
        )
        return
    py = (
        next((python_of(t.interpreter, t.abi) for t in parse_wheel_filename(f.filename)[3]), "3.11")
        if f
        else "3.11"
    )
    facts = build_facts(meta, plat, py or "3.11")
    dflt: dict[str, Any] = info.setdefault("default", {"build": "cpu", "local": None})
    was = dflt.get("build")
    if facts.cuda is None:
        if was == "cuda":
            report.contradict(
                f"{what}: the table says CUDA {dflt.get('cuda')}, the metadata names no CUDA libraries"
            )
        return
    if was != "cuda":
        report.change(f"{what}: CUDA {facts.cuda} (was {was})")
        arch_src = [s for s in dflt.get("source", []) if s != "pypi"]
        new_d = {"build": "cuda", "local": "cu" + facts.cuda.replace(".", ""), "cuda": facts.cuda,
                 "cudnn": facts.cudnn, "triton": facts.triton, "arch": None,
                 "source": ["pypi", *arch_src]}  # fmt: skip
        info["default"] = new_d
        report.todo.append(f"{what}: hand-source its arch list (torch/lib/libtorch_python.so)")
        return
    if dflt.get("cuda") != facts.cuda:
        report.contradict(
            f"{what}: the table says CUDA {dflt.get('cuda')}, the metadata pins CUDA {facts.cuda} "
            "(rewritten; check its arch list by hand)"
        )
        dflt["cuda"] = facts.cuda
        dflt["local"] = "cu" + facts.cuda.replace(".", "")
        report.change(f"{what}: cuda -> {facts.cuda!r}")
    _set(dflt, "cudnn", facts.cudnn, report, what)
    if "triton" not in dflt and facts.triton:
        _insert_after(dflt, "cudnn" if "cudnn" in dflt else "cuda", "triton", facts.triton)
        report.change(f"{what}: triton {facts.triton!r}")
    else:
        _set(dflt, "triton", facts.triton, report, what)


def _check_patch_default(
    info: dict[str, Any], version: str, d: _Dist, plat: str, listings: Listings, report: Report
) -> None:
    """An older patch's default build must be the release's (the table has one per release)."""
    f = _pick(d.files, plat)
    meta = listings.metadata.get(f.filename) if f else None
    if meta is None or f is None:
        return
    py = python_of(*_first_tag(f)) or "3.11"
    facts = build_facts(meta, plat, py)
    dflt = info.get("default") or {}
    have = (dflt.get("cuda"), dflt.get("cudnn")) if dflt.get("build") == "cuda" else (None, None)
    if (facts.cuda, facts.cudnn) != have:
        report.contradict(
            f"torch {version} {plat} default build: CUDA {facts.cuda}, cuDNN {facts.cudnn} in its "
            f"metadata; the release's entry says CUDA {have[0]}, cuDNN {have[1]}"
        )


def _first_tag(f: File) -> tuple[str, str]:
    t = next(iter(parse_wheel_filename(f.filename)[3]))
    return t.interpreter, t.abi


def _new_patch(
    v: str, d: _Dist, comps: dict[str, dict[str, _Dist]], report: Report
) -> dict[str, Any]:
    """A patch entry for a release the table lacks, with the companions the listings pair."""
    p: dict[str, Any] = {"date": d.date}
    if d.rp:
        p["requires_python"] = d.rp
    sources = ["pypi"]
    for name in COMPANIONS:
        choice, how = _propose_pairing(v, d, comps.get(name, {}))
        p[name] = choice
        if how == "inferred":
            p[f"{name}_confidence"] = "inferred"
            p[f"{name}_note"] = f"uploaded within two days of torch {v} and admits it; no exact pin"
        if choice is None:
            report.todo.append(
                f"torch {v}: no {name} release pins it; pair one by hand or leave null"
            )
    p["source"] = sources
    return p


def _propose_pairing(v: str, d: _Dist, dists: dict[str, _Dist]) -> tuple[Optional[str], str]:
    exact = [c for c, cd in dists.items() if _pins(cd) == f"=={v}"]
    if exact:
        return max(exact, key=_v), "pin"
    near = []
    for c, cd in dists.items():
        spec = _pins(cd)
        if spec and _contains(spec, v) and cd.date and d.date:
            gap = (datetime.fromisoformat(cd.date) - datetime.fromisoformat(d.date)).days
            if 0 <= gap <= 2:
                near.append(c)
    if near:
        return max(near, key=_v), "inferred"
    return None, "none"


def _pins(cd: _Dist) -> Optional[str]:
    return cd.requires_torch


def _contains(spec: str, v: str) -> bool:
    try:
        return SpecifierSet(spec).contains(v, prereleases=True)
    except InvalidSpecifier:
        return False


def _check_pairing(
    v: str, p: dict[str, Any], comps: dict[str, dict[str, _Dist]], report: Report
) -> None:
    for name in COMPANIONS:
        val = p.get(name)
        versions: set[str] = set()
        if isinstance(val, str):
            versions.add(val)
        elif isinstance(val, dict):
            for c in val.values():
                if isinstance(c, str):
                    versions.add(c)
                elif isinstance(c, dict) and isinstance(c.get("version"), str):
                    versions.add(c["version"])
        for c in versions:
            cd = comps.get(name, {}).get(c)
            if cd is None:
                report.contradict(
                    f"torch {v}: paired with {name} {c}, which is not on the package index"
                )
                continue
            spec = _pins(cd)
            if spec and not _contains(spec, v):
                report.contradict(
                    f"torch {v}: paired with {name} {c}, whose metadata requires torch{spec}"
                )


def _derive_pytorch_index(
    new: dict[str, Any], pages: dict[str, dict[str, Optional[list[File]]]], report: Report
) -> None:
    """Variant presence per platform and patch, and companions per variant page."""
    for fname in new["index.json"]["releases"]:
        rel = new[fname]
        patches = list(rel["patches"])
        variants: dict[str, Any] = rel.get("variants", {})
        names = set(variants) | {k.split(" ")[0] for k in rel.get("unconfirmed", {})}
        for name in sorted(names):
            torch_files = (pages.get(name) or {}).get("torch")
            if torch_files is None:
                if name in variants:
                    report.contradict(
                        f"torch {rel['release']} {name}: the PyTorch index has no {name}/torch page"
                    )
                continue
            found = _dists(torch_files, local=name)
            have = {v: d for v, d in found.items() if v in patches}
            where: dict[str, set[str]] = defaultdict(set)  # platform -> patches
            for v, d in have.items():
                for plat in d.wheels:
                    where[plat].add(v)
            if name not in variants:
                if have:
                    shown = ", ".join(f"{v}+{name}" for v in sorted(have, key=_v))
                    report.contradict(
                        f"torch {rel['release']} {name}: on the PyTorch index ({shown}), but the "
                        "table has it as unconfirmed: move it into variants with its sources"
                    )
                continue
            var = variants[name]
            what = f"torch {rel['release']} {name}"
            if not have:
                report.contradict(
                    f"{what}: in the table, but the PyTorch index lists none of its builds"
                )
                continue
            vplats = var.setdefault("platforms", {})
            for plat in sorted(where):
                if plat not in vplats and plat in rel.get("platforms", {}):
                    vplats[plat] = {"arch": None} if name.startswith("cu") else {}
                    report.change(f"{what}: published for {plat} on the PyTorch index")
                    if name.startswith("cu"):
                        report.todo.append(f"{what} {plat}: hand-source its arch list")
            for plat in list(vplats):
                if plat not in where:
                    report.contradict(
                        f"{what}: the table lists {plat}, the PyTorch index has no such wheel"
                    )
            pub = sorted({v for s in where.values() for v in s}, key=_v)
            want = pub if len(pub) < len(patches) else None
            if var.get("patches") != want:
                _set(var, "patches", want, report, what)
            _check_variant_companions(rel, name, pages.get(name) or {}, pub, report)


def _check_variant_companions(
    rel: dict[str, Any],
    variant: str,
    pages: dict[str, Optional[list[File]]],
    published: list[str],
    report: Report,
) -> None:
    for v in published:
        p = rel["patches"][v]
        for name in COMPANIONS:
            val = p.get(name)
            choice: Any = val.get(variant, val.get("*")) if isinstance(val, dict) else val
            if isinstance(choice, dict):
                choice = choice.get("version")
            if not isinstance(choice, str):
                continue
            files = pages.get(name)
            on_page = _dists(files or [], local=None)
            if choice not in on_page:
                report.contradict(
                    f"torch {v} {variant}: paired with {name} {choice}, which the {variant}/{name} page does not list"
                )


# --------------------------------------------------------------------------- documents


def load_docs(root: Path) -> dict[str, Any]:
    """Every JSON document of the table in ``root``, by path relative to it."""
    docs: dict[str, Any] = {}
    for p in sorted(root.rglob("*.json")):
        docs[p.relative_to(root).as_posix()] = json.loads(p.read_text(encoding="utf-8"))
    return docs


def diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A unified diff of every document that changed (``compat/<file>`` names)."""
    out: list[str] = []
    for name in sorted(set(old) | set(new)):
        a = dump_json(old[name]).splitlines(keepends=True) if name in old else []
        b = dump_json(new[name]).splitlines(keepends=True) if name in new else []
        if a != b:
            out.extend(difflib.unified_diff(a, b, f"a/compat/{name}", f"b/compat/{name}", n=2))
    return "".join(out)


def write_docs(root: Path, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Write the documents that changed; returns their names."""
    written = []
    for name, data in new.items():
        text = dump_json(data)
        if name not in old or dump_json(old[name]) != text:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(name)
    return sorted(written)
