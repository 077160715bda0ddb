"""The fleet report for a person (rich, on a terminal or not) and for an issue (markdown)."""

from __future__ import annotations

import sys
from typing import IO, Any

from envsetup.fleet.group import DIMENSIONS, LABELS
from envsetup.fleet.report import GroupReport, Report

_MARK = {"error": "✖", "warning": "!", "info": "i"}
_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _names(names: list[str], most: int = 8) -> str:
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most]) + f", … ({len(names) - most} more)"


def plan_words(g: GroupReport) -> str:
    if g.plan is None:
        return f"no build fits: {g.plan_error}"
    return f"{' '.join(g.plan.requirements())} ({g.plan.variant})"


def plan_index(g: GroupReport) -> str:
    if g.plan is None:
        return ""
    return g.plan.index_url or "the installer's default package index"


def verdict(report: Report) -> str:
    parts = [f"{report.nodes} node(s) in {len(report.groups)} group(s)"]
    if report.error_nodes:
        parts.append(f"{report.error_nodes} node(s) with errors")
    if report.unreadable:
        parts.append(f"{len(report.unreadable)} node file(s) unreadable")
    return ", ".join(parts)


def to_markdown(report: Report) -> str:
    lines = [f"### envsetup fleet report: {verdict(report)}", ""]
    if report.same:
        lines.append(
            "Every group has the same "
            + "; ".join(f"{LABELS[d]} {v}" for d, v in report.same.items())
            + "."
        )
        lines.append("")
    cols = [d for d in DIMENSIONS if d in report.differs] or list(DIMENSIONS)
    lines.append("| group | nodes | " + " | ".join(LABELS[d] for d in cols) + " | errors | plan |")
    lines.append("|---|---|" + "---|" * len(cols) + "---|---|")
    for g in report.groups:
        cells = [_md(g.machine[d]) for d in cols]
        lines.append(
            f"| {g.id} | {len(g.nodes)} | " + " | ".join(cells) + f" | {g.errors} | "
            f"{_md(plan_words(g))} |"
        )
    for g in report.groups:
        lines += ["", f"#### {g.id}: {len(g.nodes)} node(s): {_md(_names(g.nodes, 20))}", ""]
        for f in g.findings:
            lines.append(
                f"- **{f['severity']}** `{f['code']}` ({f['nodes']} of {len(g.nodes)}): "
                f"{_md(f['message'])}"
            )
            if f.get("fix"):
                lines.append(f"  - fix: `{f['fix']}`")
        if not g.findings:
            lines.append("- no findings")
        lines.append(f"- plan: {_md(plan_words(g))}; install: {g.install} ({_md(g.install_note)})")
    if report.unreadable:
        lines += ["", "#### Unreadable node files", ""]
        lines += [f"- `{u.name}` ({_md(u.source)}): {_md(u.error)}" for u in report.unreadable]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(report: Report, cols: list[str], plan: bool) -> Any:
    """The groups' table: what differs between them, and (``plan``) each one's plan."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="Groups of identical machines", show_lines=False)
    t.add_column("group", style="bold", no_wrap=True)
    t.add_column("nodes", justify="right", no_wrap=True)
    for d in cols:  # a value too long for its cell is folded, never cut to "…"
        t.add_column(LABELS[d], overflow="fold")
    t.add_column("errors", justify="right", no_wrap=True)
    if plan:
        t.add_column("plan", no_wrap=True)
    for g in report.groups:
        cells = [g.id, str(len(g.nodes)), *(escape(g.machine[d]) for d in cols), str(g.errors)]
        cell = plan_words(g) if g.plan is not None else "no build fits (why: below)"
        t.add_row(*cells, *([escape(cell)] if plan else []))
    return t


def print_report(report: Report, file: IO[str] = sys.stdout) -> None:
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.padding import Padding

    from envsetup.render import console as masking_console

    console = masking_console(file)
    if report.same:
        console.print(
            "same everywhere: "
            + escape("; ".join(f"{LABELS[d]} {v}" for d, v in report.same.items()))
        )
    cols = [d for d in DIMENSIONS if d in report.differs] or list(DIMENSIONS)
    # The table as the terminal's width allows: what differs and each plan, when every plan
    # fits whole; else what differs (each group's plan is on its own line below); else each
    # plan (each group's machine is on its own line below).
    unbounded = console.options.update(max_width=1 << 16)
    t = _table(report, cols, plan=True)
    machine_below = False
    if Measurement.get(console, unbounded, t).maximum > console.width:
        t = _table(report, cols, plan=False)
        if Measurement.get(console, unbounded, t).minimum > console.width:
            t, machine_below = _table(report, [], plan=True), True
    console.print(t)
    for g in report.groups:
        console.print(f"\n[bold]{g.id}[/bold] ({len(g.nodes)}): {escape(_names(g.nodes))}")
        if machine_below and report.differs:  # else "same everywhere" said it
            machine = "; ".join(f"{LABELS[d]} {g.machine[d]}" for d in cols)
            console.print(Padding(escape(machine), (0, 0, 0, 2), expand=False))
        for f in g.findings:
            style = _STYLE[f["severity"]]
            console.print(
                f"  [{style}]{_MARK[f['severity']]} {f['severity']}[/{style}] "
                f"[dim]{f['code']}[/dim] on {f['nodes']} of {len(g.nodes)}: "
                f"{escape(f['message'])}"
            )
            if f.get("fix"):
                console.print(f"      [bold]fix:[/bold] {escape(f['fix'])}", soft_wrap=True)
        where = f" from {plan_index(g)}" if g.plan else ""
        console.print(f"  plan: {escape(plan_words(g) + where)}", soft_wrap=True)
        console.print(f"  install: {g.install}: {escape(g.install_note)}", soft_wrap=True)
    for u in report.unreadable:
        console.print(f"[bold red]✖ unreadable[/bold red] {escape(u.name)} ({escape(u.source)}): "
                      f"{escape(u.error)}")  # fmt: skip
    style = "bold red" if report.error_nodes or report.unreadable else "bold green"
    console.print(f"\n[{style}]{escape(verdict(report))}[/{style}]")
