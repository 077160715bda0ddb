"""The install transaction: check, stage, snapshot, install, restore, verify.

It runs the steps a backend builds (:mod:`envsetup.install.backends`) and knows no installer:

1. check: the target fits the plan; a plan (or a stack) already installed is a no-op;
2. stage: the backend's input files and fetch steps (nothing in the target changes); the index
   check races them, and answers within seconds when the torch source is unreachable or lacks
   a pinned build, stopping what runs;
3. snapshot: every file of the environment recorded and hard-linked aside (taken while the
   stage runs), the guard's files saved, and the installer's own restore point where it keeps
   one;
4. install: the guard lifted (:mod:`envsetup.guard`: pip would refuse envsetup's own change of
   torch), the backend's install step in a process group of its own, then its source builds
   against torch (a stack's), each the same way;
5. restore, on any failure and on SIGINT, SIGTERM or SIGHUP: the installer's whole process
   group is stopped, its own rollback run, the recorded files put back, then compared, and the
   guard's files put back as they were;
6. guard and verify: the guard set for the build now installed (none with ``--no-guard``), then
   the quick verification, or with ``--no-verify`` the installed metadata.

The work directory (stage, logs of the steps' inputs) and the snapshot are always removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar

from envsetup import proc
from envsetup.errors import EnvsetupError, UsageError
from envsetup.install import backends as registry
from envsetup.install import snapshot
from envsetup.install import sources as srcmod
from envsetup.install import target as tgt
from envsetup.install.backends import Backend, Context, Step, Where
from envsetup.install.signals import Guard, Interrupted
from envsetup.install.ui import Ui
from envsetup.paths import cache_dir
from envsetup.paths import private_dir as _private_dir
from envsetup.plan import Plan

if TYPE_CHECKING:
    from envsetup.guard import Guard as GuardRecord
    from envsetup.install.sources import SourceError, Sources
    from envsetup.stack import Stack

WORK_PREFIX = "install-"
CHECK_GRACE = 2.0  # seconds a step may run before the index check starts alongside it


class InstallError(EnvsetupError):
    code = "install-failed"


@dataclass
class Options:
    python: str
    installer: Optional[str] = None  # a registered backend's name; None: the target's default
    index_url: Optional[str] = None  # replaces the plan's index for this install
    find_links: tuple[str, ...] = ()  # wheelhouses
    dry_run: bool = False
    verify: bool = True
    workload: bool = False  # --verify workload: the quick check, then a real training run
    break_system_packages: bool = False
    cache_dir: Optional[Path] = None
    target: Optional[tgt.TargetInfo] = None  # already probed (or a venv --dry-run would make)
    create_venv: Optional[list[str]] = None  # the command that makes the target (display)
    stack: Optional[Stack] = None  # torch with the user's packages, resolved for this target
    guard: bool = True  # set the guard after the install (False: --no-guard, none is left)
    wait: bool = True  # another install holds the environment: wait for it (False: --no-wait)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Checked:
    ok: bool
    results: tuple[Check, ...]

    @property
    def failures(self) -> list[Check]:
        return [r for r in self.results if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "results": [r.to_dict() for r in self.results]}


@dataclass
class Outcome:
    ok: bool
    python: str
    installer: str
    plan: Plan
    sources: srcmod.Sources = field(default_factory=srcmod.Sources)
    steps: list[Step] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # the steps' input files
    direct: list[str] = field(default_factory=list)
    create_venv: Optional[list[str]] = None
    changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verify: Optional[Checked] = None
    log: Optional[str] = None
    dry_run: bool = False
    already_installed: bool = False
    error: Optional[str] = None
    restored: Optional[bool] = None
    stack: Optional[Stack] = None
    guard: Optional[GuardRecord] = None  # the guard written after the install
    check: str = ""  # the verify that follows the install ("--quick", "--quick --workload")

    @property
    def commands(self) -> list[list[str]]:
        return [list(s.argv) for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        m = self.sources.mask
        plan = self.plan.to_dict()
        if plan.get("index_url"):
            plan["index_url"] = m(plan["index_url"])
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "already_installed": self.already_installed,
            "python": self.python,
            "installer": self.installer,
            "plan": plan,
            "create_venv": self.create_venv,
            "commands": [[m(a) for a in argv] for argv in self.commands],
            "steps": [
                {"step": s.what, "argv": [m(a) for a in s.argv], "env": dict(s.env)}
                for s in self.steps
            ],
            "files": {name: m(text) for name, text in self.files},
            "direct": [m(a) for a in self.direct],
            "changed": self.changed,
            "notes": [m(n) for n in self.notes],
            "verify": self.verify.to_dict() if self.verify is not None else None,
            "log": self.log,
            "error": m(self.error) if self.error else None,
            "restored": self.restored,
            "stack": json.loads(m(self.stack.to_json(indent=None))) if self.stack else None,
            "guard": self.guard.to_dict() if self.guard else None,
            "check": self.check or None,
        }


class _SafeUi(Ui):
    """The display, which may not fail the install (a terminal that hung up, a closed pipe)."""

    def __init__(self, ui: Ui):
        self.ui = ui

    def _do(self, fn: Callable[[str], None], text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            fn(text)

    def step(self, text: str) -> None:
        self._do(self.ui.step, text)

    def line(self, text: str) -> None:
        self._do(self.ui.line, text)

    def done(self, text: str) -> None:
        self._do(self.ui.done, text)

    def note(self, text: str) -> None:
        self._do(self.ui.note, text)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.ui.close()


_ERROR_LINE = re.compile(r"^(ERROR:|error:|×|\w*Error\b)")
_CAUSE = ("Caused by:", "cause:")


def _tail(log: Path) -> str:
    """The installer's own last error line (with its last "cause:" line, where the installer
    explains that way), for the one-line message."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for i in range(len(lines) - 1, -1, -1):
        s = lines[i].strip()
        if _ERROR_LINE.match(s):
            s = re.sub(r"#sha256=[0-9a-f]+", "", s)
            s = s.removeprefix("ERROR:").removeprefix("error:").strip(" ×")
            causes = [c.strip() for c in lines[i + 1 :] if c.strip().startswith(_CAUSE)]
            if causes:
                s += ": " + causes[-1].split(":", 1)[1].strip()
            return s
    return ""


