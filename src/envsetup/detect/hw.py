"""The GPU hardware boundary: the one place envsetup touches NVML, nvidia-smi, lspci-style
sysfs entries and the NVIDIA /proc files.

Everything else in detection is real. Without a GPU (tests, CI, bug reports) this boundary is
replayed from a recording of a real machine: :class:`Replay`, chosen by setting the environment
variable ``ENVSETUP_HW_REPLAY`` to a recording's path. A recording is JSON::

    {"files":    {"/proc/driver/nvidia/version": "NVRM version: …", …},
     "commands": {"nvidia-smi": {"returncode": 0, "stdout": "…"}, …},
     "nvml":     {"error": "DriverNotLoaded"}
              or {"driver_version": "570.124.06", "cuda_driver_version": 12080,
                  "devices": [{"name": …, "uuid": …, "pci_bus_id": …, "cc": [8, 0],
                               "memory_total": bytes, "mig": [0, 0] | null,
                               "persistence": 1 | null}],
                  "missing_functions": ["nvmlDeviceGetCudaComputeCapability"]}}

The replayed NVML raises the real ``pynvml`` exception classes, so the probe's error handling
is the code that runs against a real driver.
"""

from __future__ import annotations

import os
import posixpath
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional, Protocol

from envsetup import proc

WSL_LIB = "/usr/lib/wsl/lib"


class Hardware(Protocol):
    def nvml(self) -> Any:
        """The pynvml module (or one with its API); importing it never initialises NVML."""

    def read_text(self, path: str) -> Optional[str]: ...

    def listdir(self, path: str) -> list[str]: ...

    def run(self, argv: list[str], timeout: float = 10.0) -> proc.Result: ...

    def loaded_nvml_path(self) -> Optional[str]:
        """The libnvidia-ml file this process loaded, when it can be told."""


class Real:
    """The machine itself."""

    def nvml(self) -> Any:
        """pynvml, with the driver's library loaded first. Raises OSError when there is no
        libnvidia-ml to load (no NVIDIA driver), before paying for pynvml's import."""
        lib = None
        if sys.platform.startswith("linux"):
            from ctypes import CDLL

            # WSL: the driver's NVML lives in /usr/lib/wsl/lib; a stale Linux libnvidia-ml
            # elsewhere on the loader path would otherwise win (and fail to talk to Windows).
            wsl = f"{WSL_LIB}/libnvidia-ml.so.1"
            lib = CDLL(wsl if os.path.exists(wsl) else "libnvidia-ml.so.1")
        import pynvml

        if lib is not None and pynvml.nvmlLib is None:
            pynvml.nvmlLib = lib
        return pynvml

    def read_text(self, path: str) -> Optional[str]:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def run(self, argv: list[str], timeout: float = 10.0) -> proc.Result:
        return proc.run(argv, timeout=timeout)

    def loaded_nvml_path(self) -> Optional[str]:
        maps = self.read_text("/proc/self/maps")
        if not maps:
            return None
        for line in maps.splitlines():
            if "libnvidia-ml.so" in line:
                return line.split()[-1]
        return None


