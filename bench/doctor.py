"""Median wall time of `envsetup doctor --json` vs `python -m torch.utils.collect_env`.

Both run in the same virtual environment (CPU torch installed, envsetup installed from this
checkout), each N times after one warm-up run. Usage:

    python bench/doctor.py [--venv DIR] [--runs N]

Without --venv a venv is made in a temporary directory (torch==2.13.0 comes from this
machine's pip without a download) and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], runs: int) -> tuple[float, list[float], str]:
    subprocess.run(argv, capture_output=True, check=False)  # warm the file cache
    times = []
    out = ""
    for _ in range(runs):
        start = time.perf_counter()
        cp = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        out = cp.stdout
    return statistics.median(times), times, out


def prepare(path: Path) -> Path:
    py = path / "bin" / "python"
    if not py.exists():
        venv.EnvBuilder(with_pip=True).create(path)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0", str(ROOT)], check=True)
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        py = prepare(args.venv or Path(tmp) / "venv")
        envsetup = str(py.parent / "envsetup")
        d_med, d_all, d_out = timed([envsetup, "doctor", "--json"], args.runs)
        c_med, c_all, c_out = timed(
            [str(py), "-m", "torch.utils.collect_env"], max(3, args.runs // 3)
        )
    doc = json.loads(d_out)
    fields = sum(1 for _ in _leaves(doc["profile"]))
    print(f"envsetup doctor --json          median {d_med * 1000:7.1f} ms  "
          f"(min {min(d_all) * 1000:.1f}, max {max(d_all) * 1000:.1f}, n={len(d_all)})")  # fmt: skip
    print(f"python -m torch.utils.collect_env median {c_med * 1000:7.1f} ms  "
          f"(min {min(c_all) * 1000:.1f}, max {max(c_all) * 1000:.1f}, n={len(c_all)})")  # fmt: skip
    print(f"ratio (collect_env / doctor)     {c_med / d_med:5.1f}x")
    print(
        f"doctor reports {fields} profile fields and {len(doc['findings'])} finding(s); "
        f"collect_env prints {len([ln for ln in c_out.splitlines() if ':' in ln])} 'key: value' lines"
    )
    print(
        f"target: doctor <= 400 ms median and >= 5x faster: "
        f"{'met' if d_med <= 0.4 and c_med / d_med >= 5 else 'NOT met'}"
    )


def _leaves(obj: object):  # type: ignore[no-untyped-def]
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


if __name__ == "__main__":
    sys.exit(main())