class _Clock:
    """Each step's wall time, written to the install log."""

    def __init__(self, log: IO[str]):
        self.log = log
        self.start = self.last = time.monotonic()

    def step(self, what: str) -> None:
        now = time.monotonic()
        self.log.write(f"# time: {what} {now - self.last:.2f} s (total {now - self.start:.2f} s)\n")
        self.log.flush()
        self.last = now


T = TypeVar("T")


class _Background(Generic[T]):
    """Run ``fn`` in a thread; :meth:`result` re-raises what it raised."""

    def __init__(self, fn: Callable[[], T]):
        self.error: Optional[BaseException] = None
        self.value: Optional[T] = None

        def body() -> None:
            try:
                self.value = fn()
            except BaseException as exc:  # handed to result()
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def result(self) -> T:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class _Checker:
    """The index check, racing the steps: it starts once a step has run ``CHECK_GRACE``
    seconds (a warm install is done before), or at once when a step fails; when the source does
    not answer it stops the running step."""

    def __init__(self, sources: Sources, plan: Plan, target: tgt.TargetInfo):
        self.args = (sources, plan, target.minor, target.platform)
        self.error: Optional[SourceError] = None
        self.child: Optional[proc.Streamed] = None
        self._lock = threading.Lock()
        self._ran = False
        self._done = threading.Event()
        self._cancel = threading.Event()
        if not sources.torch:
            self._ran = True
            self._done.set()
            return
        threading.Thread(target=self._later, daemon=True).start()

    def _later(self) -> None:
        if not self._cancel.wait(CHECK_GRACE):
            self._check()

    def _check(self) -> None:
        with self._lock:
            if self._ran:
                return
            self._ran = True
        try:
            srcmod.check(*self.args)
        except srcmod.SourceError as exc:
            self.error = exc
            child = self.child
            # No answer at all: the installer would retry for a minute. A listing without the
            # build is left to the installer, whose own failure comes quickly; this explains it.
            if child is not None and exc.unreachable:
                child.stop(grace=0.5)
        except Exception:  # the check is advice; the installer's own answer stands
            pass
        finally:
            self._done.set()

    def answer(self) -> Optional[SourceError]:
        """The check's verdict, now (running it here if it has not started)."""
        self._cancel.set()
        self._check()
        self._done.wait()
        return self.error

    def cancel(self) -> None:
        self._cancel.set()


