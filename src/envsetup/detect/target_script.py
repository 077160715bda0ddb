"""Runs INSIDE the target interpreter (any Python >= 3.8), never imported by envsetup.

Prints one JSON document: the interpreter's facts and the torch-related distributions on its
sys.path, read from metadata files. It does not import torch. With the argument ``--deep`` it
also imports torch and asks it what it sees.

The same run answers install's questions (under ``"env"``): every distribution on sys.path
(name, version and ``.dist-info`` directory, read from the directory names the listing already
gives, so it costs nothing more), the installation paths, the platform. doctor and install thus
read the target with one script.
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig

INTERESTING = re.compile(
    r"^(torch|torchvision|torchaudio|triton|pytorch-triton(-rocm|-xpu)?|nvidia-.*|pip|numpy)$"
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _requires_torch(metadata: str) -> str | None:
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            req = line[len("Requires-Dist:") :].strip()
            m = re.match(r"torch\b\s*\(?\s*([^;)]*)", req)
            if m and not req.startswith(("torchvision", "torchaudio")):
                return m.group(1).strip() or "any"
    return None


def _dist_dir(name: str) -> tuple[str, str]:
    """(normalised name, version) from a ``.dist-info``/``.egg-info`` directory name."""
    stem = name.rsplit(".", 1)[0]
    dist, _, rest = stem.partition("-")
    return _norm(dist), rest.split("-", 1)[0]


def distributions(
    paths: list[str], every: dict[str, list[str]] | None = None
) -> tuple[list[dict[str, object]], list[str]]:
    """The torch-related distributions (metadata read), and the torch directories, on ``paths``.

    ``every`` collects all distributions, first one on sys.path wins as for importlib.metadata:
    normalised name -> [version, metadata directory], from the directory names alone."""
    found = []
    torch_dirs = []
    for entry in paths:
        if not os.path.isdir(entry):
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        if os.path.isfile(os.path.join(entry, "torch", "__init__.py")):
            torch_dirs.append(entry)
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            key, version = _dist_dir(name)
            path = os.path.join(entry, name)
            if every is not None and key not in every:
                if not version:  # an egg-info without a version in its name
                    m = re.search(r"^Version:\s*(\S+)", _read(os.path.join(path, "PKG-INFO")), re.M)
                    version = m.group(1) if m else ""
                every[key] = [version, path]
            stem = name.rsplit(".", 1)[0]
            dist, _, version = stem.partition("-")
            if not INTERESTING.match(_norm(dist)):
                continue
            meta = _read(os.path.join(path, "METADATA")) or _read(os.path.join(path, "PKG-INFO"))
            m = re.search(r"^Version:\s*(\S+)", meta, re.M)
            n = re.search(r"^Name:\s*(\S+)", meta, re.M)
            found.append(
                {
                    "name": _norm(n.group(1) if n else dist),
                    "version": m.group(1) if m else version,
                    "location": entry,
                    "installer": _read(os.path.join(path, "INSTALLER")).strip() or None,
                    "requires_torch": _requires_torch(meta),
                }
            )
    return found, torch_dirs


FAMILY = ("torch", "torchvision", "torchaudio")


def requires(every: dict[str, list[str]]) -> dict[str, list[str]]:
    """The ``Requires-Dist`` lines of torch and its companions, and of every installed
    distribution they name, on and on (envsetup evaluates the markers: this reads files only)."""
    out: dict[str, list[str]] = {}
    todo = [n for n in FAMILY if n in every]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        path = every[name][1]
        meta = _read(os.path.join(path, "METADATA")) or _read(os.path.join(path, "PKG-INFO"))
        reqs = []
        for line in meta.splitlines():
            if not line.strip():
                break  # the headers end here; the description follows
            if line.startswith("Requires-Dist:"):
                reqs.append(line[len("Requires-Dist:") :].strip())
        out[name] = reqs
        for req in reqs:
            m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            if m and _norm(m.group(1)) in every:
                todo.append(_norm(m.group(1)))
    return out


def markers() -> dict[str, str]:
    """The environment markers are evaluated against (PEP 508), as ``packaging`` computes them."""
    import platform

    impl = sys.implementation
    v = impl.version
    iver = f"{v.major}.{v.minor}.{v.micro}"
    if impl.version.releaselevel != "final":
        iver += impl.version.releaselevel[0] + str(impl.version.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": iver,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def torch_version_file(entry: str) -> dict[str, object]:
    text = _read(os.path.join(entry, "torch", "version.py"))
    out: dict[str, object] = {}
    for key in ("__version__", "cuda", "hip", "git_version"):
        m = re.search(rf"^{key}\s*(?::\s*[^=]+)?=\s*(.+)$", text, re.M)
        if m:
            value = m.group(1).strip()
            if value[:1] in "'\"":
                out[key] = value.strip("'\"")
            elif value == "None":
                out[key] = None
    return out


def _machine() -> str:
    if hasattr(os, "uname"):
        return os.uname().machine.lower()
    import platform  # Windows: no os.uname

    return platform.machine().lower()


def deep() -> dict[str, object]:
    out: dict[str, object] = {"imported": False}
    try:
        import torch
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["imported"] = True
    out["version"] = str(torch.__version__)
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        out["device_count"] = int(torch.cuda.device_count())
        out["arch_list"] = list(torch.cuda.get_arch_list()) if out["cuda_available"] else []
    except Exception as exc:
        out["error"] = f"torch.cuda: {type(exc).__name__}: {exc}"
    try:
        v = torch.backends.cudnn.version()
        out["cudnn_version"] = int(v) if v is not None else None
    except Exception:
        out["cudnn_version"] = None
    try:
        out["mps_available"] = bool(torch.backends.mps.is_available())
    except Exception:
        out["mps_available"] = None
    return out


def main() -> None:
    # `python -c` puts the working directory first on sys.path: never let it shadow the target.
    sys.path[:] = [p for p in sys.path if p and p != os.getcwd()]
    paths = list(sys.path)
    base_prefix = getattr(sys, "base_prefix", sys.prefix)
    in_venv = sys.prefix != base_prefix
    conda = os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
    scheme = sysconfig.get_paths()
    stdlib = scheme.get("stdlib", "")
    managed = os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED")) and not in_venv
    try:
        import site

        user_site = bool(site.ENABLE_USER_SITE)
    except Exception:
        user_site = False
    every: dict[str, list[str]] = {}
    dists, torch_dirs = distributions(paths, every)
    torch_info: dict[str, object] = {}
    if torch_dirs:
        torch_info = torch_version_file(torch_dirs[0])
        torch_info["location"] = torch_dirs[0]
    conda_torch = conda and any(
        n.startswith("pytorch-") and n.endswith(".json")
        for n in os.listdir(os.path.join(sys.prefix, "conda-meta"))
    )
    out = {
        "python": {
            "executable": sys.executable,
            "version": "{}.{}.{}".format(*sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "bits": 64 if sys.maxsize > 2**32 else 32,
            "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            "prefix": sys.prefix,
            "virtualenv": sys.prefix if in_venv else None,
            "conda_env": sys.prefix if conda else None,
            "externally_managed": managed,
            "user_site_enabled": user_site,
        },
        "distributions": dists,
        "torch_dirs": torch_dirs,
        "torch": torch_info,
        "conda_torch": conda_torch,
        "env": {
            "base_prefix": base_prefix,
            "paths": {
                k: scheme.get(k) for k in ("purelib", "platlib", "scripts", "data", "include")
            },
            "system": {"win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform),
            "machine": _machine(),
            "dists": every,
        },
    }
    family = requires(every)
    env = out["env"]
    if family and isinstance(env, dict):  # torch or a companion: what they need, to check it
        env["requires"] = family
        env["markers"] = markers()
    if "--deep" in sys.argv:
        out["deep"] = deep()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
