"""No secret leaves envsetup: the one place credentials are found and masked.

Everything envsetup writes goes through :func:`mask` on its way out: the terminal (``cli.main``
wraps ``sys.stdout`` and ``sys.stderr`` in :class:`Masked`, which rich, typer and plain writes
all go through), ``--json``/``--markdown``/HTML documents, exported files (:func:`write_text`),
an install's log (a :class:`Masked` file) and the guard's record. :func:`mask` hides

- the credentials of any URL, wherever it appears: ``scheme://user:pass@host`` becomes
  ``scheme://user:***@host`` and a bare token ``scheme://TOKEN@host`` becomes ``scheme://***@host``;
- every secret value envsetup has been told about (:func:`register`), wherever it appears, as
  written, percent-encoded or decoded, HTML- or JSON-escaped: the passwords and tokens of the
  URLs on the command line, in the environment (``ENVSETUP_TORCH_INDEX``, ``PIP_INDEX_URL``,
  ``UV_INDEX``, a proxy, …), of variables named ``*_PASSWORD`` / ``*_TOKEN`` / ``*_SECRET``
  (uv's ``UV_INDEX_<NAME>_PASSWORD``), and of pip's and uv's configuration files and netrc
  (:func:`collect`, once at start).

Tables are masked before rich lays them out (:func:`scrub`), since a narrow terminal can fold a
URL over two lines where no text search finds it again.

Exports never embed a credential: they name the variables that supply it
(:func:`credential_vars`): uv's per-index ``UV_INDEX_<NAME>_USERNAME`` / ``_PASSWORD``, which
uv reads for the index ``NAME`` of a pyproject, and which a requirements file names as
``${VAR}`` references (pip expands them from the environment; see docs/INSTALL.md).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, TypeVar
from urllib.parse import quote, unquote

MASK = "***"
MIN_LENGTH = 4  # a shorter registered value is masked inside URLs only (it is in too many words)

# scheme://userinfo@ : a user part without ':', '/', '@' or space, an optional password after it.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:'\"<>\\]*)"
    r"(?::(?P<password>[^\s/@'\"<>\\]*))?@"
)
_VAR_REF = re.compile(r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|%[A-Za-z_][A-Za-z0-9_]*%|\*+)$")
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET)$", re.IGNORECASE)
# a config file's "password = x" / "password x" (pip.conf, uv.toml, netrc)
_CONFIG_PASSWORD = re.compile(
    r"""(?im)^\s*(?:machine\s+\S+\s+)?(?:login\s+\S+\s+)?(?:password|token)\s*[=: ]\s*["']?([^"'\s]+)"""
)
_CONFIG_MAX_BYTES = 1 << 20
# values of a *_TOKEN variable that are a setting, not a secret (masking them would mask words)
_NOT_SECRETS = frozenset({"true", "false", "yes", "none", "null", "never", "always", "auto"})

_known: set[str] = set()
_urls: list[str] = []  # the URLs with credentials registered, for unmask()
_pattern: Optional[re.Pattern[str]] = None


def _url_mask(m: re.Match[str]) -> str:
    scheme, user, password = m.group("scheme"), m.group("user"), m.group("password")
    if password is not None:
        if password == "" or _VAR_REF.match(password):
            return m.group(0)
        return f"{scheme}{user}:{MASK}@"
    if user in ("", "git") or _VAR_REF.match(user):  # git+ssh://git@host is no secret
        return m.group(0)
    return f"{scheme}{MASK}@"


def mask_url(url: str) -> str:
    """``url`` with its password or token replaced by ``***`` (the user name stays)."""
    return _USERINFO.sub(_url_mask, url)