def _unpacked_size(wheels: Sequence[Path]) -> int:
    total = 0
    for w in wheels:
        try:
            with zipfile.ZipFile(w) as zf:
                total += sum(i.file_size for i in zf.infolist())
        except (OSError, zipfile.BadZipFile):
            continue
    return total


def _check_space(path: str, need: int, what: str) -> None:
    free = shutil.disk_usage(path).free
    if free < need:
        raise InstallError(
            f"not enough disk space for {what}: {need / 2**20:.0f} MiB needed at {path}, "
            f"{free / 2**20:.0f} MiB free; nothing was changed"
        )


# --------------------------------------------------------------------------- the guard


class _GuardFiles:
    """The guard (:mod:`envsetup.guard`) around envsetup's own install: its files saved before
    anything changes, the guard lifted for the install (pip would refuse to replace the guarded
    build), the files put back as they were when the install fails or is interrupted, and the
    guard set for the build installed when it succeeds (``on``; else none is left)."""

    def __init__(self, info: tgt.TargetInfo, on: bool, *, query: bool = True):
        from envsetup import guard

        self.on = on
        self.target = guard.Target(info.python, info.prefix, info.platform.startswith("windows"),
                                   {})  # fmt: skip
        self.saved = guard.save(self.target.files) if info.exists else {}
        self.old = guard.load(self.target.files[0]) if info.exists else None
        # The constraint files pip uses besides the guard's, asked of pip while the install
        # runs (it takes a fraction of a second): the guard keeps them beside its own.
        self.keep: Optional[_Background[list[str]]] = None
        if on and query and info.exists:
            self.keep = _Background(lambda: guard.other_constraints(info.python, info.prefix))

    def plan(self, plan: Plan) -> str:
        """What the install does with the guard, in one line (the dry run's)."""
        where = self.target.files[2]
        if self.on:
            return (
                f"after the install, the guard: {where} names {self.target.files[1].name}, so "
                f"pip refuses to replace torch {plan.local_version or plan.torch} there "
                "(--no-guard: none)"
            )
        if self.old is not None:
            return f"--no-guard: the guard in {self.target.prefix} is removed"
        return "--no-guard: no guard is set"

    def lift(self) -> None:
        from envsetup import guard

        if self.old is not None:
            guard.remove_guard(Path(self.target.prefix))

    def put_back(self) -> None:
        from envsetup import guard

        guard.put_back(self.saved)

    def set(self, after: tgt.TargetInfo, what: Any) -> Optional[GuardRecord]:
        from envsetup import guard

        if not self.on:
            return None
        installed = {n: after.dists[n] for n in guard.FAMILY if n in after.dists}
        known = replace(self.target, installed=installed)
        builds = tuple(b for b in (self.old.builds if self.old else ()) if b in after.dists)
        keep = self.keep.result() if self.keep is not None else None
        return guard.write_guard(after.python, what, builds=builds, known=known, keep=keep)


# --------------------------------------------------------------------------- the check after


