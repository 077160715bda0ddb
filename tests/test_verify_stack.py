"""The ``stack`` check for real: libraries that require torch, built here as wheels and installed
by real pip into venvs on the real CPU torch. One has a real compiled extension built against
"another torch" (it needs a libtorch symbol this torch lacks, so its import fails with
``undefined symbol`` as such a build does); others hang or crash on import, or work."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from envsetup.verify import run_verify
from indexserver import build_wheel
from verify_venvs import layered_venv, pip_into

MISSING_SYMBOL = "_ZN3c1020envsetup_other_torchEv"  # c10::envsetup_other_torch()


def extension(tmp: Path) -> tuple[str, bytes]:
    """A real shared object that calls a libtorch symbol this torch does not export."""
    src = tmp / "ext.c"
    src.write_text(
        f"extern void {MISSING_SYMBOL}(void);\nvoid envsetup_probe(void) {{ {MISSING_SYMBOL}(); }}\n"
    )
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to build the broken extension"
    suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
    out = tmp / f"_C{suffix}"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return f"brokenext/_C{suffix}", out.read_bytes()


def good_wheel(dest: Path) -> Path:
    code = b"import torch\nVALUE = float(torch.ones(3).sum())\n"
    return build_wheel(
        dest, "worksfine", "2.0", requires=["torch>=2"], files={"worksfine/__init__.py": code}
    )


@pytest.fixture(scope="module")
def broken_stack(torch_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with torch, a library built against another torch and one that works."""
    root = tmp_path_factory.mktemp("broken-stack")
    so_name, so = extension(root)
    wheels = [
        build_wheel(
            root / "wheels",
            "brokenext",
            "1.0",
            requires=["torch==2.4.1"],
            files={"brokenext/__init__.py": b"from . import _C\n", so_name: so},
        ),
        good_wheel(root / "wheels"),
    ]
    py = layered_venv(root / "venv", torch_venv)
    pip_into(py, "--no-deps", "--no-index", *map(str, wheels))
    return py


@pytest.mark.timeout(300)
def test_library_built_for_another_torch_fails_the_stack_check_by_name(broken_stack: Path) -> None:
    res = run_cli("verify", "--python", str(broken_stack), "--quick", "--device", "cpu", "--json")
    assert res.returncode == 1, res
    checks = {c["name"]: c for c in res.json()["checks"]}
    stack = checks["stack"]
    assert stack["status"] == "fail"
    detail = stack["detail"]
    # Named with its version and the first line of its error, with what to do.
    assert "brokenext 1.0: import brokenext failed: ImportError: " in detail
    assert f"undefined symbol: {MISSING_SYMBOL}" in detail
    assert "install the brokenext build made for torch 2.13.0+cpu (CPU), or rebuild it" in detail
    assert "--no-binary brokenext brokenext==1.0" in detail
    libs = stack["data"]["libraries"]
    assert libs["worksfine"]["errors"] == {} and libs["worksfine"]["modules"] == ["worksfine"]
    assert libs["brokenext"]["compiled"] is True
    assert "worksfine" not in detail  # the one that imports is not blamed
    # The rest of verify still ran: torch itself is fine.
    assert all(c["status"] == "pass" for n, c in checks.items() if n != "stack")
    assert "Traceback" not in res.stderr


def _hang_and_crash(torch_venv: Path, root: Path) -> Path:
    wheels = [
        build_wheel(
            root / "wheels",
            "hangs",
            "0.1",
            requires=["torch"],
            files={"hangs/__init__.py": b"import time\ntime.sleep(600)\n"},
        ),
        build_wheel(
            root / "wheels",
            "segfaults",
            "0.2",
            requires=["torchvision; extra == 'vision'"],
            files={
                "segfaults/__init__.py": b"import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"
            },
        ),
        build_wheel(
            root / "wheels",
            "needsvision",
            "0.3",
            requires=["torchvision>=0.20"],
            files={"needsvision/__init__.py": b"import torchvision\n"},
        ),
        good_wheel(root / "wheels"),
    ]
    py = layered_venv(root / "venv", torch_venv)
    pip_into(py, "--no-deps", "--no-index", *map(str, wheels))
    return py


@pytest.mark.timeout(180)
def test_hanging_crashing_and_missing_imports_are_named_and_the_rest_still_checked(
    torch_venv: Path, tmp_path: Path
) -> None:
    py = _hang_and_crash(torch_venv, tmp_path)
    report = run_verify(str(py), device="cpu", quick=True, timeouts={"stack-import": 3})
    stack = report.result("stack")
    assert stack is not None and stack.status == "fail"
    assert re.search(r"hangs 0\.1: import hangs did not finish in \d+ s \(killed\)", stack.detail)
    assert "segfaults 0.2: import segfaults failed: the interpreter was killed by SIGSEGV" in (
        stack.detail
    )
    assert (
        "needsvision 0.3: import needsvision failed: ModuleNotFoundError: No module named "
        "'torchvision'; it needs torchvision, which is not installed: envsetup install --with vision"
    ) in stack.detail
    libs: dict[str, Any] = stack.data["libraries"]
    assert libs["hangs"]["errors"]["hangs"]["kind"] == "hung"
    assert libs["segfaults"]["errors"]["segfaults"]["kind"] == "crashed"
    # worksfine sorts after both: it was imported in a fresh interpreter after each was ended.
    assert libs["worksfine"]["errors"] == {}
    # The checks after the stack ran as usual.
    assert report.result("autograd") is not None and report.result("autograd").status == "pass"
