"""``envsetup plan``: the torch build for this machine (or another, with --profile), and why.

With packages (``envsetup plan transformers -r requirements.txt``) the whole stack is resolved
for the target interpreter (:mod:`envsetup.stack`) and shown; ``--export`` writes the build with
the packages for an installer, and ``--profile a.json --profile b.json --export uv`` writes one
pyproject for several kinds of machine (:mod:`envsetup.uvproject`)."""

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
    from envsetup.profile import REQUIRED, Profile, missing_keys

    data = jsonfile.read(
        str(path),
        "--profile",
        max_bytes=PROFILE_MAX_BYTES,
        hint="make one with envsetup doctor --json",
    )
    if isinstance(data, dict) and isinstance(data.get("profile"), dict):
        data = data["profile"]  # doctor --json may wrap the profile beside its findings
    try:
        prof = Profile.from_dict(data)
    except ValueError as exc:
        raise UsageError(f"--profile {path}: {exc}") from None
    missing = missing_keys(data)
    if missing:
        raise UsageError(
            f"--profile {path}: {', '.join(missing)} missing: a profile names at least "
            f"{', '.join(REQUIRED)} (make one with envsetup doctor --json on that machine)"
        )
    return prof


def this_machine(python: Optional[str]) -> Any:
    from envsetup.detect import detect_profile

    return detect_profile(python=python)


def _target_python(prof: Any, python: Optional[str], *, from_file: bool) -> str:
    """The interpreter the install commands name: the resolved one, never a venv directory."""
    from envsetup.target import resolve_python

    if from_file and python is not None:
        return resolve_python(python)  # --python with --profile: the file's machine, this target
    return str(prof.python.executable or "python")


def _check_interpreter(prof: Any, plan: Any, python: str, label: str) -> None:
    """A resolve for ``prof``'s machine runs in ``python``: it must be of the plan's Python
    and platform (a profile from another kind of machine cannot be resolved here)."""
    from envsetup.errors import UsageError
    from envsetup.install.target import probe

    info = probe(python)
    if (info.minor, info.platform) != (plan.python, plan.platform):
        raise UsageError(
            f"--profile {label} is {plan.platform} with Python {plan.python}, and {python} is "
            f"{info.platform} with Python {info.minor}: resolving packages needs an interpreter "
            "of that kind (--python PATH), or leave --python out to resolve for the profile's "
            "Python and platform"
        )


