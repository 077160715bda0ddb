"""The one exception family. The CLI turns these into a one-line message and an exit code."""

from __future__ import annotations

# Exit codes, shared by every command (documented in the README).
EXIT_OK = 0
EXIT_FAIL = 1  # doctor found an error, verify had a failing check, install failed
EXIT_USAGE = 2  # bad flags, bad input file, missing interpreter
EXIT_INTERNAL = 3  # a bug in envsetup: rerun with --debug
EXIT_NO_BUILD = 4  # plan/install: no build fits this machine
EXIT_BUSY = 5  # install --no-wait: another envsetup install is changing the environment
EXIT_INTERRUPTED = 130


class EnvsetupError(Exception):
    """An error with a stable code, a one-line message, and the exit code it maps to."""

    code: str = "error"
    exit_code: int = EXIT_FAIL

    def __init__(self, message: str, *, code: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(EnvsetupError):
    """The user asked for something impossible: a missing file, a malformed spec."""

    code = "usage"
    exit_code = EXIT_USAGE


class NoBuildError(EnvsetupError):
    """No torch build fits the machine and the request."""

    code = "no-build"
    exit_code = EXIT_NO_BUILD
