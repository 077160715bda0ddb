"""The install wizard through a real pseudo-terminal: it completes with every build it offers,
asks again (with the reason) when an answer cannot work, and says what the install changes.

Machines come from recorded outputs (tests/machines.py); the PyTorch index is a loopback one
(ENVSETUP_TORCH_INDEX) that serves a tiny wheel of each build the wizard shows, made when it
shows it; --dry-run keeps every target as it was. pip reads no configuration of this machine
(hermetic_env)."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import pytest

from conftest import ROOT, make_venv
from fleet_machines import rtx2000ada_580
from indexserver import IndexServer, torch_wheel
from machines import cpu_only, h100x8, write
from test_install import freeze, hermetic_env

pexpect = pytest.importorskip("pexpect")
pyte = pytest.importorskip("pyte")

MACHINES: dict[str, Callable[[], dict[str, Any]]] = {
    "h100-565": h100x8,  # a driver too old for CUDA 13: cu130, cu132 and default are refused
    "ada-580": rtx2000ada_580,  # CUDA 13 drivers: the package-index build fits
    "cpu-only": cpu_only,  # no GPU: cpu, and the package-index build on the CPU
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DOWN = "\x1b[B"
ROWS = 50
CLEAR = "\x15"  # Ctrl-U: clears the line (and a default) in a text prompt


def clean(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


class Wizard:
    """One `envsetup install ...` on an 80-column pseudo-terminal, read as the user sees it: the
    prompts redraw only the characters that change, so the screen is what a terminal emulator
    (pyte) makes of the bytes, and ``seen`` the bytes without their escape sequences."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Optional[Path] = None):
        self.child = pexpect.spawn(
            sys.executable, ["-m", "envsetup", "install", *args], env=env, encoding="utf-8",
            timeout=60, dimensions=(ROWS, 80), cwd=str(cwd) if cwd else None,
        )  # fmt: skip
        self.screen = pyte.Screen(80, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.raw = ""
        self.mark = 0  # where the next wait_raw starts looking
        self.eof = False

    @property
    def seen(self) -> str:
        return clean(self.raw)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def _read(self) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout=0.2)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.eof = True
            return
        self.raw += data
        self.stream.feed(data)

    def _until(self, found: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            hit = found()
            if hit:
                return hit
            if self.eof or time.monotonic() > deadline:
                raise AssertionError(f"{what} did not come; the screen:\n{self.text()}")
            self._read()

    def expect(self, pattern: str, timeout: float = 60) -> Any:
        """Wait until ``pattern`` is on the screen."""
        return self._until(lambda: re.search(pattern, self.text()), repr(pattern), timeout)

    def drawn(self, question: str, after: str = "") -> None:
        """Wait until ``question`` has been drawn in full (prompt_toolkit ends each drawing by
        turning line wrapping back on), after the last drawing waited for (or after the text
        ``after`` was last written)."""
        pattern = re.compile(rf"(?s){re.escape(question)}.*?\x1b\[\?7h")

        def done() -> Optional[re.Match[str]]:
            start = max(self.raw.rfind(after), 0) if after else self.mark
            m = pattern.search(self.raw, start)
            if m:
                self.mark = m.end()
            return m

        self._until(done, repr(question))

    def menu(self, question: str) -> list[str]:
        """The choices of a select prompt; a disabled one reads "- title (why)"."""
        self.drawn(question)
        lines = self.text().split("\n")
        at = max(i for i, ln in enumerate(lines) if ln.startswith(f"? {question}"))
        out = []
        for ln in lines[at + 1 :]:
            if not ln.startswith((" » ", "   ")):
                break
            out.append(ln[3:])
        return out

    def pick(self, enabled: list[str], title: str) -> None:
        """Move to ``title`` (disabled choices are stepped over) and take it."""
        self.child.send(DOWN * enabled.index(title) + "\r")

    def send(self, text: str) -> None:
        self.child.send(text)

    def interrupt(self) -> None:
        self.child.sendintr()

    def end(self) -> int:
        self._until(lambda: self.eof, "the end", timeout=120)
        self.child.close()
        status = self.child.exitstatus
        assert isinstance(status, int), self.seen
        return status


def enabled(choices: list[str]) -> list[str]:
    return [c for c in choices if not c.startswith("- ")]


def wizard_env(tmp: Path, machine: dict[str, Any], index: str) -> dict[str, str]:
    env = hermetic_env(tmp, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", ENVSETUP_TORCH_INDEX=index)
    env = {k: v for k, v in env.items() if not k.startswith("ENVSETUP_") or k in (
        "ENVSETUP_TORCH_INDEX", "ENVSETUP_TEST_TORCH_VENV")}  # fmt: skip
    env["ENVSETUP_HW_REPLAY"] = write(tmp, machine)
    return env


def serve(root: Path, version: str, variant: str) -> None:
    """The PyTorch index's wheel of ``version``+``variant`` (the package-index build has none
    there: it installs from the installer's own index)."""
    if variant != "default" and not list((root / variant).glob(f"torch-{version}+*.whl")):
        torch_wheel(root / variant, f"{version}+{variant}", None if variant == "cpu" else "12.6")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv the wizard plans for; --dry-run leaves it as it is."""
    return make_venv(tmp_path_factory.mktemp("target") / "venv")


# --------------------------------------------------------------------------- every build


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(MACHINES))
def test_the_wizard_completes_with_every_build_it_offers(
    name: str, target: Path, tmp_path: Path
) -> None:
    before = freeze(target)
    root = tmp_path / "idx"
    root.mkdir()
    picked: list[str] = []
    with IndexServer(root) as server:
        env = wizard_env(tmp_path, MACHINES[name](), server.url)
        builds: Optional[list[str]] = None
        i = 0
        while builds is None or i < len(builds):
            w = Wizard(["--dry-run", "--python", str(target)], env)
            w.expect("Install into which environment")
            w.send("\r")  # this one: --python
            versions = w.menu("torch version:")
            assert versions[0].endswith("(recommended)"), versions
            version = versions[0].split()[0]
            w.send("\r")
            shown = w.menu("Build:")
            builds = builds or enabled(shown)
            assert enabled(shown) == builds  # the same offer each time
            title = builds[i]
            label, _, why = title.partition(" — ")
            # each title carries its reason, in a few words that fit the line
            assert len(why.split()) >= 3 and len(title) <= 80 - 3, title
            variant = label.split(" (")[0]  # "default (cu132)" is the label; "default" the value
            local = re.search(r"\((\S+)\)", label)
            serve(root, version, variant)
            w.pick(builds, title)
            w.expect("Also install")
            w.send("\r")
            w.expect("Installer")
            w.send("\r")
            w.expect("envsetup will run:")
            build = w.expect(r"Go ahead: install torch (\S+)\?").group(1)
            assert build == f"{version}+{local.group(1) if local else variant}"
            w.send("y")
            assert w.end() == 0, w.seen
            out = w.seen.split("Go ahead")[-1]
            assert "unknown variant" not in w.seen and "Traceback" not in w.seen
            if variant == "default":  # from the installer's own index, at its public version
                assert re.search(rf"torch=={re.escape(version)}(\s|$)", out), out
                assert server.url not in out
            else:
                assert f"torch=={version}+{variant}" in out, out
                assert f"{server.url}/{variant}" in out, out
            picked.append(variant)
            i += 1
    assert len(picked) >= 2 and "cpu" in picked  # the CPU build is offered everywhere
    if name != "h100-565":
        assert "default" in picked  # the build whose label once went on as its value
    assert freeze(target) == before


@pytest.mark.parametrize("name", list(MACHINES))
def test_every_offered_build_of_every_offered_version_resolves(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pseudo-terminal test does for the recommended version, for every version: each
    build offered as valid is one the resolver takes, as --variant takes it."""
    from envsetup.commands.install import _resolver
    from envsetup.install.backends._base import requirements
    from envsetup.install.wizard import offered_builds, torch_choices

    monkeypatch.setenv("ENVSETUP_HW_REPLAY", write(tmp_path, MACHINES[name]()))
    replan = _resolver(sys.executable)
    plan = replan(None, None, False, False)
    versions = torch_choices(plan)
    assert len(versions) > 1
    for version in versions:
        options = offered_builds(plan, version, replan)
        valid = [o for o in options if o.valid]
        assert valid, version
        for o in options:
            assert o.why.strip(" —:;") and o.variant in {c.variant for c in plan.candidates}
        for o in valid:
            p = replan(version, o.variant, False, False)
            assert (p.torch, p.variant) == (version, o.variant)
            want = f"torch=={version}" + ("" if o.variant == "default" else f"+{o.variant}")
            assert requirements(p) == [want]


# --------------------------------------------------------------------------- asked again


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.mark.timeout(120)
def test_a_bad_target_is_asked_again_with_its_reason(tmp_path: Path) -> None:
    here = tmp_path / "project"
    dot = make_venv(here / ".venv", pip=False)
    liar = _script(tmp_path / "liar", "echo '{}'")
    root = tmp_path / "idx"
    root.mkdir()
    env = wizard_env(tmp_path, cpu_only(), "http://127.0.0.1:9")

    # an existing environment: a missing path, then a program that is no Python, then .venv
    w = Wizard([], env, cwd=here)
    where = w.menu("Install into which environment?")
    assert "the existing venv at .venv" in where  # the venv already there is offered
    w.pick(enabled(where), "an existing venv or conda env…")
    w.expect("Path of the environment or its python:")
    w.send(str(tmp_path / "nowhere" / "python") + "\r")
    w.expect("no such file or directory")
    w.send(CLEAR + str(liar) + "\r")
    w.expect("does not run as a Python interpreter")
    w.send(CLEAR + str(dot.parent.parent) + "\r")
    w.expect("torch version:")
    w.interrupt()
    assert w.end() == 130
    assert "--python" not in w.seen and "--venv" not in w.seen  # flags nobody typed

    # a new venv: the default is a free path; a path where a venv is is refused
    w = Wizard([], env, cwd=here)
    where = w.menu("Install into which environment?")
    w.pick(enabled(where), "a new venv at a path…")
    w.expect(r"Path of the new venv: \.venv-torch")
    w.send(CLEAR + ".venv\r")
    w.expect("already a venv")
    w.send(CLEAR + str(liar) + "\r")
    w.expect("exists and is not a directory")
    w.send(CLEAR + "fresh\r")
    w.expect("torch version:")
    w.interrupt()
    assert w.end() == 130
    assert "--python" not in w.seen and "--venv" not in w.seen
    assert not (here / "fresh").exists() and not (here / ".venv-torch").exists()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("typed", ["abs", "home", "relative"])
def test_a_typed_new_venv_path_is_the_path(typed: str, tmp_path: Path) -> None:
    """An absolute path typed for a new venv is that path (it once went on after the default
    text: .venv/tmp/x/newvenv); ``~`` is the home directory; a relative one is under the
    current directory."""
    here = tmp_path / "project"
    here.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    answer, want = {
        "abs": (str(tmp_path / "x" / "newvenv"), tmp_path / "x" / "newvenv"),
        "home": ("~/envs/newvenv", home / "envs" / "newvenv"),
        "relative": ("sub/newvenv", here / "sub" / "newvenv"),
    }[typed]
    root = tmp_path / "idx"
    root.mkdir()
    with IndexServer(root) as server:
        env = dict(wizard_env(tmp_path, cpu_only(), server.url), HOME=str(home))
        w = Wizard(["--dry-run"], env, cwd=here)
        where = w.menu("Install into which environment?")
        w.pick(enabled(where), "a new venv at a path…")
        w.drawn("Path of the new venv:")
        w.send(answer + "\r")  # typed as a user types it, over the suggested path
        versions = w.menu("torch version:")
        serve(root, versions[0].split()[0], "cpu")
        w.send("\r")
        builds = enabled(w.menu("Build:"))
        w.pick(builds, next(b for b in builds if b.startswith("cpu")))
        for prompt in ("Also install", "Installer"):
            w.expect(prompt)
            w.send("\r")
        w.expect(r"Go ahead: install torch")
        w.send("y")
        assert w.end() == 0, w.seen
    run = w.seen.split("envsetup will run:")[-1]
    assert f"-m venv {want}" in run.replace("'", ""), run
    assert ".venv" not in run, run
    assert not want.exists()  # --dry-run


@pytest.mark.timeout(120)
def test_an_unreachable_mirror_is_asked_again(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        w = Wizard(["--dry-run"], wizard_env(tmp_path, cpu_only(), dead))
        w.expect("Install into which environment")
        w.send("\r")
        for prompt in ("torch version:", "Build:", "Also install", "Installer"):
            w.expect(prompt)
            w.send("\r")
        w.expect("connection refused")
        w.drawn("Mirror (")
        w.send(str(tmp_path / "no-such-dir") + "\r")
        w.expect("not a URL and not a directory")  # checked where it is typed
        w.send(CLEAR + dead + "/other\r")
        w.expect(r"cannot read the index \S+/other: connection refused")
        w.drawn("Mirror (", after="/other: connection refused")  # and asked again
        w.interrupt()
        assert w.end() == 130
    assert "Traceback" not in w.seen and "--index-url" not in w.seen.split("Mirror (")[0]


# --------------------------------------------------------------------------- what changes


@pytest.mark.timeout(300)
def test_replacing_a_torch_says_upgrade_and_no_offers_verify(
    torch_venv: Path, tmp_path: Path
) -> None:
    """The real torch 2.13.0 venv, read and verified, never changed (--dry-run, then no)."""
    from conftest import TORCH_VERSION

    before = freeze(torch_venv)
    root = tmp_path / "idx"
    root.mkdir()
    with IndexServer(root) as server:
        w = Wizard(["--dry-run", "--python", str(torch_venv)],
                   wizard_env(tmp_path, cpu_only(), server.url))  # fmt: skip
        w.expect("Install into which environment")
        w.send("\r")
        versions = w.menu("torch version:")
        version = versions[0].split()[0]
        assert f"{TORCH_VERSION}  (installed)" in versions
        w.send("\r")
        assert enabled(w.menu("Build:"))[0].startswith("cpu — recommended")
        serve(root, version, "cpu")
        w.send("\r")
        for prompt in ("Also install", "Installer"):
            w.expect(prompt)
            w.send("\r")
        m = w.expect(r"Go ahead: (\w+) torch (\S+) → (\S+)\?")
        assert m.groups() == ("upgrade", TORCH_VERSION, version)
        w.send("n")
        w.expect(rf"Verify torch {re.escape(TORCH_VERSION)}\+cpu as it is instead\?")
        w.send("y")
        w.expect("verifying what is there")
        assert w.end() == 0, w.seen
    verified = w.seen.split("verifying what is there")[-1]
    assert f"envsetup verify {torch_venv}" in verified, verified
    assert re.search(r"all checks passed: [1-9]\d* passed, 0 failed", verified), verified
    assert freeze(torch_venv) == before


def test_change_names_upgrade_downgrade_and_a_new_build() -> None:
    from envsetup.install.wizard import change
    from test_install import make_plan

    plan = make_plan(torch="2.14.1", variant="cpu", cuda=None)
    assert change(None, plan) == "install torch 2.14.1+cpu"
    assert change("2.13.0+cpu", plan) == "upgrade torch 2.13.0 → 2.14.1"
    assert change("2.15.0+cpu", plan) == "downgrade torch 2.15.0 → 2.14.1"
    assert change("2.14.1+cu126", plan) == "change torch's build 2.14.1+cu126 → 2.14.1+cpu"
    assert change("2.13.0+cu126", plan) == "upgrade torch 2.13.0+cu126 → 2.14.1+cpu"
    assert change("2.14.1+cpu", plan).startswith("keep torch 2.14.1+cpu")


def test_a_new_venv_path_is_one_nothing_occupies(tmp_path: Path) -> None:
    from envsetup.install.wizard import free_venv_path, venv_path_problem

    assert free_venv_path(tmp_path) == ".venv"
    make_venv(tmp_path / ".venv", pip=False)
    (tmp_path / ".venv-torch").mkdir()
    assert free_venv_path(tmp_path) == ".venv-torch-2"
    assert venv_path_problem(str(tmp_path / ".venv")) is not None
    assert venv_path_problem(str(tmp_path / ".venv-torch")) is None  # empty: venv can fill it
    assert venv_path_problem(str(tmp_path / "a" / "b")) is None


@pytest.mark.timeout(180)
def test_the_journey_says_upgrade_and_no_offers_verify(torch_venv: Path, tmp_path: Path) -> None:
    """Bare `envsetup` run by an interpreter whose torch is the real 2.13.0 (seen through a .pth
    file, so the torch venv is never changed)."""
    import sysconfig

    from conftest import TORCH_VERSION
    from test_doctor import site_packages

    py = make_venv(tmp_path / "venv", pip=False)
    own = sysconfig.get_paths()["purelib"]  # envsetup's dependencies
    paths = [str(ROOT / "src"), own, site_packages(torch_venv)]
    Path(site_packages(py), "zz-envsetup.pth").write_text("\n".join(paths) + "\n")
    env = wizard_env(tmp_path, cpu_only(), "http://127.0.0.1:9")
    child = pexpect.spawn(str(py), ["-m", "envsetup"], env=env, encoding="utf-8", timeout=60,
                          dimensions=(50, 80))  # fmt: skip
    child.expect(r"torch==([0-9.]+)")
    planned = child.match.group(1)
    child.expect(r"(\w+) torch (\S+) → (\S+) now\?")
    assert child.match.groups() == ("Upgrade", TORCH_VERSION, planned)
    child.sendline("n")
    child.expect(rf"Verify torch {re.escape(TORCH_VERSION)}\+cpu as it is\?")
    child.sendline("y")
    child.expect("verifying what is there")
    child.expect(pexpect.EOF)
    child.close()
    verified = clean(child.before)
    assert child.exitstatus == 0, verified
    assert f"envsetup verify {py}" in verified, verified  # the interpreter the journey runs in
    assert re.search(r"all checks passed: [1-9]\d* passed, 0 failed", verified), verified
