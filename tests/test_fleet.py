"""envsetup fleet report: node files made from recorded machines, read by the real CLI."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from fleet_machines import distinct_machines, node_profile, write_fleet


@pytest.fixture(scope="module")
def machines() -> list[dict[str, Any]]:
    return distinct_machines(37)


@pytest.fixture(scope="module")
def fleet200(machines: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("fleet200")
    where = write_fleet(d, machines, 200)
    return d, where


def test_200_nodes_from_37_machines(fleet200: Any, machines: list[dict[str, Any]]) -> None:
    from envsetup.compat import load_table
    from envsetup.errors import NoBuildError
    from envsetup.plan import Request
    from envsetup.profile import Profile
    from envsetup.resolve import resolve

    d, where = fleet200
    res = run_cli("fleet", "report", str(d), "--json")
    doc = res.json()
    assert doc["nodes"] == 200 and len(doc["groups"]) == 37, res
    assert doc["unreadable"] == []
    # Each group is exactly the nodes made from one machine.
    expected = {}
    for name, m in where.items():
        expected.setdefault(m, set()).add(name)
    got = [set(g["nodes"]) for g in doc["groups"]]
    assert sorted(map(sorted, got)) == sorted(map(sorted, expected.values()))
    # Largest groups first; counts agree with the node lists.
    counts = [g["count"] for g in doc["groups"]]
    assert counts == sorted(counts, reverse=True) and sum(counts) == 200
    # Each group's plan is the resolver's for one of its machines (the report resolves once per
    # distinct resolver input).
    table = load_table()
    for g in doc["groups"]:
        m = machines[where[g["nodes"][0]]]
        try:
            plan = resolve(Profile.from_dict(m), Request(), table)
        except NoBuildError as exc:
            assert g["plan"] is None and g["plan_error"] == exc.message
            continue
        assert g["plan"]["requirements"] == plan.requirements()
        assert g["plan"]["variant"] == plan.variant and g["plan"]["index_url"] == plan.index_url
    # Every dimension differs somewhere in this fleet; a node with an error finding makes exit 1.
    assert set(doc["differs"]) == {"gpus", "driver", "os", "python", "torch"}
    assert doc["error_nodes"] > 0 and res.returncode == 1


def test_findings_per_group_with_counts(machines: list[dict[str, Any]], tmp_path: Path) -> None:
    from envsetup.diagnose import diagnose
    from envsetup.profile import Profile

    cpu = next(m for m in machines if not m["nvidia"]["gpus"] and m["torch"]["version"] is None
               and not m["nvidia"]["nvml_error"].get("kind", "").startswith("lib_rm"))  # fmt: skip
    # Three nodes of one machine: two doctor documents and one bare profile, diagnosed here.
    own = {
        "severity": "warning",
        "code": "ld-library-path-shadows-torch",
        "message": "m",
        "fix": None,
    }
    base = [asdict(f) for f in diagnose(Profile.from_dict(cpu))]
    (tmp_path / "a.json").write_text(
        json.dumps({"profile": node_profile(cpu, 1), "findings": base})
    )
    (tmp_path / "b.json").write_text(
        json.dumps({"profile": node_profile(cpu, 2), "findings": [*base, own]})
    )
    (tmp_path / "c.json").write_text(json.dumps(node_profile(cpu, 3)))
    res = run_cli("fleet", "report", str(tmp_path), "--json")
    (g,) = res.json()["groups"]
    by = {f["code"]: f for f in g["findings"]}
    assert by["ld-library-path-shadows-torch"]["nodes"] == 1
    assert by["ld-library-path-shadows-torch"]["names"] == ["b"]
    # the bare profile was diagnosed by the real rules: every base finding is on all three
    assert base and all(by[f["code"]]["nodes"] == 3 and "names" not in by[f["code"]] for f in base)
    assert res.returncode == (1 if any(f["severity"] == "error" for f in base) else 0)


def test_a_malformed_node_is_named_and_the_rest_reported(
    machines: list[dict[str, Any]], tmp_path: Path
) -> None:
    for i in range(3):
        (tmp_path / f"ok{i}.json").write_text(json.dumps(node_profile(machines[0], i)))
    (tmp_path / "cut.json").write_text('{"profile": {"system": ')
    (tmp_path / "plan.json").write_text(json.dumps({"plan": {"torch": "2.4.1"}}))
    bad = copy.deepcopy(machines[0])
    bad["python"]["version"] = 3.11
    (tmp_path / "float.json").write_text(json.dumps(bad))
    (tmp_path / "notes.txt").write_text("not a node file")
    res = run_cli("fleet", "report", str(tmp_path), "--json")
    doc = res.json()
    assert res.returncode == 2 and doc["nodes"] == 3
    why = {u["node"]: u["error"] for u in doc["unreadable"]}
    assert set(why) == {"cut", "plan", "float"}
    assert why["cut"].startswith("not JSON (line 1")
    assert "plan" in why["plan"] and "doctor --json" in why["plan"]
    assert "python.version" in why["float"] and "quote it" in why["float"]
    human = run_cli("fleet", "report", str(tmp_path))
    assert human.returncode == 2 and "unreadable cut" in human.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["/nonexistent/profiles"], "no such file or directory"),
        (["--json", "--markdown", "."], "choose one"),
        (["--torch", "2.4+cu121", "."], "unknown torch version spec"),
    ],
)
def test_usage_errors(args: list[str], needle: str, tmp_path: Path) -> None:
    res = run_cli("fleet", "report", *args, cwd=tmp_path)
    assert res.returncode == 2 and needle in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_an_empty_directory_is_a_usage_error(tmp_path: Path) -> None:
    res = run_cli("fleet", "report", str(tmp_path))
    assert res.returncode == 2 and "no node profiles" in res.stderr


def _indented(profile: dict[str, Any], findings: list[Any]) -> str:
    return json.dumps({"profile": profile, "findings": findings}, indent=2)


def test_stdin_concatenated_documents(machines: list[dict[str, Any]]) -> None:
    """doctor --json prints indented documents; one per line works too, and both mixed."""
    a, b = machines[0], machines[1]
    text = (
        _indented(node_profile(a, 1), [])
        + "\n"
        + json.dumps({"host": "gpu-17", "profile": node_profile(b, 2), "findings": []})
        + "\n"
        + json.dumps(node_profile(a, 3))
        + "\n"
    )
    res = run_cli("fleet", "report", "-", "--json", input=text)
    doc = res.json()
    names = sorted(n for g in doc["groups"] for n in g["nodes"])
    assert names == ["gpu-17", "stdin-1", "stdin-3"]
    assert sorted(g["count"] for g in doc["groups"]) == [1, 2]


def test_stdin_srun_label_interleaved(machines: list[dict[str, Any]]) -> None:
    """What `srun --label ... envsetup doctor --json` prints on three nodes: each line carries
    its task number, the lines of the tasks interleaved."""
    docs = [_indented(node_profile(machines[i % 2], i), []).splitlines() for i in range(3)]
    width = 1
    lines = []
    for k in range(max(map(len, docs))):
        for task, d in enumerate(docs):
            if k < len(d):
                lines.append(f"{task:0{width}d}: {d[k]}")
    res = run_cli("fleet", "report", "-", "--json", input="\n".join(lines) + "\n")
    groups = {tuple(g["nodes"]) for g in res.json()["groups"]}
    assert groups == {("task-0", "task-2"), ("task-1",)}, res
    # Without labels the same interleaving is not JSON: it is reported, not guessed at.
    plain = "\n".join(ln.split(": ", 1)[1] for ln in lines) + "\n"
    res = run_cli("fleet", "report", "-", "--json", input=plain)
    assert res.returncode == 2 and res.json()["unreadable"][0]["error"].startswith("not JSON")


def test_real_doctor_output_through_a_pipe(torch_venv: Path, tmp_path: Path) -> None:
    from fleet_machines import h100_535, rtx5090_570
    from machines import write

    out = ""
    for name, rec in (("h100", h100_535()), ("5090", rtx5090_570()), ("h100b", h100_535())):
        env = {"ENVSETUP_HW_REPLAY": write(tmp_path, rec, f"{name}.json")}
        res = run_cli("doctor", "--json", "--python", str(torch_venv), env=env)
        assert res.returncode in (0, 1), res
        out += res.stdout
    res = run_cli("fleet", "report", "-", "--json", input=out)
    doc = res.json()
    assert [g["nodes"] for g in doc["groups"]] == [["stdin-1", "stdin-3"], ["stdin-2"]]
    h100, rtx = doc["groups"]
    assert h100["machine"]["gpus"] == "8× NVIDIA H100 80GB HBM3 (sm_90)"
    assert h100["machine"]["driver"] == "535.161.08"
    assert rtx["machine"]["gpus"] == "2× NVIDIA GeForce RTX 5090 (sm_120)"
    assert rtx["machine"]["driver"] == "570.133.07"
    assert set(doc["differs"]) == {"gpus", "driver"}
    # a CPU torch on both GPU machines: doctor's error, counted per group
    for g in (h100, rtx):
        (f,) = [f for f in g["findings"] if f["code"] == "cpu-torch-on-gpu-machine"]
        assert f["nodes"] == g["count"]
    # the 5090 (sm_120) needs a CUDA 12.8 build: its plan is not the H100's
    assert rtx["plan"]["variant"] != h100["plan"]["variant"] or rtx["plan"]["cuda"] >= "12.8"
    assert res.returncode == 1


def test_markdown_and_text(fleet200: Any) -> None:
    d, _ = fleet200
    md = run_cli("fleet", "report", str(d), "--markdown")
    assert md.stdout.startswith("### envsetup fleet report: 200 node(s) in 37 group(s)")
    rows = [ln for ln in md.stdout.splitlines() if re.match(r"^\| g\d+ \|", ln)]
    assert len(rows) == 37
    text = run_cli("fleet", "report", str(d))
    assert "200 node(s) in 37 group(s)" in text.stdout and text.returncode == 1


def _plan_words(g: dict[str, Any]) -> str:
    return f"{' '.join(g['plan']['requirements'])} ({g['plan']['variant']})"


@pytest.mark.parametrize(("count", "columns"), [(5, 80), (37, 80), (5, 200)])
def test_every_plan_reads_whole(count: int, columns: int, tmp_path: Path) -> None:
    """The plan column once cut every plan to torch==… at 80 columns. Now each plan is whole,
    always on its group's own line, and in the table where it fits; what differs is in the
    table while it fits, else on each group's own lines; no cell is cut to "…"."""
    write_fleet(tmp_path, distinct_machines(count), 2 * count)
    doc = run_cli("fleet", "report", str(tmp_path), "--json").json()
    text = run_cli("fleet", "report", str(tmp_path), env={"COLUMNS": str(columns)}).stdout
    lines = text.splitlines()
    table = [ln for ln in lines if ln[:1] in "┏┃┡│└"]
    assert table and max(len(ln) for ln in table) <= columns, text  # nothing cropped
    assert not re.search(r"\S…", text), text  # no cell ends in an ellipsis
    header = [c.strip() for c in table[1].strip("┃").split("┃")]
    # 200 columns: what differs and the plans; 80: what differs (5 kinds) or the plans (37)
    assert ("plan" in header) == (columns == 200 or count == 37), header
    assert (len(header) > 4) == (count == 5), header
    rows = _rows(table)
    for g in doc["groups"]:
        row = rows[g["id"]]
        if g["plan"] is not None:
            assert f"  plan: {_plan_words(g)} from {g['plan']['index_url']}" in lines
        if "plan" in header:
            assert _bare(_plan_words(g) if g["plan"] else "no build fits") in row[-1], row
        for dim in doc["differs"]:  # whole, in its cell (folded or wrapped) or below
            want = _bare(g["machine"][dim])
            assert want in row or want in _bare(text), (dim, g["id"], row)


