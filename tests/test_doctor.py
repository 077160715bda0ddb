"""doctor for real: the real CPU torch venv, real pip installing planted wheels, replayed GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import make_venv, run_cli
from envsetup.schema import SCHEMA_FILE, doctor_schema, profile_schema
from indexserver import build_wheel, companion_wheel, torch_wheel
from machines import cpu_only, h100x8, nvml_error, titanv_ada, write


def site_packages(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def pip_install(python: Path, *wheels: Path) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", *map(str, wheels)],
        check=True,
    )


@pytest.fixture(scope="module")
def overlay(torch_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv that sees the real torch venv's packages through a .pth file (so it is never
    changed), with a planted torchvision built for another torch installed by real pip."""
    root = tmp_path_factory.mktemp("overlay")
    py = make_venv(root / "venv")
    Path(site_packages(py), "zz-torch-venv.pth").write_text(site_packages(torch_venv) + "\n")
    pip_install(py, companion_wheel(root / "w", "torchvision", "0.19.1", "2.4.1"))
    return py


def doctor_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    res = run_cli("doctor", "--json", *args, env=env)
    assert res.returncode in (0, 1), res
    assert res.stderr == "", res
    return res.returncode, res.json()


def codes(doc: dict) -> set[str]:  # type: ignore[type-arg]
    return {f["code"] for f in doc["findings"]}


def test_shipped_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == profile_schema()


def test_real_cpu_torch_venv(torch_venv: Path, tmp_path: Path) -> None:
    rc, doc = doctor_json(
        "--python", str(torch_venv), env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())}
    )
    jsonschema.validate(doc, doctor_schema())
    t = doc["profile"]["torch"]
    assert t["version"] == "2.13.0+cpu" and t["cuda"] is None and t["hip"] is None
    assert t["origin"] == "pip" and t["duplicates"] == []
    assert doc["profile"]["python"]["executable"] == str(torch_venv)
    assert doc["profile"]["python"]["virtualenv"] == str(torch_venv.parent.parent)
    assert rc == 0 and "no-gpu" in codes(doc) and "cpu-torch-on-gpu-machine" not in codes(doc)


def test_cpu_torch_on_a_gpu_machine_is_an_error(torch_venv: Path, tmp_path: Path) -> None:
    rc, doc = doctor_json(
        "--python", str(torch_venv), env={"ENVSETUP_HW_REPLAY": write(tmp_path, h100x8())}
    )
    jsonschema.validate(doc, doctor_schema())
    assert rc == 1
    (f,) = [f for f in doc["findings"] if f["code"] == "cpu-torch-on-gpu-machine"]
    assert f["severity"] == "error" and "H100" in f["message"]
    # the fix is the resolver's pick for this machine: driver 565 → a CUDA 12.x build, not 13.x
    assert "envsetup install" in f["fix"] and "--variant cu12" in f["fix"]
    # said once: no second finding proposes another build
    assert [
        f["code"] for f in doc["findings"] if (f["fix"] or "").startswith("envsetup install")
    ] == ["cpu-torch-on-gpu-machine"]
    assert f"--python {torch_venv}" in f["fix"]
    assert len(doc["profile"]["nvidia"]["gpus"]) == 8


def test_every_gpu_hidden_by_cuda_visible_devices(torch_venv: Path, tmp_path: Path) -> None:
    env = {"ENVSETUP_HW_REPLAY": write(tmp_path, titanv_ada()), "CUDA_VISIBLE_DEVICES": ""}
    rc, doc = doctor_json("--python", str(torch_venv), env=env)
    assert rc == 1 and "cuda-visible-devices-hides-all" in codes(doc)
    # with every GPU hidden, the CPU build is not the problem to report
    assert "cpu-torch-on-gpu-machine" not in codes(doc)


@pytest.mark.parametrize(
    ("error", "code", "needle"),
    [
        ("NVML_ERROR_LIB_RM_VERSION_MISMATCH", "driver-library-mismatch", "sudo reboot"),
        ("NVML_ERROR_DRIVER_NOT_LOADED", "driver-not-loaded", "sudo modprobe nvidia"),
        ("NVML_ERROR_LIBRARY_NOT_FOUND", "no-driver", "driver"),
        ("NVML_ERROR_NO_PERMISSION", "nvml-no-permission", "not permitted to open the GPU devices"),
    ],
)
def test_driver_failures(
    torch_venv: Path, tmp_path: Path, error: str, code: str, needle: str
) -> None:
    env = {"ENVSETUP_HW_REPLAY": write(tmp_path, nvml_error(error))}
    rc, doc = doctor_json("--python", str(torch_venv), env=env)
    found = {f["code"]: f for f in doc["findings"]}
    assert rc == 1 and code in found, found
    assert found[code]["severity"] == "error"
    assert needle in (found[code]["fix"] or "") + found[code]["message"]
    # with no driver answering, the CPU torch is not what is wrong
    assert "cpu-torch-on-gpu-machine" not in found


