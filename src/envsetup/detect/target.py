"""The target interpreter and what is installed in it: Python facts, torch and its companions."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from envsetup import proc
from envsetup.profile import Package, Python, Torch, TorchDeep

SCRIPT = Path(__file__).with_name("target_script.py")


def query(python: str, deep: bool = False) -> dict[str, Any]:
    """Run the target script; raises EnvsetupError when the interpreter cannot run it."""
    from envsetup.target import run_script

    args = ("--deep",) if deep else ()
    data: dict[str, Any] = run_script(
        python,
        SCRIPT.read_text(encoding="utf-8"),
        args,
        timeout=120 if deep else 30,
        isolated=False,
    )
    _check_reply(python, data)
    return data


def _check_reply(python: str, data: Any) -> None:
    """The probe's reply has the shape the script prints, or the target is not a Python
    running it (``echo '{}'``): a one-line EnvsetupError, never a KeyError later."""
    from envsetup.errors import EnvsetupError

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise EnvsetupError(
                f"{python} did not answer like a Python interpreter running envsetup's probe "
                f"({what})",
                code="target-failed",
            )

    need(isinstance(data, dict), f"a JSON {type(data).__name__} instead of an object")
    py, env = data.get("python"), data.get("env")
    need(isinstance(py, dict) and isinstance(env, dict), "no 'python' and 'env' sections")
    for key, kind in (("version", str), ("prefix", str), ("externally_managed", bool)):
        need(isinstance(py.get(key), kind), f"python.{key} missing or not a {kind.__name__}")
    for key in ("base_prefix", "system", "machine"):
        need(isinstance(env.get(key), str), f"env.{key} missing or not a string")
    need(isinstance(env.get("paths"), dict), "env.paths is not an object")
    dists = env.get("dists")
    need(
        isinstance(dists, dict)
        and all(isinstance(v, list) and len(v) == 2 for v in dists.values()),
        "env.dists is not a map of [version, dist-info]",
    )
    need(
        isinstance(data.get("distributions", []), list)
        and all(isinstance(d, dict) for d in data.get("distributions", [])),
        "distributions is not a list of objects",
    )
    try:
        build(data, {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        need(False, f"{type(exc).__name__}: {exc}")


def _uv(env: Mapping[str, str]) -> tuple[Optional[str], Optional[str]]:
    uv = shutil.which("uv", path=env.get("PATH"))
    if not uv:
        return None, None
    res = proc.run([uv, "--version"], timeout=10)
    m = re.search(r"uv (\S+)", res.stdout)
    return uv, m.group(1) if m else None


def _conda(env: Mapping[str, str]) -> tuple[Optional[str], Optional[str]]:
    """Find conda without running it (``conda --version`` takes about a second)."""
    exe = env.get("CONDA_EXE") or shutil.which("conda", path=env.get("PATH"))
    if not exe:
        return None, None
    root = Path(exe).resolve().parent.parent
    for meta in sorted((root / "conda-meta").glob("conda-[0-9]*.json")):
        try:
            return exe, str(json.loads(meta.read_text())["version"])
        except (OSError, ValueError, KeyError):
            continue
    return exe, None


def installers(env: Mapping[str, str]) -> dict[str, Optional[str]]:
    """uv and conda as the user's shell would find them."""
    uv_path, uv_version = _uv(env)
    conda_path, conda_version = _conda(env)
    return {
        "uv_path": uv_path,
        "uv_version": uv_version,
        "conda_path": conda_path,
        "conda_version": conda_version,
    }


def build(data: dict[str, Any], tools: Mapping[str, Optional[str]]) -> tuple[Python, Torch]:
    py = dict(data["python"])
    dists = [Package(**d) for d in data.get("distributions", ())]
    pip = next((d.version for d in dists if d.name == "pip"), None)
    python_rec = Python(pip_version=pip, **tools, **py)  # type: ignore[arg-type]

    wanted = [d for d in dists if d.name != "pip"]
    # The first copy on sys.path is the one `import torch` gets; keep one entry per name.
    seen: dict[str, Package] = {}
    for d in wanted:
        seen.setdefault(d.name, d)
    torch_dists = [d for d in dists if d.name == "torch"]
    locations = {d.location for d in torch_dists if d.location}
    locations.update(data.get("torch_dirs", ()))
    duplicates = tuple(sorted(locations)) if len(locations) > 1 else ()
    t = data.get("torch") or {}
    main = seen.get("torch")
    origin = None
    if data.get("conda_torch"):
        origin = "conda"
    elif main is not None:
        origin = main.installer or "unknown"
    deep = None
    if "deep" in data:
        d = data["deep"]
        deep = TorchDeep(
            imported=bool(d.get("imported")),
            error=d.get("error"),
            version=d.get("version"),
            cuda_available=d.get("cuda_available"),
            device_count=d.get("device_count"),
            arch_list=tuple(d.get("arch_list") or ()),
            cudnn_version=d.get("cudnn_version"),
            mps_available=d.get("mps_available"),
        )
    unmet: tuple[str, ...] = ()
    env = data.get("env") or {}
    if env.get("requires") and not data.get("conda_torch"):  # conda checks its own
        from envsetup.detect.requires import unmet as find_unmet

        versions = {str(k): str(v[0]) for k, v in (env.get("dists") or {}).items()}
        unmet = tuple(find_unmet(env["requires"], env.get("markers") or {}, versions))
    unknown = {}
    if not t and main is None:
        unknown["version"] = "torch is not installed in the target interpreter"
    torch_rec = Torch(
        version=str(t.get("__version__"))
        if t.get("__version__")
        else (main.version if main else None),
        cuda=t.get("cuda"),
        hip=t.get("hip"),
        git_version=t.get("git_version"),
        location=t.get("location") or (main.location if main else None),
        origin=origin,
        packages=tuple(seen.values()),
        duplicates=duplicates,
        unmet=unmet,
        deep=deep,
        unknown=unknown,
    )
    return python_rec, torch_rec
