"""Reading node profiles: files, directories of them, and a stream of JSON documents on stdin.

A node document is what ``envsetup doctor --json`` prints (``{"profile": …, "findings": […]}``,
indented over many lines) or a profile alone (the hand-written form ``plan --profile`` reads).
A file's node is named by its stem; a document on a stream by its ``host`` key when it has one,
else by its place (``stdin-3``), or by its srun task when the stream carries ``srun --label``
prefixes (``task-3``).

Why labels: srun forwards each task's output in messages of at most 1024 bytes
(``SLURM_IO_MAX_MSG_LEN``), one line per message when lines are shorter, and interleaves the
messages of different tasks. Indented documents from several nodes therefore arrive with their
lines mixed; ``--label`` prefixes each line with its task, so the documents can be put back
together exactly. A document on one long line would be cut into 1024-byte pieces and could not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from envsetup.fleet.check import is_profile, profile_error
from envsetup.profile import Profile

SEVERITIES = ("error", "warning", "info")
_PROFILE_KEYS = frozenset(f.name for f in dataclasses.fields(Profile))
_LABEL = re.compile(r"^(\d+): ?")


@dataclass
class Node:
    name: str
    source: str  # the file, or "stdin"
    profile: dict[str, Any]  # a Profile's JSON, checked with is_profile
    findings: Optional[list[dict[str, Any]]]  # doctor's, or None: diagnose it here


@dataclass
class Unreadable:
    name: str
    source: str
    error: str


def _findings_error(findings: Any) -> str:
    if not isinstance(findings, list):
        return "findings: expected a list"
    for i, f in enumerate(findings):
        if not isinstance(f, dict):
            return f"findings[{i}]: expected an object"
        if f.get("severity") not in SEVERITIES:
            return f"findings[{i}].severity: expected one of {', '.join(SEVERITIES)}"
        if type(f.get("code")) is not str or type(f.get("message")) is not str:
            return f"findings[{i}]: code and message must be strings"
        if f.get("fix") is not None and type(f.get("fix")) is not str:
            return f"findings[{i}].fix: expected a string or null"
    return ""


def node_from(doc: Any, name: str, source: str) -> Node | Unreadable:
    """A node from one parsed document, or why it is not one."""
    if not isinstance(doc, dict):
        return Unreadable(name, source, f"not a profile: a JSON {type(doc).__name__}")
    findings: Optional[list[dict[str, Any]]] = None
    if isinstance(doc.get("profile"), dict):
        profile = doc["profile"]
        if "findings" in doc:
            why = _findings_error(doc["findings"])
            if why:
                return Unreadable(name, source, why)
            findings = doc["findings"]
    elif doc.keys() <= _PROFILE_KEYS:
        profile = doc
    else:
        extra = ", ".join(sorted(set(doc) - _PROFILE_KEYS)[:3])
        return Unreadable(
            name,
            source,
            f"not a profile (unexpected {extra}): give envsetup doctor --json output or a "
            "profile as plan --profile reads it",
        )
    if not is_profile(profile):
        return Unreadable(name, source, f"not a valid profile: {profile_error(profile)}")
    return Node(name, source, profile, findings)


def read_file(path: Path | str, name: Optional[str] = None) -> Node | Unreadable:
    where = os.fspath(path)
    label = name or os.path.splitext(os.path.basename(where))[0]
    try:
        with open(where, "rb") as f:
            raw = f.read()
    except OSError as exc:
        return Unreadable(label, where, f"cannot be read ({exc.strerror or exc})")
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        return Unreadable(label, where, "not a text file (not UTF-8)")
    except json.JSONDecodeError as exc:
        return Unreadable(
            label, where, f"not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        )
    return node_from(doc, label, where)


def _documents(text: str) -> list[tuple[Any, str]]:
    """The JSON documents in ``text`` one after another (one per line, or each indented over
    many lines): (document, "") each, or (None, why) where one is not JSON; reading goes on at
    the next line that starts a document."""
    decoder = json.JSONDecoder()
    out: list[tuple[Any, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return out
        try:
            doc, i = decoder.raw_decode(text, i)
            out.append((doc, ""))
        except json.JSONDecodeError as exc:
            out.append((None, f"not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"))
            nxt = text.find("\n{", max(exc.pos, i + 1))
            if nxt < 0:
                return out
            i = nxt + 1


def read_stream(text: str, source: str = "stdin") -> list[Node | Unreadable]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    streams: list[tuple[str, str]] = []  # (name prefix, text)
    if lines and all(_LABEL.match(ln) for ln in lines):  # srun --label
        tasks: dict[int, list[str]] = {}
        for ln in lines:
            m = _LABEL.match(ln)
            assert m is not None
            tasks.setdefault(int(m.group(1)), []).append(ln[m.end() :])
        streams = [(f"task-{t}", "\n".join(body)) for t, body in sorted(tasks.items())]
    else:
        streams = [("stdin", text)]
    out: list[Node | Unreadable] = []
    count = 0
    for prefix, body in streams:
        docs = _documents(body)
        for k, (doc, why) in enumerate(docs, 1):
            count += 1
            if prefix == "stdin":
                name = f"stdin-{count}"
            else:
                name = prefix if len(docs) == 1 else f"{prefix}.{k}"
            host = doc.get("host") if isinstance(doc, dict) else None
            if isinstance(host, str) and host.strip():
                name = host.strip()
            out.append(Unreadable(name, source, why) if why else node_from(doc, name, source))
    return out


def files_in(directory: Path) -> list[str]:
    """The ``*.json`` files of a directory (not its subdirectories), in name order."""
    with os.scandir(directory) as it:
        found = sorted(
            (e.name, e.path)
            for e in it
            if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file()
        )
    return [p for _, p in found]


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Parsed JSON holds no reference cycles, but each of the thousands of documents kept makes
    Python's cycle collector walk everything kept so far again: reading 10,000 nodes took 60 %
    longer with it running. Reference counting still frees everything as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_inputs(
    paths: list[str], stdin_text: Optional[str] = None
) -> tuple[list[Node], list[Unreadable]]:
    """Every node in ``paths`` (files, directories, ``-`` for ``stdin_text``). A path that does
    not exist is the user's error (UsageError); a file that is not a node profile is returned
    among the unreadable ones, by name, and the others are still read."""
    from envsetup.errors import UsageError

    results: list[Node | Unreadable] = []
    for p in paths:
        if p != "-" and not os.path.exists(p):
            raise UsageError(
                f"{p}: no such file or directory (give doctor --json files, directories of "
                "them, or - for stdin)"
            )
    with no_cycle_collection():
        for p in paths:
            if p == "-":
                results.extend(read_stream(stdin_text or ""))
                continue
            path = Path(p)
            if path.is_dir():
                try:
                    results.extend(read_file(f) for f in files_in(path))
                except OSError as exc:
                    raise UsageError(f"{p}: cannot list the directory ({exc.strerror})") from None
            else:
                results.append(read_file(path))
    nodes: list[Node] = []
    bad: list[Unreadable] = []
    seen: dict[str, int] = {}
    for r in results:
        n = seen.get(r.name, 0) + 1
        seen[r.name] = n
        if n > 1:
            r.name = f"{r.name}#{n}"
        if isinstance(r, Node):
            nodes.append(r)
        else:
            bad.append(r)
    return nodes, bad
