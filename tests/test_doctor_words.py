"""What a new user reads from doctor: shadowing on PYTHONPATH, fixes envsetup itself accepts,
NVML failures in words, a summary that never says "no problems" while torch is missing, and
exit codes that survive a closed pipe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import make_venv, run_cli
from envsetup.diagnose import diagnose
from envsetup.profile import Profile, Python
from machines import cpu_only, nvml_error, write


def plant(root: Path, name: str, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return root


@pytest.mark.parametrize(
    ("layout", "shadowed"),
    [
        pytest.param({"torch/__init__.py": "__version__ = 'impostor'\n"}, {"torch"}, id="package"),
        pytest.param({"torchvision.py": ""}, {"torchvision"}, id="module"),
        pytest.param({"torch/README": "a namespace portion only"}, set(), id="namespace-dir"),
    ],
)
def test_pythonpath_shadowing(
    torch_venv: Path, tmp_path: Path, layout: dict[str, str], shadowed: set[str]
) -> None:
    src = plant(tmp_path / "src", "x", layout)
    other = tmp_path / "other"
    other.mkdir()
    env = {
        "PYTHONPATH": f"{src}:{other}",
        "ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only()),
    }
    r = run_cli("doctor", "--json", "--python", str(torch_venv), env=env)
    doc = r.json()
    found = {f["code"] for f in doc["findings"] if f["code"].startswith("pythonpath-shadows-")}
    assert found == {f"pythonpath-shadows-{n}" for n in shadowed}
    if not shadowed:
        assert r.returncode == 0, r
        return
    assert r.returncode == 1
    (f,) = [f for f in doc["findings"] if f["code"].startswith("pythonpath-shadows-")]
    assert str(src) in f["message"] and f["fix"] == f"export PYTHONPATH={other}"
    # What the finding says is what the user's shell does: the impostor wins there...
    name = next(iter(shadowed))
    got = subprocess.run(
        [str(torch_venv), "-c", f"import {name}; print({name}.__file__)"],
        env={"PYTHONPATH": env["PYTHONPATH"]}, capture_output=True, text=True,
    )  # fmt: skip
    assert got.stdout.strip().startswith(str(src))
    # ...and the fix's PYTHONPATH gives the installed one back.
    fixed = subprocess.run(
        [str(torch_venv), "-c", f"import importlib.util as u; print(u.find_spec({name!r}))"],
        env={"PYTHONPATH": str(other)}, capture_output=True, text=True,
    )  # fmt: skip
    assert str(src) not in fixed.stdout


def test_pep668_fix_is_a_venv_envsetup_accepts(tmp_path: Path) -> None:
    managed = Profile(
        python=Python(executable="/usr/bin/python3", version="3.11.7", externally_managed=True)
    )
    fixes = {f.code: f.fix for f in diagnose(managed)}
    for code in ("torch-not-installed", "externally-managed-python"):
        fix = fixes[code]
        assert fix is not None and "-m venv ~/.venvs/torch &&" in fix
        assert "--python /usr/bin/python3" not in fix
    # Run the fix as a user's shell would (HOME in a temporary directory, this interpreter in
    # the system one's place, --dry-run added): envsetup takes the venv it made.
    import sys

    fix = fixes["torch-not-installed"] or ""
    cmd = fix.replace("/usr/bin/python3", sys.executable).replace(
        "envsetup install", f"{sys.executable} -m envsetup install"
    )
    res = subprocess.run(
        ["bash", "-c", cmd + " --dry-run --variant cpu --torch 2.13.0"],
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "NO_COLOR": "1",
             "ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert str(tmp_path / ".venvs" / "torch") in res.stdout


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("NVML_ERROR_DRIVER_NOT_LOADED", "installed but not loaded"),
        ("NVML_ERROR_LIB_RM_VERSION_MISMATCH", "kernel module and driver libraries differ"),
        ("NVML_ERROR_NO_PERMISSION", "not permitted"),
    ],
)
def test_nvml_failures_in_words_raw_text_in_json(tmp_path: Path, error: str, words: str) -> None:
    env = {"ENVSETUP_HW_REPLAY": write(tmp_path, nvml_error(error))}
    human = run_cli("doctor", env=env)
    nvidia = [ln for ln in human.stdout.splitlines() if ln.startswith("NVIDIA")]
    assert nvidia and words in nvidia[0] and "NVML" not in nvidia[0], human
    doc = run_cli("doctor", "--json", env=env).json()
    assert doc["profile"]["nvidia"]["nvml_error"]["message"]  # NVML's own text is kept


def test_summary_never_says_no_problems_without_torch(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "empty", pip=False)
    r = run_cli(
        "doctor", "--python", str(venv), env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())}
    )
    assert r.returncode == 0, r
    last = r.stdout.strip().splitlines()[-1]
    assert "no problems" not in last and "torch is not installed" in last


def test_closed_pipe_keeps_the_exit_code(tmp_path: Path) -> None:
    """`doctor | head -1` under pipefail reports doctor's own verdict, silently."""
    import sys

    replay = write(tmp_path, nvml_error("NVML_ERROR_DRIVER_NOT_LOADED"))
    for args, want in ((["doctor"], 1), (["compat", "list"], 0)):
        res = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {sys.executable} -m envsetup {' '.join(args)} "
             "| head -c 1 >/dev/null; echo ${PIPESTATUS[0]}"],
            env={"ENVSETUP_HW_REPLAY": replay, "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.stdout.strip() == str(want), (args, res)
        assert "Error" not in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_every_install_fix_is_one_envsetup_accepts(torch_venv: Path, tmp_path: Path) -> None:
    """The fixes that are envsetup commands (one writer, diagnose/fixes.py) run as given."""
    import shlex
    import sys

    from machines import h100x8

    replay = write(tmp_path, h100x8())
    doc = run_cli(
        "doctor", "--json", "--python", str(torch_venv), env={"ENVSETUP_HW_REPLAY": replay}
    ).json()
    fixes = [f["fix"] for f in doc["findings"] if (f["fix"] or "").startswith("envsetup install")]
    assert fixes, doc["findings"]
    for fix in fixes:
        argv = shlex.split(fix)
        assert (
            argv[:4] == ["envsetup", "install", "--python", str(torch_venv)] and argv[-1] == "--yes"
        )
        res = subprocess.run(
            [sys.executable, "-m", "envsetup", *argv[1:], "--dry-run"],
            env={"ENVSETUP_HW_REPLAY": replay, "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, (fix, res.stderr)


def test_verify_fails_when_pythonpath_shadows_torch(torch_venv: Path, tmp_path: Path) -> None:
    src = plant(tmp_path / "src", "x", {"torch/__init__.py": "__version__ = 'impostor'\n"})
    r = run_cli(
        "verify", "--quick", "--json", "--python", str(torch_venv), env={"PYTHONPATH": str(src)}
    )
    assert r.returncode == 1, r
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["pythonpath"]["status"] == "fail" and str(src) in checks["pythonpath"]["detail"]
    assert checks["import"]["status"] == "pass"  # the installed torch itself is fine
    clean = run_cli("verify", "--quick", "--json", "--python", str(torch_venv))
    assert clean.returncode == 0 and "pythonpath" not in {c["name"] for c in clean.json()["checks"]}
