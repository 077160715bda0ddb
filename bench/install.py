"""envsetup install's overhead over the raw installer, on the same local index and wheels.

Serves the real CPU torch wheel and its dependencies on 127.0.0.1, then for pip and for uv
times, in a fresh venv each run, side by side: the raw ``install --index-url`` of the same set
and ``envsetup install --yes --no-verify --plan-file``. Prints the figures; asserts nothing.

    python bench/install.py [runs] [pip|uv ...]

The pip and uv caches are shared by all runs, and one unmeasured round of each fills them,
so the medians compare warm-cache installs. The raw installer and envsetup take turns at going
first (the second of a pair finds the other's files in the OS cache). Each envsetup run's step times come from its
install log. pip and uv read no configuration of this machine (PIP_CONFIG_FILE=/dev/null,
UV_NO_CONFIG=1): only the served index.
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
from test_install import hermetic_env, make_plan, write_plan  # noqa: E402


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    wanted = sys.argv[2:] or ["pip", "uv"]
    tmp = Path(tempfile.mkdtemp(prefix="envsetup-bench-"))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", f"torch=={TORCH_VERSION}",
                    "--only-binary=:all:", "-d", str(tmp / "idx" / "cpu")], check=True)  # fmt: skip
    uv = find_uv()
    rows = []
    try:
        with IndexServer(tmp / "idx") as server:
            url = server.index("cpu")
            plan = write_plan(
                tmp, make_plan(torch=TORCH_VERSION, variant="cpu", cuda=None, vision=None)
            )
            env = hermetic_env(tmp)
            pins = [f"torch=={TORCH_VERSION}+cpu"]
            for installer in wanted:
                if installer == "uv" and not uv:
                    print("uv: not installed, skipped")
                    continue

                def argvs(raw_py: Path, ours_py: Path, installer: str = installer) -> Any:
                    argv = (
                        [str(raw_py), "-m", "pip", "install", "--index-url", url, *pins]
                        if installer == "pip"
                        else [str(uv), "pip", "install", "--python", str(raw_py), "--index-url",
                              url, *pins]
                    )  # fmt: skip
                    mine = [sys.executable, "-m", "envsetup", "install", "--yes", "--no-verify",
                            "--plan-file", plan, "--python", str(ours_py),
                            "--installer", installer, "--index-url", url]  # fmt: skip
                    return argv, mine

                def steps() -> str:
                    logs = sorted((tmp / "cache" / "envsetup" / "logs").glob("install-*.log"))
                    return ", ".join(ln[8:].split(" (")[0] for ln in logs[-1].read_text()
                                     .splitlines() if ln.startswith("# time: "))  # fmt: skip

                rows.append(turns(tmp, installer, runs, argvs, env, steps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedian of {runs} warm runs, same index, same set ({' '.join(pins)} and its deps):")
    table(rows)
    goals = {"pip": lambda r, o: (o - r) / r <= 0.03, "uv": lambda r, o: o - r <= 0.3}
    said = {"pip": "pip within 3 %", "uv": "warm uv within 0.3 s"}
    for installer, r, o in rows:
        print(f"target {said[installer]}: {'met' if goals[installer](r, o) else 'NOT met'}")


if __name__ == "__main__":
    main()
