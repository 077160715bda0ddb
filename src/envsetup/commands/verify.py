"""``envsetup verify``: run the smoke tests in the target interpreter."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer

from envsetup.cli import app


@app.command("verify")
def verify(
    device: str = typer.Option(
        "auto", "--device", help="Device to check: auto, cuda, cpu or mps.", metavar="DEVICE"
    ),
    python: Optional[str] = typer.Option(
        None, "--python", help="Target interpreter (or venv directory); default: this one."
    ),
    quick: bool = typer.Option(False, "--quick", help="Only the fast checks (used after install)."),
    bench: bool = typer.Option(
        False,
        "--bench",
        help="Also measure matmul and memory throughput, and the workload's samples per second.",
    ),
    workload: bool = typer.Option(
        False,
        "--workload",
        help="Also a short real training run on the device: a small transformers model (or a "
        "CNN) under torch.compile, AdamW, AMP on CUDA, DataLoader workers and a checkpoint reloaded; "
        "the loss must fall. Offline: nothing is downloaded.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON report on stdout."),
    plan_file: Optional[str] = typer.Option(
        None, "--plan", help="A plan (plan --json) the installed versions must match."
    ),
    distributed: bool = typer.Option(
        False,
        "--distributed",
        help="An all-reduce over every local GPU (NCCL), or two CPU processes (gloo); across "
        "nodes under torchrun or srun. With its bandwidth and GPU peer-to-peer access.",
    ),
    timeout: float = typer.Option(
        180.0, "--timeout", min=1.0, help="--distributed: seconds for the whole check."
    ),
    processes: Optional[int] = typer.Option(
        None,
        "--processes",
        min=1,
        help="--distributed: ranks on this machine (default: one per GPU, or 2).",
    ),
) -> None:
    """Prove the PyTorch stack works: import, versions, device, tensor ops, autograd, cuDNN,
    mixed precision, torch.compile and the import of every library built on torch, each in the
    target interpreter with a timeout. Exit 0 when every check passes, 1 when one fails."""
    from envsetup.errors import EXIT_FAIL, EXIT_OK, UsageError
    from envsetup.plan import read_plan_file
    from envsetup.target import check_python, resolve_python
    from envsetup.verify import DEVICES, run_verify

    if device not in DEVICES:
        raise UsageError(f"--device {device}: not one of {', '.join(DEVICES)}")
    target = resolve_python(python)
    check_python(target)
    if distributed:
        _distributed(target, timeout, processes, as_json)
        return
    plan = read_plan_file(plan_file, "--plan") if plan_file else None
    if as_json:
        report = run_verify(
            target, device=device, quick=quick, bench=bench, workload=workload, plan=plan
        )
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAIL)

    from envsetup import render

    con = render.console()
    con.print(f"[bold]envsetup verify[/bold] {render.escape_markup(target)} (device: {device})")
    live_box: dict[str, Any] = {}

    def on_start(name: str) -> None:
        if con.is_terminal:
            status = live_box.get("status")
            text = f"[cyan]…[/cyan] {name} running…"
            if status is None:
                live_box["status"] = con.status(text)
                live_box["status"].start()
            else:
                status.update(text)

    def on_result(r: Any) -> None:
        con.print(render.check_row(r.status, r.name, r.seconds, r.detail))

    try:
        report = run_verify(
            target,
            device=device,
            quick=quick,
            bench=bench,
            workload=workload,
            plan=plan,
            on_result=on_result,
            on_start=on_start,
        )
    finally:
        if "status" in live_box:
            live_box["status"].stop()
    con.print(render.verify_verdict(report.ok, report.counts(), report.seconds, report.device))
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAIL)


def _distributed(target: str, timeout: float, processes: Optional[int], as_json: bool) -> None:
    import os

    from envsetup.errors import EXIT_FAIL, EXIT_OK
    from envsetup.verify.distributed import run_distributed, speaks

    lead = speaks(os.environ)
    if as_json:
        report = run_distributed(target, timeout=timeout, processes=processes)
        if lead or not report.ok:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        raise typer.Exit(EXIT_OK if report.ok else EXIT_FAIL)
    from envsetup import render

    console = render.console()
    shown: list[Any] = []

    def on_result(r: Any) -> None:
        shown.append(r)
        if lead or r.status == "fail":
            console.print(render.check_row(r.status, r.name, r.seconds, r.detail))

    if lead:
        console.print(f"[bold]envsetup verify --distributed[/bold] {target}")
    report = run_distributed(target, timeout=timeout, processes=processes, on_result=on_result)
    if lead or not report.ok:
        counts = report.counts()
        verdict = "[bold green]distributed check passed[/]" if report.ok else "[bold red]FAILED[/]"
        console.print(f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, "
                      f"{counts['skip']} skipped in {report.seconds:.1f} s")  # fmt: skip
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAIL)


def quick(python: Optional[str], *, workload: bool = False) -> None:
    """``envsetup verify --quick [--workload] [--python PYTHON]``, for the commands that offer
    it (every option given: typer's defaults are its own objects, not values, in a plain call)."""
    verify(device="auto", python=python, quick=True, bench=False, workload=workload,
           as_json=False, plan_file=None, distributed=False, timeout=180.0,
           processes=None)  # fmt: skip
