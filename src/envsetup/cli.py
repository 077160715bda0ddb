"""The typer app: thin commands, and the one place that maps errors to exit codes.

Each command lives in ``envsetup/commands/<name>.py`` and registers itself on :data:`app`; the
modules import only typer and the standard library at the top, so start-up stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Optional

import typer

from envsetup import __version__
from envsetup.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, EnvsetupError

app = typer.Typer(
    name="envsetup",
    help="From a fresh OS with an NVIDIA driver to PyTorch 2.x working on its GPU, proven.",
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"envsetup {__version__}\n")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if ctx.invoked_subcommand is None:
        from envsetup.commands import journey

        journey.run(ctx)


def _register() -> None:
    from envsetup import commands

    for name in commands.COMMANDS:
        __import__(f"envsetup.commands.{name}")


def _paragraphs(text: str) -> str:
    """A docstring's paragraphs, each on one line, so help wraps at the terminal's width and
    never where the source happened to break a sentence."""
    import inspect

    paras = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paras if p.strip())


def _reflow(cmd: Any) -> None:
    if cmd.help:
        cmd.help = _paragraphs(cmd.help)
        if not cmd.short_help:
            cmd.short_help = cmd.help.split("\n\n", 1)[0]
    for sub in getattr(cmd, "commands", {}).values():
        _reflow(sub)


def _error(message: str) -> None:
    sys.stderr.write(f"envsetup: {message}\n")


class _PipeGuard:
    """stdout that survives its reader going away (``envsetup plan | head -1``): once the pipe
    is closed, the rest of the output goes to /dev/null and the command runs to its own exit
    code, so a pipeline reports what the command found, not that it was cut short."""

    def __init__(self, real: Any):
        self._real = real
        self._closed = False

    def _gone(self) -> None:
        self._closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._real.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                return int(self._real.write(text))
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._real.flush()
            except BrokenPipeError:
                self._gone()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _closed_streams() -> None:
    """A closed standard stream (``<&-`` under cron, CI or a service; pythonw on Windows) is
    None in Python: it reads as empty and writes nowhere, as /dev/null would, so a command
    behaves as with its empty equivalent rather than failing inside."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115
        elif mode == "w" and hasattr(getattr(sys, name), "reconfigure"):
            # an output that cannot encode a mark (PYTHONIOENCODING=ascii, a Windows code page
            # when redirected) shows '?' for it instead of failing the command
            with contextlib.suppress(ValueError, OSError):
                getattr(sys, name).reconfigure(errors="replace")


def _mask_streams(args: list[str]) -> None:
    """The one boundary where output leaves envsetup: every write to stdout and stderr (rich,
    typer and plain writes alike) has its secrets masked (:mod:`envsetup.secrets`)."""
    from envsetup import secrets

    secrets.collect(args)
    if sys.stdout is not None and not isinstance(sys.stdout, _PipeGuard):
        sys.stdout = _PipeGuard(secrets.Masked(sys.stdout))
    if sys.stderr is not None and not isinstance(sys.stderr, secrets.Masked):
        sys.stderr = secrets.Masked(sys.stderr)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the console script and of ``python -m envsetup``."""
    _closed_streams()
    args = list(sys.argv[1:] if argv is None else argv)
    _mask_streams(args)
    flag = os.environ.get("ENVSETUP_DEBUG", "").strip().lower()
    debug = "--debug" in args or flag not in ("", "0", "false", "no", "off")
    args = [a for a in args if a != "--debug"]
    _register()
    command = typer.main.get_command(app)
    _reflow(command)
    try:
        rc = command.main(args, prog_name="envsetup", standalone_mode=False)
    except EnvsetupError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _error(exc.message)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        # Click's own usage errors (unknown option, bad value) carry an exit code and a message.
        fmt = getattr(exc, "format_message", None)
        if fmt is not None and isinstance(getattr(exc, "exit_code", None), int):
            if type(exc).__name__ == "Abort":  # Ctrl-C or EOF at a prompt
                _error("interrupted")
                sys.exit(EXIT_INTERRUPTED)
            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _error(f"{fmt()}{where}")
            code = getattr(exc, "exit_code", EXIT_USAGE)
            sys.exit(code if code else EXIT_USAGE)
        if debug:
            import traceback

            traceback.print_exc()
            _error(f"internal error: {type(exc).__name__}: {exc}")
        else:
            _error(
                f"internal error: {type(exc).__name__}: {exc} "
                "(this is a bug in envsetup; rerun with --debug for the traceback)"
            )
        sys.exit(EXIT_INTERNAL)
    if rc == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a quiet exit 130
        _error("interrupted")
    sys.exit(rc if isinstance(rc, int) else 0)
