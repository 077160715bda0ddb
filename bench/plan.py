"""Median wall time of `envsetup plan --profile FILE` (and `envsetup doctor --json`) before and
after, side by side with the interpreter's own start-up, in one run.

    python bench/plan.py [--before REV] [--runs N]

"before" is the envsetup of a git revision (3efccb1 by default, unpacked with git archive),
"after" this checkout; both run as `python -m envsetup` in this interpreter, from their src/,
so they share the installed dependencies. The profiles: a CPU-only Linux machine, an 8-GPU
H100 server, CPython 3.14.1 asking for torchvision, and a machine no build fits (exit 4).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PROFILES = {
    "cpu-linux-py3.11": {
        "system": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.11.7"},
    },
    "h100x8-driver-565": {
        "system": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.12.4"},
        "nvidia": {
            "driver_version": "565.57.01",
            "gpus": [{"index": i, "compute_capability": "9.0"} for i in range(8)],
        },
    },
    "py3.14.1-vision": {
        "system": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.14.1"},
    },
    "no-fit-driver-418": {
        "system": {"os": "linux", "arch": "x86_64"},
        "python": {"version": "3.11.7"},
        "nvidia": {"driver_version": "418.67", "gpus": [{"index": 0, "compute_capability": "7.0"}]},
    },
}
EXTRA = {"py3.14.1-vision": ["--vision"]}


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child: user + system, exit status)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    rc = subprocess.run(argv, capture_output=True, env=env, check=False).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def timed(sides: dict[str, tuple[list[str], dict[str, str]]], runs: int) -> dict[str, Any]:
    """Median wall and CPU time per side; the sides run interleaved, so that a busy machine
    slows both alike."""
    for argv, env in sides.values():
        subprocess.run(argv, capture_output=True, env=env, check=False)  # warm the caches
    got: dict[str, list[tuple[float, float, int]]] = {k: [] for k in sides}
    for _ in range(runs):
        for k, (argv, env) in sides.items():
            got[k].append(run_once(argv, env))
    return {
        k: (
            statistics.median(w for w, _, _ in v),
            statistics.median(c for _, c, _ in v),
            v[-1][2],
        )
        for k, v in got.items()
    }


def unpack(rev: str, tmp: Path) -> Path:
    dest = tmp / rev
    dest.mkdir()
    arc = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src", "compat"],
        capture_output=True,
        check=True,
    ).stdout
    (tmp / "a.tar").write_bytes(arc)
    with tarfile.open(tmp / "a.tar") as t:
        t.extractall(dest)
    return dest / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--before", default="3efccb1")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith("ENVSETUP_")}
    base["NO_COLOR"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": unpack(args.before, Path(tmp)), "after": ROOT / "src"}
        files = {}
        for name, prof in PROFILES.items():
            files[name] = Path(tmp) / f"{name}.json"
            files[name].write_text(json.dumps(prof))
        py = sys.executable
        raw = timed({"raw": ([py, "-c", "pass"], base)}, args.runs)["raw"]
        print(f"python -c pass: {raw[0] * 1000:.0f} ms wall, {raw[1] * 1000:.0f} ms CPU")
        print(f"median of {args.runs} runs, before and after interleaved; wall / CPU (user+sys)\n")
        print(f"{'command':32} {'before':>17} {'after':>17}")
        rows = [
            (f"plan {n}", ["plan", "--profile", str(f), *EXTRA.get(n, [])])
            for n, f in files.items()
        ]
        rows.append(("doctor --json (this machine)", ["doctor", "--json"]))
        for label, cmd in rows:
            sides = {
                side: ([py, "-m", "envsetup", *cmd], {**base, "PYTHONPATH": str(trees[side])})
                for side in ("before", "after")
            }
            res = timed(sides, args.runs)
            cells = [
                f"{res[s][0] * 1000:4.0f} / {res[s][1] * 1000:3.0f} ms"
                + ("" if res[s][2] in (0, 1) else f" ({res[s][2]})")
                for s in ("before", "after")
            ]
            print(f"{label:32} {cells[0]:>17} {cells[1]:>17}")


if __name__ == "__main__":
    main()
