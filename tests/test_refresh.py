"""`envsetup compat refresh` against a real HTTP server on loopback that replays the listings
recorded from the package index and the PyTorch-index pages built from the sourced facts
(tests/fixtures/indexes/, SOURCES.md there)."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, run_cli
from envsetup import refresh
from envsetup.compat import load_table
from envsetup.plan import Request
from envsetup.profile import Profile
from envsetup.resolve import resolve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "indexes"))
from replay import ReplayIndex  # noqa: E402


@pytest.fixture
def index() -> Iterator[ReplayIndex]:
    with ReplayIndex() as r:
        yield r


@pytest.fixture
def table(tmp_path: Path) -> Path:
    dst = tmp_path / "compat"
    # the frozen copy: the release drills below add "the next release" to it, which the shipped
    # table will hold one day (tests/fixtures/table/README.md)
    shutil.copytree(
        Path(__file__).parent / "fixtures" / "table",
        dst,
        ignore=shutil.ignore_patterns("README.md"),
    )
    return dst


def cli(index: ReplayIndex, *args: str) -> CliResult:
    return run_cli(
        "compat", "refresh", "--index-url", index.package_url, "--index-base", index.pytorch_url,
        *args, timeout=240,
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_shipped_table_holds_every_fact_of_the_recorded_listings(index: ReplayIndex) -> None:
    r = cli(index, "--check", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["behind"] is False and doc["changes"] == [] and doc["diff"] == ""
    assert doc["contradictions"] == []
    served = [p for p in index.requests if p.startswith("/files/")]
    assert served and all(p.endswith(".metadata") for p in served)  # PEP 658, read
    assert any(p.startswith("/whl/cu129/") for p in index.requests)  # the PyTorch index, read


def _add_release(page: dict[str, Any], old: str, new: str, day: str) -> None:
    """A copy of release ``old``'s files named ``new``, uploaded on ``day`` (not out yet)."""
    for f in [f for f in page["files"] if f["filename"].split("-")[1] == old]:
        g = dict(f, filename=f["filename"].replace(f"-{old}-", f"-{new}-"))
        g["url"] = g["url"].replace(f"-{old}-", f"-{new}-")
        g["upload-time"] = f"{day}T15:00:00+00:00"
        g.pop("core-metadata", None)
        page["files"].append(g)


@pytest.mark.timeout(240)
def test_a_new_release_is_a_reviewable_diff_then_a_valid_table(
    index: ReplayIndex, table: Path
) -> None:
    page = index.page("/simple/torch/")
    _add_release(page, "2.15.0", "2.16.0", "2026-12-22")
    index.pages["/simple/torch/"] = page
    r = cli(index, "--table", str(table), "--check")
    assert r.returncode == 1, r
    assert "+++ b/compat/torch/2.16.json" in r.stdout
    assert '+    "2.16.0": {' in r.stdout and '"date": "2026-12-22"' in r.stdout
    assert "torch 2.16: new release file torch/2.16.json" in r.stdout
    assert "to do by hand" in r.stdout and "arch lists" in r.stdout
    assert "the table is behind the listings" in r.stdout
    assert not (table / "torch" / "2.16.json").exists()  # --check writes nothing

    w = cli(index, "--table", str(table), "--write")
    assert w.returncode == 0, w
    assert "wrote" in w.stdout and (table / "torch" / "2.16.json").is_file()
    new = load_table(table)  # what refresh wrote is a valid table
    assert new.newest == "2.16.0"
    mac = Profile.from_dict(
        {"system": {"os": "darwin", "arch": "arm64", "macos_version": "15.1"},
         "python": {"version": "3.12.8"}}
    )  # fmt: skip
    assert resolve(mac, Request(), new).torch == "2.16.0"
    again = cli(index, "--table", str(table), "--check")
    assert again.returncode == 0, again  # written: nothing left behind


@pytest.mark.timeout(240)
def test_a_changed_companion_fact_is_rewritten(index: ReplayIndex, table: Path) -> None:
    page = index.page("/simple/torchvision/")
    for f in page["files"]:
        if f["filename"].startswith("torchvision-0.29.2-"):
            f["requires-python"] = ">=3.10"
    index.pages["/simple/torchvision/"] = page
    r = cli(index, "--table", str(table), "--json")
    assert r.returncode == 0, r  # without --check a difference is not a failure
    doc = r.json()
    assert doc["behind"] is True and doc["written"] == []
    assert "torchvision 0.29.2: requires_python '>=3.10,!=3.14.1' -> '>=3.10'" in doc["changes"]
    assert '-      "requires_python": ">=3.10,!=3.14.1",' in doc["diff"]
    assert '+      "requires_python": ">=3.10",' in doc["diff"]


@pytest.mark.timeout(240)
def test_a_listing_that_contradicts_a_hand_sourced_fact_is_reported(
    index: ReplayIndex, table: Path
) -> None:
    page = index.page("/whl/cu126/torch/")
    page["files"] = [f for f in page["files"] if "2.14.1+cu126" not in f["filename"]]
    index.pages["/whl/cu126/torch/"] = page
    r = cli(index, "--table", str(table), "--check", "--json")
    doc = r.json()
    assert r.returncode == 1, r  # the variant's patches are listing facts: rewritten
    assert "torch 2.14 cu126: patches ['2.14.0']" in doc["changes"]
    found = index.page("/whl/cu126/torchaudio/")
    index.pages["/whl/cu126/torchaudio/"] = {**found, "files": []}
    r = cli(index, "--table", str(table), "--json")
    contradictions = r.json()["contradictions"]
    assert any(
        c.startswith("torch 2.14.0 cu126: paired with torchaudio 2.11.0, which the cu126/")
        for c in contradictions
    ), contradictions


