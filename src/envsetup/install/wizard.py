"""The interactive ``envsetup install``: target, torch version, build, packages, installer, then
the exact commands, what changes ("upgrade torch 2.13.0 → 2.15.0") and a confirmation.

Each answer is checked where it is given and asked again when it cannot work (a path that is no
Python, a venv that cannot be made, a build with no companion release), in the wizard's own
words. Every choice carries a value (``cu126``, ``default``), never the label shown for it.
When the index cannot serve the plan (unreachable, or without the build), it asks for a mirror
or a wheelhouse. Declining offers the quick verification of what is there. Ctrl-C at any prompt
changes nothing (exit 130)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from packaging.version import InvalidVersion, Version

from envsetup.errors import EnvsetupError
from envsetup.plan import Candidate, Pin, Plan

if TYPE_CHECKING:
    from envsetup.install.target import TargetInfo

# (torch version, variant, vision, audio) → Plan; raises NoBuildError when nothing fits.
Replan = Callable[[Optional[str], Optional[str], bool, bool], Plan]
# (an interpreter, or None for the target the flags named; a new venv's path) → its facts;
# raises EnvsetupError when it does not run.
Inspect = Callable[[Optional[str], Optional[str]], "TargetInfo"]
# a target's interpreter → (its plan, made with the same flags, and how to make another)
Retarget = Callable[[str], "tuple[Plan, Replan]"]
# (plan, target) → (the installers that can carry it out there, the default among them)
Installers = Callable[[Plan, "TargetInfo"], "tuple[list[str], str]"]
# (plan, target, index URL, wheelhouses) → None when the source serves the plan, else why not
CheckSource = Callable[[Plan, "TargetInfo", Optional[str], "tuple[str, ...]"], Optional[str]]


@dataclass
class Choice:
    python: Optional[str]  # an existing interpreter or environment (None: the flags' target)
    venv: Optional[str]  # a new venv to create
    plan: Plan
    installer: str
    index_url: Optional[str] = None  # a mirror the user gave when the index failed
    find_links: tuple[str, ...] = ()  # a wheelhouse the user gave instead
    action: str = "install"  # "verify": declined; check the torch that is there instead


@dataclass(frozen=True)
class Option:
    """One build offered for a torch version: the value passed on, and what is shown."""

    variant: str  # the value: "cu126" | "cpu" | "default"
    label: str  # "cu126" | "default (cu130)"
    valid: bool
    why: str  # a few words: why it fits, or why not


def _ask(question: Any) -> Any:
    answer = question.unsafe_ask()  # Ctrl-C raises KeyboardInterrupt: the CLI exits 130
    if answer is None:
        raise KeyboardInterrupt
    return answer


def _columns() -> int:
    """The terminal's width as the prompts draw it (the terminal's own, before $COLUMNS)."""
    try:
        width = os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        width = shutil.get_terminal_size((80, 24)).columns
    return max(40, min(width, 160))


def fit(text: str, room: int) -> str:
    """``text`` on one line of at most ``room`` characters, cut at a word with "…"."""
    text = " ".join(text.split())
    if len(text) <= room:
        return text
    cut = text[: max(room - 1, 1)]
    space = cut.rfind(" ")
    if space > room // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:(—-") + "…"


# --------------------------------------------------------------------------- what changes


def change(current: Optional[str], plan: Plan) -> str:
    """What installing ``plan`` does to a target whose torch is ``current`` (its version as
    installed, "2.13.0+cpu"): "install torch 2.15.0+cpu", "upgrade torch 2.13.0 → 2.15.0",
    "downgrade …", "change torch's build 2.13.0+cpu → 2.13.0+cu130"."""
    new = plan.local_version or plan.torch
    if not current:
        return f"install torch {new}"
    if current == new:
        return f"keep torch {new} (already installed)"
    try:
        old_v, new_v = Version(current), Version(new)
    except InvalidVersion:
        return f"replace torch {current} with {new}"
    same_build = old_v.local == new_v.local
    shown = (old_v.public, new_v.public) if same_build else (current, new)
    if Version(old_v.public) == Version(new_v.public):
        return f"change torch's build {current} → {new}"
    word = "upgrade" if Version(new_v.public) > Version(old_v.public) else "downgrade"
    return f"{word} torch {shown[0]} → {shown[1]}"


def installed_torch(info: TargetInfo) -> Optional[str]:
    """The torch installed in the target as ``torch.__version__`` says ("2.13.0+cpu"), what
    a plan's ``local_version`` is compared with; None where there is none."""
    return (info.torch.version or None) if info.exists else None


