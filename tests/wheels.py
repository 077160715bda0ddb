"""Build small, real wheel files for tests (PEP 427 layout with METADATA, WHEEL and RECORD)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path
from typing import Optional


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    files: Optional[dict[str, str]] = None,
    requires: tuple[str, ...] = (),
    tag: str = "py3-none-any",
) -> Path:
    """Write ``{name}-{version}-{tag}.whl`` into ``out_dir`` and return its path."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    content = dict(files or {})
    content[f"{info}/METADATA"] = "\n".join(meta) + "\n"
    content[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: envsetup-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    )
    record = []
    for path, text in content.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    content[f"{info}/RECORD"] = "\n".join(record) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in content.items():
            zf.writestr(path, text)
    return wheel


def fake_torch_files(version: str, cuda: Optional[str]) -> dict[str, str]:
    """A torch package whose version.py says what a real build's would."""
    return {
        "torch/__init__.py": "from .version import __version__\n",
        "torch/version.py": (
            f"__version__ = '{version}'\ndebug = False\n"
            f"cuda: Optional[str] = {cuda!r}\nhip: Optional[str] = None\n"
            "git_version = '0000000000000000000000000000000000000000'\n"
        ),
    }