def test_default_build_facts_from_metadata() -> None:
    meta = (ROOT / "tests/fixtures/indexes/package/files").glob("torch-2.15.0-*x86_64.whl.metadata")
    text = next(iter(meta)).read_text()
    facts = refresh.build_facts(text, "linux_x86_64", "3.11")
    assert (facts.cuda, facts.cudnn, facts.triton) == ("13.2", "9.26.0.51", "~=3.9.0")
    old = (ROOT / "tests/fixtures/indexes/package/files").glob("torch-2.0.0-*aarch64.whl.metadata")
    cpu = refresh.build_facts(next(iter(old)).read_text(), "linux_aarch64", "3.11")
    assert cpu.cuda is None  # the x86_64-only markers leave the aarch64 wheel without CUDA


def test_a_changed_cudnn_pin_is_rewritten_and_the_arch_list_kept() -> None:
    docs = refresh.load_docs(ROOT / "compat")
    with ReplayIndex() as r:
        listings = refresh.read_listings(r.package_url, None)
    name = next(n for n in listings.metadata if n.startswith("torch-2.14.1-") and "x86_64" in n)
    listings.metadata[name] = str(listings.metadata[name]).replace("9.24.0.43", "9.24.1.1")
    new, report = refresh.derive(docs, listings, today="2026-12-24")
    assert (
        "torch 2.14.1 linux_x86_64 default build: cudnn '9.24.0.43' -> '9.24.1.1'" in report.changes
    )
    d = new["torch/2.14.json"]["platforms"]["linux_x86_64"]["default"]
    assert d["arch"] == docs["torch/2.14.json"]["platforms"]["linux_x86_64"]["default"]["arch"]
    assert new["index.json"]["collected"] == "2026-12-24"


@pytest.mark.timeout(60)
def test_no_network_is_one_line_and_exit_1(table: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("compat", "refresh", "--index-url", f"http://127.0.0.1:{port}/simple", "--check")
    assert r.returncode == 1, r
    assert r.stderr.startswith(f"envsetup: cannot read the index http://127.0.0.1:{port}/simple")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.timeout(60)
def test_an_unreachable_pytorch_index_fails_before_the_metadata_reads(index: ReplayIndex) -> None:
    """The package index answers, the PyTorch index does not (a machine that reaches only the
    package registry): one line, before the package index's hundreds of metadata reads."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli(
        "compat", "refresh", "--index-url", index.package_url,
        "--index-base", f"http://127.0.0.1:{port}/whl", "--check",
    )  # fmt: skip
    assert r.returncode == 1, r
    assert r.stderr.startswith(f"envsetup: cannot read the index http://127.0.0.1:{port}/whl/")
    assert r.stderr.count("\n") == 1
    assert not [p for p in index.requests if p.startswith("/files/")], index.requests


def test_write_and_check_together_is_a_usage_error() -> None:
    r = run_cli("compat", "refresh", "--write", "--check")
    assert r.returncode == 2 and "--write and --check" in r.stderr, r


def test_recordings_name_no_registry_host() -> None:
    for f in (ROOT / "tests" / "fixtures" / "indexes").rglob("*"):
        if f.is_file() and f.suffix in (".json", ".metadata", ".md"):
            text = f.read_text(encoding="utf-8")
            assert "://" not in text.replace("https://download.pytorch.org", ""), f
    page = json.loads((ROOT / "tests/fixtures/indexes/package/torch.json").read_text())
    assert all(f["url"].startswith("../../files/") for f in page["files"])


# ---------------------------------------------------------------- METADATA out of the wheel


class _Files(BaseHTTPRequestHandler):
    """Serves the files of ``root``, answering Range requests unless ``ranges`` is off."""

    root: Path
    ranges = True
    seen: list[str]

    def log_message(self, *a: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        f = self.root / self.path.lstrip("/")
        self.seen.append(f"{self.command} {self.headers.get('Range')}")
        if not f.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = f.read_bytes()
        rng = self.headers.get("Range")
        if rng and self.ranges and body:
            lo, hi = (int(x) for x in rng.split("=")[1].split("-"))
            part = data[lo : hi + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
        else:
            part = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(part) if body else len(data)))
        self.end_headers()
        if body:
            self.wfile.write(part)


@pytest.mark.parametrize("ranges", [True, False], ids=["host-with-ranges", "host-without"])
def test_metadata_read_out_of_the_wheel(tmp_path: Path, ranges: bool) -> None:
    from envsetup.index import File, Index
    from indexserver import build_wheel

    big = {f"pkg/blob{i}.bin": bytes([i]) * 200_000 for i in range(8)}  # 1.6 MB to skip
    wheel = build_wheel(tmp_path, "torchvision", "0.29.2", requires=["torch>=2.14.0"], files=big)
    handler = type("H", (_Files,), {"root": tmp_path, "ranges": ranges, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        f = File(wheel.name, f"{url}/{wheel.name}", "torchvision", "0.29.2", "wheel")
        with Index(f"{url}/simple") as idx:
            meta = idx.metadata(f, from_wheel=True)  # no PEP 658 file: out of the wheel
    finally:
        httpd.shutdown()
        httpd.server_close()
    if ranges:
        assert meta is not None and "Requires-Dist: torch>=2.14.0" in meta
        assert refresh.requires_torch(meta) == ">=2.14.0"
        assert all(s.startswith("GET bytes=") or s.startswith("HEAD") for s in handler.seen[1:])
    else:
        assert meta is None  # the whole wheel is never read for its metadata
