"""Carry out a Plan: check, stage, save, install offline, restore on failure, verify.

Nothing in the target changes before every file is staged: a network failure, a 404 or 500,
a truncated download or Ctrl-C while downloading leaves it exactly as it was. A failure while
installing (the installer's error, the installer killed, Ctrl-C) restores what was there.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from packaging.version import Version

from envsetup import proc
from envsetup.errors import EXIT_INTERRUPTED, EnvsetupError
from envsetup.install import backends, snapshot
from envsetup.install import target as tgt
from envsetup.install.ui import Ui
from envsetup.plan import Plan


class InstallError(EnvsetupError):
    code = "install-failed"


@dataclass
class Options:
    python: str
    installer: Optional[str] = None  # pip | uv | conda; None: the default for the target
    index_url: Optional[str] = None  # replaces the plan's index for this install
    dry_run: bool = False
    verify: bool = True
    break_system_packages: bool = False
    cache_dir: Optional[Path] = None


@dataclass
class Outcome:
    ok: bool
    python: str
    installer: str
    plan: Plan
    commands: list[list[str]] = field(default_factory=list)
    direct: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verify: Optional[dict[str, Any]] = None
    log: Optional[str] = None
    dry_run: bool = False
    error: Optional[str] = None
    restored: Optional[bool] = None
    resolve: Optional[list[str]] = None  # the command that fixed the exact files (uv), if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "python": self.python,
            "installer": self.installer,
            "plan": self.plan.to_dict(),
            "resolve": self.resolve,
            "commands": self.commands,
            "direct": self.direct,
            "changed": self.changed,
            "notes": self.notes,
            "verify": self.verify,
            "log": self.log,
            "error": self.error,
            "restored": self.restored,
        }


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "envsetup"


def prepare(plan: Plan, opts: Options) -> tuple[tgt.TargetInfo, backends.Backend, Plan, list[str]]:
    """Check the target and choose the backend; nothing is changed."""
    info = tgt.probe(opts.python)
    tgt.check(info, plan, break_system_packages=opts.break_system_packages)
    if opts.index_url:
        plan = replace(plan, index_url=opts.index_url)
    backend, note = backends.select(
        opts.installer, info, plan, break_system_packages=opts.break_system_packages
    )
    return info, backend, plan, [note] if note else []


def _tail(log: Path) -> str:
    """The installer's own last error line, for the one-line message."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        s = line.strip()
        if s.startswith(("ERROR:", "error:", "×", "CondaError", "CondaHTTPError")):
            s = re.sub(r"#sha256=[0-9a-f]+", "", s)
            return s.removeprefix("ERROR:").removeprefix("error:").strip(" ×")
    return ""


