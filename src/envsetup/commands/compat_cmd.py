"""``envsetup compat list|check|refresh``: the table; whether the PyTorch index has builds it
lacks; and the rewrite of the facts the indexes' listings hold (envsetup/refresh.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from envsetup.cli import app

compat_app = typer.Typer(
    name="compat",
    help="The compatibility table: show it, check it against the indexes, refresh it.",
)
app.add_typer(compat_app, name="compat")


def _py_range(pys: tuple[str, ...]) -> str:
    """'3.11-3.15, 3.14t-3.15t': the plain and the free-threaded Pythons, each as a range."""

    def rng(vs: list[str], suffix: str) -> str:
        return vs[0] + suffix if len(vs) == 1 else f"{vs[0]}{suffix}-{vs[-1]}{suffix}"

    plain = [p for p in pys if not p.endswith("t")]
    ft = [p[:-1] for p in pys if p.endswith("t")]
    parts = [rng(plain, "")] if plain else []
    if ft:
        parts.append(rng(ft, "t"))
    return "\n".join(parts) or "-"


def _choice_json(c: Any) -> Any:
    if c is None:
        return None
    return {
        "version": c.version,
        "confidence": c.confidence,
        **({"note": c.note} if c.note else {}),
    }


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
                "requires_python": patch.requires_python,
                "torchvision": patch.torchvision,
                "torchaudio": patch.torchaudio,
                "companions": {
                    name: {b: _choice_json(c) for b, c in patch.companions[name].items()}
                    for name in patch.companions
                },
                "platforms": plats,
                "variants": {
                    v: {
                        "cuda": next(iter(by.values())).cuda,
                        "platforms": sorted(by),
                        "confidence": next(iter(by.values())).confidence,
                        **(
                            {"patches": list(next(iter(by.values())).patches or ())}
                            if next(iter(by.values())).patches
                            else {}
                        ),
                    }
                    for v, by in rel.variants.items()
                    if any(b.patches is None or patch.version in b.patches for b in by.values())
                },
                "variants_known": rel.variants_known,
            }
        )
    return rows


def _variants_cell(variants: dict[str, Any]) -> str:
    """'cpu cu126 130 132?' and 'rocm7.1 7.2' on a second line: the PyTorch-index builds."""
    cuda = [v for v in variants if v.startswith("cu")]
    rocm = [v for v in variants if v.startswith("rocm")]

    def mark(v: str) -> str:
        return "?" if variants[v]["confidence"] != "high" else ""

    def run(prefix: str, names: list[str]) -> str:
        return " ".join(
            (prefix if i == 0 else "") + v[len(prefix) :] + mark(v) for i, v in enumerate(names)
        )

    first = (["cpu" + mark("cpu")] if "cpu" in variants else []) + (
        [run("cu", cuda)] if cuda else []
    )
    lines = [" ".join(first)] if first else []
    if rocm:
        lines.append(run("rocm", rocm))
    return "\n".join(lines) or "-"


def _companion_cell(row: dict[str, Any], name: str) -> str:
    by = row["companions"].get(name, {})
    versions = {c["version"] for c in by.values() if c}
    shown: Optional[str] = row[name] or (str(max(versions)) if versions else None)
    if shown is None:
        return "-"
    uneven = len(by) > 1 or any(c is None for c in by.values())
    conf = any(c and c["confidence"] != "high" for c in by.values())
    return shown + ("*" if uneven else "") + ("?" if conf else "")


@compat_app.command("list")
def list_command(
    torch: Optional[str] = typer.Option(None, "--torch", help="Only releases matching this spec."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Show the table: releases, Python, the default build, PyTorch-index builds, companions."""
    from envsetup.compat import load_table
    from envsetup.resolve import parse_spec

    spec = parse_spec(torch)
    table = load_table()
    rows = [r for r in _rows(table) if spec is None or spec.contains(r["torch"], prereleases=True)]
    if as_json:
        doc = {"collected": table.collected, "releases": rows}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"torch releases (table collected {table.collected})",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        title_justify="left",
    )
    # Widths for 80 columns: every cell but the PyTorch-index builds keeps its full width; that
    # one wraps between its words (two lines at most for any release so far).
    t.add_column("torch", no_wrap=True, min_width=6)
    t.add_column("Python", no_wrap=True, min_width=11)
    t.add_column("Linux", no_wrap=True, min_width=5)
    t.add_column("PyTorch index", max_width=26)
    t.add_column("vision", no_wrap=True, min_width=7)
    t.add_column("audio", no_wrap=True, min_width=8)
    t.add_column("macOS", no_wrap=True, min_width=5)
    for r in rows:
        lx = r["platforms"].get("linux_x86_64", {})
        mac = r["platforms"].get("macos_arm64")
        t.add_row(
            r["torch"],
            _py_range(tuple(lx.get("python", ()))),
            str(lx.get("default") or "-"),
            _variants_cell(r["variants"]) if r["variants_known"] else "not known",
            _companion_cell(r, "torchvision"),
            _companion_cell(r, "torchaudio"),
            mac["min_macos"] if mac else "-",
        )
    con = Console()
    con.print(t)
    con.print(
        "Python, Linux: the package-index wheels for Linux x86_64; macOS: arm64 minimum.\n"
        "? medium or inferred confidence   * not for every build   every fact: --json",
        highlight=False,
    )


