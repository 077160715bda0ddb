"""Diagnosis: Profile (+ the compatibility table) -> Findings, every rule in one place.

- rules.py: the rules over the Profile alone (driver, visibility, builds, shadowing, ...);
- table.py: the rules that need the compatibility table (a build too new for the driver, a
  GPU without kernels in the installed build, a CPU build where a CUDA build fits);
- fixes.py: the one writer of every fix that is an ``envsetup`` command.

doctor, the journey and the fleet report all call :func:`diagnose_machine`.
"""

from __future__ import annotations

from typing import Optional

from envsetup.diagnose.fixes import install_fix
from envsetup.diagnose.rules import RULES, Rule, is_cpu_build, usable_nvidia
from envsetup.findings import Finding, sort_findings
from envsetup.profile import Profile

__all__ = [
    "RULES",
    "Rule",
    "diagnose",
    "diagnose_machine",
    "install_fix",
    "is_cpu_build",
    "table_rules",
    "usable_nvidia",
]


def table_rules(table: Optional[object] = None) -> list[Rule]:
    """The compatibility table's rules: the installed build against this machine. The table is
    loaded only when there is an installed torch to judge (doctor stays fast without one)."""

    def judge_installed(p: Profile) -> list[Finding]:
        if p.torch.version is None:
            return []
        from envsetup.compat import Table, load_table
        from envsetup.diagnose.table import table_findings

        t = table if isinstance(table, Table) else load_table()
        return table_findings(p, t)

    return [judge_installed]


def diagnose(profile: Profile, extra: Optional[list[Rule]] = None) -> list[Finding]:
    """The findings of every rule over the profile alone, plus ``extra`` rules, sorted."""
    findings: list[Finding] = []
    for r in [*RULES, *(extra or [])]:
        findings.extend(r(profile))
    return sort_findings(findings)


def diagnose_machine(profile: Profile, table: Optional[object] = None) -> list[Finding]:
    """Every rule, the table's included: what doctor reports."""
    return diagnose(profile, table_rules(table))
