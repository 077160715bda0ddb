"""Does pip find every wheel a plan names? Before (the table and resolver at a git revision,
3efccb1 by default) and after (this checkout), over one set of machines, in one run.

    python bench/plans_installable.py [--before REV] [--jobs N] [--json]

The machines: Linux x86_64 and aarch64 (glibc 2.35), Windows x86_64, macOS arm64 (11.7, 12.7,
14.5) and macOS x86_64 (10.15, 13.6); CPython 3.9.19, 3.10.14, 3.11.7, 3.12.4, 3.13.1,
3.13.2t, 3.14.0, 3.14.1, 3.14.2, 3.14.2t, 3.15.0 and 3.15.0t; with no companion, torchvision,
torchaudio, or both. Linux asks for the package-index build (--variant default); Windows and
macOS are planned as they come (their plans are package-index builds). Each plan served by the
plain package index is checked with

    pip install --dry-run --no-deps --only-binary :all: --python-version X.Y.Z
        --platform P... --implementation cp --abi ... --target T torch==A torchvision==B

against the package index pip uses with no configuration: PIP_CONFIG_FILE=/dev/null and every
other PIP_* variable of this machine removed (this machine's pip has a constraints file, a
wheel directory and extra indexes; a user's does not). Without PEP 658 metadata on the index,
pip reads each wheel to learn its metadata, so this downloads the torch wheels it checks (about
0.1-0.6 GB each, nothing is kept). A plan refused with exit 4 counts as "refused" (with the
fix it names), a plan from the PyTorch index as "PyTorch index" (not checkable here).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent

PYTHONS = [
    "3.9.19", "3.10.14", "3.11.7", "3.12.4", "3.13.1", "3.13.2t",
    "3.14.0", "3.14.1", "3.14.2", "3.14.2t", "3.15.0", "3.15.0t",
]  # fmt: skip
PLATFORMS = [
    ("linux_x86_64", "linux", "x86_64", None),
    ("linux_aarch64", "linux", "aarch64", None),
    ("windows_x86_64", "windows", "x86_64", None),
    ("macos_arm64", "darwin", "arm64", "11.7"),
    ("macos_arm64", "darwin", "arm64", "12.7"),
    ("macos_arm64", "darwin", "arm64", "14.5"),
    ("macos_x86_64", "darwin", "x86_64", "10.15"),
    ("macos_x86_64", "darwin", "x86_64", "13.6"),
]
COMPANIONS = [(False, False), (True, False), (False, True), (True, True)]

RESOLVE = r"""
import json, sys
from envsetup.compat import load_table
from envsetup.errors import EnvsetupError
from envsetup.plan import Request
from envsetup.profile import Profile
from envsetup.resolve import resolve
table = load_table()
for line in sys.stdin:
    m = json.loads(line)
    try:
        p = resolve(Profile.from_dict(m["profile"]), Request(**m["request"]), table)
        out = {"id": m["id"], "pins": p.requirements(), "index_url": p.index_url,
               "local": p.local_version}
    except EnvsetupError as exc:
        out = {"id": m["id"], "error": exc.message, "exit": exc.exit_code}
    print(json.dumps(out), flush=True)
