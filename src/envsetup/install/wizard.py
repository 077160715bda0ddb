"""The interactive ``envsetup install``: target, torch version, variant, packages, installer,
then the exact commands and a confirmation. When the index cannot serve the plan (unreachable,
or without the build), it asks for a mirror or a wheelhouse. Ctrl-C at any prompt changes
nothing (exit 130)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from packaging.version import Version

from envsetup.plan import Pin, Plan

# (torch version, variant, vision, audio) → Plan; None where only the given plan is possible.
Replan = Callable[[Optional[str], Optional[str], bool, bool], Plan]


@dataclass
class Choice:
    python: Optional[str]  # an existing interpreter or environment
    venv: Optional[str]  # a new venv to create
    plan: Plan
    installer: str
    index_url: Optional[str] = None  # a mirror the user gave when the index failed
    find_links: tuple[str, ...] = ()  # a wheelhouse the user gave instead


# (plan, index URL, wheelhouses) → None when the source serves the plan, else why not (one line)
CheckSource = Callable[[Plan, Optional[str], tuple[str, ...]], Optional[str]]


def mirror(answer: str) -> tuple[Optional[str], tuple[str, ...]]:
    """A mirror as the user typed it: (index URL, wheelhouses). A directory laid out like an
    index (``<dir>/torch/index.html``) is read as a file:// index, another directory as a
    wheelhouse; anything else must be an http(s):// or file:// URL."""
    from envsetup.errors import UsageError
    from envsetup.index import file_url

    text = answer.strip()
    if "://" in text:
        from envsetup.resolve import check_index_url

        return check_index_url(text, "the mirror"), ()
    path = Path(text).expanduser()
    if not path.is_dir():
        raise UsageError(f"{text}: not a URL and not a directory")
    if (path / "torch" / "index.html").is_file():
        return file_url(path), ()
    return None, (str(path.absolute()),)


def ask_mirror(problem: str) -> tuple[Optional[str], tuple[str, ...]]:
    """Ask for a mirror after ``problem``; Ctrl-C or an empty answer stops (nothing changed)."""
    import questionary

    sys.stdout.write(f"\n{problem}\n")
    sys.stdout.flush()
    answer = _ask(
        questionary.text(
            "Mirror to install from (an index URL, a file:// index, or a wheelhouse "
            "directory; empty to stop):"
        )
    )
    if not str(answer).strip():
        raise KeyboardInterrupt
    return mirror(str(answer))


def _ask(question: Any) -> Any:
    answer = question.unsafe_ask()  # Ctrl-C raises KeyboardInterrupt: the CLI exits 130
    if answer is None:
        raise KeyboardInterrupt
    return answer


def torch_choices(plan: Plan, limit: int = 4) -> list[str]:
    """The resolver's pick first, then the newest few other versions it found valid."""
    others = sorted(
        {c.torch for c in plan.candidates if c.accepted and c.torch != plan.torch},
        key=Version,
        reverse=True,
    )
    return [plan.torch, *others[:limit]]


def variant_choices(plan: Plan, torch: str) -> list[tuple[str, bool, str]]:
    """(variant, valid, why) for one torch version, the plan's pick first."""
    seen: dict[str, tuple[str, bool, str]] = {}
    if torch == plan.torch:
        seen[plan.variant] = (plan.variant, True, "; ".join(plan.why) or "the resolver's pick")
    for c in plan.candidates:
        if c.torch == torch and c.variant not in seen:
            seen[c.variant] = (c.variant, c.accepted, "; ".join(c.reasons))
    return list(seen.values())


def run(
    plan: Plan,
    *,
    replan: Optional[Replan],
    installers: list[str],
    default_installer: str,
    python: Optional[str],
    preview: Callable[[Choice], list[str]],
    check_source: Optional[CheckSource] = None,
    index_url: Optional[str] = None,
    find_links: tuple[str, ...] = (),
) -> Optional[Choice]:
    """Ask; return the user's choice, or None when they declined at the confirmation."""
    import questionary

    here = python or sys.executable
    target = _ask(
        questionary.select(
            "Install into which environment?",
            choices=[
                questionary.Choice(f"this one ({here})", value="current"),
                questionary.Choice("an existing venv or conda env…", value="existing"),
                questionary.Choice("a new venv at a path…", value="new"),
            ],
        )
    )
    new_venv: Optional[str] = None
    if target == "existing":
        python = _ask(questionary.path("Path of the environment or its python:"))
    elif target == "new":
        new_venv = _ask(questionary.text("Path of the new venv:", default=".venv"))
        new_venv = str(Path(new_venv).expanduser().absolute())

    versions = torch_choices(plan) if replan else [plan.torch]
    torch = _ask(
        questionary.select(
            "torch version:",
            choices=[
                questionary.Choice(v + ("  (recommended)" if v == plan.torch else ""), value=v)
                for v in versions
            ],
        )
    )
    variants = variant_choices(plan, torch)
    if not replan:
        variants = [v for v in variants if v[0] == plan.variant] or variants[:1]
    variant = _ask(
        questionary.select(
            "Build (variant):",
            choices=[
                questionary.Choice(
                    f"{name} — {why}" if valid else name,
                    value=name,
                    disabled=None if valid else (why or "not valid here"),
                )
                for name, valid, why in variants
            ],
        )
    )
    extras = ["torchvision", "torchaudio"]
    have = {p.name for p in plan.pins}
    if not replan:
        extras = [e for e in extras if e in have]
    picked = set(
        _ask(
            questionary.checkbox(
                "Also install:",
                choices=[questionary.Choice(e, checked=e in have) for e in extras],
            )
        )
        if extras
        else []
    )
    vision, audio = "torchvision" in picked, "torchaudio" in picked
    if replan and (torch, variant, vision, audio) != (
        plan.torch,
        plan.variant,
        "torchvision" in have,
        "torchaudio" in have,
    ):
        plan = replan(torch, variant, vision, audio)
    else:
        plan = replace(plan, pins=tuple(p for p in plan.pins if _keep(p, picked)))
    installer = _ask(
        questionary.select("Installer:", choices=installers, default=default_installer)
    )
    choice = Choice(python=python, venv=new_venv, plan=plan, installer=installer,
                    index_url=index_url, find_links=find_links)  # fmt: skip
    if check_source is not None:
        from envsetup.errors import UsageError

        problem = check_source(plan, index_url, find_links)
        while problem is not None:
            try:
                index_url, find_links = ask_mirror(problem)
            except UsageError as exc:
                problem = exc.message
                continue
            choice = replace(choice, index_url=index_url, find_links=find_links)
            problem = check_source(plan, index_url, find_links)
    lines = ["", "envsetup will run:"]
    lines += ["  " + line for line in preview(choice)]
    sys.stdout.write("\n".join(lines) + "\n\n")
    sys.stdout.flush()
    if not _ask(questionary.confirm("Go ahead?", default=True)):
        return None
    return choice


def _keep(pin: Pin, picked: set[str]) -> bool:
    return pin.name == "torch" or pin.name in picked
