"""`envsetup plan` on narrow terminals: a URL is never cut to "…" (the table folds it, a bullet
keeps it whole on a line of its own), so the index can be read and pasted at any width."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_cli

A100 = {
    "system": {"os": "linux", "arch": "x86_64"},
    "python": {"version": "3.11.7"},
    "nvidia": {
        "driver_version": "535.104.05",
        "gpus": [{"index": 0, "name": "NVIDIA A100", "compute_capability": "8.0"}],
    },
}


def _table_value(out: str, label: str) -> str:
    """A row of the plan table, its value's folded lines joined (the value column starts where
    it starts on the row's first line)."""
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(label + " "))
    start = re.search(rf"{re.escape(label)}\s+", lines[at]).end()  # type: ignore[union-attr]
    value = [lines[at][start:].strip()]
    for ln in lines[at + 1 :]:
        if ln[:start].strip():  # the next row's label
            break
        value.append(ln[start:].strip())
    return "".join(value)


@pytest.mark.parametrize("columns", ["40", "80"])
def test_the_index_url_is_whole_at_any_width(columns: str, tmp_path: Path) -> None:
    p = tmp_path / "a100.json"
    p.write_text(json.dumps(A100))
    url = run_cli("plan", "--profile", str(p), "--json").json()["plan"]["index_url"]
    assert url.startswith("https://")
    r = run_cli("plan", "--profile", str(p), env={"COLUMNS": columns})
    assert r.returncode == 0, r
    assert "…" not in r.stdout  # nothing cut off
    assert _table_value(r.stdout, "index") == url
    # in Why, the URL is one word on one line, however narrow the terminal
    assert any(ln.split()[-1:] == [url] for ln in r.stdout.splitlines()), r.stdout
    if columns == "80":
        assert f"index              {url}" in r.stdout  # fits: on the row's line
