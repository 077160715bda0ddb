"""Many node profiles → groups of identical machines → one report: what differs, the findings
of each group with how many nodes have each, and one Plan per group (``resolve`` on the group's
profile)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from envsetup.fleet.group import DIMENSIONS, differences, group_nodes
from envsetup.fleet.nodes import SEVERITIES, Node, Unreadable
from envsetup.plan import Plan, Request

# Findings that no torch install mends: the machine's driver must be set right first, and a
# plan made without a working driver would be a CPU build for a GPU machine.
HOLD = frozenset(
    (
        "no-driver",
        "driver-not-loaded",
        "driver-library-mismatch",
        "nvml-no-permission",
        "driver-too-old-for-nvml",
        "nvml-failed",
        "wsl-no-driver-libs",
        "cuda-visible-devices-hides-all",
    )
)


@dataclass
class GroupReport:
    id: str
    machine: dict[str, str]
    nodes: list[str]
    findings: list[dict[str, Any]]  # severity, code, message, fix, nodes (count), names
    errors: int  # nodes with an error finding
    plan: Optional[Plan]
    plan_error: Optional[str]
    install: str  # ready | up-to-date | held | no-plan
    install_note: str

    def to_dict(self) -> dict[str, Any]:
        plan = None
        if self.plan is not None:
            plan = self.plan.to_dict()
            plan.pop("candidates", None)  # every group's full list: envsetup plan --profile
        return {
            "id": self.id,
            "nodes": self.nodes,
            "count": len(self.nodes),
            "machine": self.machine,
            "errors": self.errors,
            "findings": self.findings,
            "plan": plan,
            "plan_error": self.plan_error,
            "install": self.install,
            "install_note": self.install_note,
        }


@dataclass
class Report:
    groups: list[GroupReport]
    unreadable: list[Unreadable]
    differs: dict[str, list[str]]
    same: dict[str, str]

    @property
    def nodes(self) -> int:
        return sum(len(g.nodes) for g in self.groups)

    @property
    def error_nodes(self) -> int:
        return sum(g.errors for g in self.groups)

    def exit_code(self) -> int:
        """2 when a node file could not be read, else 1 when a node has an error finding."""
        from envsetup.errors import EXIT_FAIL, EXIT_OK, EXIT_USAGE

        if self.unreadable:
            return EXIT_USAGE
        return EXIT_FAIL if self.error_nodes else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "groups": [g.to_dict() for g in self.groups],
            "differs": self.differs,
            "same": self.same,
            "error_nodes": self.error_nodes,
            "unreadable": [
                {"node": u.name, "source": u.source, "error": u.error} for u in self.unreadable
            ],
        }

    def group(self, ident: str) -> Optional[GroupReport]:
        return next((g for g in self.groups if g.id == ident), None)


class _Diagnoser:
    """Findings for profiles that came without them (hand-written), each distinct one once."""

    def __init__(self, table: Any):
        self.table = table
        self.memo: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, profile: dict[str, Any]) -> list[dict[str, Any]]:
        key = _without_serials(profile)
        hit = self.memo.get(key)
        if hit is None:
            from envsetup.diagnose import diagnose_machine
            from envsetup.profile import Profile, to_dict

            p = Profile.from_dict(profile)
            hit = self.memo[key] = to_dict(diagnose_machine(p, self.table))
        return hit


def _without_serials(profile: dict[str, Any]) -> str:
    """The profile as JSON without its GPUs' serial numbers (UUIDs), which no rule reads: the
    nodes of one machine type then share one diagnosis."""
    gpus = (profile.get("nvidia") or {}).get("gpus")
    if gpus:
        nv = dict(
            profile["nvidia"], gpus=[{k: v for k, v in g.items() if k != "uuid"} for g in gpus]
        )
        profile = dict(profile, nvidia=nv)
    return json.dumps(profile, sort_keys=True)


def _aggregate(nodes: list[Node], diagnoser: _Diagnoser) -> tuple[list[dict[str, Any]], int]:
    counts: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], dict[str, Any]] = {}
    names: dict[tuple[str, str], list[str]] = {}
    errors = 0
    for n in nodes:
        findings = n.findings if n.findings is not None else diagnoser(n.profile)
        seen = set()
        for f in findings:
            k = (f["severity"], f["code"])
            if k in seen:
                continue
            seen.add(k)
            counts[k] += 1
            first.setdefault(k, f)
            names.setdefault(k, []).append(n.name)
        if any(k[0] == "error" for k in seen):
            errors += 1
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out = []
    for k in sorted(counts, key=lambda k: (order[k[0]], -counts[k], k[1])):
        f = first[k]
        entry = {
            "severity": k[0],
            "code": k[1],
            "message": f["message"],
            "fix": f.get("fix"),
            "nodes": counts[k],
        }
        if counts[k] < len(nodes):  # which ones, where not all of the group
            entry["names"] = names[k]
        out.append(entry)
    return out, errors


def _plan_key(profile: dict[str, Any]) -> str:
    """What resolve reads of a profile (not the installed torch, CUDA toolkits, CPU or
    compilers): groups that differ only there share one resolve. tests/test_fleet.py checks
    that each group's plan is the one resolve gives for the group's own profile."""
    return json.dumps({k: v for k, v in profile.items() if k in ("system", "python", "nvidia",
                                                                 "other")}, sort_keys=True)  # fmt: skip


def _install_state(g: GroupReport) -> tuple[str, str]:
    held = [f for f in g.findings if f["code"] in HOLD and f["severity"] == "error"]
    if held:
        f = held[0]
        how = f" ({f['fix']})" if f.get("fix") else ""
        return "held", f"{f['code']} on {f['nodes']} node(s): mend the driver first{how}"
    if g.plan is None:
        return "no-plan", g.plan_error or "no build fits"
    want = g.plan.local_version or g.plan.torch
    if g.machine["torch"] == want and all(f["severity"] != "error" for f in g.findings):
        return "up-to-date", f"torch {want} is installed"
    return "ready", install_hint(g.id)


def install_hint(group: str, plan_file: Optional[str] = None) -> str:
    """The command that installs a group's plan on one of its nodes: with the file's real path
    once written (fleet report --plans DIR), else with the option that writes it."""
    if plan_file is not None:
        from envsetup.proc import shell_join

        return f"envsetup install --yes --plan-file {shell_join([plan_file])}"
    return (
        f"envsetup install --yes --plan-file PLANS/{group}.json "
        "(fleet report --plans PLANS writes each group's plan)"
    )


def write_plans(report: Report, directory: Path) -> dict[str, Path]:
    """Each group's plan as ``DIRECTORY/<group>.json``, the file ``envsetup install --plan-file``
    reads; a ready group's install note then names its file. Returns the files by group."""
    from envsetup import secrets

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for g in report.groups:
        if g.plan is None:
            continue
        path = directory / f"{g.id}.json"
        secrets.write_text(path, json.dumps({"plan": g.plan.to_dict()}, indent=2) + "\n")
        written[g.id] = path
        if g.install == "ready":
            g.install_note = install_hint(g.id, str(path.absolute()))
    return written