def mask(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every URL's credentials and every registered secret masked; the
    credentials of the URLs ``extra`` are registered first (an install's sources)."""
    for url in extra:
        if url not in _urls:
            register_urls(url)
    if not text:
        return text
    if "@" in text:
        text = _USERINFO.sub(_url_mask, text)
    pattern = _compiled()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return text


def _compiled() -> Optional[re.Pattern[str]]:
    global _pattern
    if _pattern is None and _known:
        _pattern = re.compile("|".join(re.escape(v) for v in sorted(_known, key=len, reverse=True)))
    return _pattern


def _forms(value: str) -> list[str]:
    """The ways ``value`` may be written: as is, percent-encoded, decoded, HTML- or JSON-escaped."""
    import html
    import json

    if len(value) < MIN_LENGTH or value == MASK or _VAR_REF.match(value):
        return []
    if value.lower() in _NOT_SECRETS or value.isdigit():  # HF_HUB_DISABLE_IMPLICIT_TOKEN=true
        return []
    forms = set()
    for v in (value, unquote(value)):
        forms |= {v, quote(v, safe=""), quote(v), html.escape(v)}
        forms |= {json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]}
    return [f for f in forms if len(f) >= MIN_LENGTH]


def register(value: Optional[str]) -> None:
    """Mask ``value`` (a password or token) wherever it appears from now on."""
    global _pattern
    if not value:
        return
    forms = _forms(value.strip())
    if forms and not _known.issuperset(forms):
        _known.update(forms)
        _pattern = None


def register_urls(text: Optional[str]) -> None:
    """Register the credentials of every URL in ``text`` (one URL, a list, a file's text)."""
    for secret in secrets_in(text or ""):
        register(secret)
    if text and "@" in text:
        for m in _URL.finditer(text):
            url = m.group(0).rstrip("/")
            if has_credentials(url) and url not in _urls:
                _urls.append(url)


def unmask(url: str) -> str:
    """A masked URL (``https://bob:***@host/whl/cu121``, from ``plan --json``) with its
    credentials put back from the URL they were masked from (``ENVSETUP_TORCH_INDEX``, a flag,
    pip's or uv's configuration), where one of those is its prefix; else ``url`` unchanged."""
    for full in _urls:
        shown = mask_url(full)
        if shown != full and (url == shown or url.startswith(shown + "/")):
            return full + url[len(shown) :]
    return url


def secrets_in(text: str) -> list[str]:
    """The passwords and tokens of the URLs in ``text``."""
    out: list[str] = []
    if "@" not in text:
        return out
    for m in _USERINFO.finditer(text):
        user, password = m.group("user"), m.group("password")
        if password is not None:
            if password and not _VAR_REF.match(password):
                out.append(password)
        elif user and user != "git" and not _VAR_REF.match(user):
            out.append(user)
    return out


def reset() -> None:
    """Forget every registered secret (for tests in one process)."""
    global _pattern
    _known.clear()
    _urls.clear()
    _pattern = None


# -- where secrets come from ------------------------------------------------------------------


def _config_files(env: Mapping[str, str]) -> list[Path]:
    """pip's and uv's configuration files and netrc, as each tool looks for them."""
    home = Path.home()
    files: list[str] = []
    xdg_home = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    xdg_dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    pip_file = env.get("PIP_CONFIG_FILE")
    if pip_file and pip_file != os.devnull:
        files.append(pip_file)
    uv_file = env.get("UV_CONFIG_FILE")
    if uv_file:
        files.append(uv_file)
    if os.name == "nt":
        appdata, programdata = env.get("APPDATA"), env.get("PROGRAMDATA")
        if appdata:
            files += [
                os.path.join(appdata, "pip", "pip.ini"),
                os.path.join(appdata, "uv", "uv.toml"),
            ]
        if programdata:
            files += [os.path.join(programdata, "pip", "pip.ini"),
                      os.path.join(programdata, "uv", "uv.toml")]  # fmt: skip
        files += [str(home / "pip" / "pip.ini"), os.path.join(sys.prefix, "pip.ini")]
        files.append(str(home / "_netrc"))
    else:
        files += [os.path.join(d, "pip", "pip.conf") for d in xdg_dirs if d]
        files += [os.path.join(d, "uv", "uv.toml") for d in xdg_dirs if d]
        files += ["/etc/pip.conf", "/etc/uv/uv.toml", os.path.join(sys.prefix, "pip.conf")]
        files += [str(home / ".pip" / "pip.conf"),
                  str(home / "Library" / "Application Support" / "pip" / "pip.conf")]  # fmt: skip
    files += [os.path.join(xdg_home, "pip", "pip.conf"), os.path.join(xdg_home, "uv", "uv.toml")]
    files += [env.get("NETRC") or str(home / ".netrc"), "uv.toml"]
    seen: list[Path] = []
    for f in files:
        p = Path(f)
        if p not in seen:
            seen.append(p)
    return seen


def _read(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(_CONFIG_MAX_BYTES)
    except (OSError, ValueError):
        return ""


def collect(argv: Sequence[str] = (), env: Optional[Mapping[str, str]] = None) -> None:
    """Register every secret envsetup may come across: the credentials of the URLs in
    ``argv`` (``--index-url``, ``--find-links``, ``--index-base``, a package's URL), in the
    environment (any variable: ``PIP_INDEX_URL``, ``UV_INDEX``, a proxy, …), the values of
    variables named like a password or token, and those of pip's and uv's configuration files
    and netrc."""
    env = os.environ if env is None else env
    for a in argv:
        register_urls(a)
    for name, value in env.items():
        if _SECRET_NAME.search(name):
            register(value)
        elif "@" in value:
            register_urls(value)
    for path in _config_files(env):
        text = _read(path)
        if text:
            register_urls(text)
            for m in _CONFIG_PASSWORD.finditer(text):
                register(m.group(1))


# -- the boundary -----------------------------------------------------------------------------


class Masked:
    """A text stream whose every write is masked (stdout, stderr, a log file)."""

    def __init__(self, real: Any):
        self._real = real

    def write(self, text: str) -> int:
        self._real.write(mask(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()

    def __iter__(self) -> Any:
        return iter(self._real)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def write_text(path: Any, text: str) -> None:
    """Write a file envsetup hands to the user (an export, a report, a plan) with its
    secrets masked."""
    Path(path).write_text(mask(text), encoding="utf-8")


T = TypeVar("T")


def scrub(value: T) -> T:
    """``value`` with every string in it masked: str, list, tuple, dict and dataclass
    instances (a Plan, a stack, a fleet report), before a renderer lays it out."""
    return _scrub(value)  # type: ignore[no-any-return]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_scrub(v) for v in value]
        if isinstance(value, list):
            return items
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _scrub(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.init and hasattr(value, f.name)
        }
        try:
            return dataclasses.replace(value, **changes)
        except (TypeError, ValueError):
            return value
    return value


# -- exports: the variables that supply a credential ------------------------------------------


def env_name(index: str) -> str:
    """An index name as uv spells it in its credential variables: upper case, every other
    character an underscore (``pytorch-cu121`` -> ``PYTORCH_CU121``)."""
    return re.sub(r"[^A-Z0-9]", "_", index.upper())


def credential_vars(index: str) -> tuple[str, str]:
    """uv's variables for the credentials of the index named ``index``."""
    name = env_name(index)
    return f"UV_INDEX_{name}_USERNAME", f"UV_INDEX_{name}_PASSWORD"


def has_credentials(url: str) -> bool:
    return bool(secrets_in(url))


def without_credentials(url: str) -> str:
    """``url`` with no user part (for a file uv or pip reads the credentials for elsewhere)."""
    return _USERINFO.sub(lambda m: m.group("scheme"), url) if has_credentials(url) else url


def with_variables(url: str, index: str) -> str:
    """``url`` with its credentials as ``${VAR}`` references to uv's variables for ``index``
    (pip expands them in a requirements file): ``https://${UV_INDEX_X_USERNAME}:${..._PASSWORD}@``;
    a bare token (``https://TOKEN@``) is the user name, as uv reads it."""
    if not has_credentials(url):
        return url
    user, password = credential_vars(index)

    def sub(m: re.Match[str]) -> str:
        if m.group("password") is None:
            return f"{m.group('scheme')}${{{user}}}@"
        return f"{m.group('scheme')}${{{user}}}:${{{password}}}@"

    return _USERINFO.sub(sub, url)


def index_name_for(url: str) -> str:
    """A name for an index that has none: its host (``mirror.example`` -> ``mirror-example``)."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or "index"
    except ValueError:
        host = "index"
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-") or "index"


def credential_note(index: str, url: str, *, pip: bool) -> str:
    """The comment an export writes above an index that needs credentials."""
    user, password = credential_vars(index)
    token = all(m.group("password") is None for m in _USERINFO.finditer(url))
    names = f"{user} (the token)" if token else f"{user} and {password}"
    shown = without_credentials(url)
    if pip:
        return f"# {shown} needs credentials: set {names}; pip expands ${{VAR}} here"
    return f"# the index {index} ({shown}) needs credentials: uv reads them from {names}"


_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def for_export(text: str, name_of: Any, *, pip: bool) -> str:
    """An export's ``text`` with no credential in it: each URL that carried one names the
    variables that supply it instead, with a comment line saying so under the file's header
    comments. ``pip``: a requirements file (``${VAR}`` references, which pip expands); else a
    uv file (the URL without credentials; uv reads ``UV_INDEX_<NAME>_…`` for the index named
    ``name_of(url)``)."""
    notes: list[str] = []

    def sub(m: re.Match[str]) -> str:
        url = m.group(0)
        if not has_credentials(url):
            return url
        name = str(name_of(url))
        note = credential_note(name, url, pip=pip)
        if note not in notes:
            notes.append(note)
        return with_variables(url, name) if pip else without_credentials(url)

    body = _URL.sub(sub, text)
    if not notes:
        return text
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    return "\n".join([*lines[:i], *notes, *lines[i:]])
