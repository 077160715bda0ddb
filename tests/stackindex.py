"""Two real indexes on 127.0.0.1 for the stack tests: a package-index-like one (``/simple/``)
and a PyTorch-index-like one (``/whl/<variant>/``), both PEP 503 with PEP 658 metadata and
Requires-Python, serving the wheels and sdists the tests build here.

Layout on disk: ``root/simple/*.whl|*.tar.gz`` and ``root/whl/<variant>/*.whl``. A project page
is ``/simple/<project>/`` or ``/whl/<variant>/<project>/``; files are served under
``/files/<same dir>/<file>`` and each file's metadata at ``<file URL>.metadata``.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import quote, unquote

from indexserver import build_wheel

FROZEN = Path(__file__).parent / "fixtures" / "table"  # the tests' frozen copy of compat/
CPU_MACHINE = {"system": {"os": "linux", "arch": "x86_64"}}
RTX5090_MACHINE = {
    **CPU_MACHINE,
    "nvidia": {
        "driver_version": "570.124.06",
        "gpus": [{"name": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}],
    },
}


def newest_build(machine: dict[str, object]) -> str:
    return _newest(machine)[0]


def _newest(machine: dict[str, object]) -> tuple[str, Optional[str]]:
    """The local version the frozen table plans for ``machine`` on this Python (what a request
    without --torch resolves to, so the loopback index must serve it)."""
    import sys

    from envsetup.compat import load_table
    from envsetup.plan import Request
    from envsetup.profile import Profile
    from envsetup.resolve import resolve

    v = ".".join(map(str, sys.version_info[:3]))
    prof = Profile.from_dict({**machine, "python": {"version": v}})
    plan = resolve(prof, Request(), load_table(FROZEN))
    return plan.local_version or plan.torch, plan.cuda


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return _norm(filename.split("-")[0])
    return _norm(re.sub(r"-[0-9][^-]*\.(tar\.gz|zip)$", "", filename))


def _metadata(path: Path) -> Optional[bytes]:
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA"):
                    return zf.read(n)
        return None
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"):
                f = tf.extractfile(m)
                return f.read() if f else None
    return None


def library(
    dest: Path,
    name: str,
    version: str,
    requires: Iterable[str] = (),
    *,
    requires_python: Optional[str] = None,
) -> Path:
    """A tiny pure-Python library wheel: ``import NAME`` gives ``__version__``."""
    mod = re.sub(r"[-.]+", "_", name)
    files = {f"{mod}/__init__.py": f"__version__ = {version!r}\n".encode()}
    path = build_wheel(dest, name, version, requires=list(requires), files=files)
    if requires_python:  # add Requires-Python to METADATA (build_wheel writes none)
        _rewrite_metadata(path, f"Requires-Python: {requires_python}\n")
    return path


def _rewrite_metadata(path: Path, extra: str) -> None:
    import base64

    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    meta = next(n for n in entries if n.endswith(".dist-info/METADATA"))
    entries[meta] = entries[meta].replace(b"\n", b"\n" + extra.encode(), 1)
    rec = next(n for n in entries if n.endswith(".dist-info/RECORD"))
    lines = []
    for n, data in entries.items():
        if n == rec:
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{n},sha256={digest},{len(data)}")
    entries[rec] = ("\n".join([*lines, f"{rec},,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in entries.items():
            zf.writestr(n, data)


# An in-tree PEP 517 backend (no build requirements) for the source-only extension: its wheel
# records the torch it was built against, which it imports as an extension build does (an
# isolated build has no torch to import, so it fails there).
BACKEND = """
import base64, hashlib, os, zipfile