def confirm_installed(info: tgt.TargetInfo, plan: Plan) -> Checked:
    """What the installed metadata says, read the way doctor reads it (no torch import): the
    planned builds of torch and its companions are the ones installed."""
    torch = info.torch
    results = []
    want = plan.local_version or plan.torch
    got = torch.version or "not installed"
    same = got == want if plan.local_version else got.split("+")[0] == plan.torch
    results.append(_result("torch", same, f"{got} (plan {want})"))
    if plan.local_version and plan.cuda is not None:
        results.append(
            _result("cuda build", torch.cuda == plan.cuda, f"{torch.cuda} (plan {plan.cuda})")
        )
    for pin in plan.pins[1:]:
        pkg = torch.package(pin.name)
        have = pkg.version if pkg else "not installed"
        results.append(
            _result(pin.name, have.split("+")[0] == pin.version, f"{have} (plan {pin.version})")
        )
    return Checked(all(r.status == "pass" for r in results), tuple(results))


def stack_check(stack: Stack, info: tgt.TargetInfo) -> Check:
    """Every package of the set installed at its resolved version (the installed metadata)."""
    from packaging.version import InvalidVersion, Version

    def same(a: Optional[str], b: str) -> bool:
        try:
            return a is not None and Version(a) == Version(b)
        except InvalidVersion:
            return a == b

    wrong = [
        f"{p.name} {info.dists.get(p.name) or 'missing'} (resolved {p.version})"
        for p in stack.packages  # a local project's version is its own (dynamic): present is all
        if not (same(info.dists.get(p.name), p.version) or (not p.version and p.name in info.dists))
    ]
    if wrong:
        return Check("packages", "fail", "; ".join(wrong[:5]))
    return Check("packages", "pass", f"{len(stack.packages)} at the resolved versions")


def _result(name: str, ok: bool, detail: str) -> Check:
    return Check(name, "pass" if ok else "fail", detail)


def quick_check(
    python: str,
    plan: Plan,
    device_checks: bool = True,
    info: Optional[tgt.TargetInfo] = None,
    *,
    workload: bool = False,
) -> Checked:
    """The post-install check. By default the quick verification (import, versions against the
    plan, the device, tensor ops, autograd, the stack's imports); with ``workload`` (--verify
    workload) a real training run after it; with --no-verify, the installed metadata."""
    if device_checks:
        from envsetup.verify import run_verify

        report = run_verify(python, quick=True, plan=plan, workload=workload)
        results = tuple(Check(r.name, r.status, r.detail) for r in report.results)
        return Checked(bool(report.ok), results)
    return confirm_installed(info or tgt.probe(python), plan)


# --------------------------------------------------------------------------- the transaction


def prepare(plan: Plan, opts: Options) -> tuple[tgt.TargetInfo, registry.Chosen, Plan, Sources]:
    """Check the target, the sources and the backend; nothing is changed."""
    info = opts.target or tgt.probe(opts.python)
    tgt.check(info, plan, break_system_packages=opts.break_system_packages)
    stack = opts.stack
    if stack is not None:
        index = opts.index_url or stack.torch_index
        sources = srcmod.for_stack(plan, index, stack.default_index)
        plan = replace(plan, index_url=index) if index else plan
    else:
        if opts.index_url:
            plan = replace(plan, index_url=opts.index_url)
        sources = srcmod.for_install(plan, opts.index_url, opts.find_links)
    chosen = registry.choose(opts.installer, plan, info, sources, stack=stack is not None)
    if stack is not None and registry.resolver(chosen.backend) != stack.resolver:
        raise UsageError(
            f"the set was resolved by {stack.resolver}, and {chosen.backend.name} installs what "
            f"{registry.resolver(chosen.backend) or 'no resolver'} resolves: resolve it again "
            f"with --installer {chosen.backend.name}"
        )
    return info, chosen, plan, sources


