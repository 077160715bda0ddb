"""Things a new user meets, through the real CLI: a URL is never cut to "…" on a narrow terminal
(plan's table folds it, a bullet keeps it whole on a line of its own); a Jetson's refusal says
where its torch comes from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_cli
from envsetup.install.lock import LOCK_DIR

A100 = {
    "system": {"os": "linux", "arch": "x86_64"},
    "python": {"version": "3.11.7"},
    "nvidia": {
        "driver_version": "535.104.05",
        "gpus": [{"index": 0, "name": "NVIDIA A100", "compute_capability": "8.0"}],
    },
}


def _table_value(out: str, label: str) -> str:
    """A row of the plan table, its value's folded lines joined (the value column starts where
    it starts on the row's first line)."""
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(label + " "))
    start = re.search(rf"{re.escape(label)}\s+", lines[at]).end()  # type: ignore[union-attr]
    value = [lines[at][start:].strip()]
    for ln in lines[at + 1 :]:
        if ln[:start].strip():  # the next row's label
            break
        value.append(ln[start:].strip())
    return "".join(value)


@pytest.mark.parametrize("columns", ["40", "80"])
def test_the_index_url_is_whole_at_any_width(columns: str, tmp_path: Path) -> None:
    p = tmp_path / "a100.json"
    p.write_text(json.dumps(A100))
    url = run_cli("plan", "--profile", str(p), "--json").json()["plan"]["index_url"]
    assert url.startswith("https://")
    r = run_cli("plan", "--profile", str(p), env={"COLUMNS": columns})
    assert r.returncode == 0, r
    assert "…" not in r.stdout  # nothing cut off
    assert _table_value(r.stdout, "index") == url
    # in Why, the URL is one word on one line, however narrow the terminal
    assert any(ln.split()[-1:] == [url] for ln in r.stdout.splitlines()), r.stdout
    if columns == "80":
        assert f"index              {url}" in r.stdout  # fits: on the row's line


@pytest.mark.parametrize(
    ("name", "cc", "python", "driver"),
    [("Orin (nvgpu)", "8.7", "3.10.12", "540.4.0"), ("Xavier", "7.2", "3.8.10", "35.4.1")],
)
def test_a_jetson_is_pointed_to_nvidias_jetpack_wheels(
    name: str, cc: str, python: str, driver: str, tmp_path: Path
) -> None:
    from envsetup.resolve import JETSON_WHEELS

    p = tmp_path / "jetson.json"
    p.write_text(json.dumps({
        "system": {"os": "linux", "arch": "aarch64"}, "python": {"version": python},
        "nvidia": {"driver_version": driver,
                   "gpus": [{"index": 0, "name": name, "compute_capability": cc}]},
    }))  # fmt: skip
    r = run_cli("plan", "--profile", str(p))
    assert r.returncode == 4 and r.stderr.count("\n") == 1, r
    fix = r.stderr.split("To make it fit: ")[1]
    sm = "sm_" + cc.replace(".", "")
    assert fix.startswith(f"GPU 0 ({name}, {sm}) is a Jetson's"), fix  # the first fix
    assert f"JetPack release ({JETSON_WHEELS})" in fix
    assert JETSON_WHEELS.startswith("https://docs.nvidia.com/")
    # the same GPU on x86_64 (not a Jetson) or a server GPU on aarch64: no such pointer
    other = json.loads(p.read_text())
    other["system"]["arch"] = "x86_64"
    p.write_text(json.dumps(other))
    assert "Jetson" not in run_cli("plan", "--profile", str(p)).stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("installer", "with_pip"), [("pip", True), ("uv", True), ("uv", False)])
def test_a_wheelhouse_without_torchs_dependencies_says_how_to_fill_it(
    installer: str, with_pip: bool, tmp_path: Path
) -> None:
    """--find-links DIR holding torch but not what it requires: the installer's "no matching
    distribution for filelock" comes with the pip download that fills DIR (the plan's pins, from
    the plan's index, by the target's own pip; a target without pip: any pip, told its Python),
    and the environment is as it was."""
    import sys

    from conftest import make_venv
    from indexserver import torch_wheel
    from test_install import envsetup, hermetic_env, make_plan, write_plan

    house = tmp_path / "wheels"
    torch_wheel(house, "2.4.1+cu121", "12.1", requires=["filelock"])
    index = "https://download.pytorch.org/whl/cu121"  # named in the hint, never read
    plan = write_plan(tmp_path, make_plan(vision=None, index_url=index))
    py = make_venv(tmp_path / "venv", pip=with_pip)
    before = sorted(p.name for p in (tmp_path / "venv").rglob("*"))
    cp = envsetup("install", "--yes", "--no-verify", "--plan-file", plan, "--python", str(py),
                  "--installer", installer, "--find-links", str(house),
                  env=hermetic_env(tmp_path))  # fmt: skip
    error = cp.stderr.splitlines()[-1]  # after the progress lines
    assert cp.returncode == 1 and error.startswith("envsetup: install failed ("), cp.stderr
    hint = f"the wheelhouse {house} lacks filelock (a dependency of the plan): fill it with "
    assert hint in error, error
    command = error.split(hint)[1].split(");")[0]
    download = f"download torch==2.4.1+cu121 -d {house} --index-url {index}"
    if with_pip:
        assert command == f"{py} -m pip {download}", command
    else:
        minor = "{}.{}".format(*sys.version_info[:2])
        assert command == f"pip {download} --python-version {minor} --only-binary=:all:", command
    after = [p.name for p in (tmp_path / "venv").rglob("*") if LOCK_DIR not in p.parts]
    assert sorted(after) == before  # all but envsetup's install lock, which stays
