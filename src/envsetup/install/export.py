"""The plan as a file for a Dockerfile or a teammate: requirements, uv (pyproject), conda."""

from __future__ import annotations

import re
from typing import Optional

from envsetup.errors import UsageError
from envsetup.install.backends import conda_channel_has, conda_specs
from envsetup.plan import Plan

EXPORTS = ("requirements", "uv", "conda")


def _header(plan: Plan) -> str:
    return (
        f"# torch {plan.torch} ({plan.variant}) for {plan.platform}, Python {plan.python}; "
        "made by envsetup\n"
    )


def requirements(plan: Plan, index_url: Optional[str] = None) -> str:
    index = index_url or plan.index_url
    lines = [_header(plan).rstrip()]
    if index:
        lines.append(f"--index-url {index}")
    lines += plan.requirements()
    return "\n".join(lines) + "\n"


def _index_name(plan: Plan) -> str:
    return "pytorch-" + re.sub(r"[^a-z0-9]+", "-", plan.variant.lower()).strip("-")


def uv(plan: Plan, index_url: Optional[str] = None) -> str:
    """The ``[tool.uv]`` index and sources entries, with the dependencies they pin."""
    index = index_url or plan.index_url
    deps = ",\n".join(f'  "{r}"' for r in plan.requirements())
    out = [_header(plan).rstrip(), "[project]", f"dependencies = [\n{deps},\n]", ""]
    if index:
        name = _index_name(plan)
        out += ["[[tool.uv.index]]", f'name = "{name}"', f'url = "{index}"', "explicit = true", ""]
        out.append("[tool.uv.sources]")
        out += [f'{p.name} = {{ index = "{name}" }}' for p in plan.pins]
    return "\n".join(out) + "\n"


def conda(plan: Plan, index_url: Optional[str] = None, name: str = "torch") -> str:
    """An environment.yml: the pytorch/nvidia channels up to 2.5, pip inside conda after."""
    lines = [_header(plan).rstrip(), f"name: {name}"]
    if conda_channel_has(plan) and not index_url:
        channels, specs = conda_specs(plan)
        lines.append("channels:")
        lines += [f"  - {c}" for c in channels]
        lines.append("dependencies:")
        lines.append(f"  - python={plan.python}")
        lines += [f"  - {s}" for s in specs]
    else:
        index = index_url or plan.index_url
        lines += ["channels:", "  - conda-forge", "dependencies:", f"  - python={plan.python}"]
        lines += ["  - pip", "  - pip:"]
        if index:
            lines.append(f"      - --index-url {index}")
        lines += [f"      - {r}" for r in plan.requirements()]
    return "\n".join(lines) + "\n"


def export(plan: Plan, kind: str, index_url: Optional[str] = None) -> str:
    if kind == "requirements":
        return requirements(plan, index_url)
    if kind == "uv":
        return uv(plan, index_url)
    if kind == "conda":
        return conda(plan, index_url)
    raise UsageError(f"--export {kind}: choose one of {', '.join(EXPORTS)}")
