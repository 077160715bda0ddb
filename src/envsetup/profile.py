"""The Profile: a frozen, JSON-serialisable record of one machine.

``envsetup doctor --json`` writes it; ``--profile FILE`` reads it back (also a small hand-written
one: every field has a default), so a plan can be made for another machine. Each section keeps,
in ``unknown``, the reason for every field it could not learn.

Annotations use ``Optional`` rather than ``X | None``: they are evaluated at run time by
:func:`from_dict` and envsetup runs on Python 3.9.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class System:
    os: str = "linux"  # linux | windows | darwin | …, as platform.system().lower()
    release: Optional[str] = None  # kernel release (Linux), Darwin release, Windows release
    arch: str = "x86_64"  # normalised: x86_64 | aarch64 (Linux, Windows) | arm64 (macOS)
    distro_id: Optional[str] = None  # os-release ID, e.g. "ubuntu"
    distro_version: Optional[str] = None  # os-release VERSION_ID, e.g. "22.04"
    distro_name: Optional[str] = None  # os-release PRETTY_NAME
    libc: Optional[str] = None  # "glibc" | "musl"
    libc_version: Optional[str] = None
    wsl: Optional[str] = None  # None | "wsl1" | "wsl2"
    container: Optional[str] = None  # None | docker | podman | kubernetes | lxc | container
    macos_version: Optional[str] = None
    windows_build: Optional[str] = None
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Python:
    executable: Optional[str] = None
    version: str = "3.11.0"
    implementation: str = "cpython"
    bits: int = 64
    free_threaded: bool = False  # a 3.13t/3.14t build (needs the "t" wheels)
    prefix: Optional[str] = None
    virtualenv: Optional[str] = None  # the venv's directory when the target is in one
    conda_env: Optional[str] = None  # the conda environment's prefix when it is one
    externally_managed: bool = False  # PEP 668 marker present (and not in a venv)
    user_site_enabled: bool = False
    pip_version: Optional[str] = None  # pip installed in the target
    uv_version: Optional[str] = None  # uv on PATH
    uv_path: Optional[str] = None
    conda_version: Optional[str] = None  # conda reachable (CONDA_EXE or PATH)
    conda_path: Optional[str] = None
    pythonpath: tuple[str, ...] = ()  # PYTHONPATH's entries in the user's environment
    pythonpath_shadows: dict[str, str] = field(default_factory=dict)  # module -> file it loads
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cpu:
    brand: Optional[str] = None
    vendor: Optional[str] = None
    arch: Optional[str] = None
    logical_cores: Optional[int] = None
    physical_cores: Optional[int] = None
    flags: tuple[str, ...] = ()  # only the ISA flags that matter to torch builds
    source: Optional[str] = None  # "/proc/cpuinfo" | "py-cpuinfo"
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Gpu:
    index: int = 0
    name: Optional[str] = None
    uuid: Optional[str] = None
    pci_bus_id: Optional[str] = None
    compute_capability: Optional[str] = None  # "8.6"
    memory_total_mib: Optional[int] = None
    mig_mode: Optional[bool] = None
    persistence_mode: Optional[bool] = None
    visible: bool = True  # after CUDA_VISIBLE_DEVICES


@dataclass(frozen=True)
class NvmlError:
    kind: str  # library_not_found | driver_not_loaded | lib_rm_version_mismatch | no_permission
    #           | function_not_found | unknown
    message: str


@dataclass(frozen=True)
class Nvidia:
    driver_version: Optional[str] = None  # "570.124.06"
    cuda_driver_version: Optional[str] = None  # the CUDA version the driver supports, "12.8"
    kernel_module: Optional[str] = None  # "open" | "proprietary"
    gpus: tuple[Gpu, ...] = ()
    source: Optional[str] = (
        None  # where the driver version came from: nvml | proc | sysfs | nvidia-smi
    )
    nvml_error: Optional[NvmlError] = None
    nvml_library: Optional[str] = None  # the libnvidia-ml path that was loaded, when known
    pci_devices: int = 0  # NVIDIA display/3D controllers on the PCI bus (sysfs), driver or not
    cuda_visible_devices: Optional[str] = None
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OtherAccelerators:
    amd_gpus: int = 0  # AMD display/3D controllers on the PCI bus
    rocm_version: Optional[str] = None
    rocm_path: Optional[str] = None
    kfd: bool = False  # /dev/kfd: the ROCm kernel driver is loaded
    mps: bool = False  # Apple Silicon GPU through Metal Performance Shaders


@dataclass(frozen=True)
class Toolkit:
    path: str
    version: Optional[str] = None
    source: str = ""  # nvcc-on-PATH | CUDA_HOME | CUDA_PATH | default-location


@dataclass(frozen=True)
class Cudnn:
    version: Optional[str]
    path: str
    source: str  # header | library | pip


@dataclass(frozen=True)
class LibraryShadow:
    directory: str  # an LD_LIBRARY_PATH entry
    libraries: tuple[str, ...]  # the CUDA/cuDNN libraries found there


@dataclass(frozen=True)
class Cuda:
    toolkits: tuple[Toolkit, ...] = ()
    nvcc: Optional[str] = None  # nvcc found on PATH
    nvcc_version: Optional[str] = None  # what that nvcc says, "13.0.88"
    cuda_home: Optional[str] = None  # CUDA_HOME or CUDA_PATH as set
    cudnn: tuple[Cudnn, ...] = ()
    ld_library_path: tuple[LibraryShadow, ...] = ()
    wsl_lib: Optional[bool] = None  # WSL only: /usr/lib/wsl/lib present with libcuda
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    location: Optional[str] = None
    installer: Optional[str] = None  # pip | uv | conda | … (the dist-info INSTALLER file)
    requires_torch: Optional[str] = None  # the torch requirement it declares, "==2.4.1"


@dataclass(frozen=True)
class TorchDeep:
    """What importing torch in the target said (``doctor --deep``)."""

    imported: bool = False
    error: Optional[str] = None
    version: Optional[str] = None
    cuda_available: Optional[bool] = None
    device_count: Optional[int] = None
    arch_list: tuple[str, ...] = ()
    cudnn_version: Optional[int] = None
    mps_available: Optional[bool] = None


@dataclass(frozen=True)
class Torch:
    version: Optional[str] = None  # full, with local part: "2.4.1+cu121"
    cuda: Optional[str] = None  # torch.version.cuda of the installed build, "12.1"
    hip: Optional[str] = None  # torch.version.hip
    git_version: Optional[str] = None
    location: Optional[str] = None
    origin: Optional[str] = None  # pip | uv | conda | unknown
    packages: tuple[Package, ...] = ()  # torch, torchvision, torchaudio, triton, nvidia-* …
    duplicates: tuple[str, ...] = ()  # more than one torch on sys.path: their locations
    # requirements of torch and its companions not met ("torch needs typing-extensions>=4.10.0,
    # not installed"): such a torch cannot be imported
    unmet: tuple[str, ...] = ()
    deep: Optional[TorchDeep] = None
    unknown: dict[str, str] = field(default_factory=dict)

    def package(self, name: str) -> Optional[Package]:
        for p in self.packages:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True)
class Compiler:
    path: str
    version: Optional[str] = None


@dataclass(frozen=True)
class Toolchain:
    cc: Optional[Compiler] = None
    cxx: Optional[Compiler] = None
    unknown: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GuardRecord:
    """The torch build envsetup installed and guards in the target environment
    (``<prefix>/envsetup-guard.json``, see envsetup.guard)."""

    path: str
    packages: dict[str, str] = field(default_factory=dict)  # name -> exact version installed
    variant: Optional[str] = None
    index: Optional[str] = None
    builds: tuple[str, ...] = ()  # packages built from source against that torch
    active: Optional[bool] = None  # pip's site configuration still names the constraints
    constraints: Optional[str] = None  # the constraints file the guard wrote
    uv_constraint: Optional[bool] = None  # UV_CONSTRAINT names it (uv refuses swaps too)
    unknown: dict[str, str] = field(default_factory=dict)


REQUIRED = ("system.os", "system.arch", "python.version")  # what a plan for a machine rests on


def missing_keys(data: Any) -> list[str]:
    """The keys of :data:`REQUIRED` a profile's JSON lacks (their defaults describe no real
    machine: a hand-written profile without its Python would be planned for 3.11.0)."""
    out = []
    for key in REQUIRED:
        section, name = key.split(".")
        part = data.get(section) if isinstance(data, dict) else None
        if not isinstance(part, dict) or part.get(name) in (None, ""):
            out.append(key)
    return out


@dataclass(frozen=True)
class Profile:
    schema_version: int = SCHEMA_VERSION
    envsetup_version: Optional[str] = None
    system: System = field(default_factory=System)
    python: Python = field(default_factory=Python)
    cpu: Cpu = field(default_factory=Cpu)
    nvidia: Nvidia = field(default_factory=Nvidia)
    other: OtherAccelerators = field(default_factory=OtherAccelerators)
    cuda: Cuda = field(default_factory=Cuda)
    torch: Torch = field(default_factory=Torch)
    toolchain: Toolchain = field(default_factory=Toolchain)
    guard: Optional[GuardRecord] = None  # envsetup's record of the installed build, if any

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = to_dict(self)
        return d

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        """Build a Profile from JSON data; raises ValueError naming the bad key."""
        if not isinstance(data, dict):
            raise ValueError("a profile must be a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version!r} is not supported (this envsetup reads {SCHEMA_VERSION})"
            )
        return from_dict(cls, data)


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


T = TypeVar("T")
MAX_ITEMS = 4096  # entries in one list of a profile or plan (GPUs, packages, candidates)
_HINTS: dict[type, dict[str, Any]] = {}


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Rebuild dataclass ``cls`` from ``data``; missing keys take their defaults."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{path or cls.__name__.lower()}: expected an object, got {type(data).__name__}"
        )
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise ValueError(f"{path + '.' if path else ''}{key}: unknown key")
    kwargs = {k: _convert(hints[k], v, f"{path + '.' if path else ''}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field (no default) is missing
        raise ValueError(f"{path or cls.__name__.lower()}: {exc}") from None


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        if value is None:
            if type(None) in args:
                return None
            raise ValueError(f"{path}: must not be null")
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list")
        if len(value) > MAX_ITEMS:
            raise ValueError(
                f"{path}: {len(value)} entries, more than any machine has (at most {MAX_ITEMS})"
            )
        return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"{path}: expected an object of strings")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an integer")
        if not 0 <= value < 1 << 53:  # every integer of a profile is a count, size or index
            raise ValueError(f"{path}: {value} is out of range (a count or size, 0 or more)")
        return value
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # A hand-written profile may say "python": {"version": 3.11}: a string was meant,
            # but a float loses the difference between 3.1 and 3.10, so refuse it.
            raise ValueError(f'{path}: expected a string (quote it: "{value}")')
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string")
        return value
    return value
