"""``envsetup doctor``: probe the machine, name every problem with its exact fix."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from envsetup.cli import app


@app.command()
def doctor(
    python: Optional[str] = typer.Option(
        None, "--python", help="The target interpreter (default: the one running envsetup)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print {profile, findings} as JSON."),
    markdown: bool = typer.Option(
        False, "--markdown", help="Print a report to paste into a bug report."
    ),
    deep: bool = typer.Option(False, "--deep", help="Also import torch in the target and ask it."),
) -> None:
    """Probe OS, Python, CPU, NVIDIA driver and GPUs, CUDA, cuDNN and torch; name every problem."""
    from envsetup.detect import detect_profile
    from envsetup.diagnose import diagnose_machine
    from envsetup.errors import EXIT_FAIL, EXIT_USAGE, UsageError

    if json_out and markdown:
        raise UsageError("--json and --markdown: choose one", exit_code=EXIT_USAGE)
    profile = detect_profile(python, deep=deep)
    findings = diagnose_machine(profile)
    from envsetup import render

    if json_out:
        sys.stdout.write(render.to_json(profile, findings) + "\n")
    elif markdown:
        sys.stdout.write(render.to_markdown(profile, findings))
    else:
        render.print_report(profile, findings)
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(EXIT_FAIL)
