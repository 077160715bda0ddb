"""``envsetup verify`` for real: the CPU torch wheel in a real venv, real torch.compile with the
real C++ compiler, and real failures (no torch, a torch that raises on import, a missing
compiler, a check that hangs) in fresh venvs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import CliResult, make_venv, run_cli
from envsetup.plan import Pin, Plan
from envsetup.verify import ALL_CHECKS, QUICK_CHECKS, run_verify
from envsetup.verify.verdicts import judge_versions
from verify_venvs import site_packages


def verify_cli(*args: str, env: Optional[dict[str, str]] = None, timeout: float = 300) -> CliResult:
    """``envsetup verify ARGS``, the real CLI in a subprocess."""
    return run_cli("verify", *args, env=env, timeout=timeout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def plant_torch(tmp_path: Path, source: str) -> Path:
    """A fresh venv whose ``torch`` package is the given ``__init__.py``."""
    py = make_venv(tmp_path / "venv", pip=False)
    pkg = site_packages(py) / "torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(source)
    return py


@pytest.fixture(scope="module")
def full_cpu(torch_venv: Path) -> dict[str, Any]:
    """One full CPU verify (torch.compile included) shared by the tests that read it."""
    res = verify_cli("--python", str(torch_venv), "--device", "cpu", "--json", timeout=900)
    assert res.returncode == 0, res
    report: dict[str, Any] = res.json()
    return report


@pytest.mark.timeout(900)
def test_full_cpu_verify_passes_every_check(full_cpu: dict[str, Any]) -> None:
    checks = by_name(full_cpu)
    assert list(checks) == list(ALL_CHECKS)
    failed = {n: c["detail"] for n, c in checks.items() if c["status"] != "pass"}
    assert failed == {}
    assert full_cpu["ok"] is True and full_cpu["device"] == "cpu"
    assert full_cpu["summary"] == {"pass": len(ALL_CHECKS), "fail": 0, "skip": 0}
    # The numerics really ran: errors against the float64 reference are small but present.
    errors = checks["tensor-ops"]["data"]["errors"]
    assert set(errors) >= {"matmul", "sum", "softmax"}
    assert all(0 <= e < 1e-4 for e in errors.values())
    assert checks["compile"]["data"]["errors"]["compiled module"] < 1e-3
    assert "inductor/C++" in checks["compile"]["detail"]
    assert checks["versions"]["detail"].startswith("torch 2.13.0")
    # torch alone: no library requires it, and nothing else is imported.
    assert (
        checks["stack"]["detail"]
        == "no installed library requires torch, torchvision or torchaudio"
    )


@pytest.mark.timeout(300)
def test_quick_human_output(torch_venv: Path) -> None:
    res = verify_cli("--python", str(torch_venv), "--device", "cpu", "--quick")
    assert res.returncode == 0, res
    for name in QUICK_CHECKS:
        assert f"✓ {name}" in res.stdout
    assert "compile" not in res.stdout
    assert "all checks passed: 6 passed, 0 failed, 0 skipped" in res.stdout
    assert "Traceback" not in res.stderr


@pytest.mark.timeout(300)
def test_cuda_requested_on_a_cpu_build_fails_cleanly(torch_venv: Path) -> None:
    res = verify_cli("--python", str(torch_venv), "--device", "cuda", "--quick", "--json")
    assert res.returncode == 1, res
    checks = by_name(res.json())
    assert checks["import"]["status"] == "pass"
    assert checks["device"]["status"] == "fail"
    assert "CPU-only build" in checks["device"]["detail"]
    assert checks["tensor-ops"]["status"] == "skip"
    assert "device cuda is not usable" in checks["tensor-ops"]["detail"]
    assert "Traceback" not in res.stderr


@pytest.mark.timeout(300)
def test_torch_absent(tmp_path: Path) -> None:
    py = make_venv(tmp_path / "venv", pip=False)
    res = verify_cli("--python", str(py), "--json")
    assert res.returncode == 1, res
    report = res.json()
    checks = by_name(report)
    assert checks["import"]["status"] == "fail"
    assert "No module named 'torch'" in checks["import"]["detail"]
    assert all(c["status"] == "skip" for n, c in checks.items() if n != "import")
    assert report["ok"] is False
    assert "Traceback" not in res.stderr


@pytest.mark.timeout(300)
def test_broken_torch_import_names_the_cause(tmp_path: Path) -> None:
    py = plant_torch(
        tmp_path, 'raise ImportError("libcudart.so.12: cannot open shared object file")\n'
    )
    res = verify_cli("--python", str(py), "--quick")
    assert res.returncode == 1, res
    assert "✗ import" in res.stdout
    assert "libcudart.so.12: cannot open shared object file" in res.stdout
    assert "FAILED: 0 passed, 1 failed, 5 skipped" in res.stdout
    assert "Traceback" not in res.stderr


@pytest.mark.timeout(600)
def test_compile_without_a_compiler(torch_venv: Path) -> None:
    env = {"CXX": "/nonexistent/bin/g++", "CC": "/nonexistent/bin/gcc"}
    res = verify_cli("--python", str(torch_venv), "--device", "cpu", "--json", env=env)
    assert res.returncode == 1, res
    report = res.json()
    checks = by_name(report)
    assert checks["compile"]["status"] == "fail"
    assert "no C++ compiler" in checks["compile"]["detail"]
    assert "CXX=/nonexistent/bin/g++" in checks["compile"]["detail"]
    assert all(c["status"] == "pass" for n, c in checks.items() if n != "compile")
    # A warm cache must not hide the failure: a temporary cache was used (and removed).
    assert report["inductor_cache"] is None


@pytest.mark.timeout(120)
def test_hung_import_is_a_failed_check(tmp_path: Path) -> None:
    py = plant_torch(tmp_path, "import time\ntime.sleep(600)\n")
    report = run_verify(str(py), device="cpu", quick=True, timeouts={"import": 2})
    checks = {r.name: r for r in report.results}
    assert checks["import"].status == "fail"
    assert checks["import"].detail.startswith("timed out after 2 s")
    assert [checks[n].status for n in QUICK_CHECKS[1:]] == ["skip"] * 5
    assert not report.ok


@pytest.mark.timeout(120)
def test_hung_check_is_killed_and_the_rest_run_in_a_fresh_interpreter(torch_venv: Path) -> None:
    # tensor-ops takes a fraction of a second here; a deadline far below that is a "hang".
    seen: list[str] = []
    report = run_verify(
        str(torch_venv),
        device="cpu",
        quick=True,
        timeouts={"tensor-ops": 0.01},
        on_result=lambda r: seen.append(r.name),
    )
    checks = {r.name: r for r in report.results}
    assert checks["tensor-ops"].status == "fail"
    assert "timed out after 0.01 s" in checks["tensor-ops"].detail
    assert checks["autograd"].status == "pass"  # ran in a new interpreter, after the kill
    assert seen == list(QUICK_CHECKS)


@pytest.mark.timeout(120)
def test_crash_during_import(tmp_path: Path) -> None:
    py = plant_torch(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    report = run_verify(str(py), device="cpu", quick=True)
    imp = report.result("import")
    assert imp is not None and imp.status == "fail"
    assert "killed by SIGSEGV" in imp.detail


def test_usage_errors() -> None:
    res = verify_cli("--device", "tpu")
    assert res.returncode == 2, res
    assert res.stderr.strip().startswith("envsetup: --device tpu: not one of")
    assert len(res.stderr.strip().splitlines()) == 1
    res = verify_cli("--python", "/nonexistent/python3")
    assert res.returncode == 2, res
    assert "no such file" in res.stderr and "Traceback" not in res.stderr


def test_bad_plan_file(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    res = verify_cli("--plan", str(bad))
    assert res.returncode == 2, res
    assert "invalid JSON" in res.stderr and "Traceback" not in res.stderr


def _plan(**kw: Any) -> Plan:
    base: dict[str, Any] = {
        "torch": "2.13.0",
        "variant": "cpu",
        "pins": (Pin("torch", "2.13.0"),),
        "index_url": "https://download.pytorch.org/whl/cpu",
        "platform": "linux_x86_64",
        "python": "3.11",
        "local_version": "2.13.0+cpu",
    }
    base.update(kw)
    return Plan(**base)


@pytest.mark.timeout(300)
def test_plan_mismatch_fails_the_versions_check(torch_venv: Path, tmp_path: Path) -> None:
    plan = _plan(
        torch="2.4.1",
        variant="cu121",
        local_version="2.4.1+cu121",
        cuda="12.1",
        pins=(Pin("torch", "2.4.1"), Pin("torchvision", "0.19.1")),
    )
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    res = verify_cli("--python", str(torch_venv), "--device", "cpu", "--quick", "--plan", str(path))
    assert res.returncode == 1, res
    rows = res.stdout.splitlines()
    at = next(i for i, ln in enumerate(rows) if "versions" in ln)
    assert rows[at].startswith("✗ versions")
    more = []  # the detail wraps under itself at the terminal's width
    for ln in rows[at + 1 :]:
        if not ln.startswith(" "):
            break
        more.append(ln.strip())
    line = " ".join([rows[at].rstrip(), *more])
    assert "the plan installs 2.4.1+cu121" in line
    assert "plan's build is CUDA 12.1" in line
    assert "torchvision is not installed" in line


def test_versions_verdicts(full_cpu: dict[str, Any]) -> None:
    data = by_name(full_cpu)["versions"]["data"]
    runtime = data["torch"]["runtime"]
    status, detail = judge_versions(data, _plan(local_version=runtime))
    assert status == "pass" and detail.endswith("as planned")
    # A torchvision made for another torch, and a build label that differs.
    other = dict(data, torchvision={"version": "0.19.1+cu121", "requires": ["torch==2.4.1"]})
    status, detail = judge_versions(other, None)
    assert status == "fail"
    assert "requires torch==2.4.1 but torch is 2.13.0+cpu" in detail
    assert "+cu121 build but torch is +cpu" in detail
    # Two copies: the imported torch is not the installed distribution.
    torch_info = dict(data["torch"], dist=dict(data["torch"]["dist"], version="2.12.0"))
    status, detail = judge_versions(dict(data, torch=torch_info), None)
    assert status == "fail" and "two copies of torch" in detail


def test_report_json_is_one_document(full_cpu: dict[str, Any]) -> None:
    # Every check carries a status among the three, a duration and a detail.
    for c in full_cpu["checks"]:
        assert c["status"] in ("pass", "fail", "skip")
        assert isinstance(c["seconds"], float) and c["seconds"] >= 0
        assert c["detail"]
    json.dumps(full_cpu)