def preflight(index_url: str, plan: Plan, timeout: float = 30.0) -> None:
    """Ask the index for each pinned project's page: it must answer and list the version."""
    import urllib.error
    import urllib.request
    from html.parser import HTMLParser
    from urllib.parse import unquote

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.files: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
            href = dict(attrs).get("href") if tag == "a" else None
            if href:
                self.files.append(unquote(href.split("#", 1)[0].rsplit("/", 1)[-1]))

    for pin in plan.pins:
        url = f"{index_url.rstrip('/')}/{tgt.normalize(pin.name)}/"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                page = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            raise InstallError(
                f"the index answered HTTP {exc.code} for {url}; nothing was changed"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InstallError(f"cannot reach {url}: {reason}; nothing was changed") from None
        parser = Links()
        parser.feed(page)
        want = Version(pin.version).public
        versions = set()
        for f in parser.files:
            if f.endswith(".whl"):
                try:
                    versions.add(Version(snapshot.wheel_identity(Path(f))[1]).public)
                except Exception:
                    continue
        if want not in versions:
            raise InstallError(
                f"the index {index_url} has no {pin.name} {pin.version} wheel; nothing was changed"
            )


def _stream(argv: Sequence[str], log_file: Any, ui: Ui, env: dict[str, str]) -> int:
    child = proc.stream(argv, log_file, env=env)
    try:
        for line in child.lines():
            ui.line(line)
        return child.wait()
    except BaseException:
        child.kill()
        raise


def _staged(stage: Path) -> dict[str, tuple[str, Path]]:
    """What was staged: wheels (pip), or the ``.dist-info`` dirs of uv's scratch install."""
    out: dict[str, tuple[str, Path]] = {}
    for src in sorted([*stage.glob("*.whl"), *stage.glob("*.dist-info")]):
        name, version = snapshot.wheel_identity(src)
        out[name] = (version, src)
    return out


def _unpacked_size(staged: Sequence[Path]) -> int:
    return sum(snapshot.manifest(s)[2] for s in staged)


class _Clock:
    """Each step's wall time, written to the install log."""

    def __init__(self, log: Any):
        self.log = log
        self.start = self.last = time.monotonic()

    def step(self, what: str) -> None:
        now = time.monotonic()
        self.log.write(f"# time: {what} {now - self.last:.2f} s (total {now - self.start:.2f} s)\n")
        self.log.flush()
        self.last = now


class _Background:
    """Run ``fn`` in a thread; :meth:`result` re-raises what it raised."""

    def __init__(self, fn: Any, *args: Any):
        self.error: Optional[BaseException] = None

        def body() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # handed to result()
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def result(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _check_space(path: str, need: int, what: str) -> None:
    free = shutil.disk_usage(path).free
    if free < need:
        raise InstallError(
            f"not enough disk space for {what}: {need / 2**20:.0f} MiB needed at {path}, "
            f"{free / 2**20:.0f} MiB free; nothing was changed"
        )


def quick_check(python: str, plan: Plan, device_checks: bool = True) -> dict[str, Any]:
    """The post-install check. By default the quick verification (import, versions against the
    plan, the device, tensor ops, autograd). With --no-verify, only what the installed
    metadata says, read the way doctor reads it, without importing torch: the planned builds
    of torch and its companions are the ones installed."""
    if device_checks:
        from envsetup.verify import run_verify

        report = run_verify(python, quick=True, plan=plan)
        results = [{"name": r.name, "status": r.status, "detail": r.detail} for r in report.results]
        return {"ok": bool(report.ok), "results": results}
    return confirm_installed(python, plan)


def confirm_installed(python: str, plan: Plan) -> dict[str, Any]:
    from envsetup.detect.target import build, query

    _, torch = build(query(python), {})
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
    return {"ok": all(r["status"] == "pass" for r in results), "results": results}


def _result(name: str, ok: bool, detail: str) -> dict[str, str]:
    return {"name": name, "status": "pass" if ok else "fail", "detail": detail}


def install(plan: Plan, opts: Options, ui: Ui) -> Outcome:
    info, backend, plan, notes = prepare(plan, opts)
    for n in notes:
        ui.note(n)
    index = plan.index_url
    out = Outcome(
        ok=False, python=info.python, installer=backend.name, plan=plan, notes=notes,
        dry_run=opts.dry_run,
    )  # fmt: skip
    out.direct = backend.direct(plan, index)
    reqs_display = [f"{p.name}=={p.version}" for p in plan.pins]
    if opts.dry_run:
        stage = Path("STAGE")
        out.resolve = backend.resolve(plan, stage, index)
        out.commands = [backend.download(plan, stage, index), backend.install(stage, reqs_display)]
        out.ok = True
        return out

    root = opts.cache_dir or cache_dir()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    log_path = root / "logs" / f"install-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    out.log = str(log_path)
    work = Path(tempfile.mkdtemp(prefix="install-", dir=root))
    stage, saved_dir = work / "stage", work / "saved"
    stage.mkdir()
    env = proc.clean_env()
    cleanup: Optional[_Background] = None
    try:
        with log_path.open("w", encoding="utf-8") as log:
            clock = _Clock(log)
            if isinstance(backend, backends.CondaBackend):
                _conda(plan, backend, info, out, log, ui, env, stage)
                return _finish(out, plan, opts, ui)
            # 1. Stage every file; the target is not touched. The index check runs alongside.
            checked = None
            if index:
                ui.step(f"checking {index}")
                checked = _Background(preflight, index, plan)
            ui.step(f"downloading torch {plan.torch} ({plan.variant}) and its dependencies")
            download = backend.download(plan, stage, index)
            argvs = [backend.resolve(plan, stage, index), download]
            out.resolve = argvs[0]
            out.commands.append(download)
            if argvs[0] is not None:
                backends.UvBackend.requirements(stage).write_text(
                    "\n".join(plan.requirements()) + "\n", encoding="utf-8"
                )
            for argv in argvs:
                if argv is None:
                    continue
                try:
                    rc = _stream(argv, log, ui, env)
                except KeyboardInterrupt:
                    raise EnvsetupError(
                        "interrupted while downloading; nothing was changed",
                        code="interrupted",
                        exit_code=EXIT_INTERRUPTED,
                    ) from None
                clock.step("resolve" if argv is argvs[0] else "download")
                if rc != 0:
                    if checked is not None:
                        checked.result()  # the index's own answer says more than the installer's
                    why = _tail(log_path) or f"exit {rc}"
                    raise InstallError(
                        f"download failed: {why}; nothing was changed (log: {log_path})"
                    )
            if checked is not None:
                checked.result()
            staged = _staged(stage)
            missing = [p.name for p in plan.pins if tgt.normalize(p.name) not in staged]
            if missing:
                raise InstallError(
                    f"the index gave no wheel for {', '.join(missing)}; nothing was changed "
                    f"(log: {log_path})"
                )
            ui.done(f"downloaded {len(staged)} files")
            # 2. What will change, disk space, and a saved copy of what will be replaced.
            at_risk = {n: v for n, (v, _) in staged.items() if info.dists.get(n) != v}
            wheels = [staged[n][1] for n in at_risk]
            site = info.platlib or info.purelib
            _check_space(site, _unpacked_size(wheels), "the install")
            replaced = [n for n in at_risk if n in info.dists]
            if replaced:
                ui.step(f"saving the installed {', '.join(replaced)} for a restore")
            saved = snapshot.save(info, replaced, saved_dir)
            before_listing = snapshot.listing(info)
            clock.step("space check and saved copies")
            # 3. Install offline, from the stage only.
            reqs = [f"{p.name}=={staged[tgt.normalize(p.name)][0]}" for p in plan.pins]
            argv = backend.install(stage, reqs)
            out.commands.append(argv)
            ui.step(f"installing with {backend.name}")
            interrupted = False
            try:
                rc = _stream(argv, log, ui, env)
            except KeyboardInterrupt:
                interrupted, rc = True, -int(signal.SIGINT)
            if rc != 0:
                why = (
                    "interrupted"
                    if interrupted
                    else _tail(log_path)
                    or (f"the installer was killed (signal {-rc})" if rc < 0 else f"exit {rc}")
                )
                ui.step("restoring the previous state")
                log.write("\n# restoring the previous state\n")
                problems = _restore(backend, info, saved, saved_dir, wheels, before_listing, log)
                out.restored = not problems
                state = (
                    "the environment was restored to its previous state"
                    if not problems
                    else f"the restore left differences: {'; '.join(problems[:5])}"
                )
                raise InstallError(
                    f"install failed ({why}); {state} (log: {log_path})",
                    exit_code=EXIT_INTERRUPTED if interrupted else None,
                )
            clock.step("install")
            # The stage is no longer needed: remove it while the check runs.
            cleanup = _Background(shutil.rmtree, work, True)
            after = tgt.probe(info.python).dists
            out.changed = snapshot.differences(info.dists, after)
            ui.done(f"installed {', '.join(reqs)} with {backend.name}")
            _finish(out, plan, opts, ui)
            clock.step("check")
        return out
    finally:
        ui.close()
        if cleanup is not None:
            cleanup.thread.join()
        shutil.rmtree(work, ignore_errors=True)


def _finish(out: Outcome, plan: Plan, opts: Options, ui: Ui) -> Outcome:
    ui.step("verifying torch in the target" if opts.verify else "checking torch imports")
    out.verify = quick_check(out.python, plan, device_checks=opts.verify)
    ui.close()
    if not out.verify["ok"]:
        bad = [r for r in out.verify["results"] if r["status"] == "fail"]
        detail = "; ".join(f"{r['name']}: {r['detail']}" for r in bad) or "failed"
        out.error = f"installed, but the check failed: {detail}"
        return out
    out.ok = True
    return out


def _restore(
    backend: backends.Backend,
    info: tgt.TargetInfo,
    saved: list[snapshot.Saved],
    saved_dir: Path,
    wheels: list[Path],
    before_listing: set[str],
    log: Any,
) -> list[str]:
    """Put the environment back as :attr:`info` recorded it; return what still differs."""
    env = proc.clean_env()
    now = tgt.probe(info.python).dists
    names = {snapshot.wheel_identity(w)[0] for w in wheels}
    touched = sorted(n for n in names if n in now and now[n] != info.dists.get(n))
    if touched:
        _quiet(backend.uninstall(touched), log, env)
    snapshot.scrub(info, wheels, before_listing)
    if saved:
        _quiet(backend.reinstall(saved_dir, [f"{s.name}=={s.version}" for s in saved]), log, env)
    return snapshot.differences(info.dists, tgt.probe(info.python).dists)


def _quiet(argv: Sequence[str], log: Any, env: dict[str, str]) -> int:
    child = proc.stream(argv, log, env=env)
    for _ in child.lines():
        pass
    return child.wait()


def _conda(
    plan: Plan,
    backend: backends.CondaBackend,
    info: tgt.TargetInfo,
    out: Outcome,
    log: Any,
    ui: Ui,
    env: dict[str, str],
    stage: Path,
) -> Outcome:
    """conda: download-only, then offline install; a failure rolls back to the last revision."""
    import json

    res = proc.run(backend.revisions(), timeout=120, env=env)
    try:
        revision = int(json.loads(res.stdout)[-1]["rev"]) if res.ok else None
    except (ValueError, KeyError, IndexError, TypeError):
        revision = None
    ui.step(f"downloading torch {plan.torch} with conda")
    argv = backend.download(plan, stage, None)
    out.commands.append(argv)
    rc = _stream(argv, log, ui, env)
    if rc != 0:
        raise InstallError(f"conda download failed: {_tail(Path(out.log or '')) or f'exit {rc}'}; "
                           f"nothing was changed (log: {out.log})")  # fmt: skip
    argv = backend.install(stage, [])
    out.commands.append(argv)
    ui.step("installing with conda (offline)")
    rc = _stream(argv, log, ui, env)
    if rc != 0:
        restored = revision is not None and _quiet(backend.revision(revision), log, env) == 0
        out.restored = restored
        state = (
            f"rolled back to conda revision {revision}"
            if restored
            else "the rollback failed: see the log"
        )
        raise InstallError(f"conda install failed (exit {rc}); {state} (log: {out.log})")
    after = tgt.probe(info.python).dists
    out.changed = snapshot.differences(info.dists, after)
    return out
