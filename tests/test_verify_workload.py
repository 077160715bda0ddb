"""``envsetup verify --workload`` for real on the CPU torch: a small transformers model trained on
batches from an in-memory ``datasets.Dataset`` (real transformers and datasets from the package
index), and a CNN where transformers is not installed. Each runs torch.compile with the real
C++ compiler, AdamW with a schedule, gradient clipping, DataLoader workers and a checkpoint
saved and loaded back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from test_install_lock import house  # noqa: F401  (the wheelhouse fixture)
from verify_venvs import layered_venv, pip_into

# Releases that support torch 2.13 and Python 3.9+ (CI installs them from the package index).
TRANSFORMERS, DATASETS = "5.25.0", "5.2.0"
WORKLOAD_KEYS = {"loss_first", "loss_last", "samples_per_s", "peak_memory_mib", "steps"}


@pytest.fixture(scope="session")
def hf_venv(torch_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorials' stack: torch, then ``pip install transformers datasets``.

    ENVSETUP_TEST_HF_VENV names an existing venv of this kind to reuse between runs."""
    reuse = os.environ.get("ENVSETUP_TEST_HF_VENV")
    if reuse:
        from conftest import venv_python

        py = venv_python(Path(reuse))
        if py.exists():
            return py
    py = layered_venv(tmp_path_factory.mktemp("hf") / "venv", torch_venv)
    pip_into(py, f"transformers=={TRANSFORMERS}", f"datasets=={DATASETS}", index=True)
    return py


def workload_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    res = run_cli("verify", "--device", "cpu", "--quick", "--json", *args, env=env, timeout=600)
    assert "Traceback" not in res.stderr, res
    checks = {c["name"]: c for c in res.json()["checks"]}
    return res.returncode, checks


@pytest.mark.timeout(900)
def test_workload_trains_a_transformers_model_through_datasets(hf_venv: Path) -> None:
    # The user's shell asks the Hugging Face libraries to go online: verify keeps them offline.
    env = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
    code, checks = workload_json("--workload", "--python", str(hf_venv), env=env)
    assert code == 0, checks
    work = checks["workload"]
    assert work["status"] == "pass", work["detail"]
    data = work["data"]
    assert set(data) >= WORKLOAD_KEYS
    assert data["model"].startswith("BERT-like classifier")
    assert data["uses"] == [f"transformers {TRANSFORMERS}", f"datasets {DATASETS}"]
    assert data["steps"] == 60 and len(data["losses"]) == 60
    assert data["loss_last"] < data["loss_first"] * 0.5  # it learned the task, not noise
    assert data["samples_per_s"] > 0 and data["peak_memory_mib"] > 0
    assert data["workers"] == 2 and data["pin_memory"] is False  # pinned memory is for CUDA
    assert data["offline"] == dict.fromkeys(env, "1")
    assert "checkpoint reloads identically" in work["detail"]
    # The stack check imported the libraries that require torch (transformers in an extra).
    stack = checks["stack"]
    assert stack["status"] == "pass"
    assert f"transformers {TRANSFORMERS}" in stack["detail"]
    assert f"datasets {DATASETS}" in stack["detail"]


@pytest.mark.timeout(900)
def test_bench_adds_the_workload_a_cnn_without_transformers(torch_venv: Path) -> None:
    code, checks = workload_json("--bench", "--python", str(torch_venv))
    assert code == 0, checks
    assert {"bench-matmul", "bench-memory", "workload"} <= set(checks)
    work = checks["workload"]
    assert work["status"] == "pass", work["detail"]
    data = work["data"]
    assert data["model"] == "CNN on 28x28 images" and data["uses"] == ["torch"]
    assert data["loss_last"] < data["loss_first"] * 0.5
    assert data["samples_per_s"] > 0
    assert f"{data['samples_per_s']:.0f} samples/s" in work["detail"]


@pytest.mark.timeout(300)
def test_workload_names_a_missing_compiler(torch_venv: Path) -> None:
    env = {"CXX": "/nonexistent/bin/g++", "CC": "/nonexistent/bin/gcc"}
    code, checks = workload_json("--workload", "--python", str(torch_venv), env=env)
    assert code == 1
    work = checks["workload"]
    assert work["status"] == "fail"
    assert work["detail"].startswith("training step 1 failed: ")
    assert "no C++ compiler: CXX=/nonexistent/bin/g++ not found" in work["detail"]
    assert all(c["status"] == "pass" for n, c in checks.items() if n != "workload")


@pytest.mark.timeout(900)
def test_install_verify_workload_trains_after_the_install(
    tmp_path: Path,
    house: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    """``install --verify workload``: the real install, then the quick check and the training
    run in the environment just installed; the dry run says which check follows."""
    from conftest import make_venv
    from test_install_lock import _env, _install_args

    py = make_venv(tmp_path / "env")  # no space: torch-compile-path-space (test_doctor.py)
    args = [*_install_args(py, house), "--verify", "workload"]
    dry = run_cli(*args, "--dry-run", env=_env(tmp_path, house))
    assert dry.returncode == 0 and "# then the check: envsetup verify --quick --workload" in (
        dry.stdout
    ), dry
    res = run_cli(*args, "--json", env=_env(tmp_path, house), timeout=600)
    assert res.returncode == 0, res
    doc = res.json()
    checks = {c["name"]: c for c in doc["verify"]["results"]}
    assert doc["check"] == "--quick --workload"
    assert checks["workload"]["status"] == "pass" and "loss" in checks["workload"]["detail"]
    assert checks["stack"]["status"] == "pass"
    bad = run_cli(*args, "--no-verify")
    assert bad.returncode == 2 and "contradict" in bad.stderr, bad
