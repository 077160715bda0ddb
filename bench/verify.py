"""Time ``envsetup verify`` on the CPU: --quick, the full run with a cold torch.compile cache,
and the full run again with the cache warm.

    python bench/verify.py [--python PATH]   (default: $ENVSETUP_TEST_TORCH_VENV or this python)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main() -> None:
    from envsetup.target import resolve_python
    from envsetup.verify import run_verify

    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=os.environ.get("ENVSETUP_TEST_TORCH_VENV"))
    args = ap.parse_args()
    python = resolve_python(args.python)
    with tempfile.TemporaryDirectory(prefix="envsetup-bench-") as cache:
        env = {"TORCHINDUCTOR_CACHE_DIR": cache}  # a fresh cache: the first run is cold
        rows = []
        for label, quick in (
            ("verify --quick", True),
            ("verify (full, cold compile cache)", False),
            ("verify (full, warm compile cache)", False),
        ):
            t = time.monotonic()
            report = run_verify(python, device="cpu", quick=quick, env=env)
            wall = time.monotonic() - t
            comp = report.result("compile")
            extra = f"  compile check {comp.seconds:5.1f} s" if comp else ""
            rows.append((label, wall, report.ok, extra))
            if not report.ok:
                bad = [f"{r.name}: {r.detail}" for r in report.results if r.status == "fail"]
                sys.stderr.write("failed: " + "; ".join(bad) + "\n")
    print(f"target: {python} ({os.cpu_count()} CPUs)")
    for label, wall, ok, extra in rows:
        print(f"{label:<36} {wall:6.1f} s  {'ok' if ok else 'FAILED'}{extra}")


if __name__ == "__main__":
    main()
