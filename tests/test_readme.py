"""Every command line README.md shows, run for real: the lines of its ```bash blocks, the first
column of its commands table and each `envsetup ...` code span in its text.

A line runs as the user would type it (``envsetup`` as ``python -m envsetup``), on a replayed
CPU machine, against loopback indexes (tests/stackindex.py, with the packages the README names)
and with no pip or uv configuration of this machine's:

- an install runs with ``--dry-run`` (nothing changes);
- a line that needs a cluster or Ansible (srun, fleet doctor/install, verify --distributed) and
  each table synopsis or code span runs with ``--help`` appended: the command and every flag it
  names must parse (click refuses an unknown one before it prints the help);
- the rest (doctor, plan, fleet report, fleet playbook) runs as it is.

A line that names a command or flag envsetup does not have fails here. Lines of other tools
(``python3 -m nox -s tests``, ``python3 bench/doctor.py``) must name what exists."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from conftest import ROOT, run_cli
from machines import cpu_only, write
from stackindex import StackIndex, build_indexes, library, torch_build

README = (ROOT / "README.md").read_text(encoding="utf-8")
NEEDS_CLUSTER = ("fleet doctor", "fleet install", "verify --distributed")


@dataclass(frozen=True)
class Line:
    where: str  # "bash block, line 3" | "commands table" | "text"
    text: str  # as the README shows it
    argv: tuple[str, ...]  # the envsetup arguments, as run
    how: str  # "run" | "dry-run" | "help"
    stdin: Optional[str] = None  # "profile": a doctor --json document comes in on stdin


def _bash_lines() -> Iterator[tuple[str, str]]:
    for i, block in enumerate(re.findall(r"```bash\n(.*?)```", README, re.S), 1):
        for n, line in enumerate(block.splitlines(), 1):
            if line.strip():
                yield f"bash block {i}, line {n}", line.strip()


def _segments(line: str) -> list[str]:
    """The commands of one shell line: split at && and |, the comment's "or: ..." included."""
    code, _, comment = line.partition(" #")
    parts = re.split(r"\s*(?:&&|\|(?!\|))\s*", code.strip())
    alt = re.search(r"\bor: (envsetup .*)$", comment)
    return [p for p in parts if p] + ([alt.group(1).strip()] if alt else [])


def _envsetup_args(segment: str) -> Optional[list[str]]:
    """The arguments after ``envsetup`` (any path to it, after an srun prefix), without a
    redirection; None when the segment is another program's."""
    words = shlex.split(segment)
    at = next((i for i, w in enumerate(words) if w == "envsetup" or w.endswith("/envsetup")), None)
    if at is None:
        return None
    args = words[at + 1 :]
    if ">" in args:
        args = args[: args.index(">")]
    return args


def bash_lines() -> list[Line]:
    out = []
    for where, text in _bash_lines():
        for seg in _segments(text):
            args = _envsetup_args(seg)
            if args is None:
                continue
            joined = " ".join(args)
            if seg.startswith("srun ") or any(joined.startswith(c) or c in joined
                                               for c in NEEDS_CLUSTER):  # fmt: skip
                how = "help"
            elif args[:1] == ["install"]:
                how = "dry-run"
            else:
                how = "run"
            stdin = "profile" if args[-1:] == ["-"] else None  # "... | envsetup fleet report -"
            out.append(Line(where, seg, tuple(args), how, stdin))
    return out


def _synopsis_args(synopsis: str) -> list[str]:
    """``envsetup plan [PACKAGE]... [--torch SPEC] [--json \\| --markdown]`` → the arguments
    that name every flag: brackets and ``...`` dropped, of ``a\\|b`` values the first, of
    ``--a\\|--b`` flags both."""
    text = synopsis.replace("[", " ").replace("]", " ").replace("...", " ")
    args: list[str] = []
    for word in text.split()[1:]:  # after "envsetup"
        if word == "\\|":
            continue
        alts = word.split("\\|")
        args += alts if all(a.startswith("-") for a in alts) else alts[:1]
    return args


def table_lines() -> list[Line]:
    rows = re.search(r"## Commands\n\n(.*?)\n\n", README, re.S)
    assert rows, "README has no commands table"
    out = []
    for row in rows.group(1).splitlines()[2:]:
        cell = row.split(" | ")[0].removeprefix("| ")
        for synopsis in re.findall(r"`([^`]*)`", cell):
            words = synopsis.split()
            if words[0] != "envsetup":  # "fleet doctor -i INVENTORY": the same command's
                words = ["envsetup", *words]
            if words[1:] and words[1] in ("list", "check", "refresh"):
                words.insert(1, "compat")
            out.append(Line("commands table", synopsis, tuple(_synopsis_args(" ".join(words))),
                            "help"))  # fmt: skip
    return out


