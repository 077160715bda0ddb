"""The table loads, is shipped in the wheel, and bad data fails with file, key and reason."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from envsetup.compat import CompatTableError, load_table

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "compat"


def test_table_covers_2_0_to_2_15_with_sources() -> None:
    table = load_table()
    versions = [p.version for p, _ in table.patches()]
    for v in ("2.0.0", "2.0.1", "2.4.1", "2.7.1", "2.12.1", "2.14.1", "2.15.0"):
        assert v in versions
    # the newest is read, never written here: adding a release must not break this test
    assert table.oldest == "2.0.0" and table.newest == max(versions, key=Version)
    for _, rel in table.patches():
        for by in rel.variants.values():
            for b in by.values():
                assert b.source and all(s in table.sources for s in b.source)
    # What the sources only suggest stays marked: 2.15's PyTorch-index builds are medium, and
    # the builds no release record confirms are unconfirmed, each with its reason.
    r215 = next(r for r in table.releases if r.minor == "2.15")
    assert {b.confidence for by in r215.variants.values() for b in by.values()} == {"medium"}
    assert not any(v.startswith("cu12") for v in r215.variants)  # no CUDA 12.x in 2.15
    assert "cu134" in r215.unconfirmed and all(r215.unconfirmed.values())


def test_default_load_is_the_same_as_the_repo_table() -> None:
    shipped, repo = load_table(), load_table(COMPAT)
    assert [p.version for p, _ in shipped.patches()] == [p.version for p, _ in repo.patches()]
    assert shipped == repo  # every release, patch, build, floor and source


def test_table_equality_sees_a_changed_older_patch(copy: Path) -> None:
    edit(copy, "torch/2.4.json", lambda d: d["patches"]["2.4.0"].__setitem__("date", "2000-01-01"))
    assert load_table(copy) != load_table(COMPAT)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    dst = tmp_path / "compat"
    shutil.copytree(COMPAT, dst)
    return dst


def edit(root: Path, name: str, change: Callable[[Any], None]) -> None:
    p = root / name
    data = json.loads(p.read_text())
    change(data)
    p.write_text(json.dumps(data))


CORRUPT: list[tuple[str, str, Callable[[Any], None], str]] = [
    (
        "arch-not-a-cc",
        "torch/2.4.json",
        lambda d: d["variants"]["cu121"]["platforms"]["linux_x86_64"].__setitem__(
            "arch", ["sm_80"]
        ),
        "compat/torch/2.4.json: variants.cu121.platforms.linux_x86_64.arch[0]: 'sm_80' "
        "does not look like a compute capability",
    ),
    (
        "missing-python",
        "torch/2.7.json",
        lambda d: d["platforms"]["linux_x86_64"].pop("python"),
        "compat/torch/2.7.json: platforms.linux_x86_64.python: missing",
    ),
    (
        "unknown-source",
        "torch/2.9.json",
        lambda d: d["variants"]["cu130"].__setitem__("source", ["my-memory"]),
        "compat/torch/2.9.json: variants.cu130.source: source 'my-memory' is not defined "
        "in compat/sources.json",
    ),
    (
        "cuda-does-not-match-name",
        "torch/2.8.json",
        lambda d: d["variants"]["cu128"].__setitem__("cuda", "12.9"),
        "compat/torch/2.8.json: variants.cu128.cuda: 12.9 does not match the variant name cu128",
    ),
    (
        "schema-version",
        "torch/2.0.json",
        lambda d: d.__setitem__("schema_version", 99),
        "compat/torch/2.0.json: schema_version: 99 is not supported",
    ),
    (
        "typo-key",
        "torch/2.5.json",
        lambda d: d["variants"]["cu124"].__setitem__("cudn", "9"),
        "compat/torch/2.5.json: variants.cu124.cudn: unknown key",
    ),
    (
        "bad-confidence",
        "torch/2.6.json",
        lambda d: d["variants"]["cu126"].__setitem__("confidence", "sure"),
        "compat/torch/2.6.json: variants.cu126.confidence: 'sure' is not one of high, "
        "medium, inferred",
    ),
    (
        "bad-floor",
        "cuda.json",
        lambda d: d["minor_version_floor"]["12"].__setitem__("linux", "five-two-five"),
        "compat/cuda.json: minor_version_floor.12.linux: 'five-two-five' is not a version",
    ),
    (
        "no-floor-for-a-cuda-major",
        "cuda.json",
        lambda d: d["minor_version_floor"].pop("11"),
        "compat/torch/2.0.json: variants.cu117.cuda: CUDA 11.x has no driver floor in "
        "compat/cuda.json",
    ),
    (
        "min-macos-for-null",
        "torch/2.8.json",
        lambda d: d["platforms"]["macos_arm64"]["min_macos_for"].__setitem__("3.12", None),
        "compat/torch/2.8.json: platforms.macos_arm64.min_macos_for.3.12: must not be null",
    ),
    (
        "min-macos-for-not-a-version",
        "torch/2.8.json",
        lambda d: d["platforms"]["macos_arm64"]["min_macos_for"].__setitem__("3.12", "Sonoma"),
        "compat/torch/2.8.json: platforms.macos_arm64.min_macos_for.3.12: 'Sonoma' is not a "
        "version",
    ),
    (
        "min-macos-for-bad-key",
        "torch/2.8.json",
        lambda d: d["platforms"]["macos_arm64"]["min_macos_for"].__setitem__("py3.12", "14.0"),
        "compat/torch/2.8.json: platforms.macos_arm64.min_macos_for.py3.12: 'py3.12' does not "
        "look like a Python version",
    ),
    (
        "min-macos-for-unpublished-python",
        "torch/2.8.json",
        lambda d: d["platforms"]["macos_arm64"]["min_macos_for"].__setitem__("3.31", "14.0"),
        "compat/torch/2.8.json: platforms.macos_arm64.min_macos_for.3.31: Python 3.31 is not in "
        "platforms.macos_arm64.python",
    ),
    (
        "unconfirmed-null",
        "torch/2.15.json",
        lambda d: d["unconfirmed"].__setitem__("cu134", None),
        "compat/torch/2.15.json: unconfirmed.cu134: must not be null",
    ),
    (
        "unconfirmed-not-a-variant",
        "torch/2.15.json",
        lambda d: d["unconfirmed"].__setitem__("cuda 13.4", "seen in an RC matrix"),
        "compat/torch/2.15.json: unconfirmed.cuda 13.4: the key is a variant",
    ),
    (
        "companion-not-in-its-file",
        "torch/2.14.json",
        lambda d: d["patches"]["2.14.1"].__setitem__("torchvision", "0.29.9"),
        "compat/torch/2.14.json: patches.2.14.1.torchvision: torchvision 0.29.9 is not in "
        "compat/companions/torchvision.json",
    ),
    (
        "companion-per-build-bad-key",
        "torch/2.14.json",
        lambda d: d["patches"]["2.14.1"]["torchaudio"].__setitem__("cuda13", "2.11.0"),
        "compat/torch/2.14.json: patches.2.14.1.torchaudio.cuda13: the key is",
    ),
    (
        "companion-per-build-not-in-its-file",
        "torch/2.14.json",
        lambda d: d["patches"]["2.14.1"]["torchaudio"].__setitem__("cu126", {"version": "2.12"}),
        "compat/torch/2.14.json: patches.2.14.1.torchaudio.cu126: torchaudio 2.12 is not in",
    ),
    (
        "companion-requires-python-not-a-specifier",
        "companions/torchvision.json",
        lambda d: d["releases"]["0.29.2"].__setitem__("requires_python", "3.10 or newer"),
        "compat/companions/torchvision.json: releases.0.29.2.requires_python: '3.10 or newer' "
        "is not a version specifier",
    ),
    (
        "companion-python-tag",
        "companions/torchaudio.json",
        lambda d: d["releases"]["2.11.1"]["platforms"]["linux_x86_64"].__setitem__(
            "python", ["cp311"]
        ),
        "compat/companions/torchaudio.json: releases.2.11.1.platforms.linux_x86_64.python[0]: "
        "'cp311' does not look like",
    ),
    (
        "variant-patches-not-a-patch",
        "torch/2.9.json",
        lambda d: d["variants"]["cu129"].__setitem__("patches", ["2.9.7"]),
        "compat/torch/2.9.json: variants.cu129.patches[0]: 2.9.7 is not one of the patches",
    ),
    (
        "patch-of-another-release",
        "torch/2.3.json",
        lambda d: d["patches"].__setitem__("2.4.9", d["patches"]["2.3.1"]),
        "compat/torch/2.3.json: patches.2.4.9: 2.4.9 is not a patch release of 2.3",
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT]
)
def test_corrupt_table(copy: Path, name: str, change: Callable[[Any], None], message: str) -> None:
    edit(copy, name, change)
    with pytest.raises(CompatTableError) as err:
        load_table(copy)
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.exit_code == 2


def test_invalid_json_names_the_line(copy: Path) -> None:
    p = copy / "torch" / "2.1.json"
    p.write_text(p.read_text().replace('"patches": {', '"patches": {,', 1))
    with pytest.raises(
        CompatTableError, match=r"^compat/torch/2\.1\.json: line \d+ column \d+: invalid JSON"
    ):
        load_table(copy)


def test_missing_file(copy: Path) -> None:
    (copy / "torch" / "2.10.json").unlink()
    with pytest.raises(
        CompatTableError, match=r"^compat/torch/2\.10\.json: file missing from the table$"
    ):
        load_table(copy)


@pytest.mark.timeout(300)
def test_wheel_ships_the_table(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=280,
    )
    (wheel,) = tmp_path.glob("envsetup-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for f in COMPAT.rglob("*.json"):
            rel = f.relative_to(COMPAT).as_posix()
            assert f"envsetup/compat_data/{rel}" in names
            assert z.read(f"envsetup/compat_data/{rel}") == f.read_bytes()


# ---------------------------------------------------------------- rules on the shipped table
#
# Every plan the shipped table produces from the package index names wheels that the recorded
# listing of the package index has for that machine: judged here with packaging's tag logic on
# the recorded file names and Requires-Python (tests/fixtures/indexes/package, SOURCES.md), not
# with the table's own summary of them. A table ahead of the recording fails this test: record
# the listings again (docs/ADDING-A-RELEASE.md).

LISTING = ROOT / "tests" / "fixtures" / "indexes" / "package"
MACHINE_PYTHONS = [
    "3.8.18", "3.9.19", "3.10.14", "3.11.7", "3.12.4", "3.13.1", "3.13.2t",
    "3.14.0", "3.14.1", "3.14.2", "3.14.2t", "3.15.0", "3.15.0t",
]  # fmt: skip
MACHINE_PLATFORMS = [
    ("linux_x86_64", "linux", "x86_64", None),
    ("linux_aarch64", "linux", "aarch64", None),
    ("windows_x86_64", "windows", "x86_64", None),
    *[("macos_arm64", "darwin", "arm64", m) for m in ("11.7", "12.7", "13.6", "14.5")],
    *[("macos_x86_64", "darwin", "x86_64", m) for m in ("10.15", "13.6")],
]


@functools.cache
def recorded(project: str) -> dict[str, list[dict[str, Any]]]:
    """version -> the recorded files of the package index's listing."""
    out: dict[str, list[dict[str, Any]]] = {}
    for f in json.loads((LISTING / f"{project}.json").read_text())["files"]:
        out.setdefault(parse_wheel_filename(f["filename"])[1].public, []).append(f)
    return out