# --------------------------------------------------------------------------- the builds


def torch_choices(plan: Plan, limit: int = 4) -> list[str]:
    """The resolver's pick first, then the newest few other versions it found valid."""
    others = sorted(
        {c.torch for c in plan.candidates if c.accepted and c.torch != plan.torch},
        key=Version,
        reverse=True,
    )
    return [plan.torch, *others[:limit]]


_ARCH_LIST = re.compile(r" \((?:sm_\w+(?:, )?)+\)")
_DRIVER_NOTE = re.compile(r"^driver (\S+) >= (\S+) \(CUDA (\S+) minor-version compatibility\)$")
_OLD_DRIVER = re.compile(r"^driver (\S+) is older than (\S+), the minimum for CUDA (\S+) builds$")
_PTX_RISK = re.compile(r"^driver (\S+) runs \S+ through minor-version compatibility but is older "
                       r"than (\S+), the CUDA (\S+) toolkit driver")  # fmt: skip
_NO_GPU = re.compile(r"^CUDA build \((\S+)\); this machine has no NVIDIA GPU")
_KERNEL_NOTE = re.compile(r"^GPU \d+(?: \(.*\))?, (sm_\w+): kernels in \S+")
_ON_THE_CPU = re.compile(r"carries CUDA \((\S+)\) libraries this machine cannot use")


def _short(c: Candidate, gpu: bool) -> str:
    """A few words on why ``c`` is valid here, or why not, from the resolver's reasons."""
    if not c.accepted:
        first = c.reasons[0] if c.reasons else "not valid here"
        old, no_gpu = _OLD_DRIVER.match(first), _NO_GPU.match(first)
        if old:
            return (
                f"needs driver ≥ {old.group(2)} for CUDA {old.group(3)}; this one is {old.group(1)}"
            )
        if no_gpu:
            return "needs an NVIDIA GPU with a driver"
        first = first.replace(" (ask for --variant cpu to take it)", "")
        return _ARCH_LIST.sub("", first)
    kernels: list[str] = []
    driver = ""
    other: list[str] = []
    for r in c.reasons:
        d, k, cpu = _DRIVER_NOTE.match(r), _KERNEL_NOTE.match(r), _ON_THE_CPU.search(r)
        ptx = _PTX_RISK.match(r)
        if ptx:
            other.append(f"PTX JIT may fail below driver {ptx.group(2)} (CUDA {ptx.group(3)})")
        elif d:
            driver = f"driver {d.group(1)} ≥ {d.group(2)}"
        elif k:
            kernels.append(k.group(1))
        elif cpu:
            other.append(f"runs on the CPU; its CUDA ({cpu.group(1)}) goes unused")
        else:
            other.append(_ARCH_LIST.sub("", r))
    if kernels:
        driver += ("; " if driver else "") + "kernels for " + ", ".join(dict.fromkeys(kernels))
    words = [*other, driver] if driver else other
    if not words:
        if c.variant == "cpu" or c.same_as == "cpu":
            return "CPU only: the GPU goes unused" if gpu else "runs on the CPU"
        return "fits this machine"
    return "; ".join(words)


