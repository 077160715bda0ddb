"""The table loads, is shipped in the wheel, and bad data fails with file, key and reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest

from envsetup.compat import CompatTableError, load_table

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "compat"


def test_table_covers_2_0_to_2_15_with_sources() -> None:
    table = load_table()
    versions = [p.version for p, _ in table.patches()]
    for v in ("2.0.0", "2.0.1", "2.4.1", "2.7.1", "2.12.1", "2.14.1", "2.15.0"):
        assert v in versions
    assert table.oldest == "2.0.0" and table.newest == "2.15.0"
    for _, rel in table.patches():
        for by in rel.variants.values():
            for b in by.values():
                assert b.source and all(s in table.sources for s in b.source)
    # What the sources do not know stays unknown.
    r215 = next(r for r in table.releases if r.minor == "2.15")
    assert not r215.variants_known and not r215.variants


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
        "torch/2.14.json",
        lambda d: d["unconfirmed"].__setitem__("cu134", None),
        "compat/torch/2.14.json: unconfirmed.cu134: must not be null",
    ),
    (
        "unconfirmed-not-a-variant",
        "torch/2.14.json",
        lambda d: d["unconfirmed"].__setitem__("cuda 13.4", "seen in an RC matrix"),
        "compat/torch/2.14.json: unconfirmed.cuda 13.4: the key is a variant",
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
