"""GPU binary compatibility, case by case from NVIDIA's published rules (sources in gpu_arch.py)
and the table of pytorch/pytorch#166185."""

from __future__ import annotations

from typing import Optional

import pytest

from envsetup.gpu_arch import has_kernels, how_it_runs, parse_cc, parse_target, runs_on, sm

# (id, targets, GPU compute capability, expected: "sass" | "ptx" | None)
CASES: list[tuple[str, tuple[str, ...], str, Optional[str]]] = [
    # rule 1: same major, same or higher minor (Blackwell Compatibility Guide 1.2 examples)
    ("sm80-runs-on-8.6", ("8.0",), "8.6", "sass"),
    ("sm86-not-on-8.0", ("8.6",), "8.0", None),
    ("sm8x-not-on-9.0", ("8.0", "8.6"), "9.0", None),
    ("sm86-runs-on-8.9", ("sm_86",), "8.9", "sass"),
    ("sm120-runs-on-12.1-spark", ("10.0", "12.0"), "12.1", "sass"),
    ("sm100-runs-on-10.3-b300", ("sm_100",), "10.3", "sass"),
    ("sm90-not-on-10.0", ("sm_90",), "10.0", None),
    # rule 2: Tegra has no binary compatibility (#166185: "8.0 serves >=8.0,<9.0 except 8.7")
    ("sm80-not-on-orin-8.7", ("8.0",), "8.7", None),
    ("sm86-not-on-orin-8.7", ("8.0", "8.6"), "8.7", None),
    ("sm87-on-orin", ("8.7",), "8.7", "sass"),
    ("sm70-not-on-xavier-7.2", ("7.0",), "7.2", None),
    ("sm50-not-on-tx1-5.3", ("5.0",), "5.3", None),
    ("compute80-ptx-jits-on-orin", ("sm_80", "compute_80"), "8.7", "ptx"),
    # rule 3: Thor, 10.1 in CUDA 12 and 11.0 in CUDA 13 ("10.0 serves >=10.0,<11.0 except 10.1")
    ("sm100-not-on-thor-10.1", ("10.0",), "10.1", None),
    ("sm100-not-on-thor-11.0", ("10.0",), "11.0", None),
    ("sm110-on-thor-11.0", ("8.0", "9.0", "10.0", "11.0", "12.0"), "11.0", "sass"),
    # rule 4: family-specific code runs on its family
    ("sm100f-on-10.3", ("sm_100f",), "10.3", "sass"),
    ("sm100f-not-on-12.0", ("sm_100f",), "12.0", None),
    ("sm120f-on-12.1", ("sm_120f",), "12.1", "sass"),
    ("sm100f-not-on-thor-10.1", ("sm_100f",), "10.1", None),
    # rule 5: architecture-specific code runs on that capability only
    ("sm90a-on-9.0", ("sm_90a",), "9.0", "sass"),
    ("sm90a-not-on-10.0", ("sm_90a",), "10.0", None),
    ("sm100a-not-on-10.3", ("sm_100a",), "10.3", None),
    # rule 6: PTX JIT-compiles for the same or a newer capability, any major
    ("compute80-on-9.0", ("sm_80", "compute_80"), "9.0", "ptx"),
    ("compute120-on-13.0", ("12.0", "compute_120"), "13.0", "ptx"),
    ("compute90-not-on-8.9", ("compute_90",), "8.9", None),
    ("compute90a-only-on-9.0", ("compute_90a",), "10.0", None),
    ("compute100f-on-10.3", ("compute_100f",), "10.3", "ptx"),
    ("sass-preferred-to-ptx", ("compute_75", "sm_86"), "8.6", "sass"),
    (
        "nothing-for-pascal-in-cu128",
        ("7.0", "7.5", "8.0", "8.6", "9.0", "10.0", "12.0"),
        "6.1",
        None,
    ),
    ("garbage-target-ignored", ("sm_xx", "8.0"), "8.9", "sass"),
    ("unparseable-gpu", ("8.0",), "eight", None),
]


@pytest.mark.parametrize(
    ("targets", "gpu", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_how_it_runs(targets: tuple[str, ...], gpu: str, expected: Optional[str]) -> None:
    assert how_it_runs(targets, gpu) == expected
    assert has_kernels(targets, gpu) is (expected is not None)


@pytest.mark.parametrize(
    ("text", "cc"),
    [("8.6", (8, 6)), ("sm_86", (8, 6)), ("120", (12, 0)), ("sm_100f", (10, 0)), ("x", None)],
)
def test_parse_cc(text: str, cc: object) -> None:
    assert parse_cc(text) == cc


def test_target_spellings() -> None:
    t = parse_target("compute_100f")
    assert t is not None and (t.code, t.cc, t.suffix) == ("ptx", (10, 0), "f")
    assert parse_target("12.0") == parse_target("sm_120")
    assert parse_target("gfx942") is None
    assert sm("12.0") == "sm_120" and sm("garbage") == "garbage"


def test_vendor_without_rules_is_unchecked_not_refused() -> None:
    assert runs_on("rocm", ("gfx942",), "gfx90a") == "unchecked"
    assert runs_on("cuda", ("8.0",), "8.7") is None