def machine_tags(platform: str, python: str, macos: Optional[str]) -> set[Tag]:
    minor = int(python.split(".")[1])
    ft = python.endswith("t")
    version = (3, minor)
    abis = [f"cp3{minor}t"] if ft else [f"cp3{minor}", "abi3", "none"]
    if platform.startswith("linux"):
        arch = platform.split("_", 1)[1]
        plats = [f"manylinux_2_{n}_{arch}" for n in range(35, 16, -1)]
        plats += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    elif platform == "windows_x86_64":
        plats = ["win_amd64"]
    else:
        major, mn = (int(x) for x in str(macos).split("."))
        plats = list(mac_platforms((major, mn), platform.split("_", 1)[1]))
    return set(cpython_tags(version, abis, plats)) | set(
        compatible_tags(version, f"cp3{minor}", plats)
    )


def pip_finds(project: str, version: str, tags: set[Tag], python: str) -> bool:
    full = python.rstrip("t")
    for f in recorded(project).get(version, []):
        if f["yanked"]:
            continue
        rp = f.get("requires-python")
        if rp and not SpecifierSet(rp).contains(full, prereleases=True):
            continue
        if parse_wheel_filename(f["filename"])[3] & tags:
            return True
    return False


@pytest.mark.parametrize(
    ("platform", "os", "arch", "macos"),
    MACHINE_PLATFORMS,
    ids=[f"{p[0]}{'-macos' + p[3] if p[3] else ''}" for p in MACHINE_PLATFORMS],
)
def test_package_index_plans_name_wheels_the_listing_has(
    platform: str, os: str, arch: str, macos: Optional[str]
) -> None:
    from envsetup.errors import NoBuildError
    from envsetup.plan import Request
    from envsetup.profile import Profile
    from envsetup.resolve import resolve

    table = load_table()
    checked = 0
    for python in MACHINE_PYTHONS:
        tags = machine_tags(platform, python, macos)
        prof = Profile.from_dict(
            {
                "system": {"os": os, "arch": arch, "macos_version": macos},
                "python": {"version": python.rstrip("t"), "free_threaded": python.endswith("t")},
            }
        )
        for vision, audio in ((False, False), (True, False), (False, True), (True, True)):
            request = Request(variant="default", vision=vision, audio=audio)
            try:
                plan = resolve(prof, request, table)
            except NoBuildError:
                continue
            for pin in plan.pins:
                assert pip_finds(pin.name, pin.version, tags, python), (
                    f"{platform} macOS {macos} Python {python}: {' '.join(plan.requirements())}: "
                    f"the package index has no {pin} wheel for it"
                )
            checked += 1
    assert checked > 0


def test_every_paired_companion_has_wheels_where_its_torch_build_does() -> None:
    """A companion paired with a torch patch publishes wheels for at least one Python on each
    platform where that patch's default build is published (or its pairing says none)."""
    table = load_table()
    for patch, rel in table.patches():
        for name in ("torchvision", "torchaudio"):
            choice = patch.companion(name, "default")
            if choice is None:
                continue
            comp = table.companion(name, choice.version)
            assert comp is not None
            for plat in rel.platforms:
                if rel.python_for(patch.version, plat):
                    assert plat in comp.platforms, (patch.version, name, plat)