def _bare(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _rows(table: list[str]) -> dict[str, list[str]]:
    """Each row of a drawn table: its cells' text, the lines of each cell joined."""
    rows: dict[str, list[str]] = {}
    cur: list[str] = []
    for ln in table:
        if not ln.startswith("│"):
            continue
        cells = [_bare(c) for c in ln.strip("│").split("│")]
        if cells[0]:
            cur = rows[cells[0]] = cells
        else:
            cur[:] = [a + b for a, b in zip(cur, cells)]
    return rows


def test_plans_are_written_where_asked_and_install_takes_them(
    torch_venv: Path, tmp_path: Path
) -> None:
    """fleet report --plans DIR writes each group's plan; the install line it prints names the
    real file, and envsetup install --plan-file takes it. Without --plans nothing is written."""
    doctor = run_cli("doctor", "--json", "--python", str(torch_venv))
    assert doctor.returncode in (0, 1), doctor
    nodes = tmp_path / "profiles"
    nodes.mkdir()
    (nodes / "me.json").write_text(doctor.stdout)
    plain = run_cli("fleet", "report", str(nodes), cwd=tmp_path)
    assert "--plans PLANS" in plain.stdout and sorted(tmp_path.iterdir()) == [nodes]
    plans = tmp_path / "my plans"
    res = run_cli("fleet", "report", str(nodes), "--plans", str(plans), env={"COLUMNS": "200"})
    assert res.returncode == 0, res
    written = plans / "g1.json"
    assert sorted(plans.iterdir()) == [written]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("  install: ready: "))
    command = shlex.split(line.removeprefix("  install: ready: "))
    assert command == ["envsetup", "install", "--yes", "--plan-file", str(written)], line
    doc = run_cli("fleet", "report", str(nodes), "--plans", str(plans), "--json").json()
    assert doc["plans"] == {"g1": str(written)}
    assert doc["groups"][0]["install_note"] == line.removeprefix("  install: ready: ")
    # the command as printed, on the node (here: a dry run into the node's own venv)
    install = run_cli(*command[1:], "--dry-run", "--python", str(torch_venv),
                      env={"PIP_CONFIG_FILE": os.devnull})  # fmt: skip
    assert install.returncode == 0, install
    want = doc["groups"][0]["plan"]["local_version"]
    assert f"torch=={want}" in install.stdout, install
    # a directory that cannot be made is the user's error, in one line
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = run_cli("fleet", "report", str(nodes), "--plans", str(blocker / "sub"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad
    assert bad.stderr.startswith(f"envsetup: --plans {blocker / 'sub'}: "), bad


MUTANTS: list[Any] = [None, 0, 1, -1, 1 << 60, 1.5, True, "x", [], {}, ["x"], {"k": 1}]


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> Any:
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(obj)
    cur = out
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return out


def test_the_fast_check_accepts_exactly_what_from_dict_reads(
    machines: list[dict[str, Any]],
) -> None:
    """Every value of every field replaced by every kind of JSON value, and an unknown key
    added to every object: the fast check and Profile.from_dict agree on each one."""
    from envsetup.fleet.check import is_profile
    from envsetup.profile import Profile

    def reads(d: Any) -> bool:
        try:
            Profile.from_dict(d)
        except ValueError:
            return False
        return True

    sample = copy.deepcopy(next(m for m in machines if m["nvidia"]["gpus"]))
    sample["cuda"]["toolkits"] = [{"path": "/usr/local/cuda", "version": "12.4", "source": "x"}]
    sample["torch"]["deep"] = {"imported": True, "arch_list": ["sm_90"]}
    sample["nvidia"]["nvml_error"] = {"kind": "unknown", "message": "m"}
    checked = 0
    disagree = []
    for path in list(_paths(sample))[1:]:
        for value in MUTANTS:
            d = _set(sample, path, value)
            if is_profile(d) != reads(d):
                disagree.append((path, value))
            checked += 1
    for path in _paths(sample):
        target = sample
        for p in path:
            target = target[p]
        if isinstance(target, dict):
            d = copy.deepcopy(sample)
            cur = d
            for p in path:
                cur = cur[p]
            cur["surprise"] = 1
            if is_profile(d) != reads(d):
                disagree.append((path, "unknown key"))
            checked += 1
    # required fields left out
    for path in (("nvidia", "nvml_error", "kind"), ("cuda", "toolkits", 0, "path")):
        d = copy.deepcopy(sample)
        cur = d
        for p in path[:-1]:
            cur = cur[p]
        del cur[path[-1]]
        assert is_profile(d) is False and reads(d) is False
    assert checked > 1000 and disagree == []
    assert is_profile(sample) and reads(sample)
    assert not is_profile(dict(sample, schema_version=2)) and not reads(
        dict(sample, schema_version=2)
    )


def test_playbook_is_printed_and_shipped() -> None:
    import yaml

    res = run_cli("fleet", "playbook")
    assert res.returncode == 0
    plays = yaml.safe_load(res.stdout)
    assert plays[0]["hosts"] == "all"
    names = [t["name"] for t in plays[0]["tasks"]]
    assert names == ["Check the variables", "Doctor", "Install"]


def test_fleet_commands_say_how_to_get_ansible(tmp_path: Path) -> None:
    """Without ansible-core (a venv with envsetup alone), one line with the install command."""
    import subprocess

    from conftest import ROOT, make_venv

    py = make_venv(tmp_path / "venv", pip=False)
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "envsetup-dev.pth").write_text("\n".join([str(ROOT / "src"), *deps]) + "\n")
    inv = tmp_path / "hosts.ini"
    inv.write_text("a ansible_connection=local\n")
    env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    cp = subprocess.run(
        [str(py), "-m", "envsetup", "fleet", "doctor", "-i", str(inv)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    if "ansible-inventory not found" not in cp.stderr:
        pytest.skip("an ansible-inventory is on /usr/bin or /bin of this machine")
    assert cp.returncode == 2 and cp.stderr.count("\n") == 1
    assert "pip install 'envsetup[fleet]'" in cp.stderr
