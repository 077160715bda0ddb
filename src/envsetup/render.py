"""Rendering the doctor report: rich for a person, markdown for a bug report, JSON for programs.

All three are built from the same rows (:func:`summary_rows`), so they say the same things.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from envsetup.findings import Finding
from envsetup.profile import Profile, to_dict

SEVERITY_MARK = {"error": "✖", "warning": "!", "info": "i"}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _join(*parts: object) -> str:
    """The parts that say something (not None, False, 0 or empty), joined."""
    return " · ".join(str(p) for p in parts if p)


def _unknown(section: Any) -> list[str]:
    return [f"unknown {k}: {v}" for k, v in sorted(getattr(section, "unknown", {}).items())]


NVML_WORDS = {
    "library_not_found": "no NVIDIA driver is installed (no libnvidia-ml to load)",
    "driver_not_loaded": "an NVIDIA driver is installed but not loaded (no kernel module)",
    "lib_rm_version_mismatch": "the NVIDIA kernel module and driver libraries differ "
    "(a driver upgrade without a reboot)",
    "no_permission": "not permitted to open the NVIDIA devices (/dev/nvidia*)",
    "function_not_found": "the NVIDIA driver is too old for a function envsetup asks for",
    "unknown": "the NVIDIA driver did not answer (doctor --json has NVML's own words)",
}


def nvml_words(kind: str) -> str:
    """What an NVML failure means, in words; the raw text stays in ``--json``."""
    return NVML_WORDS.get(kind, NVML_WORDS["unknown"])


def _gpu_runs(gpus: Any) -> list[tuple[int, int, Any, int]]:
    """Consecutive identical GPUs as one line each: (first index, last index, GPU, count)."""
    runs: list[tuple[int, int, Any, int]] = []
    for g in gpus:
        key = (g.name, g.compute_capability, g.memory_total_mib, g.mig_mode,
               g.persistence_mode, g.visible)  # fmt: skip
        if runs:
            first, last, prev, n = runs[-1]
            same = (prev.name, prev.compute_capability, prev.memory_total_mib, prev.mig_mode,
                    prev.persistence_mode, prev.visible) == key  # fmt: skip
            if same and g.index == last + 1:
                runs[-1] = (first, g.index, prev, n + 1)
                continue
        runs.append((g.index, g.index, g, 1))
    return runs


def summary_rows(p: Profile) -> list[tuple[str, list[str]]]:
    s, py, cpu, nv, cu, t, tc, o = (
        p.system, p.python, p.cpu, p.nvidia, p.cuda, p.torch, p.toolchain, p.other,
    )  # fmt: skip
    rows: list[tuple[str, list[str]]] = []

    os_name = s.distro_name or (s.macos_version and f"macOS {s.macos_version}") or s.os
    rows.append(("System", [_join(
        os_name, f"{s.os} {s.arch}", s.release and f"kernel {s.release}",
        s.libc and f"{s.libc} {s.libc_version or ''}".strip(),
        s.wsl and s.wsl.upper(), s.container and f"container: {s.container}",
        s.windows_build and f"Windows build {s.windows_build}",
    ), *_unknown(s)]))  # fmt: skip

    env = (
        f"venv {py.virtualenv}" if py.virtualenv
        else f"conda env {py.conda_env}" if py.conda_env
        else "system interpreter" + (" (externally managed, PEP 668)" if py.externally_managed else "")
    )  # fmt: skip
    rows.append(("Python", [
        _join(f"{py.version} ({py.implementation}{', free-threaded' if py.free_threaded else ''}"
              f"{', 32-bit' if py.bits == 32 else ''})", py.executable),
        _join(env, f"pip {py.pip_version or '—'}", f"uv {py.uv_version or '—'}",
              f"conda {py.conda_version or '—'}" if py.conda_path else None),
        *_unknown(py),
    ]))  # fmt: skip

    cores = f"{cpu.physical_cores or '?'} cores / {cpu.logical_cores or '?'} threads"
    rows.append(("CPU", [_join(cpu.brand, cores, " ".join(cpu.flags) or None), *_unknown(cpu)]))

    nv_lines = []
    if nv.driver_version:
        module = f"{nv.kernel_module} kernel module" if nv.kernel_module else None
        nv_lines.append(_join(
            f"driver {nv.driver_version}", module,
            nv.cuda_driver_version and f"supports CUDA ≤ {nv.cuda_driver_version}",
            nv.source and f"via {nv.source}",
        ))  # fmt: skip
    elif nv.nvml_error:
        nv_lines.append(nvml_words(nv.nvml_error.kind))
    else:
        nv_lines.append("no NVIDIA driver")
    if nv.pci_devices and not nv.gpus:
        nv_lines.append(f"{nv.pci_devices} NVIDIA GPU(s) on the PCI bus")
    for first, last, g, count in _gpu_runs(nv.gpus):
        mem = f"{g.memory_total_mib} MiB" if g.memory_total_mib else None
        cc = (
            f"sm_{g.compute_capability.replace('.', '')} (cc {g.compute_capability})"
            if g.compute_capability
            else "cc unknown"
        )
        flags = [
            f for f, on in (("MIG on", g.mig_mode), ("persistence on", g.persistence_mode)) if on
        ]
        which = f"GPU {first}" if count == 1 else f"GPUs {first}-{last}: {count} x"
        nv_lines.append(_join(
            f"{which}{':' if count == 1 else ''} {g.name or '?'}", cc, mem, *flags,
            None if g.visible else "hidden by CUDA_VISIBLE_DEVICES",
        ))  # fmt: skip
    if nv.cuda_visible_devices is not None:
        nv_lines.append(f"CUDA_VISIBLE_DEVICES={nv.cuda_visible_devices!r}")
    rows.append(("NVIDIA", nv_lines + [ln for ln in _unknown(nv) if "driver_version" not in ln]))

    if o.amd_gpus or o.rocm_version or o.mps:
        rows.append(("Other GPUs", [_join(
            o.amd_gpus and f"{o.amd_gpus} AMD GPU(s)", o.rocm_version and f"ROCm {o.rocm_version}",
            o.kfd and "/dev/kfd", o.mps and "Apple MPS",
        )]))  # fmt: skip

    cuda_lines = [_join(f"toolkit {k.version or '?'} at {k.path}", k.source) for k in cu.toolkits]
    if cu.nvcc:
        cuda_lines.append(_join(f"nvcc {cu.nvcc_version or '?'}", cu.nvcc))
    for c in cu.cudnn:
        cuda_lines.append(_join(f"cuDNN {c.version or '?'}", c.source, c.path))
    for sh in cu.ld_library_path:
        cuda_lines.append(f"LD_LIBRARY_PATH {sh.directory}: {' '.join(sh.libraries)}")
    if cu.wsl_lib is not None:
        cuda_lines.append(f"/usr/lib/wsl/lib libcuda: {'yes' if cu.wsl_lib else 'missing'}")
    rows.append(
        (
            "CUDA",
            (cuda_lines or ["no CUDA toolkit (not needed: torch wheels bundle CUDA)"])
            + _unknown(cu),
        )
    )

    if t.version:
        build = (
            f"CUDA {t.cuda} build" if t.cuda else f"ROCm {t.hip} build" if t.hip else "CPU build"
        )
        t_lines = [
            _join(f"torch {t.version}", build, t.origin and f"installed by {t.origin}", t.location)
        ]
        others = [
            f"{pk.name} {pk.version}"
            for pk in t.packages
            if pk.name != "torch" and not pk.name.startswith("nvidia-")
        ]
        if others:
            t_lines.append(", ".join(others))
        nv_pk = [
            f"{pk.name} {pk.version}" for pk in t.packages if pk.name.startswith("nvidia-cudnn")
        ]
        if nv_pk:
            t_lines.append(", ".join(nv_pk))
        if t.duplicates:
            t_lines.append("more than one copy: " + ", ".join(t.duplicates))
        if t.deep:
            d = t.deep
            if d.imported:
                t_lines.append(_join(
                    f"import torch: ok ({d.version})",
                    d.cuda_available is not None and f"cuda available: {d.cuda_available}",
                    d.device_count and f"{d.device_count} device(s)",
                    d.arch_list and "arch " + " ".join(d.arch_list),
                    d.cudnn_version and f"cuDNN {d.cudnn_version}",
                    d.mps_available and "MPS available",
                ))  # fmt: skip
            else:
                t_lines.append(f"import torch failed: {d.error}")
    else:
        t_lines = ["not installed"]
    rows.append(("torch", t_lines))

    rows.append(("Toolchain", [
        f"C: {tc.cc.version} ({tc.cc.path})" if tc.cc else f"C: none ({tc.unknown.get('cc', '')})",
        f"C++: {tc.cxx.version} ({tc.cxx.path})" if tc.cxx else f"C++: none ({tc.unknown.get('cxx', '')})",
    ]))  # fmt: skip
    return rows


def verdict(findings: list[Finding]) -> str:
    """One line: the errors and warnings, and never "no problems" while torch is missing."""
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    counts = (
        f"{errors} error(s), {warnings} warning(s)"
        if errors
        else (f"no errors, {warnings} warning(s)" if warnings else "no problems found")
    )
    if any(f.code == "torch-not-installed" for f in findings):
        head = counts if errors or warnings else "no errors"
        return f"{head}; torch is not installed yet (envsetup install sets it up)"
    return counts


def to_json(profile: Profile, findings: list[Finding]) -> str:
    return json.dumps({"profile": profile.to_dict(), "findings": to_dict(findings)}, indent=2)


def to_markdown(profile: Profile, findings: list[Finding]) -> str:
    lines = [f"### envsetup doctor ({profile.envsetup_version}): {verdict(findings)}", ""]
    lines += ["| | |", "|---|---|"]
    for name, rows in summary_rows(profile):
        cell = "<br>".join(r.replace("|", "\\|") for r in rows if r)
        lines.append(f"| **{name}** | {cell} |")
    lines.append("")
    if findings:
        lines.append("#### Findings")
        for f in findings:
            lines.append(f"- **{f.severity}** `{f.code}`: {f.message}")
            if f.fix:
                lines.append(f"  - fix: `{f.fix}`")
    return "\n".join(lines) + "\n"


def print_report(profile: Profile, findings: list[Finding], file: IO[str] = sys.stdout) -> None:
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table

    con = console(file)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")  # a long path is folded, never cut to "…"
    for name, rows in summary_rows(profile):
        grid.add_row(name, escape("\n".join(r for r in rows if r)))
    con.print(grid)
    con.print()
    if findings:
        con.print("[bold]Findings[/bold]")
        for f in findings:
            style = SEVERITY_STYLE[f.severity]
            con.print(
                f"[{style}]{SEVERITY_MARK[f.severity]} {f.severity}[/{style}] [dim]{f.code}[/dim]"
            )
            con.print(Padding(escape(f.message), (0, 0, 0, 4)))  # wraps under itself
            if f.fix:  # a command to paste: never wrapped
                con.print(f"    [bold]fix:[/bold] {escape(f.fix)}", soft_wrap=True)
        con.print()
    style = "bold red" if any(f.severity == "error" for f in findings) else "bold green"
    con.print(f"[{style}]{verdict(findings)}[/{style}]")


# --------------------------------------------------------------------------- verify

CHECK_MARK = {"pass": "✓", "fail": "✗", "skip": "–", "run": "…"}
CHECK_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "run": "cyan"}


_CONSOLE: Any = None


def console(file: Any = None) -> Any:
    """The one Console every command prints through: NO_COLOR honoured, no highlighting, and
    every string masked (:mod:`envsetup.secrets`) before rich lays it out, so that no width
    folds or cuts a secret where the stream's own masking cannot find it."""
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        from envsetup.secrets import mask

        class _Masking(Console):
            def render_str(self, text: str, **kwargs: Any) -> Any:
                return super().render_str(mask(text), **kwargs)

        _CONSOLE = _Masking
    return _CONSOLE(
        file=sys.stdout if file is None else file,
        no_color=bool(os.environ.get("NO_COLOR")),
        highlight=False,
    )