def text_lines() -> list[Line]:
    """`envsetup ...` code spans in the prose (outside code blocks and the table)."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    prose = "\n".join(ln for ln in prose.splitlines() if not ln.startswith("|"))
    out = []
    for span in re.findall(r"`(envsetup [^`]*)`", prose):
        for seg in _segments(span):
            args = _envsetup_args(seg)
            if args is not None:
                out.append(Line("text", seg, tuple(args), "help"))
    return out


ALL = bash_lines() + table_lines() + text_lines()


def test_the_readme_shows_what_this_test_reads() -> None:
    """The extraction itself: each source of command lines gives what the README has."""
    whats = {(ln.where.split(",")[0].split(" line")[0], ln.how) for ln in ALL}
    assert any(w.startswith("bash block") and h == "run" for w, h in whats)
    assert ("commands table", "help") in whats and ("text", "help") in whats
    argvs = {ln.argv for ln in ALL}
    assert ("plan", "vllm") in argvs and ("fleet", "report", "profiles/", "--html",
                                           "fleet.html") in argvs  # fmt: skip
    assert ("install", "-r", "requirements.txt") in argvs  # from the comment "# or: ..."
    assert ("doctor", "--json") in argvs  # after the srun prefix
    plan = next(ln for ln in ALL if ln.where == "commands table" and ln.argv[:1] == ("plan",))
    assert {"--profile", "--export", "-o", "--json", "-r"} <= set(plan.argv)
    compat = [ln.argv for ln in ALL if ln.argv[:1] == ("compat",)]
    assert ("compat", "refresh", "--write", "--check") in compat
    assert len(ALL) >= 25


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The loopback indexes (the packages the README names: tiny libraries needing torch), a
    replayed CPU machine, a working directory with the files the lines name."""
    from envsetup.compat import load_table
    from envsetup.plan import Request
    from envsetup.profile import Profile
    from envsetup.resolve import resolve

    tmp = tmp_path_factory.mktemp("readme")
    root = build_indexes(tmp / "root")
    for name in ("transformers", "datasets", "accelerate", "vllm"):
        library(root / "simple", name, "1.0", ["torch>=2.0"])
    v = ".".join(map(str, sys.version_info[:3]))
    plan = resolve(Profile.from_dict({"system": {"os": "linux", "arch": "x86_64"},
                                      "python": {"version": v}}), Request(), load_table())  # fmt: skip
    build = plan.local_version or plan.torch
    if not list((root / "whl" / "cpu").glob(f"torch-{build}-*.whl")):
        torch_build(root / "whl" / "cpu", build, None)  # the shipped table's newest CPU build
    cwd = tmp / "work"
    (cwd / "profiles").mkdir(parents=True)
    (cwd / "requirements.txt").write_text("transformers\n")
    with StackIndex(root) as server:
        conf = tmp / "pip.conf"
        conf.write_text(f"[global]\nindex-url = {server.simple}\n")
        env = {
            "PIP_CONFIG_FILE": str(conf),
            "UV_NO_CONFIG": "1",
            "UV_DEFAULT_INDEX": server.simple,
            "UV_CACHE_DIR": str(tmp / "uv-cache"),
            "XDG_CACHE_HOME": str(tmp / "cache"),
            "ENVSETUP_TORCH_INDEX": server.whl,
            "ENVSETUP_HW_REPLAY": write(tmp, cpu_only(), "machine.json"),
        }
        doctor = run_cli("doctor", "--json", env=env)
        assert doctor.returncode in (0, 1), doctor
        (cwd / "profiles" / "node1.json").write_text(doctor.stdout)
        yield {"env": env, "cwd": cwd, "profile": doctor.stdout}


# The --help lines run in one process, each through envsetup's own entry point (main), as
# `python -m envsetup ARGS` runs it: one interpreter start instead of one per line.
_DRIVER = """
import contextlib, io, json, sys
from envsetup.cli import main
out = []
for argv in json.load(sys.stdin):
    o, e, rc = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            main(argv)
        except SystemExit as x:
            rc = x.code if isinstance(x.code, int) else (0 if x.code is None else 1)
    out.append({"returncode": rc, "stdout": o.getvalue(), "stderr": e.getvalue()})
json.dump(out, sys.__stdout__)
"""


