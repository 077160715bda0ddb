"""A real package index on 127.0.0.1 for the install tests, laid out like the PyTorch index
(one path per variant: ``/cu121/torch/`` lists the files, ``/cu121/files/<file>`` serves them),
that can misbehave on demand; and tiny wheels built here, named torch/torchvision/torchaudio."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import socket
import struct
import threading
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import unquote


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    files: Optional[dict[str, bytes]] = None,
    tag: str = "py3-none-any",
    scripts: Iterable[str] = (),
) -> Path:
    """Write a minimal, valid wheel (METADATA, WHEEL, RECORD, entry points) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    entries: dict[str, bytes] = dict(files or {})
    entries[f"{info}/METADATA"] = meta.encode()
    entries[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: envsetup-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()
    eps = list(scripts)
    if eps:
        body = "[console_scripts]\n" + "".join(f"{s} = {name}:main\n" for s in eps)
        entries[f"{info}/entry_points.txt"] = body.encode()
    entries[f"{info}/top_level.txt"] = f"{name}\n".encode()
    record = []
    path = dest / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in entries.items():
            zf.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{arc},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def torch_wheel(
    dest: Path,
    version: str,
    cuda: Optional[str],
    *,
    bulk: int = 0,
    data: bool = False,
    requires: Iterable[str] = (),
) -> Path:
    """A tiny torch: ``import torch`` gives ``__version__`` and ``version.cuda``.

    ``bulk`` adds that many 64 KiB files of random bytes, so that installing takes a while.
    ``data`` adds what a wheel may put outside site-packages: a man page (``.data/data/``, under
    the prefix's share/) and a script (``.data/scripts/``, in bin/).
    """
    files = {
        "torch/__init__.py": b"from torch import version\n__version__ = version.__version__\n",
        "torch/version.py": f"__version__ = {version!r}\ncuda = {cuda!r}\n".encode(),
    }
    if data:
        files[f"torch-{version}.data/data/share/man/man1/torch-{version}.1"] = b".TH TORCH 1\n"
        files[f"torch-{version}.data/scripts/torch-config"] = b"#!/bin/sh\necho torch\n"
    for i in range(bulk):
        files[f"torch/lib/blob{i:05d}.bin"] = os.urandom(64 * 1024)
    return build_wheel(dest, "torch", version, files=files, scripts=["torchrun"], requires=requires)


def write_simple_tree(wheels: Path, dest: Path) -> str:
    """Lay ``wheels/*.whl`` out as a PEP 503 index in ``dest`` (``dest/<project>/index.html``
    with relative links to ``dest/files/``, what pip and uv read from a file:// mirror) and
    return its file:// URL. The wheels are hard-linked, not copied."""
    from urllib.parse import quote

    (dest / "files").mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[Path]] = {}
    for f in sorted(wheels.glob("*.whl")):
        target = dest / "files" / f.name
        if not target.exists():
            try:
                os.link(f, target)
            except OSError:
                target.write_bytes(f.read_bytes())
        projects.setdefault(_norm(f.name.split("-")[0]), []).append(f)
    for project, found in projects.items():
        (dest / project).mkdir(exist_ok=True)
        links = []
        for f in found:
            sha = hashlib.sha256(f.read_bytes()).hexdigest()
            href = f"../files/{quote(f.name)}#sha256={sha}"
            links.append(f'<a href="{html.escape(href)}">{html.escape(f.name)}</a><br/>')
        body = "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
        (dest / project / "index.html").write_text(body, encoding="utf-8")
    top = "".join(f'<a href="{p}/">{p}</a><br/>\n' for p in sorted(projects))
    (dest / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{top}</body></html>\n")
    return dest.absolute().as_uri()


def companion_wheel(dest: Path, name: str, version: str, torch: str) -> Path:
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n".encode()}
    return build_wheel(dest, name, version, requires=[f"torch=={torch}"], files=files)


class _Sink:
    """A wfile that passes the status line and headers through and drops the body."""

    def __init__(self, real: object):
        self.real = real
        self.headers_done = False

    def write(self, data: bytes) -> int:
        if not self.headers_done:
            self.real.write(data)  # type: ignore[attr-defined]
            self.headers_done = data.endswith(b"\r\n\r\n")
        return len(data)

    def flush(self) -> None:
        self.real.flush()  # type: ignore[attr-defined]


@dataclass
class Fault:
    kind: str  # "500" | "404" | "truncate" | "drop" | "slow"
    match: str = ""  # applies to requests whose path contains this


class IndexServer:
    """Serve ``root/<variant>/*.whl`` as a PEP 503 index per variant, with optional faults."""

    def __init__(self, root: Path):
        self.root = root
        self.fault: Optional[Fault] = None
        self.auth: Optional[tuple[str, str]] = None  # (user, password): HTTP basic auth required
        self.authorized: list[str] = []  # the user names of the requests that passed it
        self.requests: list[str] = []
        self.serving_file = threading.Event()  # set when a file body starts going out
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                server._get(self)

            def do_HEAD(self) -> None:  # headers only: the body goes nowhere
                real, self.wfile = self.wfile, _Sink(self.wfile)  # type: ignore[assignment]
                try:
                    server._get(self)
                finally:
                    self.wfile = real

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def index(self, variant: str) -> str:
        return f"{self.url}/{variant}"

    def __enter__(self) -> IndexServer:
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
        if self.auth is not None:
            want = base64.b64encode(":".join(self.auth).encode()).decode()
            if h.headers.get("Authorization") != f"Basic {want}":
                h.send_response(401)
                h.send_header("WWW-Authenticate", 'Basic realm="index"')
                h.send_header("Content-Length", "0")
                h.end_headers()
                return None
            self.authorized.append(self.auth[0])
        fault = self.fault if self.fault and self.fault.match in path else None
        if fault and fault.kind == "500":
            return self._send(h, 500, b"internal error\n", "text/plain")
        if fault and fault.kind == "404":
            return self._send(h, 404, b"not found\n", "text/plain")
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[1] == "files":
            file = self.root / parts[0] / parts[2]
            if not file.is_file():
                return self._send(h, 404, b"not found\n", "text/plain")
            # Like a real file host: a validator, so that clients can revalidate their cache.
            st = file.stat()
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            if not fault and h.headers.get("If-None-Match") == etag:
                h.send_response(304)
                h.send_header("ETag", etag)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return None
            return self._file(h, file.read_bytes(), fault, etag)
        if len(parts) == 2:
            variant, project = parts
            links = []
            for f in sorted((self.root / variant).glob("*.whl")):
                if _norm(f.name.split("-")[0]) == _norm(project):
                    sha = hashlib.sha256(f.read_bytes()).hexdigest()
                    href = f"/{variant}/files/{f.name.replace('+', '%2B')}#sha256={sha}"
                    links.append(f'<a href="{html.escape(href)}">{html.escape(f.name)}</a><br/>')
            if not links:
                return self._send(h, 404, b"no such project\n", "text/plain")
            body = "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
            return self._send(h, 200, body.encode(), "text/html")
        return self._send(h, 404, b"not found\n", "text/plain")

    def _file(
        self, h: BaseHTTPRequestHandler, data: bytes, fault: Optional[Fault], etag: str = ""
    ) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        if etag:
            h.send_header("ETag", etag)
        h.end_headers()
        self.serving_file.set()
        if fault and fault.kind == "truncate":  # the full length announced, half of it sent
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        if fault and fault.kind == "drop":  # part of the body, then a reset connection
            h.wfile.write(data[: len(data) // 3])
            h.wfile.flush()
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return
        if fault and fault.kind == "slow":
            for i in range(0, len(data), 16 * 1024):
                h.wfile.write(data[i : i + 16 * 1024])
                h.wfile.flush()
                time.sleep(0.2)
            return
        h.wfile.write(data)
