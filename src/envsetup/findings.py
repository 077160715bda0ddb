"""A Finding: one problem (or note) about the machine, with the exact fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    code: str  # stable, kebab-case: "cpu-torch-on-gpu-machine"
    message: str  # what is wrong, in one or two sentences
    fix: Optional[str] = None  # the exact command or action that mends it

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")


def sort_findings(findings: list[Finding]) -> list[Finding]:
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: (order[f.severity], f.code))
