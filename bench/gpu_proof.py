"""The GPU proof in one command, for a machine with an NVIDIA GPU, a CUDA torch and no network.

Beforehand, on a machine with network, make a wheelhouse of envsetup and everything it needs
for the GPU machine's Python (default: 3.12 on manylinux x86_64):

    python3 bench/gpu_proof.py wheelhouse DIR [--python-version 3.12]
    (or: python3 -m nox -s wheelhouse -- DIR)

Then, on the GPU machine, with the torch to prove already installed in PYTHON:

    python3 bench/gpu_proof.py run DIR [--python PYTHON] [--out OUTDIR]
    (or: python3 -m nox -s gpu -- DIR)

It installs envsetup from DIR alone into a fresh venv (``--no-index``), then runs doctor, plan,
verify (full) and ``verify --bench`` against PYTHON and prints what each said, with the
figures. Only the standard library is used here, so it runs before envsetup is installed.
Exit 0 when every step answered and verify passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = [  # what pip accepts for a current x86_64 Linux
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
    "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64",
]  # fmt: skip


def wheelhouse(dest: Path, python_version: str) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}  # the default index, nothing local
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), str(ROOT)],
        check=True, env=env,
    )  # fmt: skip
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    wheel = next(dest.glob("envsetup-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-d", str(dest),
         "--python-version", python_version, "--implementation", "cp", *plat, str(wheel)],
        check=True, env=env,
    )  # fmt: skip
    print(f"wheelhouse {dest}: {len(list(dest.glob('*.whl')))} wheels for Python {python_version}")
    return 0


def _run(argv: list[str], timeout: float) -> tuple[int, str, str, float]:
    t = time.monotonic()
    try:
        cp = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "100"},
        )  # fmt: skip
        return cp.returncode, cp.stdout, cp.stderr, time.monotonic() - t
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout:g} s", time.monotonic() - t


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def proof(house: Path, python: str, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="envsetup-gpu-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=True).create(env_dir)
        py = str(env_dir / "bin" / "python")
        rc, _, err, secs = _run(
            [py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(house),
             "--disable-pip-version-check", "envsetup"], 600,
        )  # fmt: skip
        print(f"install envsetup from {house}: exit {rc} in {secs:.1f} s")
        if rc != 0:
            print(err.strip()[-2000:])
            return 1
        es = [py, "-m", "envsetup"]
        steps = [
            ("doctor", [*es, "doctor", "--python", python, "--deep"], 300),
            ("doctor-json", [*es, "doctor", "--python", python, "--json"], 300),
            ("plan", [*es, "plan", "--python", python, "--vision", "--audio", "--json"], 120),
            ("verify", [*es, "verify", "--python", python, "--json"], 600),
            ("verify-bench", [*es, "verify", "--python", python, "--bench", "--json"], 600),
        ]
        ok = True
        for name, argv, limit in steps:
            rc, stdout, stderr, secs = _run(argv, limit)
            (out / f"{name}.txt").write_text(stdout + ("\n--- stderr\n" + stderr if stderr else ""))
            print(f"\n== envsetup {' '.join(argv[3:])}: exit {rc} in {secs:.1f} s")
            doc = _json(stdout)
            if name == "doctor":
                print(stdout.strip())
            elif name == "doctor-json" and doc:
                nv = doc["profile"]["nvidia"]
                gpus = ", ".join(f"{g['name']} (cc {g['compute_capability']})" for g in nv["gpus"])
                print(f"driver {nv['driver_version']}, GPUs: {gpus or 'none'}")
                print(
                    "findings: "
                    + ", ".join(f"{f['severity']}:{f['code']}" for f in doc["findings"])
                )
            elif name == "plan":
                plan = (doc or {}).get("plan") or {}
                print(f"plan: {' '.join(plan.get('requirements', []))} ({plan.get('variant')}), "
                      f"torch.__version__ {plan.get('local_version')}")  # fmt: skip
                for why in plan.get("why", [])[:4]:
                    print(f"  - {why}")
                if doc and doc.get("error"):
                    print(f"  no plan: {doc['error']}")
            elif doc:
                for r in doc.get("checks", []):
                    print(f"  {r['status']:>4} {r['name']:<12} {r.get('seconds') or 0:6.1f}s  "
                          f"{r.get('detail', '')}")  # fmt: skip
                    if r["name"] == "bench" and r.get("data"):
                        print("  bench figures: " + json.dumps(r["data"]))
                print(f"  device {doc.get('device')}: {doc.get('summary')}")
                ok = ok and rc == 0
            else:
                print(stderr.strip()[-1500:])
                ok = ok and name in ("doctor",)  # doctor exits 1 when it finds an error
    print(f"\nGPU proof: {'passed' if ok else 'FAILED'} (outputs in {out})")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wheelhouse", help="make the wheelhouse (needs network)")
    w.add_argument("dir", type=Path)
    w.add_argument("--python-version", default="3.12")
    r = sub.add_parser("run", help="run the proof on the GPU machine (no network)")
    r.add_argument("dir", type=Path)
    r.add_argument("--python", default="python3", help="the interpreter holding the torch")
    r.add_argument("--out", type=Path, default=Path("gpu-proof"))
    args = ap.parse_args()
    if args.cmd == "wheelhouse":
        return wheelhouse(args.dir, args.python_version)
    return proof(args.dir, args.python, args.out)


if __name__ == "__main__":
    sys.exit(main())
