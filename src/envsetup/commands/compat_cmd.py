"""``envsetup compat list`` and ``envsetup compat check``: the table, and whether it is stale."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Optional

import typer

from envsetup.cli import app

compat_app = typer.Typer(
    name="compat", help="The compatibility table: show it, check it against the PyTorch index."
)
app.add_typer(compat_app, name="compat")


def _py_range(pys: tuple[str, ...]) -> str:
    plain = [p for p in pys if not p.endswith("t")]
    ft = [p for p in pys if p.endswith("t")]
    s = f"{plain[0]}-{plain[-1]}" if plain else "-"
    return s + (f" +{','.join(ft)}" if ft else "")


def _rows(table: Any) -> list[dict[str, Any]]:
    rows = []
    for patch, rel in table.patches():
        plats = {}
        for name, info in rel.platforms.items():
            d = info.default
            plats[name] = {
                "python": list(rel.python_for(patch.version, name)),
                "default": d.same_as if d else None,
                "min_macos": info.min_macos,
            }
        rows.append(
            {
                "torch": patch.version,
                "date": patch.date,
                "torchvision": patch.torchvision,
                "torchaudio": patch.torchaudio,
                "platforms": plats,
                "variants": {
                    v: {
                        "cuda": next(iter(by.values())).cuda,
                        "platforms": sorted(by),
                        "confidence": next(iter(by.values())).confidence,
                    }
                    for v, by in rel.variants.items()
                },
                "variants_known": rel.variants_known,
            }
        )
    return rows


@compat_app.command("list")
def list_command(
    torch: Optional[str] = typer.Option(None, "--torch", help="Only releases matching this spec."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Show the table as a matrix: releases, Python, platforms, variants."""
    from envsetup.compat import load_table
    from envsetup.resolve import parse_spec

    spec = parse_spec(torch)
    table = load_table()
    rows = [r for r in _rows(table) if spec is None or spec.contains(r["torch"], prereleases=True)]
    if as_json:
        doc = {"collected": table.collected, "releases": rows}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"torch builds (table collected {table.collected})")
    for col in (
        "torch",
        "Python (Linux x86_64)",
        "default (Linux)",
        "PyTorch index",
        "vision",
        "audio",
        "macOS arm64",
    ):
        t.add_column(col)
    for r in rows:
        lx = r["platforms"].get("linux_x86_64", {})
        mac = r["platforms"].get("macos_arm64")
        names = [
            v + ("?" if info["confidence"] != "high" else "") for v, info in r["variants"].items()
        ]
        t.add_row(
            r["torch"],
            _py_range(tuple(lx.get("python", ()))),
            str(lx.get("default") or "-"),
            " ".join(names) if r["variants_known"] else "unknown",
            r["torchvision"] or "-",
            r["torchaudio"] or "-",
            f">= {mac['min_macos']}" if mac else "-",
        )
    con = Console()
    con.print(t)
    con.print(
        "? = medium/inferred confidence; details: envsetup compat list --json", highlight=False
    )


def _parse_listing(text: str, content_type: str) -> list[str]:
    import re

    if "json" in content_type:
        try:
            data = json.loads(text)
            return [str(f.get("filename", "")) for f in data.get("files", [])]
        except (ValueError, AttributeError):
            return []
    return re.findall(r">\s*([^<>\s]+\.whl)\s*<", text)


def _wheels(names: list[str]) -> set[tuple[str, Optional[str]]]:
    """{(public version, local label)} of final torch 2.x releases in these wheel names."""
    from packaging.version import InvalidVersion, Version

    out = set()
    for n in names:
        parts = n.split("/")[-1].split("-")
        if len(parts) < 3 or parts[0] != "torch":
            continue
        try:
            v = Version(parts[1].replace("%2B", "+"))
        except InvalidVersion:
            continue
        if v.is_prerelease or v.is_devrelease or v.major != 2:
            continue
        out.add((v.public, v.local))
    return out


