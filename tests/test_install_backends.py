"""The registry of backends: every list of installers reads it, and a new installer is one
module plus one registry line. Proven with a throwaway installer registered by a test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import make_venv
from envsetup.errors import EnvsetupError
from envsetup.install import backends
from envsetup.install.run import Options, install
from envsetup.install.sources import for_install
from envsetup.install.target import probe
from envsetup.install.ui import Ui
from indexserver import companion_wheel, torch_wheel
from test_install import freeze, hermetic_env, make_plan, torch_in, tree, write_plan

# A whole installer in one module: it unpacks the plan's wheels from a wheelhouse into
# site-packages with the target's own zipfile (and, asked to, fails half-way).
UNZIP = textwrap.dedent('''
    """unzip: the plan's wheels from a wheelhouse, unpacked into site-packages."""

    from __future__ import annotations

    import os

    from envsetup.install.backends._base import Fit, Staging, Step, Tool, requirements

    SCRIPT = """
    import glob, os, sys, sysconfig, zipfile
    site = sysconfig.get_paths()["purelib"]
    house, mode = sys.argv[1], sys.argv[2]
    for req in sys.argv[3:]:
        name, version = req.split("==")
        [wheel] = glob.glob(os.path.join(house, name + "-" + version + "-*.whl"))
        zipfile.ZipFile(wheel).extractall(site)
        if mode == "fail":
            sys.exit("error: unzip failed on purpose after " + name)
    """


    class Unzip:
        name = "unzip"
        summary = "unzip: wheels unpacked from a wheelhouse"
        default_when = ""
        export_name = "unzip-list"

        def find(self, target):
            return Tool((target.python,))

        def preferred(self, target):
            return False

        def fits(self, plan, target, sources):
            ok = bool(sources.torch) and all(s.wheelhouse for s in sources.torch)
            return Fit(ok, "unzip reads a wheelhouse only: give --find-links DIR")

        def direct(self, plan, where, sources):
            house = sources.torch[0].location if sources.torch else "DIR"
            return [where.python, "unzip.py", house, "ok", *requirements(plan)]

        def export(self, plan, sources):
            return "\\n".join(requirements(plan)) + "\\n"

        def stage(self, ctx):
            return Staging(files=(("unzip.py", SCRIPT),))

        def install(self, ctx):
            mode = os.environ.get("UNZIP_MODE", "ok")
            house = ctx.sources.torch[0].location
            argv = (*ctx.tool.argv, str(ctx.work / "unzip.py"), house, mode, *requirements(ctx.plan))
            return Step("install", argv)

        def checkpoint(self, ctx):
            return None

        def rollback(self, ctx, point):
            return None


    BACKEND = Unzip()