def check_row(status: str, name: str, seconds: float | None, detail: str) -> Any:
    """One check's line: mark, name, time, then the detail wrapped under itself (not under the
    mark) at the console's width, so 80 columns read as well as 200."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, min_width=12)
    grid.add_column(no_wrap=True, justify="right", min_width=6)
    grid.add_column(overflow="fold")
    style = CHECK_STYLE.get(status, "")
    secs = f"{seconds:.1f}s" if seconds is not None else ""
    grid.add_row(
        f"[{style}]{CHECK_MARK.get(status, '?')}[/{style}]", name, secs, escape_markup(detail)
    )
    return grid


def verify_verdict(ok: bool, counts: dict[str, int], seconds: float, device: str | None) -> str:
    verdict = "[bold green]all checks passed[/]" if ok else "[bold red]FAILED[/]"
    return (
        f"{verdict}: {counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed, "
        f"{counts.get('skip', 0)} skipped in {seconds:.1f} s (on {device or 'no device'})"
    )


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# --------------------------------------------------------------------------- plan


def _bullets(con: Any, mark: str, lines: Any) -> None:
    """Each line as a bullet, wrapped to the console with a hanging indent; a word longer than
    the line (a URL) stays whole on a line of its own."""
    import textwrap

    from envsetup.secrets import mask

    width = max(40, con.width)
    for line in lines:
        text = textwrap.fill(
            mask(str(line)), width=width, initial_indent=f"  {mark} ", subsequent_indent="    ",
            break_long_words=False, break_on_hyphens=False,
        )  # fmt: skip
        con.print(text, highlight=False, markup=False, soft_wrap=True)


def print_plan(plan: Any, commands: dict[str, list[list[str]]], stack: Any = None) -> None:
    """A plan as people read it: the pick, why, what was refused (grouped), the packages of a
    stack, and the commands for each installer."""
    import shlex

    from rich.table import Table

    con = console()
    t = Table(title="Plan", show_header=False, box=None)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")  # a URL too long for the line is folded, never cut to "…"
    t.add_row("install", " ".join(plan.requirements()))
    t.add_row("variant", plan.variant)
    t.add_row("index", plan.index_url or "the installer's default package index")
    t.add_row("torch.__version__", plan.local_version or plan.torch)
    t.add_row("platform", f"{plan.platform}, Python {plan.python_version or plan.python}")
    if plan.cuda:
        t.add_row("CUDA / cuDNN", f"{plan.cuda} / {plan.cudnn or 'unknown'}")
    if plan.rocm:
        t.add_row("ROCm", plan.rocm)
    if plan.arch:
        t.add_row("GPU kernels", " ".join(f"sm_{a.replace('.', '')}" for a in plan.arch))
    con.print(t)
    con.print("[bold]Why[/bold]")
    _bullets(con, "-", plan.why)
    if plan.warnings:
        con.print("[bold yellow]Warnings[/bold yellow]")
        _bullets(con, "!", plan.warnings)
    accepted = [c for c in plan.candidates if c.accepted and c.torch != plan.torch]
    refused = [c for c in plan.candidates if not c.accepted]
    con.print(
        f"[bold]Candidates[/bold]: {len(plan.candidates) - len(refused)} fit, {len(refused)} "
        "refused (--json lists every one)"
    )
    if accepted:
        _bullets(con, "+", ["also fit: " + ", ".join(f"{c.torch} {c.label}" for c in accepted[:4])])
    lines = [str(g) for g in plan.refused[:6]]
    if len(plan.refused) > 6:
        lines.append(f"{sum(g.count for g in plan.refused[6:])} more for other reasons")
    _bullets(con, "x", lines)
    if stack is not None:
        con.print(
            f"[bold]Packages[/bold]: {len(stack.packages)}, resolved by {stack.resolver} in "
            f"{stack.seconds:.2f} s"
        )
        for line in stack.describe():
            con.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    con.print("[bold]Commands[/bold]")
    for tool in ("pip", "uv", "conda"):
        for argv in commands[tool]:
            con.print(f"  {tool:5} {shlex.join(argv)}", highlight=False, soft_wrap=True)