def _http_fetch(base: str, timeout: float) -> Callable[[str], Optional[list[str]]]:
    """A reader of index pages over HTTP: wheel names, or None for a page that is not there."""
    import requests

    from envsetup.errors import EXIT_USAGE, EnvsetupError

    session = requests.Session()
    headers = {"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}

    def fetch(url: str) -> Optional[list[str]]:
        try:
            r = session.get(url, headers=headers, timeout=timeout)
        except requests.exceptions.Timeout:
            raise EnvsetupError(
                f"the PyTorch index at {base} did not answer within {timeout:g}s ({url})",
                exit_code=EXIT_USAGE,
            ) from None
        except requests.exceptions.RequestException as exc:
            reason = type(exc).__name__
            if isinstance(exc, requests.exceptions.ConnectionError):
                reason = "connection refused or host unreachable"
            raise EnvsetupError(
                f"cannot reach the PyTorch index at {base}: {reason} ({url})", exit_code=EXIT_USAGE
            ) from None
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise EnvsetupError(
                f"the PyTorch index answered HTTP {r.status_code} for {url}", exit_code=EXIT_USAGE
            )
        return _parse_listing(r.text, r.headers.get("Content-Type", ""))

    return fetch


def _local_fetch(base: str) -> Callable[[str], Optional[list[str]]]:
    """A reader of a file:// mirror: a page's index.html (PEP 503), else its *.whl files."""
    from pathlib import Path
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    from envsetup.errors import UsageError

    root = Path(url2pathname(urlsplit(base).path))
    if not root.is_dir():
        raise UsageError(
            f"index {base}: {root} is not a directory; give a local mirror of the index"
        )

    def fetch(url: str) -> Optional[list[str]]:
        page = Path(url2pathname(urlsplit(url).path))
        if not page.is_dir():
            return None
        html = page / "index.html"
        if html.is_file():
            try:
                return _parse_listing(html.read_text(encoding="utf-8", errors="replace"), "html")
            except OSError as exc:
                raise UsageError(f"{html}: cannot be read ({exc.strerror or exc})") from None
        return sorted(p.name for p in page.glob("*.whl"))

    return fetch


@compat_app.command("check")
def check_command(
    index_base: Optional[str] = typer.Option(
        None, "--index-base", help="Base URL of the PyTorch index (or a mirror with its layout)."
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds per request."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Compare the table with the live PyTorch index; exit 1 when the table is stale.

    A file:// base is read from the local directory (a mirror laid out like the index:
    <base>/<variant>/torch/index.html, or the wheel files themselves).
    """
    import math

    from envsetup.compat import load_table
    from envsetup.errors import UsageError
    from envsetup.resolve import index_base_from

    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout {timeout:g}: give the seconds per request, more than 0 (30)")
    base = index_base_from(index_base)
    table = load_table()
    known: dict[str, set[str]] = {}  # version -> variants the table lists
    for patch, rel in table.patches():
        known[patch.version] = set(rel.variants) | set(rel.unconfirmed)
    variants = sorted({v for vs in known.values() for v in vs if " " not in v})
    fetch = _local_fetch(base) if base.startswith("file:") else _http_fetch(base, timeout)

    seen: set[tuple[str, Optional[str]]] = set()
    absent_pages: list[str] = []
    for v in variants:
        names = fetch(f"{base}/{v}/torch/")
        if names is None:
            absent_pages.append(v)
            continue
        seen |= _wheels(names)
    root = fetch(f"{base}/torch/")
    if root is not None:
        seen |= _wheels(root)

    from packaging.version import Version

    oldest = Version(table.oldest)
    missing_releases = sorted(
        {v for v, _ in seen if v not in known and Version(v) >= oldest}, key=Version
    )
    missing_variants = sorted(
        {(v, loc) for v, loc in seen if v in known and loc and loc not in known[v]},
        key=lambda x: (Version(x[0]), x[1]),
    )
    on_index = {(v, loc) for v, loc in seen}
    not_on_index = sorted(
        {
            (p.version, name)
            for p, rel in table.patches()
            for name in rel.variants
            if name not in absent_pages and (p.version, name) not in on_index
        },
        key=lambda x: (Version(x[0]), x[1]),
    )
    stale = bool(missing_releases or missing_variants)
    if as_json:
        doc = {
            "index": base,
            "stale": stale,
            "missing_releases": missing_releases,
            "missing_variants": [{"torch": v, "variant": loc} for v, loc in missing_variants],
            "not_on_index": [{"torch": v, "variant": n} for v, n in not_on_index],
            "variant_pages_missing": absent_pages,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        out = sys.stdout
        if missing_releases:
            out.write(
                "releases on the index but not in the table: " + ", ".join(missing_releases) + "\n"
            )
        if missing_variants:
            out.write(
                "variants on the index but not in the table: "
                + ", ".join(f"{v}+{loc}" for v, loc in missing_variants)
                + "\n"
            )
        if not_on_index:
            out.write(
                f"{len(not_on_index)} builds the table lists were not found on the index "
                "(a partial mirror?): "
                + ", ".join(f"{v}+{n}" for v, n in not_on_index[:10])
                + (" ..." if len(not_on_index) > 10 else "")
                + "\n"
            )
        out.write(
            "the table is stale: update compat/ (docs/RESOLVER.md)\n"
            if stale
            else "the table is up to date with the index\n"
        )
    if stale:
        raise typer.Exit(1)
