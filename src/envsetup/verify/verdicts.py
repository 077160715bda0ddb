"""Verdicts made on envsetup's side from the data a check collected in the target.

The ``versions`` check only gathers versions and requirements in the target (which may have no
``packaging``); whether they agree with each other and with the plan is judged here, through
``packaging``. Benchmark figures are set beside the device's published peak where it is known.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from envsetup.plan import Plan

if TYPE_CHECKING:
    from envsetup.verify import CheckResult

# Published dense peaks: (name must contain, name must not contain, {figure: value}, source).
# TFLOP/s per dtype for matmul (tensor cores for 16-bit), GB/s for memory bandwidth. NVIDIA's
# datasheets give the 16-bit tensor figures with 2:4 sparsity; the dense peak is half of that.
KNOWN_PEAKS: tuple[tuple[str, tuple[str, ...], dict[str, float], str], ...] = (
    (
        "H100 80GB HBM3",  # the SXM5 board's CUDA name
        ("PCIe", "NVL"),
        {"float32": 67.0, "bfloat16": 989.5, "float16": 989.5, "gbps": 3350.0},
        "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM: FP32 67 TFLOPS, BF16/FP16 Tensor "
        "1,979 TFLOPS with sparsity, GPU memory bandwidth 3.35 TB/s",
    ),
    (
        "H200",
        ("NVL",),
        {"float32": 67.0, "bfloat16": 989.5, "float16": 989.5, "gbps": 4800.0},
        "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM: FP32 67 TFLOPS, BF16/FP16 Tensor "
        "1,979 TFLOPS with sparsity, GPU memory bandwidth 4.8 TB/s",
    ),
)


def known_peak(names: list[str]) -> Optional[tuple[dict[str, float], str]]:
    for name in names:
        for needle, excluded, figures, source in KNOWN_PEAKS:
            if needle in name and not any(x in name for x in excluded):
                return figures, source
    return None


def judge(result: CheckResult, plan: Optional[Plan]) -> CheckResult:
    """The result as it should be reported: the versions verdict, benchmark peaks added."""
    if result.name == "versions" and result.status == "pass":
        status, detail = judge_versions(result.data, plan)
        return replace(result, status=status, detail=detail)
    if result.name in ("bench-matmul", "bench-memory") and result.status == "pass":
        peak = known_peak([str(n) for n in result.data.get("names") or []])
        if peak is None:
            return replace(result, detail=result.detail + " (no published peak known)")
        figures, source = peak
        if result.name == "bench-matmul":
            parts = []
            for dtype, got in (result.data.get("tflops") or {}).items():
                if dtype in figures:
                    parts.append(f"{dtype} {100 * got / figures[dtype]:.0f}% of {figures[dtype]:g}")
            extra = "; peak: " + ", ".join(parts) if parts else ""
        else:
            gbps = float(result.data.get("gbps") or 0.0)
            extra = f"; {100 * gbps / figures['gbps']:.0f}% of the {figures['gbps']:g} GB/s peak"
        data = dict(result.data, peak=figures, peak_source=source)
        return replace(result, detail=result.detail + extra, data=data)
    return result


def _version(text: Optional[str]) -> Any:
    from packaging.version import InvalidVersion, Version

    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _requirements(info: dict[str, Any], env: dict[str, str]) -> list[Any]:
    """The requirements in ``info["requires"]`` that apply in the target's environment."""
    from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for text in info.get("requires") or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        try:
            if req.marker is not None and not req.marker.evaluate(env):
                continue
        except (UndefinedComparison, UndefinedEnvironmentName):
            continue
        out.append(req)
    return out