class _FakeNvml:
    """NVML's Python API, answering from a recording, raising pynvml's own errors."""

    def __init__(self, rec: Mapping[str, Any]):
        import pynvml

        self._p = pynvml
        self._rec = rec
        self._missing = set(rec.get("missing_functions", ()))
        self._inited = False
        # The real module's error classes and constants, for the probe's except clauses.
        self.NVMLError = pynvml.NVMLError
        for name in dir(pynvml):
            if name.startswith(("NVMLError_", "NVML_ERROR_")):
                setattr(self, name, getattr(pynvml, name))

    def _check(self, fn: str) -> None:
        if fn in self._missing:
            raise self._p.NVMLError(self._p.NVML_ERROR_FUNCTION_NOT_FOUND)
        if not self._inited and fn != "nvmlInit":
            raise self._p.NVMLError(self._p.NVML_ERROR_UNINITIALIZED)

    def nvmlInit(self) -> None:
        err = self._rec.get("error")
        if err is not None:
            # An NVML return code (9), its constant's name ("NVML_ERROR_DRIVER_NOT_LOADED"),
            # or the exception's name ("DriverNotLoaded").
            code = err if isinstance(err, int) else getattr(self._p, str(err), None)
            if isinstance(code, int):
                raise self._p.NVMLError(code)
            raise getattr(self._p, f"NVMLError_{err}")()
        self._inited = True

    def nvmlShutdown(self) -> None:
        self._inited = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check("nvmlSystemGetDriverVersion")
        return str(self._rec["driver_version"])

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._check("nvmlSystemGetCudaDriverVersion_v2")
        return int(self._rec["cuda_driver_version"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check("nvmlSystemGetCudaDriverVersion")
        return int(self._rec["cuda_driver_version"])

    def nvmlDeviceGetCount(self) -> int:
        self._check("nvmlDeviceGetCount")
        return len(self._rec.get("devices", ()))

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Mapping[str, Any]:
        self._check("nvmlDeviceGetHandleByIndex")
        dev: Mapping[str, Any] = self._rec["devices"][i]
        return dev

    def nvmlDeviceGetName(self, h: Mapping[str, Any]) -> str:
        self._check("nvmlDeviceGetName")
        return str(h["name"])

    def nvmlDeviceGetUUID(self, h: Mapping[str, Any]) -> str:
        self._check("nvmlDeviceGetUUID")
        return str(h["uuid"])

    def nvmlDeviceGetPciInfo(self, h: Mapping[str, Any]) -> Any:
        self._check("nvmlDeviceGetPciInfo")
        return SimpleNamespace(busId=h["pci_bus_id"])

    def nvmlDeviceGetCudaComputeCapability(self, h: Mapping[str, Any]) -> tuple[int, int]:
        self._check("nvmlDeviceGetCudaComputeCapability")
        major, minor = h["cc"]
        return int(major), int(minor)

    def nvmlDeviceGetMemoryInfo(self, h: Mapping[str, Any]) -> Any:
        self._check("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=h["memory_total"])

    def nvmlDeviceGetMigMode(self, h: Mapping[str, Any]) -> tuple[int, int]:
        self._check("nvmlDeviceGetMigMode")
        if h.get("mig") is None:
            raise self._p.NVMLError(self._p.NVML_ERROR_NOT_SUPPORTED)
        cur, pending = h["mig"]
        return int(cur), int(pending)

    def nvmlDeviceGetPersistenceMode(self, h: Mapping[str, Any]) -> int:
        self._check("nvmlDeviceGetPersistenceMode")
        if h.get("persistence") is None:
            raise self._p.NVMLError(self._p.NVML_ERROR_NOT_SUPPORTED)
        return int(h["persistence"])


class Replay:
    """A recorded machine: files, command outputs and NVML answers from a JSON recording."""

    def __init__(self, recording: Mapping[str, Any]):
        self.rec = recording
        self.files: dict[str, str] = dict(recording.get("files", {}))
        self.commands: dict[str, Any] = dict(recording.get("commands", {}))

    @classmethod
    def load(cls, path: str) -> Replay:
        """Read a recording; a file that is not one is the user's error (UsageError)."""
        from envsetup import jsonfile
        from envsetup.errors import UsageError

        where = f"ENVSETUP_HW_REPLAY={path}"
        data = jsonfile.read(path, "ENVSETUP_HW_REPLAY=", hint="give a recording (tests/fixtures)")
        try:
            if not isinstance(data, dict):
                raise ValueError("a recording is a JSON object")
            for key in ("files", "commands", "nvml"):
                if not isinstance(data.get(key, {}), dict):
                    raise ValueError(f"'{key}' must be an object")
            base = Path(path).parent
            # A file's text may live beside the recording: {"@file": "proc-version-open.txt"}.
            for key, value in list(data.get("files", {}).items()):
                if isinstance(value, dict) and "@file" in value:
                    data["files"][key] = _beside(base, value["@file"], where)
                elif not isinstance(data["files"][key], str):
                    raise ValueError(f"files[{key!r}] must be a string")
            for value in data.get("commands", {}).values():
                if isinstance(value, dict) and "@stdout" in value:
                    value["stdout"] = _beside(base, value.pop("@stdout"), where)
        except OSError as exc:
            raise UsageError(f"{where}: {exc.strerror or exc}: {exc.filename}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"{where}: not a hardware recording: {exc}") from None
        return cls(data)

    def nvml(self) -> Any:
        nvml = self.rec.get("nvml")
        if nvml is None:
            nvml = {"error": "NVML_ERROR_LIBRARY_NOT_FOUND"}
        return _FakeNvml(nvml)

    def read_text(self, path: str) -> Optional[str]:
        return self.files.get(path)

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in self.files if p.startswith(prefix)}
        return sorted(names)

    def run(self, argv: list[str], timeout: float = 10.0) -> proc.Result:
        key = " ".join([posixpath.basename(argv[0]), *argv[1:]])
        entry = self.commands.get(key)
        if entry is None:
            return proc.Result(tuple(argv), -1, "", "", 0.0, f"{argv[0]}: not found")
        return proc.Result(
            tuple(argv),
            int(entry.get("returncode", 0)),
            str(entry.get("stdout", "")),
            str(entry.get("stderr", "")),
            0.0,
        )

    def loaded_nvml_path(self) -> Optional[str]:
        value = self.rec.get("nvml_library")
        return str(value) if value else None


def _beside(base: Path, name: Any, where: str) -> str:
    """A recorded file's text kept beside the recording (a 16 MiB limit, UTF-8)."""
    from envsetup import jsonfile

    if not isinstance(name, str):
        raise ValueError("an @file/@stdout reference must be a file name")
    data = jsonfile.read_bytes(str(base / name), f"{where}: recorded file")
    return data.decode("utf-8")


def default() -> Hardware:
    replay = os.environ.get("ENVSETUP_HW_REPLAY")
    if replay:
        return Replay.load(replay)
    return Real()
