"""The fleet report as one self-contained HTML page: inline CSS and SVG, no script, and a
Content-Security-Policy that lets the page load nothing from anywhere (a reference to an outside
resource would be refused by the browser, and reported in its console)."""

from __future__ import annotations

from collections import Counter
from html import escape

from envsetup import __version__
from envsetup.fleet.group import DIMENSIONS, LABELS
from envsetup.fleet.render import plan_words, verdict
from envsetup.fleet.report import GroupReport, Report

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1d2330;background:#fff}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.8rem 0 .6rem}
.verdict{font-weight:600}.bad{color:#b3261e}.good{color:#1b7a3d}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #dde1e8;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f9;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f3f5f9;padding:0 .2rem;border-radius:3px}
.sev{display:inline-block;min-width:4.2rem;font-weight:600}.sev-error{color:#b3261e}.sev-warning{color:#8a5a00}.sev-info{color:#2457a6}
details summary{cursor:pointer}.charts{display:flex;flex-wrap:wrap;gap:2rem}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.3rem}
.muted{color:#5b6474}ul{margin:.2rem 0 .2rem 1.2rem;padding:0}
"""

_PALETTE = ("#2457a6", "#1b7a3d", "#8a5a00", "#7b3fa0", "#b3261e", "#0f7c8a", "#5b6474")


def bar_chart(title: str, counts: list[tuple[str, int]], chart_id: str) -> str:
    """A horizontal bar chart of node counts, as inline SVG."""
    row, label_w, bar_w = 24, 230, 320
    total = sum(c for _, c in counts) or 1
    most = max((c for _, c in counts), default=1) or 1
    height = row * len(counts) + 8
    width = label_w + bar_w + 90
    parts = [
        f'<figure id="{chart_id}"><figcaption>{escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">'
    ]
    for i, (label, count) in enumerate(counts):
        y = 4 + i * row
        w = max(2, round(bar_w * count / most))
        shown = label if len(label) <= 34 else label[:33] + "…"
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(
            f"<g><title>{escape(label)}: {count} node(s)</title>"
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" font-size="12" '
            f'fill="#1d2330">{escape(shown)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w}" height="{row - 8}" '
            f'fill="{color}" rx="2"/>'
            f'<text x="{label_w + w + 6}" y="{y + 16}" font-size="12" fill="#1d2330">'
            f"{count} ({100 * count / total:.0f}%)</text></g>"
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def _node_counts(report: Report, dim: str) -> list[tuple[str, int]]:
    c: Counter[str] = Counter()
    for g in report.groups:
        c[g.machine[dim]] += len(g.nodes)
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))


def _findings_cell(g: GroupReport) -> str:
    if not g.findings:
        return '<span class="muted">none</span>'
    items = []
    for f in g.findings:
        fix = f"<br><code>{escape(f['fix'])}</code>" if f.get("fix") else ""
        items.append(
            f'<li><span class="sev sev-{f["severity"]}">{f["severity"]}</span> '
            f"<code>{escape(f['code'])}</code> on {f['nodes']} of {len(g.nodes)}"
            f"<details><summary>message</summary>{escape(f['message'])}{fix}</details></li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def to_html(report: Report) -> str:
    bad = report.error_nodes or report.unreadable
    rows = []
    for g in report.groups:
        names = escape(", ".join(g.nodes))
        rows.append(
            f'<tr id="group-{g.id}"><td><b>{g.id}</b></td>'
            f'<td class="num">{len(g.nodes)}<details><summary>nodes</summary>{names}</details></td>'
            + "".join(f"<td>{escape(g.machine[d])}</td>" for d in DIMENSIONS)
            + f'<td class="num">{g.errors}</td><td>{_findings_cell(g)}</td>'
            f"<td>{escape(plan_words(g))}</td><td>{escape(g.install)}"
            f'<br><span class="muted">{escape(g.install_note)}</span></td></tr>'
        )
    head = "".join(f"<th>{LABELS[d]}</th>" for d in DIMENSIONS)
    differs = (
        "<p>Groups differ in "
        + ", ".join(f"<b>{LABELS[d]}</b> ({len(v)} values)" for d, v in report.differs.items())
        + ".</p>"
        if report.differs
        else "<p>Every node is the same machine.</p>"
    )
    same = (
        "<p class=muted>The same everywhere: "
        + "; ".join(f"{LABELS[d]} {escape(v)}" for d, v in report.same.items())
        + ".</p>"
        if report.same
        else ""
    )
    unreadable = ""
    if report.unreadable:
        unreadable = (
            '<h2>Unreadable node files</h2><ul id="unreadable">'
            + "".join(
                f"<li><code>{escape(u.name)}</code> ({escape(u.source)}): {escape(u.error)}</li>"
                for u in report.unreadable
            )
            + "</ul>"
        )
    charts = (
        '<div class="charts">'
        + bar_chart("NVIDIA driver across nodes", _node_counts(report, "driver"), "chart-drivers")
        + bar_chart("torch build across nodes", _node_counts(report, "torch"), "chart-torch")
        + "</div>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>envsetup fleet report: {escape(verdict(report))}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>envsetup fleet report</h1>"
        f'<p class="verdict {"bad" if bad else "good"}">{escape(verdict(report))}</p>'
        f"{differs}{same}<h2>Drivers and torch builds</h2>{charts}"
        f'<h2>Groups</h2><table id="groups"><thead><tr><th>group</th><th>nodes</th>{head}'
        "<th>errors</th><th>findings</th><th>plan</th><th>install</th></tr></thead><tbody>"
        + "".join(rows)
        + f"</tbody></table>{unreadable}"
        f'<p class="muted">envsetup {escape(__version__)}</p></body></html>\n'
    )
