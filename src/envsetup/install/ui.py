"""The live display of an install: a rich spinner with the current step and the installer's
latest line on a terminal, plain step lines otherwise, nothing at all with ``--json``."""

from __future__ import annotations

import sys
from typing import Any, Optional


class Ui:
    """Silent: ``--json`` and library use."""

    def step(self, text: str) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def done(self, text: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class ConsoleUi(Ui):
    def __init__(self) -> None:
        from envsetup import render

        self.console = render.console(sys.stderr)
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal
        self._progress: Optional[Any] = None
        self._task: Optional[Any] = None
        self._step = ""

    def _ensure(self) -> None:
        if self._progress is None and self.live:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("")

    def step(self, text: str) -> None:
        self._step = text
        if self.live:
            self._ensure()
            assert self._progress is not None
            self._progress.update(self._task, description=text)
        else:
            self.console.print(f"• {text}")

    def line(self, text: str) -> None:
        text = text.strip()
        if not text or not self.live or self._progress is None:
            return
        self._progress.update(self._task, description=f"{self._step}  [dim]{text[:90]}[/dim]")

    def done(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"[green]✓[/green] {text}")
        else:
            self.console.print(f"✓ {text}")

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]![/yellow] {text}" if self.live else f"! {text}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class PlainUi(Ui):
    """No terminal: one plain line per step on stderr, without loading rich."""

    def step(self, text: str) -> None:
        say(f"• {text}")

    def done(self, text: str) -> None:
        say(f"✓ {text}")

    def note(self, text: str) -> None:
        say(f"! {text}")


def make(quiet: bool) -> Ui:
    if quiet:
        return Ui()
    return ConsoleUi() if sys.stderr.isatty() else PlainUi()


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