@pytest.fixture(scope="module")
def helped(world: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    import json
    import os
    import subprocess

    from conftest import CliResult

    argvs = sorted({(*ln.argv, "--help") for ln in ALL if ln.how == "help"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "ENVSETUP_"))}
    env.update(world["env"], NO_COLOR="1", COLUMNS="120")
    cp = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(argvs), text=True,
                        capture_output=True, env=env, cwd=world["cwd"], timeout=120)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    results = json.loads(cp.stdout)
    out = {}
    for argv, r in zip(argvs, results):
        done = subprocess.CompletedProcess(list(argv), r["returncode"], r["stdout"], r["stderr"])
        out[argv] = CliResult(done)
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("line", ALL, ids=lambda ln: f"{ln.where}: {ln.text}"[:90])
def test_each_readme_command_line_runs(
    line: Line, world: dict[str, Any], helped: dict[tuple[str, ...], Any]
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(world["env"])
    argv = list(line.argv)
    if line.how == "help":
        argv.append("--help")
    elif line.how == "dry-run":
        argv.append("--dry-run")
    stdin = world["profile"] if line.stdin == "profile" else None
    if line.how == "help":
        r = helped[tuple(argv)]
    else:
        r = run_cli(*argv, env=env, cwd=world["cwd"], input=stdin, timeout=110)
    shown = f"README {line.where}: {line.text!r} ran as envsetup {shlex.join(argv)}: {r!r}"
    assert "No such option" not in r.stderr and "No such command" not in r.stderr, shown
    assert "Traceback" not in r.stderr, shown
    ok = {0, 1} if argv[:1] == ["doctor"] or argv[:2] == ["fleet", "report"] else {0}
    assert r.returncode in ok, shown  # doctor and fleet report exit 1 on an error finding
    if line.how == "help":
        assert "Usage:" in r.stdout, shown
    if line.how == "run" and argv[:2] == ["fleet", "report"] and "--html" in argv:
        assert (world["cwd"] / argv[argv.index("--html") + 1]).is_file()


def test_other_programs_lines_name_what_exists() -> None:
    """The README's lines that run something else than envsetup: the nox sessions they name are
    in noxfile.py, the scripts they run are in the repository, the extras they install are in
    pyproject.toml."""
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    sessions = set(re.findall(r"def (\w+)\(session", noxfile))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    extras = set(re.findall(r"^(\w+) = \[", pyproject.split("[project.optional-dependencies]")[1],
                            re.M))  # fmt: skip
    checked = 0
    for _, text in _bash_lines():
        for seg in _segments(text):
            if _envsetup_args(seg) is not None:
                continue
            words = shlex.split(seg)
            if words[:3] == ["python3", "-m", "nox"] and "-s" in words:
                assert words[words.index("-s") + 1] in sessions, seg
                checked += 1
            elif words[:1] == ["python3"] and words[1:2] and words[1].endswith(".py"):
                assert (ROOT / words[1]).is_file(), seg
                checked += 1
    for extra in re.findall(r"pip install 'envsetup\[(\w+)\]'", README):
        assert extra in extras, extra
        checked += 1
    assert checked >= 3


def test_the_commands_said_to_take_python_do() -> None:
    """README: "`envsetup doctor`, ... take `--python PATH`": each does (and the sentence is
    there, so this checks something)."""
    said = re.search(r"((?:`envsetup \w+`(?:, | and )?)+)\s+take\s+`--python PATH`", README)
    assert said, "the README no longer says which commands take --python"
    commands = re.findall(r"`envsetup (\w+)`", said.group(1))
    assert len(commands) >= 4
    argvs = [[command, "--python", sys.executable, "--help"] for command in commands]
    for argv, r in zip(argvs, _batch(argvs)):
        assert r["returncode"] == 0 and "--python" in r["stdout"], (argv, r)


def test_a_readme_line_with_a_flag_that_does_not_exist_would_fail() -> None:
    """What the line test rests on: an unknown flag or command before --help is refused, by the
    driver the --help lines run through and by the real command line alike."""
    bad = [["plan", "--no-such-flag", "--help"], ["no-such-command", "--help"],
           ["--python", sys.executable, "--help"]]  # fmt: skip
    for argv, r in zip(bad, _batch(bad)):
        assert r["returncode"] == 2 and "No such" in r["stderr"], (argv, r)
    real = run_cli(*bad[0])
    assert real.returncode == 2 and "No such option: --no-such-flag" in real.stderr, real


def _batch(argvs: list[list[str]]) -> list[dict[str, Any]]:
    import json
    import subprocess

    cp = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(argvs), text=True,
                        capture_output=True, timeout=120)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    return list(json.loads(cp.stdout))
