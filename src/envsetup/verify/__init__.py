"""``envsetup verify``: prove the installed stack works, in the target interpreter.

The checks live in :mod:`checks_script` (``checks_script.py``), a self-contained file that is
read as text and run by the *target* interpreter; envsetup never imports torch itself. The
script runs the checks in order and prints one line per event; :mod:`envsetup.verify.runner`
watches that stream and enforces each check's own deadline. A check that hangs (a compile, a
driver stall) is killed and reported as failed ("timed out after N s"); the checks after it are
run again in a fresh interpreter, except when the hung check was ``import`` or ``device``, which
every later check needs: those are then reported as skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from envsetup.plan import Plan

# The order the checks run in; each later check needs "import" (and the device ones "device").
ALL_CHECKS = (
    "import", "versions", "stack", "device", "tensor-ops", "autograd", "cudnn", "amp", "compile"
)  # fmt: skip
QUICK_CHECKS = ("import", "versions", "stack", "device", "tensor-ops", "autograd")
BENCH_CHECKS = ("bench-matmul", "bench-memory")
WORKLOAD_CHECK = "workload"  # --workload, and --bench for its samples per second
# The Hugging Face libraries' offline switches, set for every run in the target: the stack check
# imports them and the workload builds its model from a config; nothing may download.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
DEVICES = ("auto", "cuda", "cpu", "mps")

# Seconds each check may take before it is killed. The first import of torch from a cold disk
# and a cold torch.compile (C++ or Triton) are the slow ones.
DEFAULT_TIMEOUTS: dict[str, float] = {
    "import": 180.0,
    "versions": 60.0,
    "stack": 300.0,
    "stack-import": 60.0,  # each library's import inside the stack check
    "device": 90.0,
    "tensor-ops": 90.0,
    "autograd": 90.0,
    "cudnn": 90.0,
    "amp": 90.0,
    "compile": 420.0,
    "bench-matmul": 120.0,
    "bench-memory": 120.0,
    "workload": 420.0,
}


@dataclass
class CheckResult:
    name: str
    status: str  # "pass" | "fail" | "skip"
    seconds: float
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "data": self.data,
        }


@dataclass
class VerifyReport:
    python: str
    device_requested: str
    results: list[CheckResult]
    seconds: float = 0.0
    inductor_cache: Optional[str] = None

    @property
    def ok(self) -> bool:
        return bool(self.results) and not any(r.status == "fail" for r in self.results)

    @property
    def device(self) -> Optional[str]:
        """The device the checks ran on ("cpu", "cuda", "mps"), once the device check passed."""
        for r in self.results:
            if r.name == "device" and r.status == "pass":
                dev = r.data.get("device")
                return str(dev) if dev is not None else None
        return None

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "skip": 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def result(self, name: str) -> Optional[CheckResult]:
        return next((r for r in self.results if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "python": self.python,
            "device_requested": self.device_requested,
            "device": self.device,
            "seconds": round(self.seconds, 3),
            "summary": self.counts(),
            "inductor_cache": self.inductor_cache,
            "checks": [r.to_dict() for r in self.results],
        }


def check_names(*, quick: bool = False, bench: bool = False, workload: bool = False) -> list[str]:
    names = list(QUICK_CHECKS if quick else ALL_CHECKS)
    if bench:
        names += BENCH_CHECKS
    if workload or bench:
        names.append(WORKLOAD_CHECK)
    return names


def nvml_gpu_names() -> tuple[Optional[list[str]], str]:
    """The visible GPUs' names as the driver (NVML) lists them, through doctor's NVIDIA probe.

    Returns (names or None, a note saying why there is nothing to compare with).
    """
    import os

    from envsetup.detect import hw
    from envsetup.detect.nvidia import probe_nvidia

    try:
        nvidia = probe_nvidia(hw.default(), os.environ)
    except Exception as exc:  # a probe must never break verify
        return None, f"not compared with NVML (probe failed: {type(exc).__name__}: {exc})"
    names = [g.name for g in nvidia.gpus if g.visible and g.name]
    if not names:
        return None, "not compared with NVML (NVML lists no GPU)"
    return names, "compared with NVML"


def _pythonpath_check(environ: Mapping[str, str]) -> Optional[CheckResult]:
    """The checks run in the target as installed; the user's shell also has PYTHONPATH. When it
    puts another torch (or companion) first, what the user imports is not what passed here."""
    from envsetup.detect.pythonpath import shadows

    _, found = shadows(environ)
    if not found:
        return None
    where = "; ".join(f"{name} from {file}" for name, file in sorted(found.items()))
    return CheckResult(
        "pythonpath",
        "fail",
        0.0,
        f"PYTHONPATH in this shell loads {where}, not the installed copy these checks ran on: "
        "remove it from PYTHONPATH (envsetup doctor gives the command)",
        {"shadows": dict(found)},
    )


def run_verify(
    python: str,
    *,
    device: str = "auto",
    quick: bool = False,
    bench: bool = False,
    workload: bool = False,
    plan: Optional[Plan] = None,
    expected_gpus: Optional[list[str]] = None,
    on_result: Optional[Callable[[CheckResult], None]] = None,
    on_start: Optional[Callable[[str], None]] = None,
    timeouts: Optional[Mapping[str, float]] = None,
    env: Optional[Mapping[str, str]] = None,
) -> VerifyReport:
    """Run the checks in ``python`` and return their results.

    ``expected_gpus``: the GPU names the driver lists (NVML); when None and a GPU may be used,
    doctor's probe is asked lazily, and the comparison is skipped (with a note) where it is
    not available. ``env``: extra variables for the target (e.g. ``CXX``). ``timeouts``
    overrides the per-check deadlines in seconds (``stack-import``: each library's import in
    the stack check). ``workload`` adds the training run (``bench`` adds it too).
    """
    from envsetup.errors import UsageError
    from envsetup.verify import runner

    if device not in DEVICES:
        raise UsageError(f"--device {device}: not one of {', '.join(DEVICES)}")
    names = check_names(quick=quick, bench=bench, workload=workload)
    start = time.monotonic()
    note = ""
    if expected_gpus is None and device in ("auto", "cuda"):
        expected_gpus, note = nvml_gpu_names()
    config: dict[str, Any] = {
        "device": device,
        "expected_gpus": expected_gpus,
        "expected_note": note,
    }
    limits = dict(DEFAULT_TIMEOUTS)
    if timeouts:
        limits.update(timeouts)
    # The stack check holds each import to its own limit, and all of them to less than its own
    # deadline, so that a hanging library is named rather than the whole check killed.
    config["stack_import_timeout"] = limits["stack-import"]
    config["stack_budget"] = max(1.0, limits["stack"] - 30.0)
    shadow = _pythonpath_check(os.environ if env is None else {**os.environ, **env})
    if shadow is not None and on_result is not None:
        on_result(shadow)
    results, cache = runner.run_checks(
        python,
        names,
        config,
        timeouts=limits,
        plan=plan,
        env=env,
        on_result=on_result,
        on_start=on_start,
    )
    return VerifyReport(
        python=python,
        device_requested=device,
        results=([shadow] if shadow is not None else []) + results,
        seconds=time.monotonic() - start,
        inductor_cache=cache,
    )


__all__ = [
    "ALL_CHECKS",
    "BENCH_CHECKS",
    "DEVICES",
    "OFFLINE_ENV",
    "QUICK_CHECKS",
    "WORKLOAD_CHECK",
    "CheckResult",
    "VerifyReport",
    "run_verify",
]
