"""``envsetup install``: resolve (or read) a plan and carry it out, interactively or by flags.

With packages (``envsetup install transformers datasets``, ``-r requirements.txt``), the whole
stack is resolved first (:func:`envsetup.stack.resolve_stack`: torch from its PyTorch index, the
rest from the default index) by the resolver of the installer that will install it, then carried
out by the same transaction; on a terminal the whole set is shown and confirmed once."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from envsetup.cli import app
from envsetup.errors import EXIT_FAIL, EnvsetupError, UsageError
from envsetup.install import backends as registry

if TYPE_CHECKING:
    from collections.abc import Callable

    from envsetup.install.run import Outcome
    from envsetup.install.target import TargetInfo
    from envsetup.install.wizard import Choice, Replan
    from envsetup.plan import Plan, Request
    from envsetup.stack import Stack, UserRequirements


def _with(value: Optional[str]) -> Optional[tuple[bool, bool]]:
    if value is None:
        return None
    parts = {p.strip().lower() for p in value.split(",") if p.strip()}
    parts.discard("none")
    unknown = parts - {"vision", "audio", "torchvision", "torchaudio"}
    if unknown:
        raise UsageError(f"--with {value}: unknown {', '.join(sorted(unknown))}; use vision,audio")
    return bool(parts & {"vision", "torchvision"}), bool(parts & {"audio", "torchaudio"})


def _narrow(plan: Plan, extras: Optional[tuple[bool, bool]]) -> Plan:
    """Drop torchvision/torchaudio from a ready plan; adding one needs the resolver."""
    from dataclasses import replace

    if extras is None:
        return plan
    want = {"torch"} | {n for n, on in zip(("torchvision", "torchaudio"), extras) if on}
    have = {p.name for p in plan.pins}
    if want - have:
        raise UsageError(
            f"--with asks for {', '.join(sorted(want - have))}, which the plan file has no pin "
            "for; make the plan with it (envsetup plan --vision --audio --json)"
        )
    return replace(plan, pins=tuple(p for p in plan.pins if p.name in want))


class _Resolver:
    """This machine's profile and the table, and the plan for a request (the wizard's replan)."""

    def __init__(self, python: str):
        from envsetup.compat import load_table
        from envsetup.detect import detect_profile
        from envsetup.resolve import index_base_from

        self.base = index_base_from(None)  # ENVSETUP_TORCH_INDEX, like `envsetup plan`
        self.table = load_table()
        self.profile = detect_profile(python)

    def request(
        self, torch: Optional[str], variant: Optional[str], vision: bool, audio: bool
    ) -> Request:
        from envsetup.plan import Request

        spec = f"=={torch}" if torch and torch[0].isdigit() and torch.count(".") >= 2 else torch
        return Request(
            torch=spec, variant=variant or "auto", vision=vision, audio=audio, index_base=self.base
        )

    def __call__(
        self, torch: Optional[str], variant: Optional[str], vision: bool, audio: bool
    ) -> Plan:
        from envsetup.resolve import resolve

        return resolve(self.profile, self.request(torch, variant, vision, audio), self.table)


def _resolver(python: str) -> _Resolver:
    return _Resolver(python)


def _resolve_stack(
    resolver: _Resolver,
    request: Request,
    user: UserRequirements,
    info: TargetInfo,
    python: str,
    installer: Optional[str],
    index_url: Optional[str],
) -> Stack:
    """The whole set for ``info`` (``python`` runs the resolve: the target itself, or the
    interpreter a new venv is made from), by uv, once the installer is known to fit."""
    from envsetup.install import sources as srcmod
    from envsetup.stack import resolve_stack

    base = resolver(request.torch, request.variant, request.vision, request.audio)
    registry.choose(installer, base, info, srcmod.for_stack(base, index_url, None), stack=True)
    return resolve_stack(
        resolver.profile, request, resolver.table, user, python=python, torch_index=index_url,
        fresh=not info.exists,
    )  # fmt: skip


def _venv_argv(path: str, base: str) -> list[str]:
    return [base, "-m", "venv", path]


def _make_venv(path: str, base: str) -> str:
    from envsetup import proc
    from envsetup.target import resolve_python

    res = proc.run(_venv_argv(path, base), timeout=300)
    if not res.ok:
        tail = (res.stderr.strip().splitlines() or [res.error or f"exit {res.returncode}"])[-1]
        raise UsageError(f"--venv {path}: could not create the venv: {tail}")
    return resolve_python(path)


SHOWN_LINES = 12  # of a file the steps read, in a dry run (--json has every line)


def _dry_run_lines(outcome: Outcome) -> list[str]:
    """The commands a dry run shows, one shell line each (credentials masked)."""
    import shlex

    mask = outcome.sources.mask
    lines = []
    if outcome.stack is not None:
        s = outcome.stack
        lines.append(f"# the whole set, resolved by {s.resolver} in {s.seconds:.2f} s:")
        lines += [f"#   {ln}" for ln in s.describe(mask)]
    if outcome.create_venv:
        lines.append(shlex.join(outcome.create_venv))
    for name, text in outcome.files:
        lines.append(f"# {name}, written first:")
        body = mask(text).splitlines()
        lines += [f"#   {ln}" for ln in body[:SHOWN_LINES]]
        if len(body) > SHOWN_LINES:
            lines.append(f"#   … {len(body) - SHOWN_LINES} more lines (--json has them all)")
    lines += [mask(s.shell()) for s in outcome.steps]
    lines += [
        f"# {mask(n)}" for n in outcome.notes if n.startswith(("after the install", "--no-guard"))
    ]
    if outcome.check:
        lines.append(f"# then the check: envsetup verify {outcome.check}")
    return lines


def _print_outcome(outcome: Outcome, as_json: bool) -> None:
    import shlex

    plan = outcome.plan
    build = f"torch {plan.local_version or plan.torch} ({plan.variant})"
    if as_json:
        sys.stdout.write(json.dumps(outcome.to_dict(), indent=2) + "\n")
        return
    if outcome.already_installed:
        if outcome.stack is not None:
            build += f" and the {len(outcome.stack.packages)} packages of the set"
        sys.stdout.write(f"already installed: {build} in {outcome.python}; nothing to do\n")
        return
    if outcome.dry_run:
        made = " (a new venv)" if outcome.create_venv else ""
        sys.stdout.write(f"# {outcome.installer} into {outcome.python}{made}\n")
        sys.stdout.write("\n".join(_dry_run_lines(outcome)) + "\n")
        direct = outcome.sources.mask(shlex.join(outcome.direct))
        sys.stdout.write(f"# the same in one step, without the safety net:\n# {direct}\n")
        return
    if outcome.verify is not None:
        from envsetup import render

        con = render.console()  # the rows verify prints, at the terminal's width
        for r in outcome.verify.results:
            con.print(render.check_row(r.status, r.name, None, r.detail))
    if outcome.ok:
        more = ""
        if outcome.stack is not None:
            asked = [p for p in outcome.stack.packages if p.requested and p.name not in
                     ("torch", "torchvision", "torchaudio")]  # fmt: skip
            more = " with " + ", ".join(f"{p.name} {p.version}" for p in asked)
        sys.stdout.write(
            f"{build}{more} installed into {outcome.python} with {outcome.installer}\n"
        )
    if outcome.guard is not None:
        pins = ", ".join(f"{n} {v}" for n, v in outcome.guard.packages.items())
        sys.stdout.write(
            f"guarded: pip refuses to replace {pins} in this environment "
            f"({outcome.guard.pip_conf}); change it with envsetup install\n"
        )


def _confirm(
    stack: Stack,
    prepared: Optional[TargetInfo],
    new_venv: Optional[str],
    base: str,
    installer: Optional[str],
    index_url: Optional[str],
    break_system_packages: bool,
    target_info: Callable[[Optional[str], Optional[str]], TargetInfo],
    guard: bool,
) -> bool:
    """On a terminal, with packages: show what would run (the whole set first), ask once."""
    from envsetup.install import ui as ui_mod
    from envsetup.install.run import Options
    from envsetup.install.run import install as do_install

    info = prepared or target_info(None, new_venv)
    opts = Options(python=info.python, installer=installer, index_url=index_url, dry_run=True,
                   break_system_packages=break_system_packages, target=info, stack=stack,
                   guard=guard, create_venv=_venv_argv(new_venv, base) if new_venv else None)  # fmt: skip
    outcome = do_install(stack.plan, opts, ui_mod.Ui())
    if outcome.already_installed:
        return True  # the install says so, and changes nothing
    from envsetup.install.wizard import change, installed_torch

    sys.stdout.write("envsetup will run:\n" + "\n".join(_dry_run_lines(outcome)) + "\n")
    what = change(installed_torch(info), stack.plan)  # "upgrade torch 2.13.0 → 2.14.1"
    return bool(typer.confirm(f"Go ahead: {what} and the packages?", default=False))


def _check_source(
    target: TargetInfo,
) -> Callable[[Plan, Optional[str], tuple[str, ...]], Optional[str]]:
    """The wizard's index check: None when the source serves the plan, else why not."""
    from envsetup.install import sources as srcmod

    def check(plan: Plan, index_url: Optional[str], find_links: tuple[str, ...]) -> Optional[str]:
        try:
            srcmod.check(srcmod.for_install(plan, index_url, find_links), plan, target.minor,
                         target.platform)  # fmt: skip
        except srcmod.SourceError as exc:
            return exc.reason
        return None

    return check


