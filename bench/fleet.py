"""Reading and grouping node profiles: 100, 1,000 and 10,000 nodes made from 37 machines.

For each size, side by side in one run (median of the runs): the floor any tool pays (read every
file and parse its JSON, nothing else), envsetup's reading (parse, and check that each node is a
Profile), reading and grouping, and the whole ``envsetup fleet report DIR --json`` command
(start-up, findings for the hand-written profiles, one resolve per distinct machine, the JSON).
Prints the figures; asserts nothing.

    python bench/fleet.py [runs]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from envsetup.fleet.group import group_nodes  # noqa: E402
from envsetup.fleet.nodes import read_inputs  # noqa: E402
from fleet_machines import distinct_machines, write_fleet  # noqa: E402


def raw_floor(directory: Path) -> int:
    n = 0
    for name in sorted(os.listdir(directory)):
        with open(directory / name, "rb") as f:
            json.loads(f.read())
        n += 1
    return n


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_and_group(directory: Path) -> int:
    nodes, _ = read_inputs([str(directory)])
    return len(group_nodes(nodes))


def report_cli(directory: Path) -> None:
    env = dict(os.environ, NO_COLOR="1")
    argv = [sys.executable, "-m", "envsetup", "fleet", "report", str(directory), "--json"]
    subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=False)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    tmp = Path(tempfile.mkdtemp(prefix="envsetup-bench-fleet-"))
    machines = distinct_machines(37)
    print(f"{'nodes':>6} {'groups':>6} {'raw read+parse':>15} {'envsetup read':>14} "
          f"{'read+group':>11} {'per node':>9} {'fleet report --json':>20}")  # fmt: skip
    for n in (100, 1000, 10000):
        d = tmp / str(n)
        write_fleet(d, machines, n)
        size = sum(f.stat().st_size for f in d.iterdir())
        raw = median_time(partial(raw_floor, d), runs)
        read = median_time(partial(read_inputs, [str(d)]), runs)
        both = median_time(partial(read_and_group, d), runs)
        cli = median_time(partial(report_cli, d), runs)
        print(f"{n:>6} {read_and_group(d):>6} {raw:>13.3f} s {read:>12.3f} s {both:>9.3f} s "
              f"{1e6 * both / n:>6.0f} µs {cli:>18.3f} s   ({size / n / 1024:.1f} KiB a node)")  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
