"""fleet doctor and fleet install through real ansible-core, over an inventory of localhost
aliases (ansible_connection=local), each host replaying its own recorded machine through
ENVSETUP_HW_REPLAY in its host variables; installs go into real venvs from a real index on
loopback serving test-built wheels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import make_venv, run_cli
from fleet_machines import replays
from indexserver import IndexServer, torch_wheel
from machines import write
from test_install import freeze, hermetic_env

pytestmark = pytest.mark.skipif(
    not (Path(sys.executable).parent / "ansible-playbook").exists(),
    reason="ansible-core is not installed beside this interpreter (pip install -e '.[test]')",
)


def inventory(tmp: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    """A YAML inventory (written as JSON, which YAML reads) of local hosts."""
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "envsetup_command": [sys.executable, "-m", "envsetup"],
    }
    path = tmp / "hosts.yml"
    path.write_text(json.dumps({"all": {"vars": common, "hosts": hosts}}), encoding="utf-8")
    return path


def host(tmp: Path, machine: str, python: Path, **extra: Any) -> dict[str, Any]:
    rec = write(tmp, replays()[machine], f"{machine}.json")
    env = {k: v for k, v in hermetic_env(tmp).items() if k.startswith(("PIP_", "UV_", "XDG_"))}
    return {
        "envsetup_python": str(python),
        "envsetup_env": {"ENVSETUP_HW_REPLAY": rec, **env},
        **extra,
    }


@pytest.fixture(scope="module")
def fleet(torch_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fleet-ansible")
    hosts = {
        "h100-a": host(tmp, "h100-535", torch_venv),
        "h100-b": host(tmp, "h100-535", torch_venv),
        "rtx5090": host(tmp, "rtx5090-570", torch_venv),
        "mismatch": host(tmp, "mismatch", torch_venv),
        "cpu-a": host(tmp, "cpu", make_venv(tmp / "cpu-a")),
        "cpu-b": host(tmp, "cpu", make_venv(tmp / "cpu-b")),
    }
    inv = inventory(tmp, hosts)
    out = tmp / "profiles"
    res = run_cli("fleet", "doctor", "-i", str(inv), "--out", str(out), "--json", timeout=600)
    return tmp, inv, out, res, hosts


@pytest.mark.timeout(600)
def test_doctor_over_an_inventory(fleet: Any) -> None:
    _, _, out, res, _ = fleet
    doc = res.json()
    assert doc["nodes"] == 6 and doc["unreadable"] == [], res
    by = {tuple(g["nodes"]): g for g in doc["groups"]}
    assert set(by) == {("h100-a", "h100-b"), ("cpu-a", "cpu-b"), ("rtx5090",), ("mismatch",)}
    h100, cpu = by[("h100-a", "h100-b")], by[("cpu-a", "cpu-b")]
    rtx, bad = by[("rtx5090",)], by[("mismatch",)]
    assert h100["machine"]["gpus"] == "8× NVIDIA H100 80GB HBM3 (sm_90)"
    assert h100["machine"]["driver"] == "535.161.08"
    assert rtx["machine"]["gpus"] == "2× NVIDIA GeForce RTX 5090 (sm_120)"
    assert rtx["machine"]["driver"] == "570.133.07"
    assert cpu["machine"]["gpus"] == "no GPU" and cpu["machine"]["torch"] == "not installed"
    assert bad["machine"]["driver"] == "580.173.02 (NVML: lib_rm_version_mismatch)"

    def codes(g: dict[str, Any]) -> dict[str, int]:
        return {f["code"]: f["nodes"] for f in g["findings"] if f["severity"] == "error"}

    assert codes(h100) == {"cpu-torch-on-gpu-machine": 2}
    assert codes(rtx) == {"cpu-torch-on-gpu-machine": 1}
    assert "driver-library-mismatch" in codes(bad) and bad["install"] == "held"
    assert "sudo reboot" in bad["install_note"]
    assert cpu["errors"] == 0 and cpu["install"] == "ready" and cpu["plan"]["variant"] == "cpu"
    # the H100 on 535 and the RTX 5090 on 570 get different CUDA builds (sm_120 needs 12.8+)
    assert h100["plan"]["cuda"] != rtx["plan"]["cuda"]
    assert res.returncode == 1  # errors on some nodes
    # the profiles stay, named by host, and read back into the same report
    assert sorted(p.name for p in out.glob("*.json")) == sorted(f"{h}.json" for h in
        ("h100-a", "h100-b", "rtx5090", "mismatch", "cpu-a", "cpu-b"))  # fmt: skip
    again = run_cli("fleet", "report", str(out), "--json").json()
    assert [g["nodes"] for g in again["groups"]] == [g["nodes"] for g in doc["groups"]]


def _cpu_index(tmp: Path, plan: dict[str, Any]) -> IndexServer:
    root = tmp / "index"
    torch_wheel(root / "cpu", plan["local_version"] or plan["torch"], None)
    return IndexServer(root)


@pytest.mark.timeout(600)
def test_install_one_group_into_its_hosts(fleet: Any) -> None:
    tmp, inv, _, res, hosts = fleet
    doc = res.json()
    cpu = next(g for g in doc["groups"] if g["nodes"] == ["cpu-a", "cpu-b"])
    others = {h: freeze(Path(hosts[h]["envsetup_python"])) for h in ("h100-a",)}
    with _cpu_index(tmp, cpu["plan"]) as server:
        got = run_cli(
            "fleet", "install", "-i", str(inv), "--group", cpu["id"], "--forks", "2",
            "--index-url", server.index("cpu"), "--no-verify", "--installer", "pip",
            "--from", str(tmp / "profiles"), "--out", str(tmp / "install-run"), "--json",
            timeout=600,
        )  # fmt: skip
    out = got.json()
    assert got.returncode == 0, got  # every install asked for went in (others' errors aside)
    results = {r["host"]: r for r in out["install"]["hosts"]}
    assert set(results) == {"cpu-a", "cpu-b"}
    assert all(r["status"] == "ok" for r in results.values()), results
    want = cpu["plan"]["local_version"]
    for h in ("cpu-a", "cpu-b"):
        assert f"torch=={want}" in freeze(Path(hosts[h]["envsetup_python"]))
    assert others == {h: freeze(Path(hosts[h]["envsetup_python"])) for h in others}
    # a second doctor sees the group up to date
    again = run_cli("fleet", "doctor", "-i", str(inv), "--limit", "cpu-*", "--json", timeout=300)
    (g,) = again.json()["groups"]
    assert g["machine"]["torch"] == want and g["install"] == "up-to-date", again


@pytest.mark.timeout(600)
def test_install_stops_after_the_first_failing_batch(torch_venv: Path, tmp_path: Path) -> None:
    """Three identical hosts, one at a time; the first cannot reach its index: it is left as it
    was, and the two others are never touched."""
    venvs = {h: make_venv(tmp_path / h) for h in ("cpu-bad", "cpu-x", "cpu-y")}
    hosts = {h: host(tmp_path, "cpu", py) for h, py in venvs.items()}
    hosts["cpu-bad"]["envsetup_host_install_args"] = ["--index-url", "http://127.0.0.1:9/cpu"]
    inv = inventory(tmp_path, hosts)
    before = {h: freeze(py) for h, py in venvs.items()}
    profiles = tmp_path / "profiles"
    report = run_cli("fleet", "doctor", "-i", str(inv), "--json", "--quiet", "--out", str(profiles))
    (g,) = report.json()["groups"]
    with _cpu_index(tmp_path, g["plan"]) as server:
        got = run_cli(
            "fleet", "install", "-i", str(inv), "--forks", "1", "--index-url",
            server.index("cpu"), "--no-verify", "--installer", "pip", "--json",
            "--from", str(profiles), timeout=600,
        )  # fmt: skip
    out = got.json()
    status = {r["host"]: r["status"] for r in out["install"]["hosts"]}
    assert status == {"cpu-bad": "failed", "cpu-x": "not-run", "cpu-y": "not-run"}, got
    assert out["install"]["stopped"] is True and got.returncode == 1
    bad = next(r for r in out["install"]["hosts"] if r["host"] == "cpu-bad")
    assert "127.0.0.1:9" in bad["detail"]
    assert {h: freeze(py) for h, py in venvs.items()} == before


def test_unreachable_and_failing_hosts_are_named(tmp_path: Path) -> None:
    hosts = {
        "good": host(tmp_path, "cpu", Path(sys.executable)),
        "broken": host(
            tmp_path, "cpu", Path(sys.executable), envsetup_command=["/nonexistent/envsetup"]
        ),
        "gone": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9},
    }
    inv = inventory(tmp_path, hosts)
    res = run_cli("fleet", "doctor", "-i", str(inv), "--json", "--quiet", timeout=300)
    doc = res.json()
    why = {u["node"]: u["error"] for u in doc["unreadable"]}
    assert set(why) == {"broken", "gone"} and doc["nodes"] == 1, res
    assert "doctor did not run" in why["broken"] and "/nonexistent/envsetup" in why["broken"]
    assert "no profile came back" in why["gone"]
    assert res.returncode == 1


def test_a_missing_inventory_is_a_usage_error(tmp_path: Path) -> None:
    res = run_cli("fleet", "doctor", "-i", str(tmp_path / "nope.ini"))
    assert res.returncode == 2 and "no such inventory" in res.stderr