def variant_choices(plan: Plan, torch: str) -> list[Option]:
    """The builds of one torch version, the plan's pick first: value, label, valid, why."""
    gpu = plan.cuda is not None or plan.rocm is not None
    seen: dict[str, Option] = {}
    for c in plan.candidates:
        if c.torch != torch or c.variant in seen:
            continue
        why = _short(c, gpu)
        if c.torch == plan.torch and c.variant == plan.variant:
            why = f"recommended: {why}"
        seen[c.variant] = Option(c.variant, c.label, c.accepted, why)
    if torch == plan.torch and plan.variant not in seen:  # a plan made without its candidates
        seen[plan.variant] = Option(plan.variant, plan.variant, True, "the plan's build")
    pick = seen.pop(plan.variant, None) if torch == plan.torch else None
    return ([pick] if pick else []) + list(seen.values())


def _offer_cpu(options: list[Option], torch: str, replan: Replan, have: set[str]) -> list[Option]:
    """A CPU build runs on any machine: offer it where the resolver took it only when asked
    for (a machine with a GPU prefers a GPU build)."""
    from envsetup.errors import NoBuildError

    out = []
    for o in options:
        if not o.valid and o.variant == "cpu":
            try:
                replan(torch, "cpu", "torchvision" in have, "torchaudio" in have)
            except NoBuildError:
                pass
            else:
                o = replace(o, valid=True, why="CPU only: the GPU goes unused")
        out.append(o)
    return out


def offered_builds(plan: Plan, torch: str, replan: Optional[Replan]) -> list[Option]:
    """The builds the wizard offers for ``torch``: each valid one installs when picked (the
    resolver takes it as ``--variant`` would), the others are shown disabled with their reason.
    A fixed plan (``replan`` None, from a plan file) offers its own build alone."""
    if replan is None:
        mine = [o for o in variant_choices(plan, torch) if o.variant == plan.variant]
        label = mine[0].label if mine else plan.variant
        why = mine[0].why if mine and mine[0].valid else "the plan's build"
        return [Option(plan.variant, label, True, why)]
    have = {p.name for p in plan.pins}
    return _offer_cpu(variant_choices(plan, torch), torch, replan, have)


def _build_titles(options: list[Option], width: int) -> list[Any]:
    import questionary

    room = width - 6  # the pointer and margin questionary draws before a choice
    out = []
    for o in options:
        if o.valid:
            title = f"{o.label} — {fit(o.why, room - len(o.label) - 3)}"
            out.append(questionary.Choice(title, value=o.variant))
        else:  # drawn as "- label (why)"
            out.append(
                questionary.Choice(
                    o.label, value=o.variant, disabled=fit(o.why, room - len(o.label) - 5)
                )
            )
    return out


# --------------------------------------------------------------------------- targets


def _interpreter(text: str) -> str:
    """The interpreter a typed path names (a file, or an environment's directory)."""
    p = Path(text).expanduser()
    if p.is_dir():
        for cand in (p / "bin" / "python", p / "Scripts" / "python.exe", p / "python.exe"):
            if cand.is_file():
                return str(cand.absolute())
        raise ValueError("no bin/python in that directory: give a venv, a conda env or a python")
    if not p.exists():
        found = shutil.which(text) if os.sep not in text else None
        if found:
            return found
        raise ValueError("no such file or directory")
    if not os.access(p, os.X_OK):
        raise ValueError("not executable: give a venv, a conda env or a python")
    return str(p.absolute())


def problem_with(info: TargetInfo, plan: Plan, break_system_packages: bool) -> Optional[str]:
    """Why the plan cannot go into the target ``info`` describes, in the wizard's words."""
    if plan.platform and info.platform != plan.platform:
        return f"it runs on {info.platform}; the plan is for {plan.platform}"
    if info.minor != plan.python:
        return f"it is Python {info.minor}; the plan is for Python {plan.python}"
    if info.externally_managed and not break_system_packages:
        return "the system's package manager owns it (PEP 668): pick a venv or a new one"
    if info.exists and not info.writable:
        return f"{info.purelib} is not writable (envsetup never uses sudo): pick a venv"
    return None


