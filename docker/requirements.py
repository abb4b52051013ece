"""Print the image's Python requirements from pyproject.toml, one per line.

    python3 docker/requirements.py pyproject.toml sync            # the image's own
    python3 docker/requirements.py --build-system pyproject.toml sync   # plus the build backend

The runtime dependencies, then those of each extra named (comma-separated). Used by the
Dockerfile's build stage (what to install) and by docker/build-image.sh (what the
wheelhouse must hold), so both read the same list. Needs only the standard library.
"""

from __future__ import annotations

import sys
import tomllib


def requirements(pyproject: str, extras: list[str], build_system: bool) -> list[str]:
    """The requirement strings of the project (and its build backend) with ``extras``."""
    with open(pyproject, "rb") as f:
        document = tomllib.load(f)
    project = document["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found = list(document["build-system"]["requires"]) if build_system else []
    found += project["dependencies"]
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"requirements: {pyproject}: no extra {extra!r} in {sorted(optional)}")
        # An extra naming the project itself (all = ["sensorfleet[sync]"]) is not a download.
        found += [r for r in optional[extra] if not r.startswith(project["name"])]
    return found


def main(argv: list[str]) -> int:
    """Print the requirements for ``[--build-system] PYPROJECT [EXTRAS]``."""
    build_system = argv[:1] == ["--build-system"]
    args = argv[1:] if build_system else argv
    if not 1 <= len(args) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    extras = [e for e in (args[1] if len(args) == 2 else "").split(",") if e]
    print("\n".join(requirements(args[0], extras, build_system)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
