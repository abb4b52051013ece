"""Print pinned, hashed pip requirements from uv.lock, one per line.

    python3 docker/requirements.py uv.lock sync,faces        # the image's own
    python3 docker/requirements.py uv.lock dev               # everything a developer needs
    python3 docker/requirements.py --package uv uv.lock      # one package (the installer)
    python3 docker/requirements.py --build-system pyproject.toml   # the build backend

The lock's packages that the project needs with the extras named (comma-separated),
each as ``name==version ; marker --hash=...``, the marker saying on which Pythons and
platforms it is needed (pip evaluates it where it installs). Used by the Dockerfile's
build stage (what to install), by docker/build-image.sh (what the wheelhouse must
hold) and by scripts/setup.sh (which uv installs the rest), so every install path reads
the same lock. uv.lock pins no build backend, so ``--build-system`` prints
pyproject.toml's range for it. Needs only the standard library.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from typing import Any

Package = dict[str, Any]
Key = tuple[str, str]  # (name, version)


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class Lock:
    """The packages of a uv.lock and the edges between them."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            document = tomllib.load(f)
        self.path = path
        self.packages: dict[Key, Package] = {}
        self.versions: dict[str, list[str]] = {}
        self.root: Package | None = None
        for package in document["package"]:
            name = _normalize(package["name"])
            self.packages[(name, package["version"])] = package
            self.versions.setdefault(name, []).append(package["version"])
            source = package.get("source", {})
            if "editable" in source or "virtual" in source:
                self.root = package
        if self.root is None:
            raise SystemExit(f"requirements: {path}: no project (editable source) in the lock")

    def target(self, dependency: dict[str, Any]) -> Key:
        """The locked (name, version) an edge points to."""
        name = _normalize(dependency["name"])
        if "version" in dependency:
            return (name, dependency["version"])
        versions = self.versions.get(name, [])
        if len(versions) != 1:
            raise SystemExit(f"requirements: {self.path}: no single locked version of {name}")
        return (name, versions[0])

    def edges(self, package: Package, extras: list[str]) -> Iterator[dict[str, Any]]:
        """The package's dependencies, and those of the extras asked of it."""
        yield from package.get("dependencies", [])
        optional: dict[str, list[dict[str, Any]]] = package.get("optional-dependencies", {})
        for extra in extras:
            yield from optional.get(extra, [])


def needed(lock: Lock, extras: list[str]) -> dict[Key, set[frozenset[str]]]:
    """Every package the project needs with ``extras``, with the conditions under which
    it does: each condition is the markers met on one way to it (all must hold)."""
    assert lock.root is not None
    known = set(lock.root.get("optional-dependencies", {}))
    for extra in extras:
        if extra not in known:
            raise SystemExit(f"requirements: {lock.path}: no extra {extra!r} in {sorted(known)}")
    found: dict[Key, set[frozenset[str]]] = {}
    root_key = (_normalize(lock.root["name"]), lock.root["version"])
    pending: list[tuple[Package, list[str], frozenset[str]]] = [(lock.root, extras, frozenset())]
    seen: set[tuple[Key, tuple[str, ...], frozenset[str]]] = set()
    while pending:
        package, asked, condition = pending.pop()
        for dependency in lock.edges(package, asked):
            key = lock.target(dependency)
            marker = dependency.get("marker")
            reached = condition | {marker} if marker else condition
            wanted = list(dependency.get("extra", []))
            state = (key, tuple(sorted(wanted)), reached)
            if state in seen:
                continue
            seen.add(state)
            if key != root_key:  # an extra naming the project itself is not a download
                found.setdefault(key, set()).add(reached)
            pending.append((lock.packages[key], wanted, reached))
    return found


def _marker(conditions: set[frozenset[str]]) -> str:
    """One PEP 508 marker that holds when any of the conditions does ('' for always)."""
    if frozenset() in conditions:
        return ""
    alternatives = sorted(" and ".join(f"({m})" for m in sorted(c)) for c in conditions)
    if len(alternatives) == 1:
        return alternatives[0]
    return " or ".join(f"({a})" for a in alternatives)


def _hashes(package: Package) -> list[str]:
    files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
    return sorted({f["hash"] for f in files if "hash" in f})


def _line(lock: Lock, key: Key, marker: str) -> str:
    package = lock.packages[key]
    hashes = _hashes(package)
    if not hashes:
        raise SystemExit(f"requirements: {lock.path}: {key[0]} {key[1]} has no hash to check")
    line = f"{package['name']}=={package['version']}"
    if marker:
        line += f" ; {marker}"
    return line + "".join(f" --hash={h}" for h in hashes)


def locked(lock_path: str, extras: list[str]) -> list[str]:
    """The pinned, hashed requirement lines of the project with ``extras``."""
    lock = Lock(lock_path)
    return [_line(lock, key, _marker(c)) for key, c in sorted(needed(lock, extras).items())]


def one_package(lock_path: str, name: str) -> list[str]:
    """The pinned, hashed requirement line of one locked package."""
    lock = Lock(lock_path)
    return [_line(lock, lock.target({"name": name}), "")]


def build_system(pyproject: str) -> list[str]:
    """The build backend's requirements as pyproject.toml states them."""
    with open(pyproject, "rb") as f:
        return list(tomllib.load(f)["build-system"]["requires"])


def main(argv: list[str]) -> int:
    """Print the requirements the arguments ask for (see the module's help)."""
    match argv:
        case ["--build-system", pyproject]:
            lines = build_system(pyproject)
        case ["--package", name, lock_path]:
            lines = one_package(lock_path, name)
        case [lock_path] | [lock_path, _]:
            extras = [e for e in (argv[1] if len(argv) == 2 else "").split(",") if e]
            lines = locked(lock_path, extras)
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
