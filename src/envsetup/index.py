"""The one client for package indexes: what an index, a local mirror or a wheelhouse holds.

Every place that reads an index goes through here: ``compat refresh`` and ``compat check``
(the package index and the PyTorch index), install's check before it stages (the pins are
listed), and the stack resolver's listing of torch builds. Three forms of source:

- ``http(s)://`` indexes, read with pypi-simple (PEP 691 JSON preferred, PEP 503 HTML
  fallback, PEP 658 metadata, PEP 592 yanks, PEP 700 upload times and sizes) over requests;
- ``file://`` directories laid out like an index (``<dir>/<project>/index.html``, what pip reads
  from a local mirror), through a small requests adapter so the same parser reads them;
- wheelhouses (``--find-links DIR``): a flat directory of distribution files.

Errors are one line naming the source with its credentials masked; a source that cannot be
reached answers within the connect timeout (a few seconds), with no retries.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import quote, urlsplit

from envsetup.errors import EXIT_FAIL, EnvsetupError
from envsetup.paths import file_url_path

if TYPE_CHECKING:  # imported lazily: pypi-simple and requests cost ~0.3 s at import
    import requests

# (connect, read) seconds: an unreachable host is known within CONNECT_TIMEOUT.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0


class IndexUnreachable(EnvsetupError):
    """The index could not be read: no route, DNS, refused, timed out, an HTTP error."""

    code = "index-unreachable"
    exit_code = EXIT_FAIL

    def __init__(self, source: str, reason: str):
        super().__init__(f"cannot read the index {source}: {reason}")
        self.source = source
        self.reason = reason


class NotListed(EnvsetupError):
    """The source answered, but does not list what was asked for."""

    code = "index-missing"
    exit_code = EXIT_FAIL


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class File:
    """One distribution file an index lists."""

    filename: str
    url: str
    project: str  # normalised
    version: str  # as the file name writes it, local part included: "2.4.1+cu121"
    kind: str  # wheel | sdist | other
    tags: tuple[str, ...] = ()  # wheels: "cp311-cp311-manylinux_2_28_x86_64", one per tag triple
    build: Optional[str] = None  # a wheel's build tag ("3" in torch-2.10.0-3-...)
    requires_python: Optional[str] = None
    yanked: Optional[str] = None  # None: not yanked; else the reason ("" when none is given)
    upload_time: Optional[str] = None  # ISO 8601, where the index says (PEP 700)
    size: Optional[int] = None
    sha256: Optional[str] = None
    has_metadata: Optional[bool] = None  # PEP 658/714; None: the index does not say

    @property
    def public_version(self) -> str:
        return self.version.split("+", 1)[0]

    @property
    def local(self) -> Optional[str]:
        return self.version.split("+", 1)[1] if "+" in self.version else None

    def fits(self, python: Optional[str] = None, platform: Optional[str] = None) -> bool:
        """Whether this wheel installs on CPython ``python`` ("3.11") and ``platform`` (the
        Plan's spelling: linux_x86_64, macos_arm64, windows_x86_64). Unknown spellings fit."""
        if self.kind != "wheel":
            return False
        return any(
            _python_fits(t, python) and _platform_fits(t.rsplit("-", 1)[-1], platform)
            for t in self.tags
        )


def _python_fits(tag: str, python: Optional[str]) -> bool:
    if not python or not re.match(r"^\d+\.\d+$", python):
        return True
    major, minor = python.split(".")
    interp, abi, _ = ([*tag.split("-"), "", ""])[:3]
    if interp in (f"cp{major}{minor}", f"py{major}{minor}", f"py{major}"):
        return True
    m = re.match(r"^cp(\d)(\d+)$", interp)
    return abi == "abi3" and m is not None and m.group(1) == major and int(m.group(2)) <= int(minor)


def _platform_fits(plat: str, platform: Optional[str]) -> bool:
    if plat == "any" or not platform or "_" not in platform:
        return True
    system, arch = platform.split("_", 1)
    if system == "linux":
        return plat.startswith(("manylinux", "musllinux", "linux")) and plat.endswith(arch)
    if system == "macos":
        fat = ("universal2", "universal") + (("intel",) if arch == "x86_64" else ())
        return plat.startswith("macosx") and plat.endswith((arch, *fat))
    if system == "windows":
        return plat == {"x86_64": "win_amd64", "arm64": "win_arm64"}.get(arch, plat)
    return True


def _require(
    source: Union[Index, Wheelhouse],
    project: str,
    version: str,
    python: Optional[str],
    platform: Optional[str],
) -> File:
    """The wheel of ``project`` ``version`` (public version; any local label) that fits."""
    from packaging.version import InvalidVersion, Version

    files = source.files(project)
    if not files:
        raise NotListed(f"{source.display} has no {project} at all")
    try:
        want = Version(version).public
    except InvalidVersion:
        want = version

    def public(f: File) -> str:
        try:
            return Version(f.version).public
        except InvalidVersion:
            return f.public_version

    same = [f for f in iter_wheels(files) if public(f) == want and f.yanked is None]
    if not same:
        shown = sorted({public(f) for f in iter_wheels(files)}, key=_sort_key)[-4:]
        listed = f" (it lists {', '.join(shown)})" if shown else ""
        raise NotListed(f"{source.display} has no {project} {version} wheel{listed}")
    fitting = [f for f in same if f.fits(python, platform)]
    if not fitting:
        raise NotListed(
            f"{source.display} has {project} {version} but no wheel for Python {python} on "
            f"{platform}"
        )
    return fitting[0]


def _sort_key(v: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(v))
    except InvalidVersion:
        return (-1, v)


def _file_from_name(name: str, url: str, **extra: Any) -> Optional[File]:
    """A File from a distribution file name; None for names that are not wheels or sdists."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    if name.endswith(".whl"):
        try:
            project, version, build, tags = parse_wheel_filename(name)
        except (InvalidWheelFilename, ValueError):
            return None
        shown = sorted(str(t) for t in tags)
        return File(
            filename=name,
            url=url,
            project=normalize(str(project)),
            version=str(version),
            kind="wheel",
            tags=tuple(shown),
            build=str(build[0]) + build[1] if build else None,
            **extra,
        )
    if name.endswith((".tar.gz", ".zip")):
        try:
            project, version = parse_sdist_filename(name)
        except (InvalidSdistFilename, ValueError):
            return None
        return File(name, url, normalize(str(project)), str(version), "sdist", **extra)
    return None


def _directory_page(path: Path) -> bytes:
    """A PEP 503 page for a mirror directory without index.html: the distribution files in it
    (what a flat local mirror of one project holds); empty when it has none."""
    import html

    names = sorted(p.name for p in path.iterdir() if _file_from_name(p.name, p.name) is not None)
    if not names:
        return b""
    links = "".join(f'<a href="{html.escape(quote(n))}">{html.escape(n)}</a><br/>\n' for n in names)
    return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()


class _FileAdapter:
    """A requests transport adapter for ``file://`` URLs of a local index mirror.

    A directory URL is served as its ``index.html`` (what pip reads from such a mirror), a
    file URL as the file; anything missing is a 404, so the client's own handling applies.
    """

    def send(self, request: Any, **kwargs: Any) -> Any:
        import requests

        resp = requests.Response()
        resp.url = request.url
        resp.request = request
        path = file_url_path(request.url)
        listing: Optional[bytes] = None
        if path.is_dir():
            if not (path / "index.html").is_file():
                listing = _directory_page(path)
            path = path / "index.html"
        try:
            data = listing if listing is not None else path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            resp.status_code, data = 404, b"not found\n"
        except OSError as exc:
            resp.status_code, data = 403, f"{exc.strerror or exc}\n".encode()
        else:
            resp.status_code = 200
        ctype = "text/html" if path.suffix in (".html", ".htm") else "application/octet-stream"
        if listing is not None:
            resp.status_code = 200 if listing else 404
        if resp.status_code != 200:
            ctype = "text/plain"
        resp.headers["Content-Type"] = ctype
        resp.headers["Content-Length"] = str(len(data))
        resp.encoding = "utf-8" if ctype.startswith("text/") else None
        resp._content = data
        resp.reason = "OK" if resp.status_code == 200 else "Not Found"
        return resp

    def close(self) -> None:
        pass


def _session() -> requests.Session:
    import requests

    s = requests.Session()
    s.mount("file://", _FileAdapter())  # type: ignore[arg-type]
    s.headers["User-Agent"] = "envsetup"
    return s


def _reason(exc: BaseException) -> str:
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no answer within {CONNECT_TIMEOUT:g} s (host unreachable or a firewall)"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the server stopped answering (read timed out)"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error (a proxy or a certificate the system does not trust)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
            return "the host name does not resolve (no network, or a typo)"
        if "Connection refused" in text:
            return "connection refused"
        return "connection failed (no network, or the host is down)"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return f"HTTP {code}: the index wants credentials (https://user:token@host/path)"
        return f"HTTP {code}"
    return type(exc).__name__


class Index:
    """A PEP 503/691 index at ``url``: ``https://download.pytorch.org/whl/cu121``, a private
    mirror, or ``file:///srv/mirror/cpu``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: Union[float, tuple[float, float]] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        session: Optional[requests.Session] = None,
    ):
        self.url = url.rstrip("/") + "/"
        from envsetup.secrets import mask_url

        self.display = mask_url(url.rstrip("/"))
        self.timeout = timeout
        self._session = session
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            from pypi_simple import PyPISimple

            self._client = PyPISimple(self.url, session=self._session or _session())
        return self._client

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.s.close()

    def check_local(self) -> None:
        """For a ``file://`` index: the directory must exist (a one-line error otherwise)."""
        parts = urlsplit(self.url)
        if parts.scheme != "file":
            return
        root = file_url_path(self.url)
        if not root.is_dir():
            raise IndexUnreachable(self.display, f"{root} is not a directory")

    def files(self, project: str) -> Optional[list[File]]:
        """Every distribution file of ``project``; None when the index has no such project."""
        import requests
        from pypi_simple import NoSuchProjectError, UnsupportedContentTypeError

        self.check_local()
        client = self._get_client()
        try:
            page = client.get_project_page(project, timeout=self.timeout)
        except NoSuchProjectError:
            return None
        except UnsupportedContentTypeError as exc:
            raise IndexUnreachable(
                self.display, f"not an index page ({exc}); is this the index's base URL?"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise IndexUnreachable(self.display, _reason(exc)) from None
        out: list[File] = []
        for pkg in page.packages:
            f = _file_from_name(
                pkg.filename,
                pkg.url,
                requires_python=pkg.requires_python or None,
                yanked=(pkg.yanked_reason or "") if pkg.is_yanked else None,
                upload_time=pkg.upload_time.isoformat() if pkg.upload_time else None,
                size=pkg.size,
                sha256=(pkg.digests or {}).get("sha256"),
                has_metadata=pkg.has_metadata,
            )
            if f is not None:
                out.append(f)
        return out

    def require(
        self,
        project: str,
        version: str,
        *,
        python: Optional[str] = None,
        platform: Optional[str] = None,
    ) -> File:
        """The wheel of ``project`` ``version`` for ``python`` on ``platform``; raises
        :class:`NotListed` (listed, but not that) or :class:`IndexUnreachable`."""
        return _require(self, project, version, python, platform)

    def metadata(self, f: File, *, from_wheel: bool = False) -> Optional[str]:
        """The file's core metadata (PEP 658), or None where the index does not serve it.

        ``from_wheel``: where the index serves no PEP 658 file, read ``METADATA`` out of the
        wheel itself with HTTP range requests (the zip directory and that one member, a few
        hundred KB of a wheel of any size); None where the file host does not answer ranges.
        """
        text = self._pep658(f)
        if text is None and from_wheel and f.kind == "wheel":
            found = self.wheel_members(f, [".dist-info/METADATA"])
            text = next(iter(found.values()), None)
        return text

    def wheel_members(self, f: File, suffixes: Iterable[str]) -> dict[str, str]:
        """The text of the wheel's members whose names end with one of ``suffixes`` (matched at
        the same depth, so ``.dist-info/METADATA`` is the top-level dist-info's), read with
        HTTP range requests; {} where the host does not serve ranges or the file is no zip."""
        import zipfile

        import requests

        if urlsplit(f.url).scheme not in ("http", "https"):
            return {}
        client = self._get_client()
        wanted = list(suffixes)
        try:
            raw = _RangeFile(client.s, f.url, f.size, self.timeout)
            with zipfile.ZipFile(io.BufferedReader(raw, buffer_size=256 * 1024)) as zf:
                out = {}
                for name in zf.namelist():
                    for want in wanted:
                        if name.endswith(want) and name.count("/") == want.count("/"):
                            out[name] = zf.read(name).decode("utf-8", "replace")
                return out
        except _NoRanges:
            return {}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return {}
        except requests.exceptions.HTTPError:
            return {}  # the file host refused this file or the method: no metadata from it
        except requests.exceptions.RequestException as exc:
            raise IndexUnreachable(self.display, _reason(exc)) from None

    def _pep658(self, f: File) -> Optional[str]:
        import requests
        from pypi_simple import DistributionPackage, NoMetadataError

        client = self._get_client()
        pkg = DistributionPackage(
            filename=f.filename,
            url=f.url,
            project=f.project,
            version=f.version,
            package_type=f.kind,
            digests={"sha256": f.sha256} if f.sha256 else {},
            requires_python=f.requires_python,
            has_sig=None,
            has_metadata=f.has_metadata,
        )
        try:
            text: str = client.get_package_metadata(pkg, verify=False, timeout=self.timeout)
        except NoMetadataError:
            return None
        except requests.exceptions.RequestException as exc:
            raise IndexUnreachable(self.display, _reason(exc)) from None
        return text


class _NoRanges(Exception):
    """The file host answered a range request with the whole file (or not at all)."""


class _RangeFile(io.RawIOBase):
    """A seekable read-only view of a remote file, one HTTP range request per read."""

    def __init__(
        self,
        session: Any,
        url: str,
        size: Optional[int],
        timeout: Union[float, tuple[float, float]],
    ):
        super().__init__()
        self.session, self.url, self.timeout = session, url, timeout
        self.pos = 0
        if size is None:
            r = session.head(url, timeout=timeout, allow_redirects=True)
            r.raise_for_status()
            size = int(r.headers.get("Content-Length", "0")) or None
            if size is None:
                raise _NoRanges(url)
        self.size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.size - self.pos)
        if n <= 0:
            return 0
        rng = f"bytes={self.pos}-{self.pos + n - 1}"
        r = self.session.get(self.url, headers={"Range": rng}, timeout=self.timeout, stream=True)
        try:
            if r.status_code != 206:  # a 200 would be the whole file: never read it
                if r.status_code >= 400:
                    r.raise_for_status()
                raise _NoRanges(self.url)
            data = r.raw.read(n, decode_content=True)
        finally:
            r.close()
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)