def judge_versions(data: dict[str, Any], plan: Optional[Plan]) -> tuple[str, str]:
    """("pass" | "fail", detail) for the versions the target reported."""
    from packaging.utils import canonicalize_name

    problems: list[str] = []
    notes: list[str] = []
    env = {str(k): str(v) for k, v in (data.get("marker_env") or {}).items()}
    t = data.get("torch") or {}
    runtime = str(t.get("runtime") or "")
    tver = _version(runtime)
    dist = t.get("dist") or {}
    if dist.get("version") and dist["version"] != runtime:
        problems.append(
            f"torch.__version__ is {runtime} but the installed torch distribution is "
            f"{dist['version']}: two copies of torch? (pip uninstall torch, then reinstall)"
        )
    build = f"CUDA {t['cuda']}" if t.get("cuda") else (f"ROCm {t['hip']}" if t.get("hip") else "")
    shown = [f"torch {runtime}" + (f" ({build})" if build else "")]
    for name in ("torchvision", "torchaudio"):
        info = data.get(name)
        if not info:
            continue
        ver = str(info.get("version"))
        shown.append(f"{name} {ver}")
        if info.get("import_error"):
            problems.append(f"{name} {ver} does not import: {info['import_error']}")
        for req in _requirements(info, env):
            if canonicalize_name(req.name) != "torch" or tver is None:
                continue
            if req.specifier and not req.specifier.contains(tver, prereleases=True):
                problems.append(
                    f"{name} {ver} requires torch{req.specifier} but torch is {runtime}: "
                    f"install the {name} release made for torch {tver.public}"
                )
        lv = _version(ver)
        if (
            tver is not None
            and lv is not None
            and tver.local
            and lv.local
            and tver.local != lv.local
        ):
            problems.append(
                f"{name} {ver} is a +{lv.local} build but torch is +{tver.local}: "
                "install both from the same index"
            )
    # Triton: the version torch's own metadata pins for this platform.
    for req in _requirements(dist, env):
        rname = canonicalize_name(req.name)
        if rname not in ("triton", "pytorch-triton-rocm"):
            continue
        info = data.get(rname)
        if not info:
            problems.append(f"torch {runtime} requires {req} but it is not installed")
            continue
        tv = _version(str(info.get("version")))
        shown.append(f"{rname} {info.get('version')}")
        if tv is not None and req.specifier and not req.specifier.contains(tv, prereleases=True):
            problems.append(
                f"{rname} {info.get('version')} is installed but torch {runtime} requires "
                f"{req.name}{req.specifier}"
            )
        elif info.get("import_error"):
            problems.append(f"{rname} does not import: {info['import_error']}")
    if plan is not None:
        _judge_plan(plan, data, runtime, problems)
        notes.append("as planned")
    detail = ", ".join(shown)
    if problems:
        return "fail", "; ".join(problems)
    return "pass", detail + "".join(f"; {n}" for n in notes)


def _judge_plan(plan: Plan, data: dict[str, Any], runtime: str, problems: list[str]) -> None:
    t = data.get("torch") or {}
    tver = _version(runtime)
    if plan.local_version:
        if runtime != plan.local_version:
            problems.append(f"torch is {runtime} but the plan installs {plan.local_version}")
    else:
        want = _version(plan.torch)
        if tver is None or want is None or tver.public != want.public:
            problems.append(f"torch is {runtime} but the plan installs {plan.torch}")
    if plan.cuda and t.get("cuda") != plan.cuda:
        problems.append(
            f"torch.version.cuda is {t.get('cuda')} but the plan's build is CUDA {plan.cuda}"
        )
    if plan.variant == "cpu" and t.get("cuda"):
        problems.append(f"the plan installs a CPU build but torch is built for CUDA {t['cuda']}")
    for pin in plan.pins:
        if pin.name == "torch":
            continue
        info = data.get(pin.name)
        if not info:
            problems.append(f"{pin.name} is not installed (the plan installs {pin})")
            continue
        have, want = _version(str(info.get("version"))), _version(pin.version)
        if have is None or want is None or have.public != want.public:
            problems.append(f"{pin.name} is {info.get('version')} but the plan installs {pin}")
