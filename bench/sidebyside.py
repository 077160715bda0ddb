"""The side-by-side loop the install benches share: a fresh venv for the raw tool and one for
envsetup each round, the two taking turns at going first, round 0 unmeasured (it fills the
caches), medians of the rest, and the table they print."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from conftest import make_venv

Argvs = Callable[[Path, Path], "tuple[list[str], list[str]]"]  # (raw python, ours) -> argvs


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def turns(
    tmp: Path,
    name: str,
    runs: int,
    argvs: Argvs,
    env: dict[str, str],
    detail: Optional[Callable[[], str]] = None,
) -> tuple[str, float, float]:
    """Median seconds of the raw tool and of envsetup over ``runs`` warm rounds."""
    raw, ours = [], []
    for i in range(runs + 1):
        raw_dir, ours_dir = tmp / f"raw-{name}-{i}", tmp / f"ours-{name}-{i}"
        argv, mine = argvs(make_venv(raw_dir), make_venv(ours_dir))
        if i % 2:
            r, o = timed(argv, env), timed(mine, env)
        else:
            o, r = timed(mine, env), timed(argv, env)
        label = "warm-up" if i == 0 else f"run {i}"
        extra = f" [{detail()}]" if detail else ""
        print(f"  {name} {label}: raw {r:.2f} s, envsetup {o:.2f} s{extra}", flush=True)
        if i:
            raw.append(r)
            ours.append(o)
        shutil.rmtree(raw_dir, ignore_errors=True)
        shutil.rmtree(ours_dir, ignore_errors=True)
    return name, statistics.median(raw), statistics.median(ours)


def table(rows: list[tuple[str, float, float]]) -> None:
    print(f"{'installer':<10} {'raw':>9} {'envsetup':>10} {'overhead':>20}")
    for name, r, o in rows:
        print(f"{name:<10} {r:>7.2f} s {o:>8.2f} s {o - r:>+9.2f} s ({(o - r) / r * 100:+5.1f} %)")