class Wheelhouse:
    """A flat directory of distribution files (``--find-links DIR``)."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.display = str(path)

    def check_local(self) -> None:
        if not self.path.is_dir():
            raise IndexUnreachable(self.display, "not a directory")

    def files(self, project: str) -> Optional[list[File]]:
        self.check_local()
        want = normalize(project)
        out = []
        for p in sorted(self.path.iterdir()):
            f = _file_from_name(p.name, p.absolute().as_uri())
            if f is not None and f.project == want:
                out.append(f)
        return out or None

    def require(
        self,
        project: str,
        version: str,
        *,
        python: Optional[str] = None,
        platform: Optional[str] = None,
    ) -> File:
        """As :meth:`Index.require`, from the wheelhouse's file names."""
        return _require(self, project, version, python, platform)

    def metadata(self, f: File) -> Optional[str]:
        """A wheel's METADATA, read from the file."""
        import zipfile

        if f.kind != "wheel":
            return None
        path = self.path / f.filename
        try:
            with zipfile.ZipFile(path) as zf:
                for n in zf.namelist():
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA"):
                        return zf.read(n).decode("utf-8", "replace")
        except (OSError, zipfile.BadZipFile):
            return None
        return None

    def __enter__(self) -> Wheelhouse:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


Source = Union[Index, Wheelhouse]