''')


@pytest.fixture
def unzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The throwaway module, registered with one line; returns its directory."""
    mod_dir = tmp_path / "plugin"
    mod_dir.mkdir()
    (mod_dir / "unzip_backend.py").write_text(UNZIP)
    monkeypatch.syspath_prepend(str(mod_dir))
    import unzip_backend  # type: ignore[import-not-found]

    monkeypatch.setitem(backends.BACKENDS, "unzip", unzip_backend.BACKEND)  # the one line
    return mod_dir


@pytest.fixture
def house(tmp_path: Path) -> Path:
    d = tmp_path / "house"
    torch_wheel(d, "2.4.1+cu121", "12.1", data=True)
    companion_wheel(d, "torchvision", "0.19.1+cu121", "2.4.1")
    return d


def test_every_list_of_installers_reads_the_registry(unzip: Path, tmp_path: Path) -> None:
    plan = make_plan(index_url="https://download.pytorch.org/whl/cu121")
    assert backends.names() == ["conda", "uv", "pip", "unzip"]
    assert backends.installer_help().startswith("conda | uv | pip | unzip (default: ")
    assert "unzip" not in backends.installer_help().split("(default:")[1]  # never the default
    assert backends.exports()["unzip-list"].export(plan, for_install(plan, None)) == (
        "torch==2.4.1+cu121\ntorchvision==0.19.1+cu121\n"
    )
    assert backends.direct_commands(plan, "/env/bin/python")["unzip"][0][:2] == [
        "/env/bin/python",
        "unzip.py",
    ]
    info = probe(sys.executable)
    wheelhouse = for_install(plan, None, [str(tmp_path)])
    assert "unzip" in backends.available(plan, info, wheelhouse)
    assert "unzip" not in backends.available(plan, info, for_install(plan, None))
    assert backends.default_for(info) in ("uv", "pip")
    with pytest.raises(EnvsetupError, match="unzip reads a wheelhouse only"):
        backends.choose("unzip", plan, info, for_install(plan, None))
    with pytest.raises(EnvsetupError, match="choose one of conda, uv, pip, unzip"):
        backends.get("pixi")


@pytest.mark.timeout(120)
def test_the_transaction_carries_any_backend(
    unzip: Path, house: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same transaction installs with it, and restores every file when it fails."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    venv = tmp_path / "venv"
    py = make_venv(venv)
    plan = make_plan()
    before, files = freeze(py), tree(venv)
    monkeypatch.setenv("UNZIP_MODE", "fail")
    opts = Options(python=str(py), installer="unzip", find_links=(str(house),), verify=False)
    with pytest.raises(EnvsetupError) as err:
        install(plan, opts, Ui())
    assert "unzip failed on purpose after torch" in err.value.message
    assert "the environment was restored to its previous state" in err.value.message
    assert freeze(py) == before and tree(venv) == files
    monkeypatch.setenv("UNZIP_MODE", "ok")
    out = install(plan, opts, Ui())
    assert out.ok and out.installer == "unzip", out.error
    assert sorted(out.changed) == ["torch 2.4.1+cu121 added", "torchvision 0.19.1+cu121 added"]
    assert torch_in(py) == ("2.4.1+cu121", "12.1")


@pytest.mark.timeout(120)
def test_the_cli_offers_a_registered_backend(unzip: Path, house: Path, tmp_path: Path) -> None:
    """--installer's help and choices, plan's commands and --export, in the real CLI."""
    run = (
        "import sys; sys.path.insert(0, sys.argv[1]); import unzip_backend; "
        "from envsetup.install import backends; "
        "backends.BACKENDS['unzip'] = unzip_backend.BACKEND; "
        "from envsetup.cli import main; main(sys.argv[2:])"
    )
    env = hermetic_env(tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", run, str(unzip), *args], capture_output=True,
                              text=True, env=env, stdin=subprocess.DEVNULL)  # fmt: skip

    helped = cli("install", "--help")
    assert "conda | uv | pip | unzip" in " ".join(helped.stdout.split()), helped.stdout
    assert "unzip-list" in helped.stdout
    plan = write_plan(tmp_path, make_plan())
    exported = cli("install", "--yes", "--plan-file", plan, "--export", "unzip-list")
    assert exported.stdout == "torch==2.4.1+cu121\ntorchvision==0.19.1+cu121\n", exported.stderr
    py = make_venv(tmp_path / "venv")
    done = cli("install", "--yes", "--no-verify", "--json", "--plan-file", plan, "--python",
               str(py), "--installer", "unzip", "--find-links", str(house))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["installer"] == "unzip"
    assert torch_in(py) == ("2.4.1+cu121", "12.1")
    planned = cli("plan", "--python", str(py), "--json")
    assert "unzip" in json.loads(planned.stdout)["commands"], planned.stderr


def test_plan_commands_come_from_the_backends() -> None:
    url = "https://download.pytorch.org/whl/cu121"
    old = make_plan(index_url=url)
    cmds = backends.direct_commands(old, "/opt/env/bin/python")
    assert cmds["pip"] == [
        ["/opt/env/bin/python", "-m", "pip", "install", "torch==2.4.1+cu121",
         "torchvision==0.19.1+cu121", "--index-url", url]
    ]  # fmt: skip
    assert cmds["uv"][0][:5] == ["uv", "pip", "install", "--python", "/opt/env/bin/python"]
    assert cmds["conda"][0][:5] == ["conda", "install", "--yes", "--prefix", "/opt/env"]
    assert "pytorch-cuda=12.1" in cmds["conda"][0] and "nvidia" in cmds["conda"][0]
    new = make_plan(torch="2.6.0", variant="cu126", cuda="12.6", vision=None, index_url=url)
    cmds = backends.direct_commands(new, "/opt/env/bin/python")
    assert cmds["conda"] == cmds["pip"]  # no official conda packages after 2.5
    plain = make_plan(variant="default", cuda=None, vision=None)
    assert "--index-url" not in backends.direct_commands(plain, "python")["pip"][0]
    secret = backends.direct_commands(make_plan(index_url="https://u:tok@mirror/x"), "python")
    assert "tok" not in json.dumps(secret) and "u:***@mirror" in json.dumps(secret)