def _probe_soon(python: str) -> Callable[[], TargetInfo]:
    """Probe ``python`` in a thread; the returned callable waits for the answer (or raises)."""
    import threading

    from envsetup.install.target import TargetInfo, probe

    box: list[object] = []

    def work() -> None:
        try:
            box.append(probe(python))
        except BaseException as exc:  # handed to the caller
            box.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def answer() -> TargetInfo:
        thread.join()
        value = box[0]
        if isinstance(value, BaseException):
            raise value
        assert isinstance(value, TargetInfo)
        return value

    return answer


def _json_error(exc: EnvsetupError) -> None:
    sys.stdout.write(json.dumps({"ok": False, "error": exc.message, "code": exc.code}) + "\n")


@app.command("install")
def install(
    packages: Optional[list[str]] = typer.Argument(  # noqa: B008
        None,
        help="packages to install with torch, resolved together (transformers 'peft>=0.10')",
        show_default=False,
    ),
    requirement: Optional[list[str]] = typer.Option(  # noqa: B008
        None, "--requirement", "-r", help="a requirements file (pip's format), resolved with torch"
    ),
    torch: Optional[str] = typer.Option(None, "--torch", help="torch version or spec: 2.4.1, 2.4"),
    variant: Optional[str] = typer.Option(None, "--variant", help="cpu, cu121, cu126, rocm6.1, …"),
    with_: Optional[str] = typer.Option(
        None, "--with", help="companions to install: vision,audio (or none)"
    ),
    installer: Optional[str] = typer.Option(None, "--installer", help=registry.installer_help()),
    python: Optional[str] = typer.Option(None, "--python", help="the target interpreter or venv"),
    venv: Optional[str] = typer.Option(
        None, "--venv", help="install into this venv, creating it when it does not exist"
    ),
    index_url: Optional[str] = typer.Option(
        None,
        "--index-url",
        help="the full index to install from, http(s):// or a file:// directory mirror "
        "(replaces the PyTorch index for this install)",
    ),
    find_links: Optional[list[str]] = typer.Option(  # noqa: B008
        None,
        "--find-links",
        help="a wheelhouse (a directory of wheels); alone, the install reads no index",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the commands, change nothing"),
    yes: bool = typer.Option(False, "--yes", "-y", help="no prompts: flags only"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document on stdout, no progress"),
    no_verify: bool = typer.Option(False, "--no-verify", help="skip the check after installing"),
    verify_mode: str = typer.Option(
        "quick",
        "--verify",
        help="the check after installing: quick (envsetup verify --quick), or workload (quick, "
        "then a short real training run: envsetup verify --workload)",
    ),
    export: Optional[str] = typer.Option(
        None,
        "--export",
        help=f"write the plan as {' | '.join(registry.exports())}, and install nothing",
    ),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="file for --export"),
    break_system_packages: bool = typer.Option(
        False, "--break-system-packages", help="allow an externally-managed (PEP 668) interpreter"
    ),
    no_guard: bool = typer.Option(
        False,
        "--no-guard",
        help="leave no guard (an existing one is removed): a later pip install may replace torch",
    ),
    plan_file: Optional[str] = typer.Option(
        None,
        "--plan-file",
        help="install this plan (plan --json, install --json or fleet report --plans output) "
        "instead of resolving one here",
    ),
    no_wait: bool = typer.Option(
        False,
        "--no-wait",
        help="when another envsetup install is changing the same environment, stop at once "
        "(exit 5) instead of waiting for it",
    ),
) -> None:
    """Install the right torch build for this machine, with the packages given (a wizard on a
    terminal)."""
    from envsetup.install import target as tgt
    from envsetup.install import ui as ui_mod
    from envsetup.install.export import export as do_export
    from envsetup.install.run import Options
    from envsetup.install.run import install as do_install
    from envsetup.plan import read_plan_file
    from envsetup.target import resolve_python

    if python and venv:
        raise UsageError("--python and --venv name the target twice; give one")
    if installer is not None:
        registry.get(installer)  # a one-line usage error listing the installers
    houses = tuple(str(Path(d).expanduser().absolute()) for d in find_links or ())
    for d in houses:
        if not Path(d).is_dir():
            raise UsageError(f"--find-links {d}: not a directory; give a directory of wheels")
    extras = _with(with_)
    base = resolve_python(python)
    target: Optional[str] = base
    new_venv: Optional[str] = None
    if venv:
        vpath = Path(venv).expanduser().absolute()
        if vpath.exists():
            target = resolve_python(str(vpath))
        else:
            new_venv, target = str(vpath), None
    # The target's probe runs while the rest starts up (it waits on another interpreter).
    probed = {target: _probe_soon(target)} if target is not None else {}
    if index_url is not None:
        from envsetup.resolve import check_index_url

        index_url = check_index_url(index_url, "--index-url")
    if verify_mode not in ("quick", "workload"):
        raise UsageError(f"--verify {verify_mode}: unknown check; use quick or workload")
    if no_verify and verify_mode != "quick":
        raise UsageError(f"--no-verify and --verify {verify_mode} contradict; give one")

    user: Optional[UserRequirements] = None
    if packages or requirement:
        from envsetup.stack import read_requirements

        user = read_requirements(packages or (), requirement or ())
    if user is not None and user.empty:  # a file that names nothing: torch alone
        sys.stderr.write("envsetup: the requirements name no package: torch alone\n")
        user = None
    if user is not None:
        if plan_file:
            raise UsageError(
                "--plan-file fixes the torch build alone; with packages, give --torch and "
                "--variant: envsetup resolves them together"
            )
        if houses:
            raise UsageError(
                "--find-links with packages: a wheelhouse holds the torch build alone; give the "
                "mirror as an index (--index-url file:///DIR), the packages come from the "
                "default index"
            )
    replan: Optional[Replan] = None
    resolver: Optional[_Resolver] = None
    if plan_file:
        if torch or variant:
            raise UsageError("--plan-file fixes torch and the variant; drop --torch/--variant")
        plan = _narrow(read_plan_file(plan_file, "--plan-file"), extras)
    else:
        replan = resolver = _resolver(target or base)
        vision, audio = extras if extras is not None else (False, False)  # torch alone unless asked
        plan = replan(torch, variant, vision, audio)

    def target_info(py: Optional[str], venv_path: Optional[str]) -> TargetInfo:
        if venv_path is not None:
            return tgt.new_venv(probed.get(base, lambda: tgt.probe(base))(), venv_path)
        return probed.get(py or base, lambda: tgt.probe(py or base))()

    def stack_for(info: TargetInfo) -> Stack:
        assert user is not None and resolver is not None
        vision, audio = extras if extras is not None else (False, False)
        request = resolver.request(torch, variant, vision, audio)
        py = info.python if info.exists else base
        try:
            return _resolve_stack(resolver, request, user, info, py, installer, index_url)
        except EnvsetupError as exc:
            if as_json:
                _json_error(exc)
            raise

    stack: Optional[Stack] = None
    if export:
        wanted: tuple[str, ...] = ()
        if user is not None:
            stack = stack_for(target_info(target, new_venv))
            plan, wanted = stack.plan, user.for_export(export)
        text = do_export(plan, export, index_url, houses, wanted)
        if output:
            from envsetup import secrets

            try:
                secrets.write_text(output, text)
            except OSError as exc:
                raise UsageError(f"--output {output}: {exc.strerror or exc}") from None
        else:
            sys.stdout.write(text)
        return

    interactive = not (yes or as_json) and sys.stdin.isatty() and sys.stdout.isatty()
    if interactive and user is None:  # with packages: the set is shown and confirmed below
        from envsetup.install import sources as srcmod
        from envsetup.install import wizard

        known: dict[str, TargetInfo] = {}

        def facts(py: str) -> TargetInfo:
            if py not in known:
                known[py] = probed[py]() if py in probed else tgt.probe(py)
            return known[py]

        def inspect(py: Optional[str], venv_path: Optional[str]) -> TargetInfo:
            if venv_path is not None:
                return tgt.new_venv(facts(base), venv_path)
            return facts(py or target or base)

        def retarget(py: str) -> tuple[Plan, Replan]:
            again = _resolver(py)
            vision, audio = extras if extras is not None else (False, False)
            return again(torch, variant, vision, audio), again

        def installers(p: Plan, info: TargetInfo) -> tuple[list[str], str]:
            names = registry.available(p, info, srcmod.for_install(p, index_url, houses))
            return names, registry.default_for(info)

        def check(p: Plan, info: TargetInfo, url: Optional[str], links: tuple[str, ...]
                  ) -> Optional[str]:  # fmt: skip
            return _check_source(info)(p, url, links)

        def preview(choice: Choice) -> list[str]:
            made = choice.venv or (new_venv if choice.python is None else None)
            info = inspect(choice.python, made)
            opts = Options(python=info.python, installer=choice.installer,
                           index_url=choice.index_url, find_links=choice.find_links, dry_run=True,
                           break_system_packages=break_system_packages, target=info,
                           create_venv=_venv_argv(made, base) if made else None)  # fmt: skip
            outcome = do_install(choice.plan, opts, ui_mod.Ui())
            if outcome.already_installed:
                return [f"(nothing: torch {outcome.plan.torch} is already installed)"]
            return _dry_run_lines(outcome)

        choice = wizard.run(
            plan,
            replan=replan,
            inspect=inspect,
            installers=installers,
            preview=preview,
            python=python if not venv else target,
            new_venv=new_venv,
            installer=installer,
            retarget=retarget if replan is not None else None,
            check_source=check,
            index_url=index_url,
            find_links=houses,
            break_system_packages=break_system_packages,
        )
        if choice is None:
            sys.stderr.write("envsetup: nothing was changed\n")
            return
        if choice.action == "verify":
            sys.stderr.write("envsetup: nothing was changed; verifying what is there\n")
            from envsetup.commands import verify

            verify.quick(choice.python or target or base)
            return
        plan, installer = choice.plan, choice.installer
        index_url, houses = choice.index_url, choice.find_links
        if choice.venv:
            new_venv, target = choice.venv, None
        elif choice.python:
            target, new_venv = resolve_python(choice.python), None
            if target not in probed and target in known:
                info_now = known[target]
                probed[target] = lambda: info_now

    created = False
    prepared: Optional[TargetInfo] = probed[target]() if target in probed else None
    if user is not None:
        # The whole set, resolved for the target (a new venv: for an empty one of its Python).
        stack = stack_for(prepared or target_info(target, new_venv))
        plan = stack.plan
        if (
            interactive
            and not dry_run
            and not _confirm(
                stack,
                prepared,
                new_venv,
                base,
                installer,
                index_url,
                break_system_packages,
                target_info,
                not no_guard,
            )
        ):
            sys.stderr.write("envsetup: nothing was changed\n")
            return
    if new_venv is not None:
        if dry_run:
            prepared = target_info(None, new_venv)
            target = prepared.python
        else:
            target = _make_venv(new_venv, base)
            created = True
    assert target is not None
    opts = Options(
        python=target,
        installer=installer,
        index_url=index_url,
        find_links=houses,
        dry_run=dry_run,
        verify=not no_verify,
        workload=verify_mode == "workload",
        break_system_packages=break_system_packages,
        target=prepared,
        create_venv=_venv_argv(new_venv, base) if new_venv is not None and dry_run else None,
        stack=stack,
        guard=not no_guard,
        wait=not no_wait,
    )
    ui = ui_mod.make(quiet=as_json)
    try:
        outcome = do_install(plan, opts, ui)
    except EnvsetupError as exc:
        if created and new_venv:
            shutil.rmtree(new_venv, ignore_errors=True)
            exc.message += f"; the new venv {new_venv} was removed"
        if as_json:
            _json_error(exc)
        raise
    except KeyboardInterrupt:
        if created and new_venv:
            shutil.rmtree(new_venv, ignore_errors=True)
        raise
    _print_outcome(outcome, as_json)
    if not outcome.ok:
        raise EnvsetupError(
            outcome.error or "install failed", code="verify-failed", exit_code=EXIT_FAIL
        )