def open_source(
    location: str,
    *,
    timeout: Union[float, tuple[float, float]] = (CONNECT_TIMEOUT, READ_TIMEOUT),
) -> Source:
    """An Index for an http(s):// or file:// URL, a Wheelhouse for a plain directory path."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        return Index(location, timeout=timeout)
    return Wheelhouse(location)


def file_url(path: Union[str, Path]) -> str:
    """The file:// URL of a local directory (what pip and uv take as an index URL)."""
    return "file://" + quote(str(Path(path).absolute()))


def default_index_url(environ: Optional[dict[str, str]] = None) -> str:
    """The user's package index: ``PIP_INDEX_URL``, else pip's configured ``index-url``, else
    the client library's default. This machine's or a user's pip configuration is read the way
    pip reads it (``pip config``), so nothing here names a registry."""
    env = os.environ if environ is None else environ
    value = env.get("PIP_INDEX_URL") or env.get("UV_DEFAULT_INDEX") or env.get("UV_INDEX_URL")
    if value:
        return value.split()[0]
    configured = _pip_configured_index(env)
    if configured:
        return configured
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    return str(PYPI_SIMPLE_ENDPOINT)


def _pip_configured_index(env: Any) -> Optional[str]:
    import sys

    from envsetup import proc

    if env.get("PIP_CONFIG_FILE") == os.devnull:
        return None
    run_env = proc.clean_env()
    if "PIP_CONFIG_FILE" in env:
        run_env["PIP_CONFIG_FILE"] = env["PIP_CONFIG_FILE"]
    res = proc.run([sys.executable, "-m", "pip", "config", "list"], timeout=30, env=run_env)
    if not res.ok:
        return None
    for line in res.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url"):
            return value.strip().strip("'\"") or None
    return None


def iter_wheels(files: Iterable[File]) -> Iterator[File]:
    return (f for f in files if f.kind == "wheel")