"""


def machines() -> list[dict[str, Any]]:
    out = []
    for key, os_name, arch, macos in PLATFORMS:
        for py in PYTHONS:
            for vision, audio in COMPANIONS:
                with_ = "+".join(n for n, on in (("vision", vision), ("audio", audio)) if on)
                mid = f"{key}{'-macos' + macos if macos else ''}-py{py}" + (
                    f"-{with_}" if with_ else ""
                )
                system: dict[str, Any] = {"os": os_name, "arch": arch}
                if macos:
                    system["macos_version"] = macos
                request: dict[str, Any] = {"vision": vision, "audio": audio}
                if os_name == "linux":
                    request["variant"] = "default"
                out.append(
                    {
                        "id": mid,
                        "platform": key,
                        "macos": macos,
                        "python": py,
                        "profile": {
                            "system": system,
                            "python": {
                                "version": py.rstrip("t"),
                                "free_threaded": py.endswith("t"),
                            },
                        },
                        "request": request,
                    }
                )
    return out


def plans(src: Path, ms: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every machine's plan from the envsetup in ``src`` (a checkout's src/ directory)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    feed = "".join(json.dumps({k: m[k] for k in ("id", "profile", "request")}) + "\n" for m in ms)
    cp = subprocess.run(
        [sys.executable, "-c", RESOLVE], input=feed, capture_output=True, text=True, env=env
    )
    if cp.returncode != 0:
        sys.exit(f"resolving with {src} failed:\n{cp.stderr}")
    return {d["id"]: d for d in map(json.loads, cp.stdout.splitlines())}


def pip_platforms(platform: str, macos: Optional[str]) -> list[str]:
    if platform.startswith("linux"):
        arch = platform.split("_", 1)[1]
        tags = [f"manylinux_2_{n}_{arch}" for n in range(35, 16, -1)]
        return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    if platform == "windows_x86_64":
        return ["win_amd64"]
    major, minor = str(macos).split(".")
    if major == "10":
        return [f"macosx_10_{minor}_{platform.split('_', 1)[1]}"]  # pip adds the older ones
    return [f"macosx_{major}_0_{platform.split('_', 1)[1]}"]


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    if "PIP_CERT" in os.environ:  # the system's CA bundle, not an index setting
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env


def pip_check(key: tuple[Any, ...], target: str) -> tuple[bool, str]:
    pins, platform, macos, python = key
    minor = python.split(".")[1]
    abis = [f"cp3{minor}t", "none"] if python.endswith("t") else [f"cp3{minor}", "abi3", "none"]
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--only-binary", ":all:",
            "--python-version", python.rstrip("t"), "--implementation", "cp",
            "--target", target]  # fmt: skip
    for p in pip_platforms(platform, macos):
        argv += ["--platform", p]
    for a in abis:
        argv += ["--abi", a]
    cp = subprocess.run([*argv, *pins], capture_output=True, text=True, env=pip_env())
    last = (cp.stdout + cp.stderr).strip().splitlines()
    err = [ln for ln in last if ln.startswith("ERROR: No matching") or "Could not find" in ln]
    return cp.returncode == 0, (err[0] if err else (last[-1] if last else ""))


def before_tree(rev: str, tmp: Path) -> Path:
    """The src/ and compat/ of ``rev``, unpacked with git archive (no worktree is added)."""
    dest = tmp / f"envsetup-{rev}"
    dest.mkdir()
    arc = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src", "compat"],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.NamedTemporaryFile(suffix=".tar") as f:
        f.write(arc)
        f.flush()
        with tarfile.open(f.name) as t:
            t.extractall(dest)
    return dest / "src"


def summarize(
    ms: list[dict[str, Any]], got: dict[str, dict[str, Any]], verdict: dict[Any, Any]
) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    bad = []
    for m in ms:
        p = got[m["id"]]
        if "error" in p:
            counts["refused (exit 4)" if p["exit"] == 4 else f"error (exit {p['exit']})"] += 1
            continue
        if p["index_url"]:
            counts["PyTorch index (not checked here)"] += 1
            continue
        results = [verdict[k] for k in _keys(m, p)]
        ok = all(r[0] for r in results)
        why = "; ".join(r[1] for r in results if not r[0])
        counts["package index: pip finds every wheel" if ok else "package index: pip cannot"] += 1
        if not ok:
            bad.append(f"{m['id']}: {' '.join(p['pins'])}: {why}")
    return {"counts": dict(counts), "not_installable": bad}


def _keys(m: dict[str, Any], p: dict[str, Any]) -> list[tuple[Any, ...]]:
    """One pip check per pin: with --no-deps pip judges each requirement on its own wheels, so
    torch==A torchvision==B installs exactly when each of them does (and a torch wheel shared by
    several plans is read once)."""
    return [((pin,), m["platform"], m["macos"], m["python"]) for pin in p["pins"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--before", default="3efccb1", help="git revision for 'before' (3efccb1)")
    ap.add_argument("--jobs", type=int, default=3, help="pip checks run at once (3)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--no-pip", action="store_true", help="plans only, no pip check")
    args = ap.parse_args()
    ms = machines()
    cpu = {  # not counted: what a Linux machine without a GPU gets when it asks for nothing
        "id": "linux-cpu-auto",
        "profile": {"system": {"os": "linux", "arch": "x86_64"}, "python": {"version": "3.11.7"}},
        "request": {},
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        old = plans(before_tree(args.before, Path(tmp)), [*ms, cpu])
        new = plans(ROOT / "src", [*ms, cpu])
        keys = {
            k
            for got in (old, new)
            for m in ms
            for p in [got[m["id"]]]
            if "error" not in p and not p["index_url"]
            for k in _keys(m, p)
        }
        verdict: dict[Any, Any] = {k: (True, "not checked") for k in keys} if args.no_pip else {}
        target = str(Path(tmp) / "target")
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            if args.no_pip:
                keys_todo: set[Any] = set()
            else:
                keys_todo = keys
            futures = {pool.submit(pip_check, k, target): k for k in sorted(keys_todo)}
            for fut in concurrent.futures.as_completed(futures):
                verdict[futures[fut]] = fut.result()
    report = {
        "machines": len(ms),
        "pip_checks": len(keys),
        "seconds": round(time.perf_counter() - start, 1),
        "before": {"revision": args.before, **summarize(ms, old, verdict)},
        "after": {"revision": "this checkout", **summarize(ms, new, verdict)},
        "linux_without_gpu_py3.11": {
            "before": old["linux-cpu-auto"].get("local"),
            "after": new["linux-cpu-auto"].get("local"),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{len(ms)} machine requests, {len(keys)} distinct pip checks (one per pin), "
        f"{report['seconds']} s"
    )
    for side in ("before", "after"):
        r = report[side]
        print(f"\n{side} ({r['revision']}):")
        for k, n in sorted(r["counts"].items()):
            print(f"  {n:4d}  {k}")
        for line in r["not_installable"][:60]:
            print(f"        x {line}")
        if len(r["not_installable"]) > 60:
            print(f"        ... {len(r['not_installable']) - 60} more")
    c = report["linux_without_gpu_py3.11"]
    print(
        f"\nLinux x86_64 without a GPU, Python 3.11.7, plain `plan`: {c['before']} -> {c['after']}"
    )


if __name__ == "__main__":
    main()
