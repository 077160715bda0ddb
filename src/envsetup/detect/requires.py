"""Whether torch's dependencies (and its companions') are installed in the target, from the
metadata the target's probe read (``env.requires``, ``env.markers``): no import of torch.

A torch whose dependency is gone (``typing_extensions`` removed by another install, a
``pip uninstall`` of something torch needs) cannot be imported; this names what is missing,
the way ``pip check`` would, for torch and its companions and what they need in turn."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

FAMILY = ("torch", "torchvision", "torchaudio")


def unmet(
    requires: Mapping[str, Sequence[str]],
    markers: Mapping[str, str],
    versions: Mapping[str, str],
    roots: Iterable[str] = FAMILY,
) -> list[str]:
    """Each requirement of ``roots`` (and of what they need) that the installed ``versions``
    do not satisfy, as ``"torch needs typing-extensions>=4.10.0, not installed"`` (the root
    first, so a caller can keep those of the packages it asks about)."""
    from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    out: dict[str, None] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(r, "", r) for r in roots if r in requires]
    while todo:
        name, extra, root = todo.pop(0)
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in requires.get(name, ()):
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None:
                try:
                    if not req.marker.evaluate({**markers, "extra": extra}):
                        continue
                except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                    continue
            dep = canonicalize_name(req.name)
            via = f" (required by {name})" if name != root else ""
            have = versions.get(dep)
            if have is None:
                out[f"{root} needs {dep}{req.specifier}{via}, not installed"] = None
                continue
            if req.specifier:
                try:
                    fits = req.specifier.contains(Version(have), prereleases=True)
                except InvalidVersion:
                    fits = True
                if not fits:
                    out[f"{root} needs {dep}{req.specifier}{via}, {have} installed"] = None
            todo += [(dep, e, root) for e in ("", *sorted(req.extras))]
    return list(out)


__all__ = ["FAMILY", "unmet"]