@pytest.mark.parametrize(
    ("system", "fix"),
    [
        ({"distro_id": "ubuntu"}, "sudo ubuntu-drivers install && sudo reboot"),
        (
            {"distro_id": "debian"},
            "sudo apt install nvidia-driver firmware-misc-nonfree && sudo reboot",
        ),
        ({"distro_id": "ubuntu", "container": "docker"}, "docker run --gpus all <image>"),
        ({"distro_id": "ubuntu", "wsl": "wsl2"}, None),  # the driver is installed on Windows
        ({"distro_id": "gentoo"}, None),
    ],
)
def test_no_driver_fix_fits_the_system(system: dict[str, str], fix: str | None) -> None:
    from envsetup.diagnose import diagnose
    from envsetup.profile import Profile

    p = Profile.from_dict({"system": system, "nvidia": {"pci_devices": 1}})
    (f,) = [f for f in diagnose(p) if f.code == "no-driver"]
    assert f.fix == fix
    if fix is None:
        assert "install the NVIDIA driver" in f.message


def test_planted_torchvision_for_another_torch(overlay: Path, tmp_path: Path) -> None:
    rc, doc = doctor_json(
        "--python", str(overlay), env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())}
    )
    assert doc["profile"]["torch"]["version"] == "2.13.0+cpu"
    tv = [p for p in doc["profile"]["torch"]["packages"] if p["name"] == "torchvision"]
    assert tv and tv[0]["version"] == "0.19.1" and tv[0]["requires_torch"] == "==2.4.1"
    (f,) = [f for f in doc["findings"] if f["code"] == "companion-torch-mismatch"]
    assert rc == 1 and "0.19.1" in f["message"]
    # the fix reinstalls the same build, for this interpreter, with the companion kept
    assert (
        f["fix"]
        == f"envsetup install --python {overlay} --torch 2.13.0 --variant cpu --with vision --yes"
    )


def test_two_torch_copies(torch_venv: Path, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "dup")
    Path(site_packages(venv), "zz.pth").write_text(site_packages(torch_venv) + "\n")
    pip_install(venv, torch_wheel(tmp_path / "w", "2.4.1+cu121", "12.1"))
    rc, doc = doctor_json(
        "--python", str(venv), env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())}
    )
    t = doc["profile"]["torch"]
    # the venv's own copy comes first on sys.path: that is the one import torch gets
    assert (t["version"], t["cuda"]) == ("2.4.1+cu121", "12.1")
    assert len(t["duplicates"]) == 2 and t["location"] == site_packages(venv)
    assert rc == 1 and {"duplicate-torch", "cuda-torch-without-gpu"} <= codes(doc)


@pytest.mark.parametrize("where", ["my envs", "plain"])
def test_torch_under_a_path_with_a_space_is_told_compile_cannot_link(
    where: str, tmp_path: Path
) -> None:
    """Inductor passes -L directories unquoted (pytorch/pytorch#191010): seen here with the
    real CPU torch 2.13.0 in ``/tmp/.../my envs/proj``, ``torch.compile`` failing with
    "cannot find -ltorch". doctor says so wherever torch lies under such a path."""
    venv = make_venv(tmp_path / where / "proj")
    pip_install(venv, torch_wheel(tmp_path / "w", "2.13.0+cpu", None))
    rc, doc = doctor_json(
        "--python", str(venv), env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())}
    )
    found = [f for f in doc["findings"] if f["code"] == "torch-compile-path-space"]
    if where == "plain":
        assert found == [] and rc == 0, doc["findings"]
        return
    (f,) = found
    assert f["severity"] == "warning" and rc == 0  # everything but torch.compile works
    assert doc["profile"]["torch"]["location"] in f["message"] and "191010" in f["message"]


