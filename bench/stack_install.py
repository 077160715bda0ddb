"""The stack install's overhead over the raw ``uv pip install`` (and pip) of the same set.

Lays out two indexes on 127.0.0.1, as a user's machine sees them: a "PyTorch cpu index" holding
the real CPU torch wheel, and a "package index" holding torchmetrics and every dependency of
both (downloaded once, beforehand, by this machine's pip). Then, in a fresh venv each run, side
by side, times:

- raw: ``uv pip install --index pytorch=URL --default-index PKG torch==X+cpu torchmetrics``
  (``pip install --index-url PKG --extra-index-url URL ...`` for pip), the set a user would type
  having looked the build up by hand;
- envsetup: ``envsetup install --yes --no-verify --torch X --variant cpu --index-url URL
  torchmetrics`` (the stack resolved with the machine's build, staged, installed, guarded).

    python bench/stack_install.py [runs] [uv|pip ...]

Warm caches (one unmeasured round fills them); the two take turns at going first. pip and uv
read no configuration of this machine (a pip file of the bench's naming the package index;
UV_NO_CONFIG=1, UV_DEFAULT_INDEX). Prints the figures; asserts nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from sidebyside import table, turns  # noqa: E402

from conftest import TORCH_VERSION  # noqa: E402
from envsetup.install.backends.uv import find_uv  # noqa: E402
from indexserver import IndexServer  # noqa: E402
from test_install import hermetic_env  # noqa: E402

LIBRARY = "torchmetrics"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    wanted = sys.argv[2:] or ["uv", "pip"]
    tmp = Path(tempfile.mkdtemp(prefix="envsetup-bench-stack-"))
    pkg, cpu = tmp / "idx" / "pkg", tmp / "idx" / "cpu"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", f"torch=={TORCH_VERSION}",
                    LIBRARY, "--only-binary=:all:", "-d", str(pkg)], check=True)  # fmt: skip
    cpu.mkdir()
    for wheel in pkg.glob("torch-*.whl"):
        wheel.rename(cpu / wheel.name)
    uv = find_uv()
    rows = []
    try:
        with IndexServer(tmp / "idx") as server:
            url, simple = server.index("cpu"), server.index("pkg")
            conf = tmp / "pip.conf"
            conf.write_text(f"[global]\nindex-url = {simple}\n")
            env = hermetic_env(tmp, PIP_CONFIG_FILE=str(conf), UV_DEFAULT_INDEX=simple,
                               XDG_CONFIG_DIRS=str(tmp / "none"))  # fmt: skip
            pins = [f"torch=={TORCH_VERSION}+cpu", LIBRARY]
            for installer in wanted:
                if installer == "uv" and not uv:
                    print("uv: not installed, skipped")
                    continue

                def argvs(raw_py: Path, ours_py: Path, installer: str = installer) -> Any:
                    argv = (
                        [str(raw_py), "-m", "pip", "install", "--extra-index-url", url, *pins]
                        if installer == "pip"
                        else [str(uv), "pip", "install", "--python", str(raw_py), "--index",
                              f"pytorch={url}", *pins]
                    )  # fmt: skip
                    mine = [sys.executable, "-m", "envsetup", "install", "--yes", "--no-verify",
                            "--torch", TORCH_VERSION, "--variant", "cpu", "--python", str(ours_py),
                            "--installer", installer, "--index-url", url, LIBRARY]  # fmt: skip
                    return argv, mine

                rows.append(turns(tmp, installer, runs, argvs, env))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedian of {runs} warm runs, same indexes, same set ({' '.join(pins)} and deps):")
    table(rows)


if __name__ == "__main__":
    main()