def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def free_venv_path(cwd: Path) -> str:
    """A path for a new venv that nothing occupies yet: .venv, else .venv-torch, .venv-torch-2 …"""
    names = [".venv", ".venv-torch", *(f".venv-torch-{n}" for n in range(2, 100))]
    for name in names:
        if not (cwd / name).exists():
            return name
    return str(cwd / ".venv-torch-new")


def venv_path_problem(text: str) -> Optional[str]:
    """Why a new venv cannot be made at ``text`` (None: it can)."""
    if not text.strip():
        return "give the path of the new venv"
    p = Path(text.strip()).expanduser().absolute()
    if p.exists():
        if _is_venv(p):
            return "already a venv: pick “an existing venv” for it, or give a new path"
        if not p.is_dir():
            return "exists and is not a directory: give a new path"
        if any(p.iterdir()):
            return "a directory with files in it: give a new path"
        return None if os.access(p, os.W_OK) else "not writable: give a path you can write to"
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file: give a path under a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable: give a path you can write to"
    return None


class _Targets:
    """Checks each target answer and remembers what it learned (facts, re-made plans)."""

    def __init__(
        self,
        plan: Plan,
        inspect: Inspect,
        retarget: Optional[Retarget],
        break_system_packages: bool,
    ):
        self.plan = plan
        self.inspect = inspect
        self.retarget = retarget
        self.bsp = break_system_packages
        self.plans: dict[str, tuple[Plan, Replan]] = {}

    def check(self, python: Optional[str], venv: Optional[str]) -> Optional[str]:
        """None when the plan (or one re-made for it) can go into this target, else why not.
        ``python`` None and ``venv`` None: the target the flags named."""
        from envsetup.errors import NoBuildError
        from envsetup.target import check_python

        if python is not None:
            try:
                check_python(python, flag="")
                info = self.inspect(python, None)
            except EnvsetupError as exc:  # " PATH: does not run as ...": the path is typed above
                return exc.message.strip().removeprefix(f"{python}: ")
        else:
            try:
                info = self.inspect(None, venv)
            except EnvsetupError as exc:
                return exc.message
        problem = problem_with(info, self.plan, self.bsp)
        if problem is None or self.retarget is None or python is None:
            return problem
        if problem_with(info, replace(self.plan, python=info.minor, platform=info.platform),
                        self.bsp) is not None:  # fmt: skip
            return problem  # not a matter of the plan: the environment itself refuses
        if python not in self.plans:
            try:
                self.plans[python] = self.retarget(python)
            except NoBuildError as exc:
                return f"no torch build fits its Python {info.minor}: {exc.message}"
        return None

    def validator(self, make: Callable[[str], tuple[Optional[str], Optional[str]]]) -> Any:
        def validate(text: str) -> Union[bool, str]:
            try:
                python, venv = make(text)
            except ValueError as exc:
                return fit(str(exc), _columns() - 2)
            problem = venv_path_problem(venv) if venv is not None else None
            problem = problem or self.check(python, venv)
            return fit(problem, _columns() - 2) if problem else True  # one line, never cut off

        return validate


def _existing(text: str) -> tuple[Optional[str], Optional[str]]:
    if not text.strip():
        raise ValueError("give the path of a venv, a conda env or a python")
    return _interpreter(text.strip()), None


def new_venv_path(typed: str, default: str, here: Path) -> str:
    """The new venv a typed answer names: an absolute path as typed (``~`` expanded), a relative
    one under ``here`` (the current directory); nothing typed: ``default``."""
    path = Path(typed.strip() or default).expanduser()
    return str(path if path.is_absolute() else (here / path).absolute())


def _new(default: str, here: Path) -> Callable[[str], tuple[Optional[str], Optional[str]]]:
    return lambda text: (None, new_venv_path(text, default, here))


# --------------------------------------------------------------------------- mirrors


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
        raise UsageError("not a URL and not a directory: give an index URL or a directory")
    if (path / "torch" / "index.html").is_file():
        return file_url(path), ()
    return None, (str(path.absolute()),)


