"""``envsetup plan``: the torch build for this machine (or another, with --profile), and why."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from envsetup.cli import app

PROFILE_MAX_BYTES = 4 << 20  # doctor --json of an 8-GPU machine is ~20 KB


def load_profile(path: Path) -> Any:
    """Read a Profile from ``doctor --json`` output or a hand-written file; one-line errors."""
    from envsetup import jsonfile
    from envsetup.errors import UsageError
    from envsetup.profile import Profile

    data = jsonfile.read(
        str(path),
        "--profile",
        max_bytes=PROFILE_MAX_BYTES,
        hint="make one with envsetup doctor --json",
    )
    if isinstance(data, dict) and isinstance(data.get("profile"), dict):
        data = data["profile"]  # doctor --json may wrap the profile beside its findings
    try:
        return Profile.from_dict(data)
    except ValueError as exc:
        raise UsageError(f"--profile {path}: {exc}") from None


def this_machine(python: Optional[str]) -> Any:
    from envsetup.detect import detect_profile

    return detect_profile(python=python)


def _target_python(prof: Any, python: Optional[str], *, from_file: bool) -> str:
    """The interpreter the install commands name: the resolved one, never a venv directory."""
    from envsetup.target import resolve_python

    if from_file and python is not None:
        return resolve_python(python)  # --python with --profile: the file's machine, this target
    return str(prof.python.executable or "python")


@app.command("plan")
def plan_command(
    profile: Optional[Path] = typer.Option(  # noqa: B008
        None, "--profile", help="Plan for the machine in this file (doctor --json output)."
    ),
    torch: Optional[str] = typer.Option(
        None, "--torch", help="Torch version spec: 2.4, 2.4.1, '>=2.3,<2.6' or latest."
    ),
    variant: str = typer.Option(
        "auto", "--variant", help="auto, default (plain package index), cpu, cuXYZ or rocmX.Y."
    ),
    vision: bool = typer.Option(False, "--vision/--no-vision", help="Include torchvision."),
    audio: bool = typer.Option(False, "--audio/--no-audio", help="Include torchaudio."),
    index_base: Optional[str] = typer.Option(
        None,
        "--index-base",
        help="Base URL of a PyTorch index mirror (default: $ENVSETUP_TORCH_INDEX, else the "
        "official one).",
    ),
    python: Optional[str] = typer.Option(None, "--python", help="The target interpreter."),
    online: bool = typer.Option(
        False,
        "--online",
        help="Also ask the package index whether a torch release newer than the table is out.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Resolve the torch/torchvision/torchaudio build for a machine, with the reasons."""
    from envsetup.compat import load_table
    from envsetup.errors import NoBuildError
    from envsetup.install.backends import direct_commands
    from envsetup.plan import Request
    from envsetup.resolve import check_variant, index_base_from, parse_spec
    from envsetup.resolve import resolve as do_resolve

    base = index_base_from(index_base)
    parse_spec(torch)
    check_variant(variant)
    prof = load_profile(profile) if profile is not None else this_machine(python)
    target = _target_python(prof, python, from_file=profile is not None)
    table = load_table()
    request = Request(torch=torch, variant=variant, vision=vision, audio=audio, index_base=base)
    fresh = _freshness(table) if online else None
    try:
        plan = do_resolve(prof, request, table)
    except NoBuildError as exc:
        if as_json:
            doc: dict[str, Any] = {"plan": None, "error": exc.message}
            if fresh is not None:
                doc["freshness"] = fresh
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        elif fresh is not None:
            _print_freshness(fresh)
        raise
    commands = direct_commands(plan, target)
    if as_json:
        doc = {"plan": plan.to_dict(), "commands": commands}
        if fresh is not None:
            doc["freshness"] = fresh
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _render(plan, commands)
    if fresh is not None:
        _print_freshness(fresh)


def _freshness(table: Any) -> dict[str, Optional[str]]:
    """Ask the package index for its torch releases: {index, newer, error} (never raises for an
    index that cannot be read: the plan still stands, offline)."""
    from envsetup.compat import newer_than_table
    from envsetup.index import Index, IndexUnreachable, default_index_url, mask

    url = default_index_url()
    try:
        with Index(url) as idx:
            files = idx.files("torch") or []
    except IndexUnreachable as exc:
        return {"index": mask(url), "newer": None, "error": exc.message}
    return {
        "index": mask(url),
        "newer": newer_than_table(table, (f.version for f in files)),
        "error": None,
    }


def _print_freshness(fresh: dict[str, Optional[str]]) -> None:
    if fresh["newer"]:
        sys.stderr.write(f"envsetup: {fresh['newer']}\n")
    elif fresh["error"]:
        sys.stderr.write(f"envsetup: --online: {fresh['error']} (the plan is from the table)\n")


def _bullets(con: Any, mark: str, lines: Any) -> None:
    """Each line as a bullet, wrapped to the console with a hanging indent."""
    import textwrap

    width = max(40, con.width)
    for line in lines:
        text = textwrap.fill(
            str(line), width=width, initial_indent=f"  {mark} ", subsequent_indent="    "
        )
        con.print(text, highlight=False, markup=False)


def _render(plan: Any, commands: dict[str, list[list[str]]]) -> None:
    import shlex

    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title="Plan", show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
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
        _bullets(
            con, "+", ["also fit: " + ", ".join(f"{c.torch} {c.variant}" for c in accepted[:4])]
        )
    lines = [str(g) for g in plan.refused[:6]]
    if len(plan.refused) > 6:
        lines.append(f"{sum(g.count for g in plan.refused[6:])} more for other reasons")
    _bullets(con, "x", lines)
    con.print("[bold]Commands[/bold]")
    for tool in ("pip", "uv", "conda"):
        for argv in commands[tool]:
            con.print(f"  {tool:5} {shlex.join(argv)}", highlight=False, soft_wrap=True)