def build_report(
    nodes: list[Node],
    unreadable: list[Unreadable],
    request: Optional[Request] = None,
    table: Any = None,
) -> Report:
    """The report for these nodes; ``table`` defaults to the shipped compatibility table."""
    from envsetup.compat import load_table
    from envsetup.errors import EnvsetupError
    from envsetup.profile import Profile
    from envsetup.resolve import resolve

    table = table if table is not None else load_table()
    request = request or Request()
    diagnoser = _Diagnoser(table)
    plans: dict[str, tuple[Optional[Plan], Optional[str]]] = {}
    groups = group_nodes(nodes)
    out: list[GroupReport] = []
    for i, g in enumerate(groups, 1):
        findings, errors = _aggregate(g.nodes, diagnoser)
        rep = g.nodes[0].profile
        pk = _plan_key(rep)
        if pk not in plans:
            try:
                plans[pk] = (resolve(Profile.from_dict(rep), request, table), None)
            except EnvsetupError as exc:  # no build fits (or a value resolve refuses)
                plans[pk] = (None, exc.message)
        plan, why = plans[pk]
        gr = GroupReport(
            id=f"g{i}",
            machine=g.machine,
            nodes=[n.name for n in g.nodes],
            findings=findings,
            errors=errors,
            plan=plan,
            plan_error=why,
            install="",
            install_note="",
        )
        gr.install, gr.install_note = _install_state(gr)
        out.append(gr)
    differs, same = differences(groups)
    return Report(out, unreadable, differs, same)


__all__ = [
    "DIMENSIONS",
    "HOLD",
    "GroupReport",
    "Report",
    "build_report",
    "install_hint",
    "write_plans",
]
