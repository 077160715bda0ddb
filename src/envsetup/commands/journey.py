"""``envsetup`` with no command, on a terminal: the whole journey.

1. doctor: what is wrong with this machine (errors first, each with its fix);
2. plan: the build this machine should have, and why;
3. install: it says what installing the plan changes ("upgrade torch 2.13.0 → 2.14.1"), then
   the wizard (target, version, build, packages, installer, confirmation), which ends with the
   quick verification in the environment it installed into; declined, it offers to verify the
   torch that is there. When the planned build is already there, it verifies it.

Without a terminal there is nothing to ask: it prints the help instead.
"""

from __future__ import annotations

import sys

import typer

from envsetup.errors import EXIT_FAIL


def run(ctx: typer.Context) -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        sys.stdout.write(ctx.get_help() + "\n")
        sys.stdout.write(
            "\nOn a terminal, `envsetup` alone runs doctor, plan, install and verify.\n"
        )
        return

    from rich.markup import escape

    from envsetup.commands import verify
    from envsetup.compat import load_table
    from envsetup.detect import detect_profile
    from envsetup.diagnose import diagnose_machine
    from envsetup.errors import NoBuildError
    from envsetup.install.wizard import change
    from envsetup.plan import Request
    from envsetup.render import SEVERITY_MARK, SEVERITY_STYLE, verdict
    from envsetup.render import console as masking_console
    from envsetup.resolve import resolve

    console = masking_console()
    console.rule("[bold]1/3 doctor[/bold]")
    profile = detect_profile(None)
    findings = diagnose_machine(profile)
    gpus = [g.name or "?" for g in profile.nvidia.gpus if g.visible]
    console.print(
        f"{profile.system.distro_name or profile.system.os} {profile.system.arch} · Python "
        f"{profile.python.version} · "
        + (
            f"{', '.join(gpus)} (driver {profile.nvidia.driver_version})"
            if gpus
            else "no NVIDIA GPU"
        )
        + f" · torch {profile.torch.version or 'not installed'}"
    )
    for f in findings:
        if f.severity == "info":
            continue
        style = SEVERITY_STYLE[f.severity]
        console.print(
            f"[{style}]{SEVERITY_MARK[f.severity]} {f.code}[/{style}]  {escape(f.message)}"
        )
        if f.fix:
            console.print(f"    fix: {escape(f.fix)}", soft_wrap=True)
    console.print(verdict(findings) + "  (envsetup doctor shows everything)")

    console.rule("[bold]2/3 plan[/bold]")
    wants = Request(
        vision=profile.torch.package("torchvision") is not None,
        audio=profile.torch.package("torchaudio") is not None,
    )
    try:
        plan = resolve(profile, wants, load_table())
    except NoBuildError as exc:
        console.print(
            f"[bold red]no torch build fits this machine[/bold red]: {escape(exc.message)}"
        )
        raise typer.Exit(exc.exit_code) from None
    console.print(f"[bold]{' '.join(plan.requirements())}[/bold] ({plan.variant})")
    for reason in plan.why[:3]:
        console.print(f"  - {escape(reason)}")
    for warning in plan.warnings:
        console.print(f"  [yellow]! {escape(warning)}[/yellow]")

    parent = ctx.command
    assert isinstance(parent, typer.core.TyperGroup)
    if profile.torch.version == (plan.local_version or plan.torch):
        console.rule("[bold]3/3 verify[/bold]")
        console.print(f"torch {profile.torch.version} is already the planned build: verifying it")
        verify.quick(None, workload=_ask_workload())
        return

    console.rule("[bold]3/3 install and verify[/bold]")
    what = change(profile.torch.version, plan)  # "upgrade torch 2.13.0 → 2.14.1"
    if _ask(f"{what[:1].upper()}{what[1:]} now? (the wizard lets you change each choice)"):
        ctx.invoke(parent.get_command(ctx, "install"))  # type: ignore[arg-type]
        return
    if profile.torch.version and _ask(f"Verify torch {profile.torch.version} as it is?"):
        workload = _ask_workload()
        console.print("nothing was changed; verifying what is there")
        verify.quick(None, workload=workload)
        return
    console.print("nothing was changed; `envsetup install` runs the wizard any time")
    raise typer.Exit(EXIT_FAIL if any(f.severity == "error" for f in findings) else 0)


def _ask_workload() -> bool:
    """The tutorials end with a training run: offer the same proof (verify --workload)."""
    return _ask(
        "Also train a small model for a few dozen steps (verify --workload: the loss must fall; "
        "about a minute on a CPU)?"
    )


def _ask(question: str) -> bool:
    import questionary

    answer = questionary.confirm(question).unsafe_ask()
    if answer is None:
        raise KeyboardInterrupt
    return bool(answer)