# ---------------------------------------------------------------- check


def _wheels(files: list[Any]) -> set[tuple[str, Optional[str]]]:
    """{(public version, local label)} of final torch 2.x releases among an index's files."""
    from packaging.version import InvalidVersion, Version

    out = set()
    for f in files:
        if f.kind != "wheel" or f.project != "torch":
            continue
        try:
            v = Version(f.version)
        except InvalidVersion:
            continue
        if v.is_prerelease or v.is_devrelease or v.major != 2:
            continue
        out.add((v.public, v.local))
    return out


def _is_dir(url: str) -> bool:
    from envsetup.paths import file_url_path

    return file_url_path(url).is_dir()


def _timeout(timeout: float) -> tuple[float, float]:
    import math

    from envsetup.errors import UsageError
    from envsetup.index import CONNECT_TIMEOUT

    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout {timeout:g}: give the seconds per request, more than 0 (30)")
    return (min(CONNECT_TIMEOUT, timeout), timeout)


@compat_app.command("check")
def check_command(
    index_base: Optional[str] = typer.Option(
        None, "--index-base", help="Base URL of the PyTorch index (or a mirror with its layout)."
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds per request."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Compare the table with the PyTorch index; exit 1 when the table is stale or the index
    cannot be read.

    A file:// base is read from the local directory (a mirror laid out like the index:
    <base>/<variant>/torch/index.html, or the wheel files themselves).
    """
    from packaging.version import Version

    from envsetup.compat import load_table
    from envsetup.index import Index
    from envsetup.resolve import index_base_from

    limits = _timeout(timeout)
    base = index_base_from(index_base)
    table = load_table()
    listed: dict[str, set[str]] = {}  # version -> variants the table lists
    known: dict[str, set[str]] = {}  # the same and the unconfirmed ones
    for patch, rel in table.patches():
        listed[patch.version] = {
            name
            for name, by in rel.variants.items()
            if any(b.patches is None or patch.version in b.patches for b in by.values())
        }
        known[patch.version] = listed[patch.version] | {k.split(" ")[0] for k in rel.unconfirmed}
    variants = sorted({v for vs in known.values() for v in vs})

    with Index(base, timeout=limits) as idx:
        idx.check_local()  # a file:// mirror that is not there: one line, exit 1
    local = base.startswith("file:")
    seen: set[tuple[str, Optional[str]]] = set()
    absent_pages: list[str] = []
    for v in variants:
        files = None
        with Index(f"{base}/{v}", timeout=limits) as idx:
            if not local or _is_dir(f"{base}/{v}"):
                files = idx.files("torch")
        if files is None:
            absent_pages.append(v)
            continue
        seen |= _wheels(files)
    with Index(base, timeout=limits) as idx:
        root = idx.files("torch")
    if root is not None:
        seen |= _wheels(root)

    oldest = Version(table.oldest)
    missing_releases = sorted(
        {v for v, _ in seen if v not in known and Version(v) >= oldest}, key=Version
    )
    missing_variants = sorted(
        {(v, loc) for v, loc in seen if v in known and loc and loc not in known[v]},
        key=lambda x: (Version(x[0]), x[1]),
    )
    not_on_index = sorted(
        {
            (p.version, name)
            for p, _ in table.patches()
            for name in listed[p.version]
            if name not in absent_pages and (p.version, name) not in seen
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
            "the table is stale: envsetup compat refresh, then docs/ADDING-A-RELEASE.md\n"
            if stale
            else "the table is up to date with the index\n"
        )
    if stale:
        raise typer.Exit(1)


# ---------------------------------------------------------------- refresh


def _table_dir(table: Optional[Path]) -> Path:
    from envsetup.compat import _default_root
    from envsetup.errors import UsageError

    if table is not None:
        if not (table / "index.json").is_file():
            raise UsageError(f"--table {table}: no index.json there; give the table's directory")
        return table
    root = _default_root()
    if not isinstance(root, Path):
        path = Path(str(root))
        if not (path / "index.json").is_file():
            raise UsageError("the shipped table is not a directory: give --table DIR")
        return path
    return root


@compat_app.command("refresh")
def refresh_command(
    write: bool = typer.Option(False, "--write", help="Write the changes into the table."),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when the table is behind the listings (writes nothing)."
    ),
    table_dir: Optional[Path] = typer.Option(  # noqa: B008
        None, "--table", help="The table's directory (default: the one envsetup reads)."
    ),
    index_url: Optional[str] = typer.Option(
        None,
        "--index-url",
        help="The package index (default: $PIP_INDEX_URL, pip's configuration, else the client "
        "library's default).",
    ),
    index_base: Optional[str] = typer.Option(
        None,
        "--index-base",
        help="Base URL of the PyTorch index (default: $ENVSETUP_TORCH_INDEX, else the official).",
    ),
    no_torch_index: bool = typer.Option(
        False, "--no-torch-index", help="Read the package index only."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Rewrite the facts the indexes' listings hold (releases, dates, Python and platform tags,
    companions' wheels and Requires-Python, the default builds' cuDNN and Triton); report what
    contradicts a hand-sourced fact. Prints a diff; writes only with --write."""
    from envsetup import refresh
    from envsetup.compat import load_table
    from envsetup.errors import UsageError
    from envsetup.index import default_index_url
    from envsetup.resolve import check_index_url, index_base_from

    if write and check:
        raise UsageError("--write and --check do not go together: --check writes nothing")
    root = _table_dir(table_dir)
    load_table(root)  # a broken table is a one-line error before any network
    package = check_index_url(index_url, "--index-url") if index_url else default_index_url()
    torch_index = None if no_torch_index else index_base_from(index_base)
    docs = refresh.load_docs(root)
    variants = refresh.variants_to_read(docs)
    listings = refresh.read_listings(package, torch_index, variants)
    new, report = refresh.derive(docs, listings)
    text = refresh.diff(docs, new)
    written = refresh.write_docs(root, docs, new) if write else []
    behind = bool(report.changes)
    if as_json:
        doc = {
            "table": str(root),
            "behind": behind,
            "changes": report.changes,
            "contradictions": report.contradictions,
            "todo": report.todo,
            "written": written,
            "diff": text,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        out = sys.stdout
        if text:
            out.write(text)
            out.write("\n")
        for title, items in (
            ("listing facts the table was behind on", report.changes),
            ("contradicted by a listing (not rewritten: check the source)", report.contradictions),
            ("to do by hand", report.todo),
        ):
            if items:
                out.write(f"{title} ({len(items)}):\n")
                out.writelines(f"  - {x}\n" for x in items[:40])
                if len(items) > 40:
                    out.write(f"  ... and {len(items) - 40} more (--json lists every one)\n")
        files = len({ln[6:] for ln in text.splitlines() if ln.startswith("+++ b/")})
        if written:
            out.write(f"wrote {len(written)} files: {', '.join(written)}\n")
        elif behind:
            out.write(
                f"the table is behind the listings: {len(report.changes)} changes in {files} "
                "files; envsetup compat refresh --write applies them\n"
            )
        else:
            out.write("the table holds every fact the listings give\n")
    if check and behind:
        raise typer.Exit(1)