NAME, VERSION = {name!r}, {version!r}
DIST = NAME.replace("-", "_")
META = {meta!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, f"{{DIST}}-{{VERSION}}.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(META)
    return os.path.basename(info)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import torch

    info = f"{{DIST}}-{{VERSION}}.dist-info"
    files = {{
        f"{{DIST}}/__init__.py": f"BUILT_WITH_TORCH = {{torch.__version__!r}}\\n".encode(),
        f"{{info}}/METADATA": META.encode(),
        f"{{info}}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: envsetup-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = []
    for arc, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{arc}},sha256={{digest}},{{len(data)}}")
    record.append(f"{{info}}/RECORD,,")
    files[f"{{info}}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = f"{{DIST}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for arc, data in files.items():
            zf.writestr(arc, data)
    return name
"""


def sdist(dest: Path, name: str, version: str, requires: Iterable[str] = ()) -> Path:
    """A source-only distribution whose PKG-INFO is static (Metadata 2.2, nothing dynamic), as
    an extension that compiles against torch at install time publishes it; built by an in-tree
    backend that imports torch (BACKEND)."""
    dest.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name)
    base = f"{dist}-{version}"
    meta = f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    pyproject = (
        '[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
    )
    backend = BACKEND.format(name=name, version=version, meta=meta)
    path = dest / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for arc, data in (
            ("PKG-INFO", meta),
            ("pyproject.toml", pyproject),
            ("_backend.py", backend),
        ):
            raw = data.encode()
            info = tarfile.TarInfo(f"{base}/{arc}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


class StackIndex:
    """Serve ``root/simple`` as a package index and ``root/whl/<variant>`` as PyTorch-index
    variants, with PEP 658 metadata; counts the requests it answers."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                server._get(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def simple(self) -> str:
        """The package-index-like index URL."""
        return f"{self.url}/simple"

    @property
    def whl(self) -> str:
        """The PyTorch-index-like base URL (a variant is ``<whl>/<variant>``)."""
        return f"{self.url}/whl"

    def __enter__(self) -> StackIndex:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        path = unquote(h.path.split("?", 1)[0].split("#", 1)[0])
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["files"] and len(parts) >= 3:
            want_meta = parts[-1].endswith(".metadata")
            name = parts[-1][: -len(".metadata")] if want_meta else parts[-1]
            file = self.root.joinpath(*parts[1:-1], name)
            if not file.is_file():
                return self._send(h, 404, b"not found\n", "text/plain")
            if want_meta:
                meta = _metadata(file)
                if meta is None:
                    return self._send(h, 404, b"no metadata\n", "text/plain")
                return self._send(h, 200, meta, "text/plain")
            return self._send(h, 200, file.read_bytes(), "application/octet-stream")
        if len(parts) >= 2 and parts[0] in ("simple", "whl"):
            where, project = parts[:-1], parts[-1]
            folder = self.root.joinpath(*where)
            links = []
            for f in sorted(folder.glob("*")) if folder.is_dir() else []:
                if not f.is_file() or _project_of(f.name) != _norm(project):
                    continue
                sha = hashlib.sha256(f.read_bytes()).hexdigest()
                href = "/files/" + "/".join(where) + "/" + quote(f.name) + f"#sha256={sha}"
                attrs = f'href="{html.escape(href)}"'
                meta = _metadata(f)
                if meta is not None:
                    digest = hashlib.sha256(meta).hexdigest()
                    attrs += f' data-dist-info-metadata="sha256={digest}"'
                    attrs += f' data-core-metadata="sha256={digest}"'
                    m = re.search(rb"^Requires-Python: (.+)$", meta, re.M)
                    if m:
                        attrs += f' data-requires-python="{html.escape(m.group(1).decode())}"'
                links.append(f"<a {attrs}>{html.escape(f.name)}</a><br/>")
            if not links:
                return self._send(h, 404, b"no such project\n", "text/plain")
            body = "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
            return self._send(h, 200, body.encode(), "text/html")
        return self._send(h, 404, b"not found\n", "text/plain")


def torch_build(dest: Path, version: str, cuda: Optional[str], tag: str = "py3-none-any") -> Path:
    """A tiny torch wheel (``import torch`` gives ``__version__`` and ``version.cuda``) with the
    given wheel tag, as a PyTorch index lists one file per Python and platform."""
    files = {
        "torch/__init__.py": b"from torch import version\n__version__ = version.__version__\n",
        "torch/version.py": f"__version__ = {version!r}\ncuda = {cuda!r}\n".encode(),
    }
    return build_wheel(dest, "torch", version, files=files, tag=tag)


def companion(dest: Path, name: str, version: str, torch: str) -> Path:
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n".encode()}
    return build_wheel(dest, name, version, requires=[f"torch=={torch}"], files=files)


def build_indexes(root: Path) -> Path:
    """The two indexes of the stack tests.

    PyTorch-like (``whl/``): torch 2.4.1 as ``+cpu`` and ``+cu121`` (a cp311 and a cp312 wheel
    of each, for the tag choice), torchvision 0.19.1 for both, torch 2.7.0+cu128.
    Package-like (``simple/``): the trap (a plain torch 2.4.1, a newer plain 2.5.1, torch 2.6.0
    and a plain torchvision 0.19.1), libeq (torch==2.4.1), libge (torch>=2.0), libnp (numpy),
    libx 1.2 (torch==2.6.0) and 1.3 (torch>=2.7), wrapx (libx==1.2), wrapeq (libeq), libvis
    (torchvision),
    and ext, a source-only extension that needs torch.
    """
    whl, simple = root / "whl", root / "simple"
    for variant, cuda in (("cpu", None), ("cu121", "12.1")):
        for py in ("cp311", "cp312"):
            torch_build(whl / variant, f"2.4.1+{variant}", cuda, f"{py}-{py}-linux_x86_64")
        companion(whl / variant, "torchvision", f"0.19.1+{variant}", "2.4.1")
    torch_build(whl / "cu128", "2.7.0+cu128", "12.8")
    rtx, rtx_cuda = _newest(RTX5090_MACHINE)  # the RTX 5090 profile's newest build
    torch_build(whl / rtx.split("+")[1], rtx, rtx_cuda)
    torch_build(whl / "cpu", newest_build(CPU_MACHINE), None)  # a CPU machine's newest build
    torch_build(simple, "2.4.1", "12.1")
    torch_build(simple, "2.5.1", "12.4")
    torch_build(simple, "2.6.0", "12.4")
    companion(simple, "torchvision", "0.19.1", "2.4.1")
    library(simple, "numpy", "1.26.4")
    library(simple, "libeq", "1.0", ["torch==2.4.1"])
    library(simple, "libge", "1.0", ["torch>=2.0"])
    library(simple, "libnp", "1.0", ["numpy>=1.20"])
    library(simple, "libx", "1.2", ["torch==2.6.0"])
    library(simple, "libx", "1.3", ["torch>=2.7"])
    library(simple, "wrapx", "1.0", ["libx==1.2"])
    library(simple, "wrapeq", "1.0", ["libeq"])
    library(simple, "libvis", "1.0", ["torchvision"])
    sdist(simple, "ext", "0.1", ["torch"])
    return root
