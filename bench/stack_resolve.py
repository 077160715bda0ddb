"""The stack resolve's cost over the raw resolver, on the same loopback indexes.

Serves the stack tests' indexes (tests/stackindex.py: a PyTorch-like and a package-like one) on
127.0.0.1 and times, side by side: ``envsetup.stack.resolve_stack`` with uv and with pip for a
CPU machine (torch 2.4.1 and libeq, libge, libnp), and the raw tool resolving the same set
(``uv pip compile`` / ``pip install --dry-run --report`` with the exact torch pin and the variant
index as an extra index). Warm caches (uv's is shared by all runs). Prints the figures.

    python bench/stack_resolve.py [runs]
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

from envsetup.compat import load_table  # noqa: E402
from envsetup.install.backends.uv import find_uv  # noqa: E402
from envsetup.plan import Request  # noqa: E402
from envsetup.profile import Profile  # noqa: E402
from envsetup.stack import read_requirements, resolve_stack  # noqa: E402
from stackindex import FROZEN, StackIndex, build_indexes  # noqa: E402

REQS = ["libeq", "libge", "libnp"]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tmp = Path(tempfile.mkdtemp(prefix="envsetup-bench-stack-"))
    for k in list(os.environ):
        if k.startswith(("PIP_", "UV_")):
            del os.environ[k]
    os.environ["PIP_CONFIG_FILE"] = os.devnull  # none of this machine's pip configuration
    os.environ["UV_CACHE_DIR"] = str(tmp / "uv-cache")
    uv = find_uv()
    assert uv is not None
    py = sys.executable
    v = ".".join(map(str, sys.version_info[:3]))
    prof = Profile.from_dict({"system": {"os": "linux", "arch": "x86_64"},
                              "python": {"version": v, "executable": py}})  # fmt: skip
    table = load_table(FROZEN)
    user = read_requirements(REQS)
    with StackIndex(build_indexes(tmp / "root")) as s:
        req = Request(torch="2.4.1", index_base=s.whl)
        raw_reqs = tmp / "raw.in"
        raw_reqs.write_text("\n".join(["torch==2.4.1+cpu", *REQS]) + "\n")
        idx = ["--index-url", s.simple, "--extra-index-url", f"{s.whl}/cpu"]
        raw = {
            "uv": [uv, "pip", "compile", "--python", py, "--quiet", *idx,
                   "--index-strategy", "unsafe-best-match", str(raw_reqs)],
            "pip": [py, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                    "--report", str(tmp / "r.json"), *idx, "-r", str(raw_reqs)],
        }  # fmt: skip
        print(f"{runs} runs each, median wall time (s); {len(REQS)} libraries + torch 2.4.1+cpu")
        print(f"{'resolver':8} {'raw':>8} {'envsetup':>9} {'overhead':>9}")
        for tool in ("uv", "pip"):
            subprocess.run(raw[tool], check=True, capture_output=True)  # warm the caches
            resolve_stack(prof, req, table, user, python=py, resolver=tool,
                          default_index=s.simple)  # fmt: skip
            t_raw, t_env = [], []
            for _ in range(runs):
                start = time.perf_counter()
                subprocess.run(raw[tool], check=True, capture_output=True)
                t_raw.append(time.perf_counter() - start)
                start = time.perf_counter()
                resolve_stack(prof, req, table, user, python=py, resolver=tool,
                              default_index=s.simple)  # fmt: skip
                t_env.append(time.perf_counter() - start)
            a, b = statistics.median(t_raw), statistics.median(t_env)
            print(f"{tool:8} {a:8.2f} {b:9.2f} {b - a:+9.2f}")


if __name__ == "__main__":
    main()
