"""Help reads well at 80 columns: paragraphs wrap where the terminal ends, not where the source
broke a line, and no line is wider than the terminal."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import run_cli

COMMANDS = [
    [], ["doctor"], ["plan"], ["install"], ["verify"], ["compat"], ["compat", "list"],
    ["compat", "check"], ["compat", "refresh"], ["fleet"], ["fleet", "report"],
    ["fleet", "doctor"], ["fleet", "install"], ["fleet", "playbook"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c) or "envsetup")
def test_help_fits_80_columns(command: list[str]) -> None:
    r = run_cli(*command, "--help", env={"COLUMNS": "80"})
    assert r.returncode == 0, r
    widest = max(r.stdout.splitlines(), key=len)
    assert len(widest) <= 80, widest


def _walk(cmd: Any) -> list[Any]:
    return [cmd, *(c for sub in getattr(cmd, "commands", {}).values() for c in _walk(sub))]


def test_no_source_line_break_survives_in_help() -> None:
    import typer

    from envsetup import cli

    cli._register()
    root = typer.main.get_command(cli.app)
    cli._reflow(root)
    for cmd in _walk(root):
        for para in (cmd.help or "").split("\n\n"):
            assert "\n" not in para, (cmd.name, para)
        assert "\n" not in (cmd.short_help or ""), cmd.name


def test_a_long_summary_wraps_at_the_terminal() -> None:
    out = run_cli("--help", env={"COLUMNS": "80"}).stdout
    rows = [ln.strip("│ ") for ln in out.splitlines()]
    # verify's docstring breaks its first line after "cuDNN,"; the help wraps by width instead
    assert not any(r.endswith("cuDNN,") for r in rows), out
