"""The stack: the user's requirements resolved with the machine's torch build, by real uv and
real pip, against two real indexes on loopback (tests/stackindex.py) that hold a trap: plain
torch builds on the package-index-like one."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from envsetup.compat import load_table
from envsetup.diagnose.rules import toolkit_problems
from envsetup.errors import NoBuildError, UsageError
from envsetup.plan import Request
from envsetup.profile import Profile
from envsetup.resolve import resolve
from envsetup.stack import (
    Stack,
    profile_target,
    read_requirements,
    resolve_stack,
    target_env,
)
from stackindex import CPU_MACHINE, FROZEN, RTX5090_MACHINE, StackIndex, build_indexes, newest_build

PY = sys.executable  # resolution only: nothing is installed into it
CPU = {"system": {"os": "linux", "arch": "x86_64"}}
A100 = {**CPU, "nvidia": {"driver_version": "535.104.05", "gpus": [{"compute_capability": "8.0"}]}}
RTX5090 = RTX5090_MACHINE


def profile(d: dict[str, object]) -> Profile:
    v = ".".join(map(str, sys.version_info[:3]))
    return Profile.from_dict({**d, "python": {"version": v, "executable": PY}})


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackIndex]:
    root = build_indexes(tmp_path_factory.mktemp("stack") / "root")
    with StackIndex(root) as server:
        yield server


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """pip and uv see none of this machine's configuration (its pip.conf adds indexes, a wheel
    directory and a torch cap); uv's cache is the test's own."""
    for k in list(os.environ):
        if k.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("UV_NO_CONFIG", "1")  # nor any uv.toml of this machine's
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))


def stack(
    index: StackIndex,
    prof: dict[str, object],
    *packages: str,
    torch: str | None = None,
    **kw: object,
) -> Stack:
    req = Request(torch=torch, index_base=index.whl)
    return resolve_stack(
        profile(prof),
        req,
        load_table(FROZEN),
        read_requirements(packages),
        python=PY,
        default_index=index.simple,
        **kw,  # type: ignore[arg-type]
    )


def test_torch_comes_from_the_variant_index_never_the_trap(index: StackIndex) -> None:
    s = stack(index, CPU, "libeq", "libge", "libnp", torch="2.4.1")
    torch = s.package("torch")
    assert torch is not None and torch.version == "2.4.1+cpu"
    assert torch.source == "pytorch" and torch.index == f"{index.whl}/cpu"
    assert torch.url and "/files/whl/cpu/" in torch.url and torch.sha256
    tag = "cp{}{}".format(*sys.version_info[:2])
    if tag in ("cp311", "cp312"):
        assert f"-{tag}-{tag}-" in torch.url  # the target's own wheel of the two listed
    names = {p.name: p for p in s.packages}
    assert set(names) == {"torch", "libeq", "libge", "libnp", "numpy"}
    for n in ("libeq", "libge", "libnp", "numpy"):
        assert names[n].source == "index" and "/files/simple/" in (names[n].url or "")
    assert names["numpy"].requested is False and names["libnp"].requested is True
    again = Stack.from_dict(json.loads(s.to_json()))
    assert again == s
    lock = s.requirements_lock()
    assert f"torch @ {torch.url.split('#')[0]} --hash=sha256:{torch.sha256}" in lock


def test_a_library_pin_moves_torch_to_an_allowed_build(index: StackIndex) -> None:
    # no --torch: the machine's newest valid build is newer than libeq allows
    s = stack(index, CPU, "libeq")
    assert s.plan.torch == "2.4.1" and s.plan.variant == "cpu"
    assert s.package("torch").version == "2.4.1+cpu"  # type: ignore[union-attr]
    assert any("libeq 1.0 requires torch==2.4.1" in n for n in s.notes), s.notes


def test_a_pin_deeper_in_the_graph_moves_torch_too(index: StackIndex) -> None:
    s = stack(index, CPU, "wrapeq")  # wrapeq -> libeq -> torch==2.4.1
    assert s.package("torch").version == "2.4.1+cpu"  # type: ignore[union-attr]
    newest = newest_build(CPU_MACHINE)
    assert any(f"2.4.1+cpu, not {newest}: libeq 1.0 requires torch==2.4.1" in n for n in s.notes)


def test_gpu_machine_gets_the_cuda_variant_and_pulled_companions_follow(index: StackIndex) -> None:
    s = stack(index, A100, "libvis", torch="2.4.1")
    assert s.package("torch").version == "2.4.1+cu121"  # type: ignore[union-attr]
    vis = s.package("torchvision")
    assert vis is not None and vis.version == "0.19.1+cu121" and vis.source == "pytorch"
    assert any("torchvision pulled in" in n for n in s.notes)


def test_user_torch_requirement_from_a_file(index: StackIndex, tmp_path: Path) -> None:
    (tmp_path / "more.txt").write_text("libnp  # numpy through it\n")
    req = tmp_path / "requirements.txt"
    req.write_text("# the project\ntorch<2.5\n-r more.txt\nlib\\\nge\n")
    user = read_requirements((), [str(req)])
    assert user.torch == ("torch<2.5",) and user.requirements == ("libnp", "libge")
    s = resolve_stack(
        profile(CPU), Request(index_base=index.whl), load_table(FROZEN), user, python=PY,
        default_index=index.simple,
    )  # fmt: skip
    assert s.plan.torch == "2.4.1" and s.package("torch").version == "2.4.1+cpu"  # type: ignore[union-attr]


@pytest.mark.parametrize("packages", [("libx==1.2",), ("wrapx",)], ids=["direct", "transitive"])
def test_no_build_fits_names_the_chain_and_the_way_out(
    index: StackIndex, packages: tuple[str, ...]
) -> None:
    with pytest.raises(NoBuildError) as err:
        stack(index, RTX5090, *packages)
    msg = err.value.message
    assert err.value.exit_code == 4
    assert msg.startswith("libx 1.2 requires torch==2.6.0; no torch==2.6.0 build fits"), msg
    assert (
        "(none has kernels for GPU 0 (NVIDIA GeForce RTX 5090), sm_120: cu118, cu124, cu126" in msg
    )
    assert "the first it can run is 2.7.0+cu128" in msg
    assert msg.endswith("libx 1.3 allows it (torch>=2.7)"), msg


def test_a_user_torch_requirement_no_build_fits(index: StackIndex) -> None:
    with pytest.raises(NoBuildError) as err:
        stack(index, CPU, "torch<2.0")
    # the oldest build this machine can run, as the resolver sees it
    base = resolve(profile(CPU), Request(index_base=index.whl), load_table(FROZEN))
    oldest = min((c.torch for c in base.candidates if c.accepted), key=Version)
    first = resolve(profile(CPU), Request(torch=oldest, index_base=index.whl), load_table(FROZEN))
    assert err.value.message == (
        "the requirements require torch<2.0; no torch<2.0 build fits this machine (the table "
        f"knows no such release), the first it can run is {first.local_version}: loosen that "
        "requirement, or plan for another machine"
    )


def test_source_only_package_is_named_with_what_it_needs(index: StackIndex) -> None:
    s = stack(index, A100, "ext", torch="2.4.1")
    (need,) = s.builds
    assert (need.name, need.version, need.against_torch) == ("ext", "0.1", True)
    assert any(n.startswith("nvcc from CUDA 12.x") for n in need.needs), need.needs
    assert "a C/C++ compiler" in need.needs


def test_requirement_files_refuse_what_would_change_the_sources(tmp_path: Path) -> None:
    f = tmp_path / "r.txt"
    f.write_text("libge\n--extra-index-url http://127.0.0.1:9/simple\n")
    with pytest.raises(UsageError, match=r"r.txt:2: --extra-index-url sets where packages come"):
        read_requirements((), [str(f)])
    f.write_text("-e ./src\n")
    with pytest.raises(UsageError, match=r"r.txt:1: ./src: no such file or directory"):
        read_requirements((), [str(f)])
    with pytest.raises(UsageError, match="torch from a URL is of torch's family"):
        read_requirements(["torch @ http://127.0.0.1:9/torch.whl"])
    with pytest.raises(UsageError, match="is not a requirement"):
        read_requirements(["lib>>1"])
    f.write_text("libge --hash=sha256:00\n-c ${CONS}\n")
    (tmp_path / "c.txt").write_text("numpy<2\ntorchvision<0.20\n")
    user = read_requirements((), [str(f)], environ={"CONS": "c.txt"})
    assert user.requirements == ("libge",) and user.constraints == ("numpy<2",)
    assert user.torch == ("torchvision<0.20",)


def test_target_env_has_the_interpreter_tags() -> None:
    env = target_env(PY)
    assert env.markers["python_full_version"] == ".".join(map(str, sys.version_info[:3]))
    assert env.tags[0].startswith("cp{}{}-".format(*sys.version_info[:2]))


def test_toolkit_problems() -> None:
    assert toolkit_problems(None, "13.0.88") == []
    assert toolkit_problems("12.1", "12.4.131") == []
    (p,) = toolkit_problems("12.1", "13.0.88")
    assert "CUDA 13.0.88" in p and "CUDA 12.x" in p
    assert toolkit_problems("12.1", None) == [
        "no nvcc found: extensions for this torch need nvcc from CUDA 12.x"
    ]


@pytest.mark.parametrize(
    ("system", "platform", "first_tag"),
    [
        ({"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.36"},
         "x86_64-manylinux_2_36", "cp312-cp312-manylinux_2_36_x86_64"),
        ({"os": "linux", "arch": "x86_64", "libc": "glibc", "libc_version": "2.27"},
         "x86_64-manylinux_2_17", "cp312-cp312-manylinux_2_17_x86_64"),
        ({"os": "linux", "arch": "aarch64", "libc": "glibc", "libc_version": "2.41"},
         "aarch64-manylinux_2_40", "cp312-cp312-manylinux_2_40_aarch64"),
        ({"os": "linux", "arch": "x86_64"}, "x86_64-manylinux_2_28",
         "cp312-cp312-manylinux_2_28_x86_64"),
        ({"os": "linux", "arch": "aarch64", "libc": "musl", "libc_version": "1.2.4"},
         "aarch64-unknown-linux-musl", "cp312-cp312-musllinux_1_2_aarch64"),
        ({"os": "darwin", "arch": "arm64", "macos_version": "14.5"}, "aarch64-apple-darwin",
         "cp312-cp312-macosx_14_0_arm64"),
        ({"os": "windows", "arch": "x86_64"}, "x86_64-pc-windows-msvc", "cp312-cp312-win_amd64"),
    ],
)  # fmt: skip
def test_a_profile_target_is_its_python_and_platform(
    system: dict[str, str], platform: str, first_tag: str
) -> None:
    prof = Profile.from_dict({"system": system, "python": {"version": "3.12.4"}})
    env = profile_target(prof)
    assert env.platform == platform and env.tags[0] == first_tag
    args = env.uv_args()  # for uv: no interpreter of that kind, and none downloaded
    assert args[args.index("--python-platform") + 1] == platform
    assert args[args.index("--python-version") + 1] == "3.12.4" and "--no-python-downloads" in args
    want = {"linux": "linux", "darwin": "darwin", "windows": "win32"}[system["os"]]
    assert env.markers["sys_platform"] == want and env.markers["python_version"] == "3.12"
    assert env.fresh and not env.installed


def test_a_profile_of_a_platform_uv_cannot_resolve_for_is_one_line() -> None:
    prof = Profile.from_dict({"system": {"os": "linux", "arch": "ppc64le"}})
    with pytest.raises(UsageError, match=r"^the profile's platform \(linux ppc64le\) is not one"):
        profile_target(prof)
