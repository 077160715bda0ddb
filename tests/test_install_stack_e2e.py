"""The stack end to end, as a user runs it: the real CPU torch wheel from a local directory
mirror of the PyTorch cpu index, and a real library (torchmetrics) with its dependencies from the
default package index, in one command; then a plain ``pip install`` that would swap torch is
refused.

The wheel is the one this machine's pip installs for ``torch==2.13.0`` without a download (its own
configuration finds it on disk; asked once, with ``--dry-run --report``, only for its location).
Everything after that runs with none of this machine's pip or uv configuration: a pip file of the
test's that sets nothing (so pip's default index is its own default, and pip still reads the
venv's site file where the guard lies) and ``UV_NO_CONFIG``. The default index must be reachable;
``ENVSETUP_TEST_OFFLINE=1`` skips this file where it is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import TORCH_VERSION, make_venv
from envsetup.guard import LABEL

pytestmark = pytest.mark.skipif(
    os.environ.get("ENVSETUP_TEST_OFFLINE") == "1", reason="needs the default package index"
)


def _machine_wheel(tmp: Path) -> Path:
    """Where this machine's pip takes torch==TORCH_VERSION from (a file on disk)."""
    report = tmp / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
         "-q", "--report", str(report), f"torch=={TORCH_VERSION}"],
        check=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (item,) = json.loads(report.read_text())["install"]
    url = item["download_info"]["url"]
    assert url.startswith("file:"), f"this machine's pip would download torch: {url}"
    return Path(unquote(urlparse(url).path))


def _mirror(root: Path, wheel: Path) -> Path:
    """A PEP 503 tree of index.html files, as a mirror of the PyTorch cpu index is laid out."""
    cpu = root / "cpu"
    (cpu / "torch").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "files" / wheel.name).symlink_to(wheel)
    href = "../../files/" + wheel.name.replace("+", "%2B")
    (cpu / "index.html").write_text('<html><body><a href="torch/">torch</a></body></html>\n')
    (cpu / "torch" / "index.html").write_text(
        f'<html><body><a href="{href}">{wheel.name}</a></body></html>\n'
    )
    return cpu


@pytest.mark.timeout(900)
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_torch_from_a_directory_mirror_and_torchmetrics_from_the_default_index(
    installer: str, tmp_path: Path
) -> None:
    cpu = _mirror(tmp_path / "mirror", _machine_wheel(tmp_path))
    py = make_venv(tmp_path / "venv")
    conf = tmp_path / "pip-none.conf"
    conf.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "ENVSETUP_"))}
    env.update(
        PIP_CONFIG_FILE=str(conf),  # pip skips the user's file; the default index is pip's own
        XDG_CONFIG_DIRS=str(tmp_path / "no-global"),  # and the machine's global file
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        NO_COLOR="1",
        COLUMNS="120",
    )
    cp = subprocess.run(
        [sys.executable, "-m", "envsetup", "install", "--yes", "--torch", TORCH_VERSION,
         "--variant", "cpu", "--python", str(py), "--index-url", cpu.as_uri(), "--no-verify",
         "--installer", installer, "--json", "torchmetrics"],
        capture_output=True, text=True, env=env, timeout=840, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr[-3000:]
    doc = json.loads(cp.stdout)
    assert doc["installer"] == installer
    locked = {p["name"]: p for p in doc["stack"]["packages"]}
    assert locked["torch"]["version"] == f"{TORCH_VERSION}+cpu"
    assert locked["torch"]["source"] == "pytorch" and locked["torchmetrics"]["source"] == "index"

    def installed() -> dict[str, str]:
        code = (
            "import importlib.metadata as m, json; print(json.dumps("
            "{d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
        )
        return dict(json.loads(subprocess.check_output([str(py), "-c", code], text=True)))

    before = installed()
    assert before["torch"] == f"{TORCH_VERSION}+cpu"
    assert before["torchmetrics"] == locked["torchmetrics"]["version"]
    assert "lightning-utilities" in before and "numpy" in before  # torchmetrics' own needs
    imported = subprocess.run(
        [str(py), "-c", "import torch, torchmetrics; print(torch.__version__)"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert imported.stdout.strip() == f"{TORCH_VERSION}+cpu", imported.stderr[-2000:]

    refused = subprocess.run(
        [str(py), "-m", "pip", "install", "torch==2.12.0"],
        capture_output=True, text=True, env=env, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out[-3000:]
    assert f"The user requested (constraint) torch!={LABEL},=={TORCH_VERSION}+cpu" in out, out
    assert installed() == before