_IMPORTS = """
import importlib, json, os, sys
sys.path[:] = [p for p in sys.path if p and p != os.getcwd()]  # no torch/ of the cwd
out = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        out[name] = None
    except BaseException as exc:
        out[name] = "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
print(json.dumps(out))
"""


def health(info: tgt.TargetInfo, plan: Plan) -> list[str]:
    """Why the planned build, installed in the target, does not work ([] when it does): a
    requirement of torch or a planned companion that is not installed (the probe's metadata),
    else an import of one of them that fails, tried in the target (never in envsetup)."""
    from envsetup.target import run_script

    names = [p.name for p in plan.pins]
    missing = [u for u in info.torch.unmet if u.split(" ", 1)[0] in names]
    if missing:
        return missing
    try:
        said = run_script(info.python, _IMPORTS, tuple(names), timeout=300, isolated=False)
    except EnvsetupError as exc:  # the import killed the interpreter (a crash, a signal)
        return [f"import {names[0]}: {exc.message}"]
    if not isinstance(said, dict):
        return [f"import {names[0]}: the check printed {type(said).__name__}"]
    return [f"import {n}: {said[n]}" for n in names if said.get(n) is not None]


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"envsetup: {text}\n")
        sys.stderr.flush()


def install(plan: Plan, opts: Options, ui: Ui) -> Outcome:
    """Carry out ``plan`` (a dry run: say how). Every install that changes the target holds
    its lock (:mod:`envsetup.install.lock`) from before the check of what is installed to the
    end of the restore; one that waited for another reads the target again."""
    ui = _SafeUi(ui)
    if opts.dry_run:
        return _install(plan, opts, ui)
    from envsetup.install import lock

    info = opts.target or tgt.probe(opts.python)
    with lock.hold(info.prefix, wait=opts.wait, say=_say) as held:
        return _install(plan, replace(opts, target=None if held.waited else info), ui)


def _install(plan: Plan, opts: Options, ui: Ui) -> Outcome:
    info, chosen, plan, sources = prepare(plan, opts)
    backend = chosen.backend
    stack = opts.stack
    out = Outcome(
        ok=False, python=info.python, installer=backend.name, plan=plan, sources=sources,
        dry_run=opts.dry_run, create_venv=opts.create_venv,
        notes=[chosen.note] if chosen.note else [], stack=stack,
        check=("--quick --workload" if opts.workload else "--quick") if opts.verify else "",
    )  # fmt: skip
    for n in out.notes:
        ui.note(n)
    where = Where(info.python, info.prefix, info.has_pip, opts.break_system_packages,
                  chosen.tool.argv, stack.requirements if stack else ())  # fmt: skip
    out.direct = backend.direct(plan, where, sources)
    done = tgt.already_installed(plan, info) and (
        stack is None or stack_check(stack, info).status == "pass"
    )
    repair = False
    if done:
        broken = health(info, plan)
        if not broken:
            out.ok = out.already_installed = True
            return out
        # Installed by its metadata, but it does not work: the same install, reinstalling the
        # build (with the set's packages already in place, the torch build alone).
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        out.notes.append(
            f"torch {plan.local_version or plan.torch} is installed in {info.python} but does "
            f"not work ({broken[0]}{more}): installing it again"
        )
        ui.note(out.notes[-1])
        repair = True
        if stack is not None:
            opts = replace(opts, stack=None)
            stack = None
    if opts.dry_run:
        ctx = Context(plan, info, sources, chosen.tool, Path("WORK"), opts.break_system_packages,
                      stack, repair)  # fmt: skip
        staging = backend.stage(ctx)
        out.files = [(str(ctx.work / name), text) for name, text in staging.files]
        out.steps = [*staging.fetch, backend.install(ctx), *staging.builds]
        out.notes.append(_GuardFiles(info, opts.guard, query=False).plan(plan))
        out.ok = True
        return out
    return _Transaction(plan, opts, ui, info, backend, chosen.tool, sources, out, repair).run()