def _mirror_ok(text: str) -> Union[bool, str]:
    if not text.strip():
        return True  # empty: stop
    try:
        mirror(text)
    except EnvsetupError as exc:
        return fit(exc.message.removeprefix(f"the mirror {text.strip()!r} "), _columns() - 2)
    return True


def ask_mirror(problem: str) -> tuple[Optional[str], tuple[str, ...]]:
    """Ask for a mirror after ``problem``; Ctrl-C or an empty answer stops (nothing changed)."""
    import questionary

    sys.stdout.write(f"\n{problem}\n")
    sys.stdout.flush()
    answer = _ask(
        questionary.text(
            "Mirror (an index URL, a file:// index or a wheelhouse; empty to stop):",
            validate=_mirror_ok,
            validate_while_typing=False,
        )
    )
    if not str(answer).strip():
        raise KeyboardInterrupt
    return mirror(str(answer))


# --------------------------------------------------------------------------- the questions


def run(
    plan: Plan,
    *,
    replan: Optional[Replan],
    inspect: Inspect,
    installers: Installers,
    preview: Callable[[Choice], list[str]],
    python: Optional[str] = None,
    new_venv: Optional[str] = None,
    installer: Optional[str] = None,
    retarget: Optional[Retarget] = None,
    check_source: Optional[CheckSource] = None,
    index_url: Optional[str] = None,
    find_links: tuple[str, ...] = (),
    break_system_packages: bool = False,
    cwd: Optional[Path] = None,
) -> Optional[Choice]:
    """Ask; return the user's choice, or None when they declined at the confirmation.

    ``python``/``new_venv``: the target the flags named (None, None: this interpreter);
    ``installer``: the one ``--installer`` named; ``retarget`` re-makes the plan for another
    interpreter (None: the plan is fixed, from a plan file)."""
    import questionary

    width = _columns()
    here = Path(cwd or Path.cwd())
    targets = _Targets(plan, inspect, retarget, break_system_packages)

    # 1. the environment
    current_problem = targets.check(None, new_venv)
    if new_venv:
        current = f"the new venv at {new_venv}"
    else:
        current = f"this one ({python or sys.executable})"
    choices = [questionary.Choice(fit(current, width - 8), value="current",
                                  disabled=fit(current_problem, width - len(current) - 12)
                                  if current_problem else None)]  # fmt: skip
    dot = here / ".venv"
    dot_python: Optional[str] = None
    mine = Path(python or sys.executable).absolute()
    if (
        _is_venv(dot)
        and not new_venv
        and not (mine == dot.absolute() or dot.absolute() in mine.parents)
    ):
        try:
            dot_python = _interpreter(str(dot))
        except ValueError:
            dot_python = None
    if dot_python is not None:
        problem = targets.check(dot_python, None)
        title = "the existing venv at .venv"
        choices.append(questionary.Choice(title, value="dot", disabled=problem and fit(
            problem, width - len(title) - 12)))  # fmt: skip
    choices += [
        questionary.Choice("an existing venv or conda env…", value="existing"),
        questionary.Choice("a new venv at a path…", value="new"),
    ]
    target = _ask(questionary.select("Install into which environment?", choices=choices))
    chosen_python: Optional[str] = None
    chosen_venv: Optional[str] = None
    if target == "dot":
        chosen_python = dot_python
    elif target == "existing":
        typed = _ask(
            questionary.path(
                "Path of the environment or its python:",
                validate=targets.validator(_existing),
                validate_while_typing=False,
            )
        )
        chosen_python = _interpreter(str(typed).strip())
    elif target == "new":
        # the free path is a placeholder, not text in the line: a path typed over it is the
        # path (a prefilled default would turn /tmp/x/venv into .venv/tmp/x/venv)
        default = free_venv_path(here)
        typed = _ask(
            questionary.text(
                "Path of the new venv:",
                placeholder=default,
                validate=targets.validator(_new(default, here)),
                validate_while_typing=False,
            )
        )
        chosen_venv = new_venv_path(str(typed), default, here)
    if chosen_python is not None and chosen_python in targets.plans:
        plan, replan = targets.plans[chosen_python]
    info = inspect(None, new_venv) if target == "current" else inspect(chosen_python, chosen_venv)
    now = installed_torch(info)

    # 2. the torch version
    versions = torch_choices(plan) if replan else [plan.torch]
    public_now = now.split("+")[0] if now else None

    def version_title(v: str) -> str:
        notes = (["recommended"] if v == plan.torch else []) + (
            ["installed"] if v == public_now else []
        )
        return f"{v}  ({', '.join(notes)})" if notes else v

    torch = _ask(
        questionary.select(
            "torch version:",
            choices=[questionary.Choice(version_title(v), value=v) for v in versions],
        )
    )

    # 3. the build
    have = {p.name for p in plan.pins}
    options = offered_builds(plan, torch, replan)
    default_variant = next((o.variant for o in options if o.valid), plan.variant)
    variant = _ask(
        questionary.select("Build:", choices=_build_titles(options, width), default=default_variant)
    )

    # 4. the companions, checked against the build before going on
    extras = ["torchvision", "torchaudio"]
    if not replan:
        extras = [e for e in extras if e in have]
    made: dict[tuple[bool, bool], Plan] = {}

    def want(picked: list[str]) -> tuple[bool, bool]:
        return "torchvision" in picked, "torchaudio" in picked

    def same(vision: bool, audio: bool) -> bool:
        return (torch, variant, vision, audio) == (
            plan.torch, plan.variant, "torchvision" in have, "torchaudio" in have)  # fmt: skip

    def fits(picked: list[str]) -> Union[bool, str]:
        from envsetup.errors import NoBuildError

        vision, audio = want(picked)
        if replan is None or same(vision, audio) or (vision, audio) in made:
            return True
        try:
            made[(vision, audio)] = replan(torch, variant, vision, audio)
        except NoBuildError as exc:
            names = " and ".join(picked) or "torch alone"
            return fit(f"{names} with torch {torch} {variant}: {exc.message}", width - 4)
        return True

    picked = (
        list(
            _ask(
                questionary.checkbox(
                    "Also install:",
                    choices=[questionary.Choice(e, value=e, checked=e in have) for e in extras],
                    validate=fits,
                    instruction="(space: pick, enter: done)",
                )
            )
        )
        if extras
        else []
    )
    vision, audio = want(picked)
    if replan is not None and not same(vision, audio):
        plan = made.get((vision, audio)) or replan(torch, variant, vision, audio)
    else:
        plan = replace(plan, pins=tuple(p for p in plan.pins if _keep(p, set(picked))))

    # 5. the installer
    names, default = installers(plan, info)
    if installer in names:
        default = installer
    picked_installer = _ask(questionary.select("Installer:", choices=names, default=default))
    choice = Choice(python=chosen_python, venv=chosen_venv, plan=plan, installer=picked_installer,
                    index_url=index_url, find_links=find_links)  # fmt: skip

    # 6. the source
    if check_source is not None:
        problem = check_source(plan, info, index_url, find_links)
        while problem is not None:
            index_url, find_links = ask_mirror(problem)
            choice = replace(choice, index_url=index_url, find_links=find_links)
            problem = check_source(plan, info, index_url, find_links)

    # 7. what will run, and what it changes
    what = change(now, plan)
    lines = ["", "envsetup will run:"]
    lines += ["  " + line for line in preview(choice)]
    sys.stdout.write("\n".join(lines) + "\n\n")
    sys.stdout.flush()
    if _ask(questionary.confirm(f"Go ahead: {what}?", default=True)):
        return choice
    if now and _ask(questionary.confirm(f"Verify torch {now} as it is instead?", default=True)):
        return replace(choice, action="verify")
    return None


def _keep(pin: Pin, picked: set[str]) -> bool:
    return pin.name == "torch" or pin.name in picked
