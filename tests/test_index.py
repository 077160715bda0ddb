"""The index client against real servers on loopback, local mirrors and wheelhouses."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envsetup import index
from indexserver import IndexServer, build_wheel, torch_wheel


@pytest.fixture
def pep691() -> Iterator[tuple[str, list[str]]]:
    """A server that answers only PEP 691 JSON, with yanks, upload times and metadata."""
    seen: list[str] = []
    page = {
        "meta": {"api-version": "1.1"},
        "name": "torchvision",
        "files": [
            {
                "filename": "torchvision-0.29.2-cp314-cp314-manylinux_2_28_x86_64.whl",
                "url": "files/torchvision-0.29.2-cp314-cp314-manylinux_2_28_x86_64.whl",
                "hashes": {"sha256": "ab" * 32},
                "requires-python": ">=3.10,!=3.14.1",
                "upload-time": "2026-10-28T15:21:00.000000Z",
                "size": 12345,
                "core-metadata": {"sha256": "cd" * 32},
                "yanked": False,
            },
            {
                "filename": "torchvision-0.29.0-cp311-cp311-win_amd64.whl",
                "url": "files/torchvision-0.29.0-cp311-cp311-win_amd64.whl",
                "hashes": {},
                "yanked": "broken on Windows",
            },
            {"filename": "torchvision-0.29.0.tar.gz", "url": "files/x.tar.gz", "hashes": {}},
            {"filename": "README.txt", "url": "files/README.txt", "hashes": {}},
        ],
        "versions": ["0.29.0", "0.29.2"],
    }
    metadata = (
        b"Metadata-Version: 2.1\nName: torchvision\nVersion: 0.29.2\nRequires-Dist: torch>=2.14.0\n"
    )

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(f"{self.path} {self.headers.get('Accept')}")
            if self.path.endswith(".whl.metadata"):
                body, ctype = metadata, "text/plain"
            elif self.path.rstrip("/").endswith("/torchvision"):
                body, ctype = json.dumps(page).encode(), "application/vnd.pypi.simple.v1+json"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/simple", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_pep691_listing_with_yanks_times_and_metadata(pep691: tuple[str, list[str]]) -> None:
    url, seen = pep691
    with index.Index(url) as idx:
        files = idx.files("TorchVision")
        assert files is not None
        assert [f.filename for f in files] == [
            "torchvision-0.29.2-cp314-cp314-manylinux_2_28_x86_64.whl",
            "torchvision-0.29.0-cp311-cp311-win_amd64.whl",
            "torchvision-0.29.0.tar.gz",
        ]  # README.txt is no distribution
        new, old, sdist = files
        assert new.requires_python == ">=3.10,!=3.14.1"
        assert new.upload_time is not None and new.upload_time.startswith("2026-10-28T15:21")
        assert new.tags == ("cp314-cp314-manylinux_2_28_x86_64",)
        assert new.yanked is None and new.has_metadata is True and new.size == 12345
        assert old.yanked == "broken on Windows"
        assert sdist.kind == "sdist" and sdist.version == "0.29.0"
        assert new.url.startswith(url)  # relative URLs are resolved against the page
        meta = idx.metadata(new)
        assert meta is not None and "Requires-Dist: torch>=2.14.0" in meta
        assert idx.files("no-such-project") is None
    assert "application/vnd.pypi.simple.v1+json" in seen[0]  # JSON asked for first


def test_pep503_html_with_local_versions(tmp_path: Path) -> None:
    torch_wheel(tmp_path / "cu121", "2.4.1+cu121", "12.1")
    build_wheel(tmp_path / "cu121", "torchvision", "0.19.1+cu121")
    with IndexServer(tmp_path) as srv, index.Index(srv.index("cu121")) as idx:
        files = idx.files("torch")
        assert files is not None and len(files) == 1
        assert files[0].version == "2.4.1+cu121"
        assert files[0].public_version == "2.4.1" and files[0].local == "cu121"
        assert files[0].sha256 is not None
        assert idx.files("torchaudio") is None


def test_http_error_is_one_line_with_the_status(tmp_path: Path) -> None:
    from indexserver import Fault

    torch_wheel(tmp_path / "cpu", "2.4.1+cpu", None)
    with IndexServer(tmp_path) as srv:
        srv.fault = Fault("500")
        with pytest.raises(index.IndexUnreachable) as ei:
            index.Index(srv.index("cpu")).files("torch")
    assert "HTTP 500" in ei.value.message and "\n" not in ei.value.message


def test_refused_connection_answers_at_once() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(index.IndexUnreachable) as ei:
        index.Index(f"http://127.0.0.1:{port}/whl/cpu").files("torch")
    assert time.monotonic() - start < index.CONNECT_TIMEOUT
    assert "connection refused" in ei.value.reason


def test_local_mirror_directory(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "cpu"
    (mirror / "torch").mkdir(parents=True)
    (mirror / "torch" / "index.html").write_text(
        '<html><body><a href="../../files/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl'
        '#sha256=00">torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl</a></body></html>'
    )
    with index.Index(index.file_url(mirror)) as idx:
        files = idx.files("torch")
        assert files is not None and [f.version for f in files] == ["2.13.0+cpu"]
        assert files[0].url.startswith("file://")
        assert idx.files("torchvision") is None
    with pytest.raises(index.IndexUnreachable, match="is not a directory"):
        index.Index(index.file_url(tmp_path / "nowhere")).files("torch")


def test_wheelhouse(tmp_path: Path) -> None:
    torch_wheel(tmp_path, "2.13.0+cpu", None)
    build_wheel(tmp_path, "numpy", "2.1.0")
    wh = index.open_source(str(tmp_path))
    assert isinstance(wh, index.Wheelhouse)
    files = wh.files("torch")
    assert files is not None and files[0].version == "2.13.0+cpu"
    meta = wh.metadata(files[0])
    assert meta is not None and "Name: torch" in meta
    assert wh.files("scipy") is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:s3cret@mirror.example/whl/cu121",
            "https://user:***@mirror.example/whl/cu121",
        ),
        ("https://tok3n@mirror.example:8443/whl", "https://***@mirror.example:8443/whl"),
        ("https://mirror.example/whl", "https://mirror.example/whl"),
    ],
)
def test_mask(url: str, shown: str) -> None:
    from envsetup import secrets

    assert secrets.mask_url(url) == shown
    assert "s3cret" not in secrets.mask(f"Looking in indexes: {url}", [url])


def test_default_index_reads_the_environment_first() -> None:
    assert index.default_index_url({"PIP_INDEX_URL": "http://127.0.0.1:9/simple"}) == (
        "http://127.0.0.1:9/simple"
    )
    # With pip's configuration isolated, the client library's default applies.
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    assert index.default_index_url({"PIP_CONFIG_FILE": "/dev/null"}) == PYPI_SIMPLE_ENDPOINT
