"""``envsetup`` with no command: the whole journey (doctor, plan, install, verify)."""

from __future__ import annotations

import sys

import typer


def run(ctx: typer.Context) -> None:
    sys.stdout.write(ctx.get_help() + "\n")
