"""The stack resolve: envsetup (uv) against the raw resolvers, uv's and pip's (the previous path).

Loopback (default): serves the stack tests' indexes (tests/stackindex.py: a PyTorch-like and a
package-like one) on 127.0.0.1 and times, side by side, for a CPU machine (torch 2.4.1 and libeq,
libge, libnp): ``envsetup.stack.resolve_stack`` (uv), and the raw tools resolving the same set
(``uv pip compile``, and ``pip install --dry-run --report``, the resolver envsetup used where uv
was absent before it depended on uv), with the exact torch pin and the variant index as an extra
index. Warm caches (uv's is the bench's own). Prints the figures.

``--real PKG PROFILE``: once each, against the default index (the network): envsetup's
``plan PKG --variant default --profile PROFILE`` (uv, PATH without uv), then the pip resolve of
the same set (the previous path: ``pip install --dry-run --ignore-installed --report``, with
this interpreter, so PROFILE should be of this machine's Python).

    python bench/stack_resolve.py [runs]
    python bench/stack_resolve.py --real vllm H100.json
"""

from __future__ import annotations

import json
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


def isolate(tmp: Path) -> None:
    for k in list(os.environ):
        if k.startswith(("PIP_", "UV_")):
            del os.environ[k]
    os.environ["PIP_CONFIG_FILE"] = os.devnull  # none of this machine's pip configuration
    os.environ["UV_NO_CONFIG"] = "1"
    os.environ["UV_CACHE_DIR"] = str(tmp / "uv-cache")


def timed(argv: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    cp = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start, cp


def loopback(runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="envsetup-bench-stack-"))
    isolate(tmp)
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
            "uv pip compile": [uv, "pip", "compile", "--python", py, "--quiet", *idx,
                               "--index-strategy", "unsafe-best-match", str(raw_reqs)],
            "pip --dry-run (before)": [py, "-m", "pip", "install", "--dry-run",
                                       "--ignore-installed", "--quiet", "--report",
                                       str(tmp / "r.json"), *idx, "-r", str(raw_reqs)],
        }  # fmt: skip

        def envsetup() -> None:
            resolve_stack(prof, req, table, user, python=py, default_index=s.simple)

        envsetup()  # warm the caches
        for argv in raw.values():
            subprocess.run(argv, check=True, capture_output=True)
        times: dict[str, list[float]] = {"envsetup (uv)": [], **{k: [] for k in raw}}
        for _ in range(runs):
            start = time.perf_counter()
            envsetup()
            times["envsetup (uv)"].append(time.perf_counter() - start)
            for k, argv in raw.items():
                times[k].append(timed(argv, check=True)[0])
    print(f"{runs} runs each, median wall time (s); {len(REQS)} libraries + torch 2.4.1+cpu, "
          "loopback indexes")  # fmt: skip
    for k, ts in times.items():
        print(f"  {k:24} {statistics.median(ts):7.2f}")


def real(pkg: str, profile: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="envsetup-bench-real-"))
    isolate(tmp)
    bindir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bindir)
    env = {**os.environ, "PATH": path}
    argv = [sys.executable, "-m", "envsetup", "plan", pkg, "--variant", "default", "--profile",
            profile, "--json"]  # fmt: skip
    t_env, cp = timed(argv, env=env)
    if cp.returncode != 0:
        sys.exit(f"envsetup plan failed: {cp.stderr[-2000:]}")
    doc = json.loads(cp.stdout)
    pins = [f"{p['name']}=={p['version']}" for p in doc["stack"]["packages"]
            if p["name"] in ("torch", "torchvision", "torchaudio")]  # fmt: skip
    print(f"{pkg} for {profile} against the default index (cold uv cache), once each:")
    print(f"  envsetup plan (uv, no uv on PATH) {t_env:8.1f} s  {len(doc['stack']['packages'])} "
          "packages")  # fmt: skip
    raw = tmp / "raw.in"
    raw.write_text("\n".join([*pins, pkg]) + "\n")
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(tmp / "r.json"), "-r", str(raw)]  # fmt: skip
    t_pip, cp = timed(pip, env=env, timeout=1800)
    n = len(json.loads((tmp / "r.json").read_text())["install"]) if cp.returncode == 0 else 0
    state = f"{n} packages" if cp.returncode == 0 else f"failed: {cp.stderr.strip()[-300:]}"
    print(f"  pip --dry-run --report (before)   {t_pip:8.1f} s  {state}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--real":
        real(sys.argv[2], sys.argv[3])
    else:
        loopback(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