@app.command("plan")
def plan_command(
    packages: Optional[list[str]] = typer.Argument(  # noqa: B008
        None,
        help="Packages to resolve together with torch (transformers 'peft>=0.10').",
        show_default=False,
    ),
    requirement: Optional[list[str]] = typer.Option(  # noqa: B008
        None, "--requirement", "-r", help="A requirements file (pip's format), resolved with torch."
    ),
    profile: Optional[list[Path]] = typer.Option(  # noqa: B008
        None,
        "--profile",
        help="Plan for the machine in this file (doctor --json output); repeat it for several "
        "kinds of machine (with --export uv: one pyproject for all).",
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
    export: Optional[str] = typer.Option(
        None,
        "--export",
        help="Write the build (with the packages) as requirements | uv | conda instead: uv's "
        "pyproject entries cover every --profile.",
    ),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="File for --export."),
) -> None:
    """Resolve the torch/torchvision/torchaudio build for a machine, with the reasons (and the
    packages given, resolved together with it)."""
    from envsetup.compat import load_table
    from envsetup.errors import EnvsetupError, UsageError
    from envsetup.install.backends import direct_commands
    from envsetup.plan import Request
    from envsetup.resolve import check_variant, index_base_from, parse_spec
    from envsetup.resolve import resolve as do_resolve

    base = index_base_from(index_base)
    parse_spec(torch)
    check_variant(variant)
    if export is not None:
        from envsetup.install.export import kinds

        if export not in kinds():
            raise UsageError(f"--export {export}: choose one of {', '.join(kinds())}")
    files = list(profile or [])
    if len(files) > 1 and export not in (None, "uv"):
        raise UsageError(
            f"--export {export} is for one machine: give one --profile, or --export uv for "
            "several (one pyproject, a build per kind of machine)"
        )
    user = None
    if packages or requirement:
        from envsetup.stack import read_requirements

        user = read_requirements(packages or (), requirement or ())
        if user.empty:  # a file that names nothing: the plan of torch alone
            sys.stderr.write("envsetup: the requirements name no package: torch alone\n")
            user = None
        elif export:
            user.for_export(export)  # before any resolve: one a file cannot hold
    machines = (
        [(str(f), load_profile(f)) for f in files]
        if files
        else [("this machine", this_machine(python))]
    )
    table = load_table()
    request = Request(torch=torch, variant=variant, vision=vision, audio=audio, index_base=base)
    fresh = _freshness(table) if online else None
    if export == "uv" and len(machines) > 1:
        _export_machines(machines, request, table, user, output)
        return
    label, prof = machines[0]
    target = _target_python(prof, python, from_file=bool(files))
    stack = None
    try:
        plan = do_resolve(prof, request, table)
        if user is not None:
            from envsetup.stack import resolve_stack

            resolve_in: Optional[str] = target
            if files:  # another machine's file: for its Python and platform, or in --python
                resolve_in = target if python else None
                if python:
                    _check_interpreter(prof, plan, target, label)
            stack = resolve_stack(prof, request, table, user, python=resolve_in)
            plan = stack.plan
    except EnvsetupError as exc:
        if as_json:
            doc: dict[str, Any] = {"plan": None, "error": exc.message}
            if fresh is not None:
                doc["freshness"] = fresh
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        elif fresh is not None:
            _print_freshness(fresh)
        raise
    if export is not None:
        from envsetup.install.export import export as do_export

        wanted = user.for_export(export) if user is not None else ()
        _write(do_export(plan, export, None, (), wanted, label=label), output)
        return
    commands = direct_commands(plan, target, user.arguments if user is not None else ())
    if as_json:
        doc = {"plan": plan.to_dict(), "commands": commands}
        if stack is not None:
            doc["stack"] = stack.to_dict()
        if fresh is not None:
            doc["freshness"] = fresh
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from envsetup import render

    render.print_plan(plan, commands, stack)
    if fresh is not None:
        _print_freshness(fresh)


def _write(text: str, output: Optional[str]) -> None:
    from envsetup.errors import UsageError

    if not output:
        sys.stdout.write(text)
        return
    from envsetup import secrets

    try:
        secrets.write_text(output, text)
    except OSError as exc:
        raise UsageError(f"--output {output}: {exc.strerror or exc}") from None


def _export_machines(
    machines: list[tuple[str, Any]], request: Any, table: Any, user: Any, output: Optional[str]
) -> None:
    """One pyproject for several kinds of machine: each one's build (narrowed by the user's own
    torch lines), the packages beside them; ``uv lock`` resolves the rest for every kind."""
    from envsetup.resolve import resolve as do_resolve
    from envsetup.stack import narrowed_plan
    from envsetup.uvproject import Machine, uv_project

    out = []
    for label, prof in machines:
        plan = (
            narrowed_plan(prof, request, table, user) if user else do_resolve(prof, request, table)
        )
        out.append(Machine(Path(label).name, prof, plan))
    export = uv_project(out, user.for_export("uv") if user else ())
    for note in export.notes:
        sys.stderr.write(f"envsetup: {note}\n")
    _write(export.text, output)


def _freshness(table: Any) -> dict[str, Optional[str]]:
    """Ask the package index for its torch releases: {index, newer, error} (never raises for an
    index that cannot be read: the plan still stands, offline)."""
    from envsetup.compat import newer_than_table
    from envsetup.index import Index, IndexUnreachable, default_index_url
    from envsetup.secrets import mask_url as mask

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