class _Transaction:
    def __init__(
        self,
        plan: Plan,
        opts: Options,
        ui: Ui,
        info: tgt.TargetInfo,
        backend: Backend,
        tool: registry.Tool,
        sources: Sources,
        out: Outcome,
        repair: bool = False,
    ):
        self.plan, self.opts, self.ui, self.info = plan, opts, ui, info
        self.repair = repair
        self.backend, self.tool, self.sources, self.out = backend, tool, sources, out
        self.guard = Guard()

    def run(self) -> Outcome:
        root = _private_dir(self.opts.cache_dir or cache_dir())
        logs = _private_dir(root / "logs")
        snapshot.clean_stale(root, WORK_PREFIX)
        snapshot.clean_stale(Path(self.info.prefix), snapshot.SNAPSHOT_PREFIX)
        stem = f"install-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        for n in range(1, 1000):  # two installs in one second from one process: -2, -3, ...
            self.log_path = logs / (f"{stem}.log" if n == 1 else f"{stem}-{n}.log")
            try:
                fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"{logs}: no free log name for {stem}")
        self.out.log = str(self.log_path)
        self.work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=root))
        self.guard_files = _GuardFiles(self.info, self.opts.guard)
        self.snap: Optional[snapshot.Snapshot] = None
        self.recording: Optional[_Background[snapshot.Snapshot]] = None
        self.installed = False
        try:
            from envsetup.secrets import Masked  # no secret in the log

            with self.guard, Masked(open(fd, "w", encoding="utf-8")) as log:
                self.log = log
                try:
                    return self._steps()
                except Interrupted as exc:  # between the steps: nothing half-done
                    state = (
                        "the install had finished; it was not checked"
                        if self.installed
                        else "nothing was changed"
                    )
                    log.write(f"# {exc.what}; {state}\n")
                    raise EnvsetupError(
                        f"{exc.what}; {state} (log: {self.log_path})",
                        code="interrupted",
                        exit_code=exc.exit_code,
                    ) from None
        finally:
            self.ui.close()
            if self.snap is None and self.recording is not None:
                with contextlib.suppress(Exception):
                    self.snap = self.recording.result()  # a stage that failed early
            if self.snap is not None:
                self.snap.remove()
            shutil.rmtree(self.work, ignore_errors=True)

    # -- running one step

    def _stream(self, step: Step, checker: Optional[_Checker]) -> int:
        env = proc.clean_env(step.env)
        child = proc.stream(step.argv, self.log, env=env, redact=self.sources.mask)
        if checker is not None:
            checker.child = child
        try:
            for line in child.lines():
                self.ui.line(line)
            return child.wait()
        except BaseException:
            with self.guard.deferred():
                child.stop()
            raise
        finally:
            if checker is not None:
                checker.child = None

    def _quiet(self, step: Step) -> int:
        child = proc.stream(step.argv, self.log, env=proc.clean_env(step.env),
                            redact=self.sources.mask)  # fmt: skip
        for _ in child.lines():
            pass
        return child.wait()

    def _why(self, rc: int) -> str:
        why = _tail(self.log_path) or (
            f"the installer was killed (signal {-rc})" if rc < 0 else f"exit {rc}"
        )
        info = self.info
        return srcmod.wheelhouse_hint(why, self.sources, self.plan, info.python, info.has_pip)

    # -- the steps

    def _steps(self) -> Outcome:
        plan, backend, info, ui, out = self.plan, self.backend, self.info, self.ui, self.out
        clock = _Clock(self.log)
        ctx = Context(plan, info, self.sources, self.tool, self.work,
                      self.opts.break_system_packages, self.opts.stack, self.repair)  # fmt: skip
        staging = backend.stage(ctx)
        for name, text in staging.files:
            (self.work / name).write_text(text, encoding="utf-8")
        ctx.stage.mkdir()
        checker = _Checker(self.sources, plan, info)
        # The record and its links are made while the stage runs: nothing changes until the install.
        recording = _Background(lambda: snapshot.take(info, snapshot.record(info), self.work))
        self.recording = recording
        what = f"torch {plan.torch} ({plan.variant})"
        # 1. Stage: the target is not touched.
        for step in staging.fetch:
            ui.step(f"fetching {what} and its dependencies with {backend.name}")
            out.steps.append(step)
            try:
                rc = self._stream(step, checker)
            except Interrupted as exc:
                raise EnvsetupError(
                    f"{exc.what} while downloading; nothing was changed", code="interrupted",
                    exit_code=exc.exit_code,
                ) from None  # fmt: skip
            clock.step("fetch")
            if rc != 0:
                error = checker.answer()  # the index's own answer says more than the installer's
                if error is not None:
                    raise error
                raise InstallError(
                    f"download failed: {self._why(rc)}; nothing was changed (log: {self.log_path})"
                )
        staged = sorted(ctx.stage.glob("*.whl"))
        if staged:
            ui.done(f"fetched {len(staged)} files")
            _check_space(info.platlib or info.purelib, _unpacked_size(staged), "the install")
        # 2. Snapshot: the record was taken while the stage ran.
        try:
            self.snap = recording.result()
            point = backend.checkpoint(ctx)
        except OSError as exc:
            raise InstallError(
                f"could not record the environment before installing "
                f"({exc.strerror or exc}); nothing was changed"
            ) from None
        except Interrupted as exc:
            raise EnvsetupError(f"{exc.what}; nothing was changed", code="interrupted",
                                exit_code=exc.exit_code) from None  # fmt: skip
        self._lift()
        clock.step("snapshot")
        # 3. Install, then the source builds against the torch just installed.
        first = backend.install(ctx)
        stack = self.opts.stack
        if stack is not None:
            more = [
                p for p in stack.changes() if p.name not in ("torch", "torchvision", "torchaudio")
            ]
            what += f" and {len(more)} more packages" if more else ""
        interrupted: Optional[Interrupted] = None
        rc = 0
        for i, step in enumerate((first, *staging.builds)):
            out.steps.append(step)
            if step.what == "build":
                names = (
                    ", ".join(f"{p.name} {p.version}" for p in stack.source_builds())
                    if stack
                    else ""
                )
                ui.step(f"building {names} against torch {plan.local_version or plan.torch}")
            else:
                ui.step(f"installing {what} with {backend.name}")
            try:
                rc = self._stream(step, checker)
            except Interrupted as exc:
                interrupted, rc = exc, -exc.signum
            clock.step(step.what if i == 0 else f"{step.what} {i}")
            if rc != 0 or interrupted is not None:
                with self.guard.deferred():
                    self._fail(ctx, rc, interrupted, checker, point)
        self.installed = True
        checker.cancel()
        after = tgt.probe(info.python)
        out.changed = snapshot.dist_changes(info.dists, after.dists)
        ui.done(f"installed {what} with {backend.name}")
        self._set_guard(after)
        self._finish(after)
        clock.step("check")
        return out

    def _lift(self) -> None:
        """Lift the guard for the install (its files are saved: a failure puts them back)."""
        try:
            with self.guard.deferred():
                self.guard_files.lift()
        except (OSError, EnvsetupError) as exc:
            self.guard_files.put_back()
            why = exc.message if isinstance(exc, EnvsetupError) else (exc.strerror or str(exc))
            raise InstallError(
                f"could not lift envsetup's guard in {self.info.prefix} ({why}); nothing was "
                "changed; fix that file, or remove the guard: envsetup install --no-guard"
            ) from None
        if self.guard.pending is not None:
            self.guard_files.put_back()
            raise EnvsetupError(f"{self.guard.pending.what}; nothing was changed",
                                code="interrupted", exit_code=self.guard.pending.exit_code)  # fmt: skip

    def _set_guard(self, after: tgt.TargetInfo) -> None:
        """Set the guard for what is installed now; a guard that cannot be written leaves none
        (an old one would pin the build just replaced), and the install stands."""
        from envsetup import guard

        with self.guard.deferred():
            try:
                stack = self.opts.stack
                what = replace(stack, plan=self.plan) if stack is not None else self.plan
                self.out.guard = self.guard_files.set(after, what)
            except (OSError, EnvsetupError) as exc:
                with contextlib.suppress(OSError, EnvsetupError):
                    guard.remove_guard(Path(self.info.prefix))
                why = exc.message if isinstance(exc, EnvsetupError) else (exc.strerror or str(exc))
                self.out.notes.append(f"the install stands, but no guard was set: {why}")
                self.ui.note(self.out.notes[-1])
        if self.out.guard is not None:
            self.log.write(f"# guard: {self.out.guard.constraints} ({self.out.guard.pip_conf})\n")
        if self.guard.pending is not None:
            raise self.guard.pending

    def _fail(
        self,
        ctx: Context,
        rc: int,
        interrupted: Optional[Interrupted],
        checker: _Checker,
        point: Optional[str],
    ) -> None:
        """Restore, then raise the one-line error (never returns)."""
        assert self.snap is not None
        error = None if interrupted is not None else checker.answer()
        if interrupted is None and error is None and self.guard.pending is not None:
            interrupted = self.guard.pending  # the installer died of the same signal
        self.ui.step("restoring the previous state")
        self.log.write("\n# restoring the previous state\n")
        if point is not None:
            back = self.backend.rollback(ctx, point)
            if back is not None:
                self.out.steps.append(back)
                self._quiet(back)
        started = time.monotonic()
        acted, problems = snapshot.restore(self.snap)
        try:
            self.guard_files.put_back()  # where the record does not reach (a system prefix)
        except OSError as exc:
            problems.append(f"the guard's files: {exc.strerror or exc}")
        self.log.write(
            f"# restore: {acted} files and directories removed or put back in "
            f"{time.monotonic() - started:.2f} s\n"
        )
        now = tgt.probe(self.info.python).dists
        problems += snapshot.dist_changes(self.info.dists, now)
        self.out.restored = not problems
        if problems:
            state = f"the restore left differences: {'; '.join(problems[:5])}"
        elif acted == 0:
            state = "nothing was changed"
        else:
            state = "the environment was restored to its previous state"
        self.log.write(f"# {state}\n")
        self.log.flush()
        where = f"(log: {self.log_path})"
        if interrupted is not None:
            raise EnvsetupError(f"{interrupted.what} while installing; {state} {where}",
                                code="interrupted", exit_code=interrupted.exit_code)  # fmt: skip
        if error is not None:
            raise InstallError(f"{error.said(state)} {where}")
        raise InstallError(f"install failed ({self._why(rc)}); {state} {where}")

    def _finish(self, after: tgt.TargetInfo) -> None:
        out, opts = self.out, self.opts
        self.ui.step("verifying torch in the target" if opts.verify else "checking the install")
        out.verify = quick_check(
            out.python, self.plan, device_checks=opts.verify, info=after, workload=opts.workload
        )
        if opts.stack is not None:
            check = stack_check(opts.stack, after)
            out.verify = Checked(out.verify.ok and check.status == "pass",
                                 (*out.verify.results, check))  # fmt: skip
        self.ui.close()
        if not out.verify.ok:
            detail = "; ".join(f"{r.name}: {r.detail}" for r in out.verify.failures) or "failed"
            out.error = f"installed, but the check failed: {detail}"
            return
        out.ok = True


__all__ = [
    "Check",
    "Checked",
    "InstallError",
    "Options",
    "Outcome",
    "install",
    "prepare",
    "quick_check",
]
