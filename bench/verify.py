"""Time ``envsetup verify`` on the CPU: --quick, the full run with a cold torch.compile cache,
and the full run again with the cache warm; then the workload (``verify --quick --workload``),
cold and warm, with its samples per second, its first (compiling) step and its loss.

    python bench/verify.py [--python PATH] [--workload-python PATH ...]

--python defaults to $ENVSETUP_TEST_TORCH_VENV or this python (torch alone: the CNN workload);
--workload-python adds a target to time the workload on (one with transformers and datasets
runs the BERT-like fine-tune), $ENVSETUP_TEST_HF_VENV when it is set.
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
    ap.add_argument("--workload-python", action="append", default=[])
    args = ap.parse_args()
    python = resolve_python(args.python)
    targets = [python] + [resolve_python(p) for p in args.workload_python]
    if not args.workload_python and os.environ.get("ENVSETUP_TEST_HF_VENV"):
        targets.append(resolve_python(os.environ["ENVSETUP_TEST_HF_VENV"]))
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
    for target in targets:
        workload(target)


def workload(python: str) -> None:
    """The workload on ``python``, with a cold compile cache and again warm."""
    from envsetup.verify import run_verify

    print(f"\nworkload (verify --quick --workload): {python}")
    with tempfile.TemporaryDirectory(prefix="envsetup-bench-") as cache:
        env = {"TORCHINDUCTOR_CACHE_DIR": cache}
        for label in ("cold compile cache", "warm compile cache"):
            t = time.monotonic()
            report = run_verify(python, device="cpu", quick=True, workload=True, env=env)
            wall = time.monotonic() - t
            w = report.result("workload")
            if w is None or w.status != "pass":
                sys.stderr.write(f"workload failed: {w.detail if w else 'not run'}\n")
                continue
            d = w.data
            print(
                f"  {label:<20} {d['model']}: {d['samples_per_s']:7.0f} samples/s, "
                f"workload {d['seconds']:5.1f} s (first step {d['first_step_s']:4.1f} s), "
                f"{d['steps']} steps, loss {d['loss_first']:.3f} -> {d['loss_last']:.3f}, "
                f"peak {d['peak_memory_mib']:.0f} MiB; verify wall {wall:5.1f} s"
            )


if __name__ == "__main__":
    main()
