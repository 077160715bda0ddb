"""Record the environment's files before an install, and put them back exactly after a failure.

The record lists every file and directory under the places an installer writes to (the whole
prefix of a virtual or conda environment; site-packages, the scripts directory and the data
directories otherwise) with its inode, size and modification time. The snapshot keeps a hard
link to every recorded file, so it costs a directory entry per file, not a copy, and holds the
very bytes that were there: installers replace a file by removing it and writing a new one (pip
unlinks before it writes, uv links or renames into place), so the old inode stays intact in
the snapshot.

A restore compares files, not only the installed distributions: what the installer added
anywhere under the recorded places (a new distribution, a script in bin/, a man page under
share/, pip's ``~`` stash directories, byte-code) is removed, what it removed or replaced is
linked back from the snapshot, and the result is compared with the record again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from envsetup.install.target import TargetInfo

SNAPSHOT_PREFIX = ".envsetup-snapshot-"
# conda's own history (its revisions restore it); envsetup's install lock (held throughout)
SKIP_DIRS = {"conda-meta", ".envsetup-lock"}


@dataclass(frozen=True)
class Stat:
    ino: int
    size: int
    mtime_ns: int
    link: Optional[str] = None  # a symbolic link's target


@dataclass
class Record:
    roots: tuple[str, ...]
    files: dict[str, Stat] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)


@dataclass
class Snapshot:
    record: Record
    where: Path  # the directory holding the links (removed by :meth:`remove`)
    links: dict[str, str] = field(default_factory=dict)  # recorded path → its link or copy
    copied: int = 0  # files that could not be linked and were copied

    def remove(self) -> None:
        shutil.rmtree(self.where, ignore_errors=True)


def roots(info: TargetInfo) -> tuple[str, ...]:
    """Where an installer may write for ``info``."""
    if info.in_venv or info.conda or not info.exists:
        candidates = [info.prefix]
    else:  # a system interpreter: not the whole of /usr
        data = info.data or info.prefix
        candidates = [info.purelib, info.platlib, info.scripts]
        candidates += [os.path.join(data, d) for d in ("share", "etc", "include")]
    out: list[str] = []
    for c in sorted({os.path.abspath(c) for c in candidates if c}, key=len):
        if not any(c == r or c.startswith(r + os.sep) for r in out):
            out.append(c)
    return tuple(out)


def _walk(root: str, files: dict[str, Stat], dirs: set[str]) -> None:
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        dirs.add(d)
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        if e.name.startswith(SNAPSHOT_PREFIX) or (
                            d == root and e.name in SKIP_DIRS
                        ):
                            continue
                        stack.append(e.path)
                        continue
                    st = e.stat(follow_symlinks=False)
                    link = os.readlink(e.path) if e.is_symlink() else None
                except OSError:
                    continue
                files[e.path] = Stat(st.st_ino, st.st_size, st.st_mtime_ns, link)


def record(info: TargetInfo) -> Record:
    rec = Record(roots(info))
    for r in rec.roots:
        if os.path.isdir(r):
            _walk(r, rec.files, rec.dirs)
    return rec


def _place(info: TargetInfo, work: Path) -> Path:
    """A directory for the links on the same file system as the environment."""
    try:
        same = os.stat(work).st_dev == os.stat(info.prefix).st_dev
    except OSError:
        same = False
    if same:
        where = work / "snapshot"
        where.mkdir(mode=0o700)
        return where
    return Path(tempfile.mkdtemp(prefix=f"{SNAPSHOT_PREFIX}{os.getpid()}-", dir=info.prefix))


def take(info: TargetInfo, rec: Record, work: Path) -> Snapshot:
    """Keep a hard link (a copy where a link cannot be made) to every recorded file."""
    snap = Snapshot(rec, _place(info, work))
    base = str(snap.where)
    for i, (path, st) in enumerate(rec.files.items()):
        if st.link is not None:
            continue  # a symbolic link is recreated from its recorded target
        dest = f"{base}/{i}"
        try:
            os.link(path, dest)
        except OSError:
            try:
                shutil.copy2(path, dest)
                snap.copied += 1
            except OSError:
                continue  # unreadable: the restore reports it if it changes
        snap.links[path] = dest
    return snap


def _put_back(path: str, st: Stat, snap: Snapshot) -> bool:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.envsetup-restore"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    if st.link is not None:
        os.symlink(st.link, tmp)
    else:
        src = snap.links.get(path)
        if src is None:
            return False
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return True


def _same(a: Stat, b: Stat) -> bool:
    """Same content, as far as the record can tell (size and modification time, or target)."""
    if a.link is not None or b.link is not None:
        return a.link == b.link
    return (a.size, a.mtime_ns) == (b.size, b.mtime_ns)


def restore(snap: Snapshot) -> tuple[int, list[str]]:
    """Put the recorded files back. Returns how many entries it had to remove or put back
    (0: the installer had changed nothing), and what still differs from the record, in words."""
    rec = snap.record
    now = Record(rec.roots)
    for r in rec.roots:
        if os.path.isdir(r):
            _walk(r, now.files, now.dirs)
    # What the installer added: files, then the directories it made, deepest first.
    added = now.files.keys() - rec.files.keys()
    acted = len(added)
    for path in added:
        with contextlib.suppress(OSError):
            os.unlink(path)
    for d in sorted(now.dirs - rec.dirs, key=len, reverse=True):
        acted += 1
        shutil.rmtree(d, ignore_errors=True)
    # What it removed or replaced.
    problems = []
    for path, st in rec.files.items():
        cur = now.files.get(path)
        if cur is not None and (cur.ino == st.ino or st.link is not None) and _same(cur, st):
            continue
        if cur is not None and cur.ino == st.ino and st.link is None:
            problems.append(f"{path} was changed in place")
            continue
        acted += 1
        try:
            if not _put_back(path, st, snap):
                problems.append(f"{path} could not be read before the install")
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
    for d in sorted(rec.dirs - now.dirs, key=len):
        acted += 1
        with contextlib.suppress(OSError):
            os.makedirs(d, exist_ok=True)
    return acted, problems + differences(rec)


def differences(rec: Record) -> list[str]:
    """How the files under the recorded places differ from the record, in words."""
    now = Record(rec.roots)
    for r in rec.roots:
        if os.path.isdir(r):
            _walk(r, now.files, now.dirs)
    out = [f"{p} added" for p in sorted(now.files.keys() - rec.files.keys())]
    out += [f"{p} missing" for p in sorted(rec.files.keys() - now.files.keys())]
    out += [
        f"{p} changed"
        for p in sorted(rec.files.keys() & now.files.keys())
        if not _same(rec.files[p], now.files[p])
    ]
    out += [f"{d}/ added" for d in sorted(now.dirs - rec.dirs)]
    return out


def dist_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two ``name → version`` records, in words."""
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"{name} {b} added")
        elif b is None:
            out.append(f"{name} {a} missing")
        else:
            out.append(f"{name} {a} became {b}")
    return out


def clean_stale(parent: Path, prefix: str) -> None:
    """Remove ``parent/<prefix><pid>-*`` directories of envsetup runs no longer alive (a run
    killed with SIGKILL cannot clean up after itself)."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for e in entries:
        m = re.match(re.escape(prefix) + r"(\d+)-", e.name)
        if m is None or not e.is_dir(follow_symlinks=False):
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(e.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def files_of(rec: Record, under: Iterable[str]) -> list[str]:
    """Recorded files under any of ``under`` (for messages and tests)."""
    dirs = tuple(os.path.join(u, "") for u in under)
    return [p for p in rec.files if p.startswith(dirs)]
