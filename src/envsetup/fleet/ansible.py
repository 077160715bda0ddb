"""Running the shipped playbook with ansible-core (the optional ``envsetup[fleet]`` extra).

envsetup starts ``ansible-playbook`` and reads what the playbook left in a directory on the
controller; it never imports Ansible. The playbook's output goes to stderr (a person watches it)
and to a log file beside the results.
"""

from __future__ import annotations

import json
import locale
import os
import shutil
import sys
from pathlib import Path
from typing import IO, Any, Optional

from envsetup.errors import EnvsetupError, UsageError

INSTALL_HINT = "pip install 'envsetup[fleet]'"


def playbook_text() -> str:
    from importlib.resources import files

    return files("envsetup.fleet").joinpath("playbook.yml").read_text("utf-8")


def find_tool(name: str) -> str:
    """An Ansible program: beside this interpreter first (the venv envsetup[fleet] went into,
    used without activating it), then on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    raise EnvsetupError(
        f"{name} not found: the fleet commands drive Ansible; install it with {INSTALL_HINT}",
        code="no-ansible",
        exit_code=2,
    )


def ansible_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Ansible refuses to start without a UTF-8 locale; CI machines often have none set."""
    from envsetup import proc

    env = proc.clean_env(extra=extra)
    enc = (locale.getpreferredencoding(False) or "").lower().replace("-", "")
    if enc != "utf8":
        env["LC_ALL"] = "C.UTF-8"
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        env.setdefault("ANSIBLE_NOCOLOR", "1")
    env.setdefault("ANSIBLE_RETRY_FILES_ENABLED", "0")
    return env


def inventory_hosts(inventory: str, limit: Optional[str] = None) -> list[str]:
    """The host names an inventory (and a ``--limit`` pattern) covers, in inventory order."""
    from envsetup import proc

    if not Path(inventory).exists() and "," not in inventory:
        raise UsageError(f"-i {inventory}: no such inventory file or directory")
    argv = [find_tool("ansible-inventory"), "-i", inventory, "--list"]
    if limit:
        argv += ["--limit", limit]
    res = proc.run(argv, timeout=120, env=ansible_env())
    if not res.ok:
        tail = (res.stderr.strip().splitlines() or [res.error or f"exit {res.returncode}"])[-1]
        raise UsageError(f"-i {inventory}: ansible-inventory could not read it: {tail}")
    try:
        data = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise UsageError(f"-i {inventory}: ansible-inventory printed no inventory") from None
    hosts: list[str] = []

    def walk(group: str) -> None:
        entry = data.get(group) or {}
        for h in entry.get("hosts", []):
            if h not in hosts:
                hosts.append(h)
        for child in entry.get("children", []):
            walk(child)

    walk("all")
    if not hosts:
        raise UsageError(f"-i {inventory}: no hosts" + (f" match --limit {limit}" if limit else ""))
    return hosts


def run_playbook(
    inventory: str,
    extra_vars: dict[str, Any],
    workdir: Path,
    *,
    hosts: list[str],
    forks: int,
    echo: Optional[IO[str]],
    timeout: float,
) -> int:
    """Run the playbook for ``hosts``; returns ansible-playbook's exit code. Its output goes to
    ``echo`` (stderr, or None for quiet) and to ``workdir/.ansible/ansible.log``; the playbook
    and its variables are kept there too, out of the way of the node files."""
    from envsetup import proc

    run_dir = workdir / ".ansible"
    run_dir.mkdir(exist_ok=True)
    book = run_dir / "playbook.yml"
    book.write_text(playbook_text(), encoding="utf-8")
    vars_file = run_dir / f"vars-{extra_vars.get('envsetup_action', 'doctor')}.json"
    vars_file.write_text(json.dumps(extra_vars), encoding="utf-8")
    limit_file = run_dir / f"hosts-{extra_vars.get('envsetup_action', 'doctor')}.txt"
    limit_file.write_text("".join(f"{h}\n" for h in hosts), encoding="utf-8")
    argv = [
        find_tool("ansible-playbook"),
        "-i", inventory,
        "--limit", f"@{limit_file}",
        "--forks", str(forks),
        "-e", f"@{vars_file}",
        str(book),
    ]  # fmt: skip
    with open(run_dir / "ansible.log", "a", encoding="utf-8") as log:
        try:
            run = proc.stream(argv, log, env=ansible_env())
        except OSError as exc:
            raise EnvsetupError(
                f"could not start ansible-playbook: {exc.strerror or exc}"
            ) from None
        import threading

        done = threading.Event()

        def watchdog() -> None:
            if not done.wait(timeout):
                run.kill()

        threading.Thread(target=watchdog, daemon=True).start()
        try:
            for line in run.lines():
                if echo is not None:
                    echo.write(line + "\n")
                    echo.flush()
            rc = run.wait()
        except KeyboardInterrupt:
            run.kill()
            raise
        finally:
            done.set()
    if rc < 0:
        raise EnvsetupError(
            f"ansible-playbook did not finish within {timeout:g} s and was stopped "
            f"(its log: {run_dir / 'ansible.log'})"
        )
    return rc
