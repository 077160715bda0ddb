"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck`` (the default,
what CI runs); ``nox -s wheelhouse`` and ``nox -s gpu`` for the GPU proof (bench/gpu_proof.py)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "bench", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy", "types-requests")
    session.run("mypy", "--strict", "src/envsetup")


@nox.session(python=False)
def wheelhouse(session: nox.Session) -> None:
    """Make the wheelhouse for the GPU proof (needs network): nox -s wheelhouse -- DIR."""
    session.run("python3", "bench/gpu_proof.py", "wheelhouse", *(session.posargs or ["wheelhouse"]))


@nox.session(python=False)
def gpu(session: nox.Session) -> None:
    """The GPU proof on a machine with an NVIDIA GPU and no network: nox -s gpu -- DIR."""
    session.run("python3", "bench/gpu_proof.py", "run", *(session.posargs or ["wheelhouse"]))
