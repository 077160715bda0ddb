"""Resolver cases written from the published facts (NVIDIA driver tables, PyTorch release notes,
the wheels on the package index), not derived from the table under test.

They run on a frozen copy of the table (tests/fixtures/table/, see its README), so that an update
of compat/ changes data, not these expectations; test_compat.py checks the shipped table's
rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest

from envsetup.compat import Table, load_table
from envsetup.errors import NoBuildError, UsageError
from envsetup.plan import Request
from envsetup.profile import Profile
from envsetup.resolve import (
    check_index_url,
    index_base_from,
    parse_spec,
    resolve,
)

FROZEN = Path(__file__).parent / "fixtures" / "table"


@pytest.fixture(scope="module")
def table() -> Table:
    return load_table(FROZEN)


def machine(
    os: str = "linux",
    arch: str = "x86_64",
    py: str = "3.11.7",
    driver: Optional[str] = None,
    ccs: tuple[Any, ...] = (),
    free_threaded: bool = False,
    **system: Any,
) -> Profile:
    gpus = []
    for i, cc in enumerate(ccs):
        visible = True
        if isinstance(cc, tuple):
            cc, visible = cc
        gpus.append({"index": i, "compute_capability": cc, "visible": visible})
    return Profile.from_dict(
        {
            "system": {"os": os, "arch": arch, **system},
            "python": {"version": py, "free_threaded": free_threaded},
            "nvidia": {"driver_version": driver, "gpus": gpus},
        }
    )


# (id, profile, request, expected torch, expected variant)
FITS = [
    # CUDA 11.x minor-version floor is 450.80.02; torch 2.7 is the last release with cu118.
    (
        "linux-470-rtx3090-py311",
        machine(driver="470.57.02", ccs=("8.6",)),
        Request(),
        "2.7.1",
        "cu118",
    ),
    (
        "linux-510-a100-py310",
        machine(py="3.10.12", driver="510.47.03", ccs=("8.0",)),
        Request(),
        "2.7.1",
        "cu118",
    ),
    # 12.x floor 525.60.13: the newest CUDA 12 build is 2.14's cu126; 2.15 only has cu132.
    (
        "linux-525.60.13-a100-py311",
        machine(driver="525.60.13", ccs=("8.0",)),
        Request(),
        "2.14.1",
        "cu126",
    ),
    (
        "linux-525.60.12-a100-below-12x-floor",
        machine(driver="525.60.12", ccs=("8.0",)),
        Request(),
        "2.7.1",
        "cu118",
    ),
    # torch 2.4 on a 535 driver: cu124 needs the 550.54.14 toolkit driver, cu121 is fully supported.
    (
        "linux-535-a100-py311-torch2.4",
        machine(driver="535.104.05", ccs=("8.0",)),
        Request(torch="2.4"),
        "2.4.1",
        "cu121",
    ),
    (
        "linux-550-a100-py311-torch2.4",
        machine(driver="550.54.15", ccs=("8.0",)),
        Request(torch="2.4"),
        "2.4.1",
        "cu124",
    ),
    (
        "linux-535-range-spec",
        machine(driver="535.104.05", ccs=("8.0",)),
        Request(torch=">=2.3,<2.6"),
        "2.5.1",
        "cu121",
    ),
    # Blackwell: sm_120 first ships in cu128 (2.7); 2.12 dropped cu128, but 2.12.1 and 2.13.0
    # have Linux cu129 builds (audit C7); cu13x needs 580.
    (
        "linux-570-rtx5090-sm120-cu129",
        machine(driver="570.124.06", ccs=("12.0",)),
        Request(),
        "2.13.0",
        "cu129",
    ),
    (
        "linux-570-b200-sm100-cu129",
        machine(driver="570.124.06", ccs=("10.0",)),
        Request(),
        "2.13.0",
        "cu129",
    ),
    (
        "windows-570-rtx5090-no-cu129-on-windows",
        machine("windows", "x86_64", py="3.12.4", driver="572.61", ccs=("12.0",)),
        Request(),
        "2.11.0",
        "cu128",
    ),
    # 580.65.06 is CUDA 13.0's toolkit driver, below 13.2's (595.45.04): cu130 before cu132.
    (
        "linux-580-rtx5090-sm120",
        machine(driver="580.65.06", ccs=("12.0",)),
        Request(),
        "2.15.0",
        "cu130",
    ),
    (
        "linux-595-rtx5090-package-index-cu132",
        machine(driver="595.58.03", ccs=("12.0",)),
        Request(),
        "2.15.0",
        "cu132",
    ),
    # Pascal/Volta on a 580 driver: only cu126 keeps sm_50/60/70 after 2.11.
    (
        "linux-580-gtx1080-sm61",
        machine(driver="580.82.07", ccs=("6.1",)),
        Request(),
        "2.14.1",
        "cu126",
    ),
    (
        "linux-580-p100-sm60",
        machine(driver="580.82.07", ccs=("6.0",)),
        Request(),
        "2.14.1",
        "cu126",
    ),
    (
        "linux-580-v100-sm70",
        machine(driver="580.82.07", ccs=("7.0",)),
        Request(),
        "2.14.1",
        "cu126",
    ),
    (
        "linux-580-mixed-sm61-sm86",
        machine(driver="580.82.07", ccs=("6.1", "8.6")),
        Request(),
        "2.14.1",
        "cu126",
    ),
    (
        "linux-580-invisible-pascal-ignored",
        machine(driver="580.82.07", ccs=(("6.1", False), "12.0")),
        Request(),
        "2.15.0",
        "cu130",
    ),
    # Python edges: 3.8 ends with 2.4, 3.9 with 2.8, 3.15 starts with 2.15.
    ("linux-cpu-py38", machine(py="3.8.18"), Request(), "2.4.1", "cpu"),
    ("linux-cpu-py39", machine(py="3.9.19"), Request(), "2.8.0", "cpu"),
    # a machine without a GPU gets the newest CPU build: 2.15.0+cpu (audit C5)
    ("linux-cpu-py311", machine(), Request(), "2.15.0", "cpu"),
    ("linux-cpu-py315-only-2.15", machine(py="3.15.0"), Request(), "2.15.0", "cpu"),
    ("linux-cpu-py310-ends-2.14", machine(py="3.10.14"), Request(), "2.14.1", "cpu"),
    (
        "linux-580-a100-py39-cu129",
        machine(py="3.9.19", driver="580.65.06", ccs=("8.0",)),
        Request(),
        "2.8.0",
        "cu129",
    ),
    # macOS: arm64 wheels need macOS 14 from 2.12; x86_64 wheels end with 2.2.
    (
        "macos-arm64-13.6-py311",
        machine("darwin", "arm64", macos_version="13.6"),
        Request(),
        "2.11.0",
        "default",
    ),
    (
        "macos-arm64-14.5-py311",
        machine("darwin", "arm64", macos_version="14.5"),
        Request(),
        "2.15.0",
        "default",
    ),
    (
        "macos-x86_64-py311",
        machine("darwin", "x86_64", macos_version="13.6"),
        Request(),
        "2.2.2",
        "default",
    ),
    # Windows: the package-index build is CPU; CUDA comes from the PyTorch index.
    (
        "windows-560.94-rtx4090-py312",
        machine("windows", "x86_64", py="3.12.4", driver="560.94", ccs=("8.9",)),
        Request(),
        "2.14.1",
        "cu126",
    ),
    (
        "windows-581-rtx4090-py312",
        machine("windows", "x86_64", py="3.12.4", driver="581.57", ccs=("8.9",)),
        Request(),
        "2.15.0",
        "cu132",
    ),
    (
        "windows-cpu-py312",
        machine("windows", "x86_64", py="3.12.4"),
        Request(),
        "2.15.0",
        "default",
    ),
    # WSL: Linux wheels, the Windows driver (12.x floor on Windows is 527.41).
    (
        "wsl-560.94-rtx4090",
        machine(driver="560.94", ccs=("8.9",), wsl="wsl2"),
        Request(),
        "2.14.1",
        "cu126",
    ),
    (
        "wsl-526.98-below-windows-12x-floor",
        machine(driver="526.98", ccs=("8.9",), wsl="wsl2"),
        Request(),
        "2.7.1",
        "cu118",
    ),
    # Linux aarch64: CPU-only package-index wheels before 2.11; sbsa CUDA builds from 2.7.
    ("linux-aarch64-cpu-py311", machine(arch="aarch64"), Request(), "2.15.0", "cpu"),
    ("linux-aarch64-py38", machine(arch="aarch64", py="3.8.10"), Request(), "2.4.1", "default"),
    (
        "linux-aarch64-580-gh200",
        machine(arch="aarch64", py="3.12.3", driver="580.65.06", ccs=("9.0",)),
        Request(),
        "2.15.0",
        "cu130",
    ),
    (
        "linux-aarch64-595-gh200-cu132",
        machine(arch="aarch64", py="3.12.3", driver="595.58.03", ccs=("9.0",)),
        Request(),
        "2.15.0",
        "cu132",
    ),
    # GB200 on R570: 2.10/2.11 cu128 aarch64 builds carry sm_100 (audit C10); 2.11's cu129
    # needs the 575.51.03 toolkit driver for full support, so cu128 comes first.
    (
        "linux-aarch64-570-gb200",
        machine(arch="aarch64", py="3.12.3", driver="570.124.06", ccs=("10.0",)),
        Request(),
        "2.11.0",
        "cu128",
    ),
    (
        "linux-aarch64-575-gb200-cu129",
        machine(arch="aarch64", py="3.12.3", driver="575.57.08", ccs=("10.0",)),
        Request(),
        "2.11.0",
        "cu129",
    ),
    (
        "linux-aarch64-570-gh200",
        machine(arch="aarch64", py="3.12.3", driver="570.124.06", ccs=("9.0",)),
        Request(),
        "2.14.1",
        "cu126",
    ),
    # Named variants and audio.
    (
        "linux-535-variant-cu118",
        machine(driver="535.104.05", ccs=("8.0",)),
        Request(variant="cu118"),
        "2.7.1",
        "cu118",
    ),
    (
        "linux-gpu-variant-cpu",
        machine(driver="535.104.05", ccs=("8.0",)),
        Request(variant="cpu"),
        "2.15.0",
        "cpu",
    ),
    # torchaudio 2.11.0 serves later torch builds with its CUDA (13.0, 12.6, CPU; audit C2) and
    # 2.11.1 the package-index 2.15.0 (C3); cu132 builds have none.
    (
        "linux-580-a100-audio-cu130",
        machine(driver="580.65.06", ccs=("8.0",)),
        Request(audio=True),
        "2.15.0",
        "cu130",
    ),
    (
        "linux-560-a100-audio-cu126-2.14",
        machine(driver="560.35.03", ccs=("8.0",)),
        Request(audio=True),
        "2.14.1",
        "cu126",
    ),
    (
        "linux-595-a100-audio-package-index-2.11.1",
        machine(driver="595.58.03", ccs=("8.0",)),
        Request(audio=True),
        "2.15.0",
        "default",
    ),
    (
        "linux-595-a100-2.12-audio",
        machine(driver="595.58.03", ccs=("8.0",)),
        Request(torch="2.12", audio=True),
        "2.12.1",
        "cu130",
    ),
    # Companions judged on their own wheels (audit C1, C8, C9).
    (
        "linux-cpu-py3.14.1-vision-excluded-by-0.26-0.29.2",
        machine(py="3.14.1"),
        Request(vision=True),
        "2.10.0",
        "cpu",
    ),
    ("linux-cpu-py3.14.2-vision", machine(py="3.14.2"), Request(vision=True), "2.15.0", "cpu"),
    (
        "macos-11.7-py313-vision-needs-macos-12",
        machine("darwin", "arm64", py="3.13.1", macos_version="11.7"),
        Request(vision=True),
        "2.8.0",
        "default",
    ),
    (
        "macos-12.7-py313-vision",
        machine("darwin", "arm64", py="3.13.1", macos_version="12.7"),
        Request(vision=True),
        "2.11.0",
        "default",
    ),
    (
        "linux-550-py313-vision-torch2.6",
        machine(py="3.13.1", driver="550.54.15", ccs=("8.0",)),
        Request(torch=">=2.5,<2.7", vision=True),
        "2.6.0",
        "cu124",
    ),
    (
        "linux-cpu-py313t-audio-2.12.0-last-cp313t",
        machine(py="3.13.2", free_threaded=True),
        Request(audio=True),
        "2.12.0",
        "cpu",
    ),
    (
        "linux-cpu-py315-audio-2.11.1-package-index",
        machine(py="3.15.0"),
        Request(audio=True),
        "2.15.0",
        "default",
    ),
]


@pytest.mark.parametrize(
    ("profile", "request_", "torch", "variant"), [c[1:] for c in FITS], ids=[c[0] for c in FITS]
)
def test_fits(table: Table, profile: Profile, request_: Request, torch: str, variant: str) -> None:
    plan = resolve(profile, request_, table)
    assert (plan.torch, plan.variant) == (torch, variant), plan.why
    assert plan.candidates[0].accepted and plan.candidates[0].torch == torch
    assert plan.requirements()[0] == f"torch=={torch}"


NO_FIT = [
    (
        "linux-418-too-old-for-any-cuda",
        machine(driver="418.67", ccs=("7.0",)),
        Request(),
        "upgrade the driver to >= 450.80.02",
    ),
    (
        "linux-470-asks-cu121",
        machine(driver="470.57.02", ccs=("8.6",)),
        Request(variant="cu121"),
        "upgrade the driver to >= 525.60.13",
    ),
    (
        "linux-570-asks-cu130",
        machine(driver="570.124.06", ccs=("8.6",)),
        Request(variant="cu130"),
        "upgrade the driver to >= 580.65.06",
    ),
    (
        "linux-580-mixed-sm61-sm120",
        machine(driver="580.82.07", ccs=("6.1", "12.0")),
        Request(),
        "CUDA_VISIBLE_DEVICES",
    ),
    (
        "linux-py313-torch2.4",
        machine(py="3.13.1"),
        Request(torch="2.4"),
        "Python 3.13 needs torch >= 2.5",
    ),
    (
        "linux-py38-torch2.6",
        machine(py="3.8.18"),
        Request(torch="2.6"),
        "Python 3.8 needs torch <= 2.4",
    ),
    (
        "macos-x86_64-py313",
        machine("darwin", "x86_64", py="3.13.0", macos_version="14.0"),
        Request(),
        "Python 3.13",
    ),
    (
        "macos-arm64-13-torch2.12",
        machine("darwin", "arm64", macos_version="13.6"),
        Request(torch="2.12"),
        "macOS to >= 14.0",
    ),
    (
        "linux-2.12-cu132-has-no-audio",
        machine(driver="595.58.03", ccs=("8.0",)),
        Request(torch="2.12", variant="cu132", audio=True),
        "no torchaudio release goes with them",
    ),
    (
        "linux-2.15-py3.14.1-vision",
        machine(py="3.14.1"),
        Request(torch="2.15", vision=True),
        "torchvision excludes Python 3.14.1",
    ),
    (
        "linux-2.15-py3.14.1-vision-names-another-python",
        machine(py="3.14.1"),
        Request(torch="2.15", vision=True),
        "use another Python 3.14 patch release than 3.14.1",
    ),
    (
        "linux-2.15-py3.14.1-vision-names-an-older-torch",
        machine(py="3.14.1"),
        Request(torch="2.15", vision=True),
        "ask for --torch 2.10.0 (torchvision 0.25.0 fits)",
    ),
    (
        "linux-2.15-py3.14.1-vision-names-dropping-it",
        machine(py="3.14.1"),
        Request(torch="2.15", vision=True),
        "plan without torchvision (--no-vision)",
    ),
    (
        "linux-2.5-py313-vision-no-cp313-companion",
        machine(py="3.13.1", driver="550.54.15", ccs=("8.0",)),
        Request(torch="2.5", vision=True),
        "torchvision has no wheel for Python 3.13",
    ),
    (
        "macos-11-py313-torch2.11-vision",
        machine("darwin", "arm64", py="3.13.1", macos_version="11.7"),
        Request(torch="2.11", vision=True),
        "upgrade macOS to >= 12.0 (torchvision 0.26.0)",
    ),
    (
        "linux-spec-matching-nothing",
        machine(),
        Request(torch="2.13.0,!=2.13.0"),
        "no torch release in the table matches",
    ),
    (
        "linux-2.4-cu130-does-not-exist",
        machine(driver="580.65.06", ccs=("8.0",)),
        Request(torch="2.4", variant="cu130"),
        "no cu130 build",
    ),
    (
        "linux-2.15-no-cuda-12",
        machine(driver="560.35.03", ccs=("8.0",)),
        Request(torch="2.15"),
        "older than 580.65.06, the minimum for CUDA 13.x",
    ),
    ("linux-torch-2.16-not-in-table", machine(), Request(torch="2.16"), "2.0.0 - 2.15.0"),
    ("freebsd-no-wheels", machine("freebsd", "x86_64"), Request(), "no wheels for freebsd"),
]


@pytest.mark.parametrize(
    ("profile", "request_", "needle"), [c[1:] for c in NO_FIT], ids=[c[0] for c in NO_FIT]
)
def test_no_fit(table: Table, profile: Profile, request_: Request, needle: str) -> None:
    with pytest.raises(NoBuildError) as err:
        resolve(profile, request_, table)
    msg = str(err.value)
    assert needle in msg
    assert "\n" not in msg
    assert err.value.exit_code == 4


@pytest.mark.parametrize(
    ("profile", "true", "false"),
    [
        (machine(py="2.7.18", driver="570.124.06", ccs=("9.0",) * 8), "Python 2.7", "kernels"),
        (machine(py="2.7.18", driver="570.124.06", ccs=("9.0",)), "Python 3.", "--variant cpu"),
    ],
    ids=["py2.7-8xh100-names-python-only", "py2.7-h100-no-cpu-build-offered"],
)
def test_a_refusal_names_only_the_true_reason(
    table: Table, profile: Profile, true: str, false: str
) -> None:
    """Python 2.7 has no wheel at all: that is the reason, not the GPU every build serves, and a
    CPU build (no wheel for Python 2.7 either) is no way out."""
    with pytest.raises(NoBuildError) as err:
        resolve(profile, Request(), table)
    assert true in str(err.value) and false not in str(err.value), str(err.value)


def test_refused_candidates_say_why(table: Table) -> None:
    plan = resolve(machine(driver="570.124.06", ccs=("12.0",)), Request(torch=">=2.11"), table)
    refused = {(c.torch, c.variant): c.reasons for c in plan.candidates if not c.accepted}
    assert any("no kernels in cu126" in r for r in refused[("2.14.1", "cu126")])
    assert any("older than 580.65.06" in r for r in refused[("2.14.1", "cu130")])
    accepted = [c for c in plan.candidates if c.accepted]
    assert [c.torch for c in accepted] == sorted((c.torch for c in accepted), reverse=True)


def test_toolkit_minimum_is_a_warning_not_a_refusal(table: Table) -> None:
    plan = resolve(
        machine(driver="560.35.03", ccs=("8.0",)), Request(torch="2.8", variant="cu128"), table
    )
    assert plan.variant == "cu128"
    assert any("570.26" in w for w in plan.warnings)


def test_windows_13x_floor_is_marked_inferred(table: Table) -> None:
    plan = resolve(
        machine("windows", "x86_64", py="3.12.4", driver="581.57", ccs=("8.9",)), Request(), table
    )
    assert any("not published exactly" in w for w in plan.warnings)


def test_amd_gpu_gets_rocm(table: Table) -> None:
    prof = Profile.from_dict({"python": {"version": "3.11.7"}, "other": {"amd_gpus": 1}})
    plan = resolve(prof, Request(), table)
    assert (
        plan.variant.startswith("rocm")
        and plan.rocm
        and plan.index_url
        and plan.index_url.endswith(plan.variant)
    )
    assert resolve(machine(), Request(), table).variant == "cpu"


def test_index_base_mirror(table: Table) -> None:
    plan = resolve(
        machine(driver="535.104.05", ccs=("8.0",)),
        Request(torch="2.4", index_base="https://mirror.example/torch/"),
        table,
    )
    assert plan.index_url == "https://mirror.example/torch/cu121"


@pytest.mark.parametrize("spec", ["foo", "2.4.1+cu121", ">=banana", "=="])
def test_bad_spec(spec: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_spec(spec)
    assert "spec" in str(err.value)


def test_bad_variant(table: Table) -> None:
    with pytest.raises(UsageError, match="unknown variant 'cuda12'"):
        resolve(machine(), Request(variant="cuda12"), table)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://download.pytorch.org/whl", "https://download.pytorch.org/whl"),
        ("HTTPS://Mirror.example/whl", "https://Mirror.example/whl"),
        ("http://127.0.0.1:8080/simple/", "http://127.0.0.1:8080/simple/"),
        ("https://user:token@mirror.example/whl", "https://user:token@mirror.example/whl"),
        ("file:///srv/mirror/whl", "file:///srv/mirror/whl"),
    ],
)
def test_check_index_url_accepts(url: str, expected: str) -> None:
    assert check_index_url(url, "--index-url") == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http:///", "has no host name"),
        ("https://:443/whl", "has no host name"),
        ("https://m.example/whl?token=a", "has a query or fragment"),
        ("https://m.example/whl?", "has a query or fragment"),
        ("https://m.example/whl#cpu", "has a query or fragment"),
        ("ftp://m.example/whl", "is not an http(s):// or file:// URL"),
        ("m.example/whl", "is not an http(s):// or file:// URL"),
        ("https://m.example:port/whl", "is not a valid URL"),
        ("https://m.example/my whl", "is not a URL"),
        ("file://", "names no directory"),
        ("", "is not a URL"),
    ],
)
def test_check_index_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(UsageError) as err:
        check_index_url(url, "--index-url")
    assert err.value.message.startswith(f"--index-url {url!r} {reason}")
    assert "\n" not in err.value.message


def test_index_base_flag_then_environment_then_official() -> None:
    env = {"ENVSETUP_TORCH_INDEX": "http://mirror.example/whl/"}
    assert index_base_from("https://flag.example/w/", env) == "https://flag.example/w"
    assert index_base_from(None, env) == "http://mirror.example/whl"
    assert index_base_from(None, {"ENVSETUP_TORCH_INDEX": ""}) == "https://download.pytorch.org/whl"
    with pytest.raises(UsageError, match=r"^ENVSETUP_TORCH_INDEX 'http:///' has no host"):
        index_base_from(None, {"ENVSETUP_TORCH_INDEX": "http:///"})


def test_why_speaks_of_the_machine_not_the_table(table: Table) -> None:
    plan = resolve(machine(), Request(), table)
    text = " ".join(plan.why)
    assert "matching latest" not in text and "known to the table" not in text
    assert plan.why[0].startswith("torch 2.15.0 is the newest release with a CPU build here")
    assert "Python 3.11.7" in plan.why[0]
    pinned = resolve(machine(driver="535.104.05", ccs=("8.0",)), Request(torch="2.4"), table)
    assert pinned.why[0].startswith("torch 2.4.1 is the newest release matching 2.4 with a CUDA")


def test_why_names_the_newer_release_a_companion_keeps_out(table: Table) -> None:
    plan = resolve(machine(py="3.14.1"), Request(vision=True), table)
    assert plan.python_version == "3.14.1" and plan.python == "3.14"
    assert any(
        w.startswith("torch 2.11.0 - 2.15.0 are newer but do not fit: torchvision excludes")
        for w in plan.why
    ), plan.why
    assert any("another Python 3.14 patch release" in w for w in plan.why)


def test_refused_candidates_grouped_by_reason(table: Table) -> None:
    plan = resolve(machine(), Request(), table)
    groups = {g.reason: g for g in plan.refused}
    cuda = groups["no NVIDIA GPU with a driver"]
    assert cuda.kind == "CUDA" and cuda.torch == "2.0.0 - 2.15.0"
    refused = [c for c in plan.candidates if not c.accepted]
    assert sum(g.count for g in plan.refused) == len(refused)
    assert cuda.count == sum("no NVIDIA GPU" in c.reasons[0] for c in refused)
    assert str(cuda).startswith(f"{cuda.count} CUDA builds of torch 2.0.0 - 2.15.0: no NVIDIA GPU")


def test_medium_confidence_is_one_warning_line(table: Table) -> None:
    plan = resolve(machine(driver="580.65.06", ccs=("8.0",)), Request(audio=True), table)
    medium = [w for w in plan.warnings if "medium-confidence" in w]
    assert len(medium) == 1
    assert "torchaudio 2.11.0 with cu130" in medium[0] and "cu130 build of torch 2.15" in medium[0]
    high = resolve(machine(driver="535.104.05", ccs=("8.0",)), Request(torch="2.4"), table)
    assert not any("medium-confidence" in w for w in high.warnings)


def test_profile_without_patch_level_warns_of_an_excluded_patch(table: Table) -> None:
    plan = resolve(machine(py="3.14"), Request(vision=True), table)
    assert plan.torch == "2.15.0" and plan.python_version == "3.14"
    assert any("excludes Python 3.14.1" in w and "patch level" in w for w in plan.warnings)


def test_cu129_only_for_the_patches_that_have_it(table: Table) -> None:
    prof = machine(driver="575.57.08", ccs=("8.0",))
    assert resolve(prof, Request(torch="2.9.1", variant="cu129"), table).torch == "2.9.1"
    with pytest.raises(NoBuildError, match="no cu129 build"):
        resolve(prof, Request(torch="2.9.0", variant="cu129"), table)
    with pytest.raises(NoBuildError, match="no torchvision release goes with them"):
        resolve(prof, Request(torch="2.13.0", variant="cu129", vision=True), table)


@pytest.mark.parametrize("spec", ["", "  "])
def test_empty_spec_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError, match="empty torch version spec"):
        parse_spec(spec)


def test_bare_versions_in_a_spec() -> None:
    ss = parse_spec("2.13.0,!=2.13.0")
    assert ss is not None and not list(ss.filter(["2.13.0", "2.13.1"]))
    ss = parse_spec("2.13, !=2.13.1")
    assert ss is not None and list(ss.filter(["2.13.0", "2.13.1", "2.14.0"])) == ["2.13.0"]