def test_deep_imports_torch_in_the_target(torch_venv: Path, tmp_path: Path) -> None:
    rc, doc = doctor_json(
        "--deep",
        "--python",
        str(torch_venv),
        env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())},
    )
    deep = doc["profile"]["torch"]["deep"]
    assert rc == 0 and deep["imported"] is True and deep["version"] == "2.13.0+cpu"
    assert deep["cuda_available"] is False and deep["device_count"] == 0


def test_deep_reports_a_broken_import(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "broken", pip=True)
    files = {"torch/__init__.py": b"raise ImportError('libtorch_cpu.so: cannot open shared object file')\n",
             "torch/version.py": b"__version__ = '2.4.1'\ncuda = None\n"}  # fmt: skip
    pip_install(venv, build_wheel(tmp_path / "w", "torch", "2.4.1", files=files))
    rc, doc = doctor_json(
        "--deep", "--python", str(venv), env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())}
    )
    (f,) = [f for f in doc["findings"] if f["code"] == "torch-import-fails"]
    assert rc == 1 and "libtorch_cpu.so" in f["message"]


def test_no_torch_is_info_not_error(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "empty", pip=False)
    rc, doc = doctor_json(
        "--python", str(venv), env={"ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())}
    )
    assert rc == 0 and "torch-not-installed" in codes(doc)
    assert doc["profile"]["torch"]["version"] is None


def test_human_report_and_markdown(torch_venv: Path, tmp_path: Path) -> None:
    env = {"ENVSETUP_HW_REPLAY": write(tmp_path, h100x8())}
    human = run_cli("doctor", "--python", str(torch_venv), env=env)
    assert human.returncode == 1
    assert "\x1b[" not in human.stdout  # NO_COLOR is honoured
    assert "NVIDIA H100 80GB HBM3" in human.stdout and "sm_90" in human.stdout
    assert "GPUs 0-7: 8 x NVIDIA H100 80GB HBM3" in human.stdout  # identical GPUs: one line
    assert all(len(ln) <= 120 for ln in human.stdout.splitlines() if "fix:" not in ln)
    assert human.stdout.index("Findings") > human.stdout.index("torch 2.13.0+cpu")
    md = run_cli("doctor", "--markdown", "--python", str(torch_venv), env=env)
    assert (
        md.returncode == 1
        and "| **NVIDIA** |" in md.stdout
        and "`cpu-torch-on-gpu-machine`" in md.stdout
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["doctor", "--python", "/nonexistent/python3"],
            "--python /nonexistent/python3: no such file",
        ),
        (["doctor", "--json", "--markdown"], "choose one"),
        (["doctor", "--frobnicate"], "No such option"),
        (["doctor", "--python", "/bin/false"], "--python /bin/false: does not run as a Python"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    res = run_cli(*args)
    assert res.returncode == 2, res
    assert res.stdout == "" and len(res.stderr.strip().splitlines()) == 1
    assert needle in res.stderr and "Traceback" not in res.stderr


def test_version_and_module_entry() -> None:
    from envsetup import __version__

    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"envsetup {__version__}"


@pytest.mark.parametrize(
    ("exc", "rc", "needle"),
    [
        (RuntimeError("boom"), 3, "internal error: RuntimeError: boom"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_internal_error_and_ctrl_c(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                   exc: BaseException, rc: int, needle: str) -> None:  # fmt: skip
    import envsetup.detect
    from envsetup.cli import main

    def explode(*a: object, **k: object) -> None:
        raise exc

    monkeypatch.setattr(envsetup.detect, "detect_profile", explode)
    with pytest.raises(SystemExit) as info:
        main(["doctor"])
    assert info.value.code == rc
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    if rc == 3:
        assert "--debug" in err
        with pytest.raises(SystemExit):
            main(["doctor", "--debug"])
        assert "Traceback" in capsys.readouterr().err


def test_doctor_runs_under_python_dash_m(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "envsetup", "doctor", "--json"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "ENVSETUP_HW_REPLAY": write(tmp_path, cpu_only())})  # fmt: skip
    assert res.returncode in (0, 1) and json.loads(res.stdout)["profile"]["python"]["executable"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "No such file"),
        ("{bad", "invalid JSON"),
        ("[1, 2]", "a recording is a JSON object"),
        ('{"files": []}', "'files' must be an object"),
        (b"\xff\xfe", "not a text file"),
    ],
)
def test_a_bad_replay_file_is_a_usage_error(tmp_path: Path, content: object, needle: str) -> None:
    path = tmp_path / "recording.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    res = run_cli("doctor", env={"ENVSETUP_HW_REPLAY": str(path)})
    assert res.returncode == 2, res
    assert len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr
