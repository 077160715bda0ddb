"""``envsetup fleet``: many machines. ``report`` reads node profiles and groups identical
machines; ``doctor`` and ``install`` drive the shipped Ansible playbook over an inventory;
``playbook`` prints it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from envsetup.cli import app

fleet_app = typer.Typer(
    name="fleet",
    help="Many machines: group identical ones, report what differs, plan and install per group.",
    no_args_is_help=True,
)
app.add_typer(fleet_app, name="fleet")

_TORCH = typer.Option(None, "--torch", help="Torch version spec for the plans: 2.4, 2.4.1, latest.")
_VARIANT = typer.Option("auto", "--variant", help="auto, default, cpu, cuXYZ or rocmX.Y.")
_VISION = typer.Option(False, "--vision/--no-vision", help="Plans include torchvision.")
_AUDIO = typer.Option(False, "--audio/--no-audio", help="Plans include torchaudio.")
_INDEX_BASE = typer.Option(None, "--index-base", help="Base URL of a PyTorch index mirror.")
_JSON = typer.Option(False, "--json", help="Print one JSON document.")
_MARKDOWN = typer.Option(False, "--markdown", help="Print the report as markdown.")
_HTML = typer.Option(None, "--html", help="Also write the report as one self-contained page.")
_PLANS = typer.Option(
    None,
    "--plans",
    metavar="DIR",
    help="Write each group's plan to DIR/GROUP.json, for envsetup install --plan-file on its "
    "nodes (the report then names each file).",
)
_INVENTORY = typer.Option(..., "-i", "--inventory", help="An Ansible inventory (file, dir).")
_LIMIT = typer.Option(None, "--limit", help="An Ansible host pattern within the inventory.")
_FROM = typer.Option(
    None,
    "--from",
    help="Install from the profiles an earlier fleet doctor --out kept (no new run).",
)
_OUT = typer.Option(
    None, "--out", help="Keep the profiles (and outcomes) here (default: a new temp dir)."
)


def _request(
    torch: Optional[str], variant: str, vision: bool, audio: bool, base: Optional[str]
) -> Any:
    from envsetup.plan import Request
    from envsetup.resolve import check_variant, index_base_from, parse_spec

    parse_spec(torch)
    return Request(torch=torch, variant=check_variant(variant), vision=vision, audio=audio,
                   index_base=index_base_from(base))  # fmt: skip


def _formats(as_json: bool, markdown: bool) -> None:
    from envsetup.errors import UsageError

    if as_json and markdown:
        raise UsageError("--json and --markdown: choose one")


def _write_plans(report: Any, plans: Optional[Path]) -> dict[str, Any]:
    """With --plans DIR: each group's plan written there (the report's install notes name the
    files); the files by group, for --json."""
    from envsetup.errors import UsageError
    from envsetup.fleet.report import write_plans

    if plans is None:
        return {}
    try:
        written = write_plans(report, plans)
    except OSError as exc:
        raise UsageError(f"--plans {plans}: {exc.strerror or exc}") from None
    return {"plans": {g: str(p.absolute()) for g, p in written.items()}}


def _show(
    report: Any, as_json: bool, markdown: bool, html: Optional[Path], extra: Any = None
) -> None:
    from envsetup.errors import UsageError
    from envsetup.fleet import render

    if html is not None:
        from envsetup import secrets
        from envsetup.fleet.html import to_html

        try:
            secrets.write_text(html, to_html(report))
        except OSError as exc:
            raise UsageError(f"--html {html}: {exc.strerror or exc}") from None
    if as_json:
        doc = report.to_dict()
        if extra:
            doc.update(extra)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif markdown:
        sys.stdout.write(render.to_markdown(report))
    else:
        render.print_report(report)
        if html is not None:
            sys.stdout.write(f"report page: {html}\n")


@fleet_app.command("report")
def report_command(
    paths: list[str] = typer.Argument(  # noqa: B008
        ...,
        metavar="PROFILE_OR_DIR...",
        help="doctor --json files, directories of them, - for stdin.",
    ),
    as_json: bool = _JSON,
    markdown: bool = _MARKDOWN,
    html: Optional[Path] = _HTML,
    torch: Optional[str] = _TORCH,
    variant: str = _VARIANT,
    vision: bool = _VISION,
    audio: bool = _AUDIO,
    index_base: Optional[str] = _INDEX_BASE,
    plans: Optional[Path] = _PLANS,
) -> None:
    """Group identical machines; show what differs, the findings and one plan per group.
    Writes nothing unless asked (--plans, --html).
    Exit 1 when a node has an error finding, 2 when a node file cannot be read."""
    from envsetup.errors import UsageError
    from envsetup.fleet.nodes import read_inputs
    from envsetup.fleet.report import build_report

    _formats(as_json, markdown)
    request = _request(torch, variant, vision, audio, index_base)
    stdin_text = sys.stdin.read() if "-" in paths else None
    nodes, bad = read_inputs(paths, stdin_text)
    if not nodes and not bad:
        where = [p for p in paths if p != "-"]
        looked = [f"{' '.join(where)} (looked for *.json)"] if where else []
        if "-" in paths:
            looked.append("standard input (pipe envsetup doctor --json output into it)")
        raise UsageError(f"no node profiles in {' and '.join(looked)}")
    report = build_report(nodes, bad, request)
    _show(report, as_json, markdown, html, _write_plans(report, plans))
    raise typer.Exit(report.exit_code())


@fleet_app.command("playbook")
def playbook_command() -> None:
    """Print the playbook that fleet doctor and fleet install run (to run Ansible yourself)."""
    from envsetup.fleet.ansible import playbook_text

    sys.stdout.write(playbook_text())


def _workdir(out: Optional[Path]) -> Path:
    from envsetup.errors import UsageError

    if out is None:
        import tempfile

        return Path(tempfile.mkdtemp(prefix="envsetup-fleet-"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror or exc}") from None
    return out.resolve()


def _collect(
    inventory: str, limit: Optional[str], forks: int, work: Path, quiet: bool, timeout: float
) -> tuple[list[Any], list[Any], list[str]]:
    """Run doctor on every host; (nodes, hosts without a profile, hosts)."""
    from envsetup.fleet import ansible

    hosts = ansible.inventory_hosts(inventory, limit)
    for h in hosts:  # nothing from an earlier run stands in for this one
        for suffix in (".json", ".error"):
            (work / f"{h}{suffix}").unlink(missing_ok=True)
    ansible.run_playbook(
        inventory,
        {"envsetup_action": "doctor", "envsetup_out": str(work)},
        work,
        hosts=hosts,
        forks=forks,
        echo=None if quiet else sys.stderr,
        timeout=timeout,
    )
    nodes, missing = _profiles_of(hosts, work)
    return nodes, missing, hosts


def _profiles_of(hosts: list[str], work: Path) -> tuple[list[Any], list[Any]]:
    """The profile each host left in ``work`` (HOST.json), or why there is none."""
    from envsetup.fleet.nodes import Unreadable, read_file

    nodes: list[Any] = []
    missing: list[Any] = []
    for h in hosts:
        f = work / f"{h}.json"
        if f.exists():
            r = read_file(f, h)
            (missing if isinstance(r, Unreadable) else nodes).append(r)
            continue
        err = work / f"{h}.error"
        why = (
            "doctor did not run: "
            + (err.read_text(encoding="utf-8").strip().splitlines() or ["?"])[-1]
            if err.exists()
            else f"no profile came back ({f.name} is missing: host unreachable? see ansible's "
            "output)"
        )
        missing.append(Unreadable(h, "ansible", why))
    return nodes, missing


@fleet_app.command("doctor")
def doctor_command(
    inventory: str = _INVENTORY,
    limit: Optional[str] = _LIMIT,
    forks: int = typer.Option(20, "--forks", min=1, help="Hosts at a time."),
    out: Optional[Path] = _OUT,
    as_json: bool = _JSON,
    markdown: bool = _MARKDOWN,
    html: Optional[Path] = _HTML,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not show Ansible's output."),
    timeout: float = typer.Option(3600, "--timeout", min=1, help="Seconds for the whole run."),
    torch: Optional[str] = _TORCH,
    variant: str = _VARIANT,
    vision: bool = _VISION,
    audio: bool = _AUDIO,
    index_base: Optional[str] = _INDEX_BASE,
    plans: Optional[Path] = _PLANS,
) -> None:
    """Run envsetup doctor on every host of an Ansible inventory, then report on them.
    Exit 1 when a host has an error finding or gave no profile."""
    from envsetup.errors import EXIT_FAIL
    from envsetup.fleet.report import build_report

    _formats(as_json, markdown)
    request = _request(torch, variant, vision, audio, index_base)
    work = _workdir(out)
    nodes, missing, _ = _collect(inventory, limit, forks, work, quiet or as_json, timeout)
    report = build_report(nodes, missing, request)
    _show(report, as_json, markdown, html, {"profiles": str(work), **_write_plans(report, plans)})
    if not as_json:
        sys.stderr.write(f"envsetup: the profiles are in {work} (envsetup fleet report {work})\n")
    raise typer.Exit(EXIT_FAIL if missing else report.exit_code())


def _outcome(work: Path, host: str) -> Optional[tuple[bool, str]]:
    f = work / "install" / f"{host}.json"
    if not f.exists():
        return None
    try:
        rec = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False, "the outcome file is unreadable"
    doc: Any = None
    try:
        doc = json.loads(rec.get("stdout") or "null")
    except json.JSONDecodeError:
        doc = None
    if rec.get("rc") == 0:
        if isinstance(doc, dict) and isinstance(doc.get("plan"), dict):
            p = doc["plan"]
            return True, f"torch {p.get('local_version') or p.get('torch')} installed"
        return True, "installed"
    if isinstance(doc, dict) and doc.get("error"):
        return False, str(doc["error"])
    tail = str(rec.get("stderr") or "").strip().splitlines() or [str(rec.get("msg") or "failed")]
    return False, tail[-1]


@fleet_app.command("install")
def install_command(
    inventory: str = _INVENTORY,
    limit: Optional[str] = _LIMIT,
    forks: int = typer.Option(
        5, "--forks", min=1, help="Hosts per batch; a batch with a failure is the last one."
    ),
    group: Optional[str] = typer.Option(
        None, "--group", help="Only these groups of the report (g1,g3); default: every ready one."
    ),
    out: Optional[Path] = _OUT,
    index_url: Optional[str] = typer.Option(
        None, "--index-url", help="Install from this index on every host (a mirror)."
    ),
    installer: Optional[str] = typer.Option(None, "--installer", help="pip | uv | conda."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the check after installing."),
    verify_mode: str = typer.Option(
        "quick",
        "--verify",
        help="The check after installing on each host: quick, or workload (a short real "
        "training run too).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would go where; change nothing."
    ),
    profiles: Optional[Path] = _FROM,
    as_json: bool = _JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not show Ansible's output."),
    timeout: float = typer.Option(7200, "--timeout", min=1, help="Seconds for each Ansible run."),
    torch: Optional[str] = _TORCH,
    variant: str = _VARIANT,
    vision: bool = _VISION,
    audio: bool = _AUDIO,
    index_base: Optional[str] = _INDEX_BASE,
) -> None:
    """Diagnose every host, then install each group's plan on its hosts (envsetup install --yes
    --plan-file), --forks hosts at a time, stopping after the first batch with a failure."""
    from envsetup.errors import EXIT_FAIL, UsageError
    from envsetup.fleet import ansible
    from envsetup.fleet.report import build_report, install_hint

    request = _request(torch, variant, vision, audio, index_base)
    if verify_mode not in ("quick", "workload") or (no_verify and verify_mode != "quick"):
        raise UsageError(f"--verify {verify_mode}: use quick or workload, without --no-verify")
    if index_url is not None:
        from envsetup.resolve import check_index_url

        index_url = check_index_url(index_url, "--index-url")
    if profiles is not None and not profiles.is_dir():
        raise UsageError(f"--from {profiles}: not a directory (give fleet doctor's --out)")
    work = _workdir(out or profiles)
    quiet = quiet or as_json
    if profiles is not None:
        nodes, missing = _profiles_of(ansible.inventory_hosts(inventory, limit), profiles.resolve())
    else:
        nodes, missing, _ = _collect(inventory, limit, forks, work, quiet, timeout)
    report = build_report(nodes, missing, request)
    wanted = [g.strip() for g in group.split(",") if g.strip()] if group else None
    if wanted:
        unknown = [g for g in wanted if report.group(g) is None]
        if unknown:
            raise UsageError(
                f"--group {','.join(unknown)}: no such group (the report has "
                f"{', '.join(g.id for g in report.groups)})"
            )
    chosen = [g for g in report.groups if (g.id in wanted if wanted else g.install == "ready")]
    skipped = [
        {"group": g.id, "hosts": g.nodes, "why": f"{g.install}: {g.install_note}"}
        for g in chosen
        if g.install in ("held", "no-plan")
    ]
    chosen = [g for g in chosen if g.install not in ("held", "no-plan")]
    (work / "plans").mkdir(exist_ok=True)
    plans: dict[str, str] = {}
    host_group: dict[str, str] = {}
    for g in chosen:
        assert g.plan is not None
        path = work / "plans" / f"{g.id}.json"
        path.write_text(json.dumps({"plan": g.plan.to_dict()}, indent=2), encoding="utf-8")
        if g.install == "ready":  # the report shown below names the file just written
            g.install_note = install_hint(g.id, str(path))
        for h in g.nodes:
            plans[h] = str(path)
            host_group[h] = g.id
    args = (
        (["--index-url", index_url] if index_url else [])
        + (["--installer", installer] if installer else [])
        + (["--no-verify"] if no_verify else [])
        + (["--verify", verify_mode] if verify_mode != "quick" else [])
    )
    hosts = list(plans)
    results: list[dict[str, Any]] = []
    stopped = False
    if hosts and not dry_run:
        (work / "install").mkdir(exist_ok=True)
        for h in hosts:
            (work / "install" / f"{h}.json").unlink(missing_ok=True)
        rc = ansible.run_playbook(
            inventory,
            {"envsetup_action": "install", "envsetup_out": str(work), "envsetup_plans": plans,
             "envsetup_install_args": args, "envsetup_batch": forks, "envsetup_max_fail": 0},
            work, hosts=hosts, forks=forks, echo=None if quiet else sys.stderr, timeout=timeout,
        )  # fmt: skip
        for h in hosts:
            got = _outcome(work, h)
            if got is None:
                status, detail = (
                    "not-run",
                    "not run: an earlier batch failed, or the host was unreachable",
                )
            else:
                status, detail = ("ok" if got[0] else "failed"), got[1]
            results.append({"host": h, "group": host_group[h], "status": status, "detail": detail})
        stopped = any(r["status"] == "not-run" for r in results) or (
            rc != 0 and not any(r["status"] == "failed" for r in results)
        )
    else:
        results = [{"host": h, "group": host_group[h], "status": "planned",
                    "detail": f"envsetup install --yes --plan-file {plans[h]} {' '.join(args)}".strip()}
                   for h in hosts]  # fmt: skip
    failed = [r for r in results if r["status"] in ("failed", "not-run")]
    summary = {"install": {"hosts": results, "skipped": skipped, "stopped": stopped,
                           "plans": {g.id: str(work / "plans" / f"{g.id}.json") for g in chosen},
                           "dry_run": dry_run},
               "profiles": str(work)}  # fmt: skip
    if as_json:
        doc = report.to_dict()
        doc.update(summary)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        from envsetup.fleet import render

        render.print_report(report)
        sys.stdout.write("\n")
        for s in skipped:
            sys.stdout.write(f"skip     {s['group']} ({', '.join(s['hosts'])}): {s['why']}\n")
        for r in results:
            sys.stdout.write(f"{r['status']:<8} {r['host']} ({r['group']}): {r['detail']}\n")
        if not results:
            sys.stdout.write("nothing to install\n")
        if stopped:
            sys.stdout.write("stopped after the first batch with a failure\n")
    if failed or missing:
        raise typer.Exit(EXIT_FAIL)
