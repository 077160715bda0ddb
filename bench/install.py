"""envsetup install's overhead over the raw installer, on the same local index and wheels.

Serves the real CPU torch wheel and its dependencies on 127.0.0.1, then for pip and for uv
times, in a fresh venv each run: the raw ``install --index-url`` and ``envsetup install --yes
--no-verify --plan-file``. Prints the figures; asserts nothing.

    python bench/install.py [runs]

The pip and uv caches are shared by all runs (the first raw run fills them), so the medians
compare warm-cache installs. Each envsetup run's step times come from its install log.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from conftest import TORCH_VERSION, make_venv  # noqa: E402
from envsetup.install.backends import find_uv  # noqa: E402
from indexserver import IndexServer  # noqa: E402
from test_install import hermetic_env, make_plan, write_plan  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    tmp = Path(tempfile.mkdtemp(prefix="envsetup-bench-"))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", f"torch=={TORCH_VERSION}",
                    "--only-binary=:all:", "-d", str(tmp / "idx" / "cpu")], check=True)  # fmt: skip
    uv = find_uv()
    with IndexServer(tmp / "idx") as server:
        url = server.index("cpu")
        plan = write_plan(
            tmp, make_plan(torch=TORCH_VERSION, variant="cpu", cuda=None, vision=None)
        )
        env = hermetic_env(tmp)
        print(f"default installer: {'uv' if uv else 'pip'} (uv {'found' if uv else 'absent'})")
        for installer in ("pip", "uv"):
            if installer == "uv" and not uv:
                continue
            raw, ours = [], []
            for i in range(runs):
                py = make_venv(tmp / f"raw-{installer}-{i}")
                argv = (
                    [str(py), "-m", "pip", "install", "--index-url", url, f"torch=={TORCH_VERSION}"]
                    if installer == "pip"
                    else [
                        uv,
                        "pip",
                        "install",
                        "--python",
                        str(py),
                        "--index-url",
                        url,
                        f"torch=={TORCH_VERSION}",
                    ]
                )
                raw.append(timed(argv, env))
                py = make_venv(tmp / f"ours-{installer}-{i}")
                ours.append(timed([sys.executable, "-m", "envsetup", "install", "--yes", "--no-verify",
                                   "--plan-file", plan, "--python", str(py),
                                   "--installer", installer, "--index-url", url], env))  # fmt: skip
                logs = sorted((tmp / "cache" / "envsetup" / "logs").glob("install-*.log"))
                steps = [ln[8:].split(" (")[0] for ln in logs[-1].read_text().splitlines()
                         if ln.startswith("# time: ")]  # fmt: skip
                print(f"  {installer} run {i}: raw {raw[-1]:.2f} s, envsetup {ours[-1]:.2f} s "
                      f"[{', '.join(steps)}]", flush=True)  # fmt: skip
            r, o = statistics.median(raw), statistics.median(ours)
            print(f"{installer}: raw {r:.2f} s, envsetup {o:.2f} s, overhead {o - r:+.2f} s "
                  f"({(o - r) / r * 100:+.1f} %), median of {runs}")  # fmt: skip
    os.system(f"rm -rf {tmp}")


if __name__ == "__main__":
    main()
