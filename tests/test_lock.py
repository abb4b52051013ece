"""uv.lock is what every install path installs: the image's requirements come from it, and
a pyproject.toml that moved away from it stops the set-up and the check with the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, clean_env
from packaging.requirements import Requirement

REQUIREMENTS = ROOT / "docker" / "requirements.py"
LOCK = ROOT / "uv.lock"
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")

# Where the lock is used, and where it must stay right for users of other platforms.
ENVIRONMENTS = [
    {"python_full_version": "3.11.7", "sys_platform": "linux", "implementation_name": "cpython"},
    {"python_full_version": "3.12.3", "sys_platform": "linux", "implementation_name": "cpython"},
    {"python_full_version": "3.13.1", "sys_platform": "win32", "implementation_name": "cpython"},
    {"python_full_version": "3.11.9", "sys_platform": "darwin", "implementation_name": "pypy"},
]


def _environment(values: dict[str, str]) -> dict[str, str]:
    implementation = "PyPy" if values["implementation_name"] == "pypy" else "CPython"
    return {
        **values,
        "python_version": ".".join(values["python_full_version"].split(".")[:2]),
        "platform_python_implementation": implementation,
        "platform_system": {"linux": "Linux", "win32": "Windows", "darwin": "Darwin"}[
            values["sys_platform"]
        ],
        "os_name": "nt" if values["sys_platform"] == "win32" else "posix",
        "platform_machine": "x86_64",
        "extra": "",
    }


def installs(lines: list[str], environment: dict[str, str]) -> dict[str, tuple[str, set[str]]]:
    """What pip would install from these lines in ``environment``: name -> (version, hashes)."""
    chosen: dict[str, tuple[str, set[str]]] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        spec, *hash_parts = line.split(" --hash=")
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = requirement.name.lower().replace("_", "-")
        assert name not in chosen, f"{name} is pinned twice for {environment}"
        (pin,) = requirement.specifier
        chosen[name] = (pin.version, {h.strip() for h in hash_parts})
    return chosen


def uv_export(extras: list[str]) -> list[str]:
    """uv's own rendering of the lock for the extras, hashes included, joined per requirement."""
    args = [arg for extra in extras for arg in ("--extra", extra)]
    exported = subprocess.run(
        [UV, "export", "--frozen", "--no-emit-project", "--no-header", "--no-annotate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return exported.replace(" \\\n    ", " ").splitlines()


def ours(extras: list[str]) -> list[str]:
    return subprocess.run(
        [sys.executable, str(REQUIREMENTS), str(LOCK), ",".join(extras)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


@pytest.mark.skipif(UV is None, reason="needs uv: scripts/setup.sh --test installs it")
@pytest.mark.parametrize("extras", [[], ["sync", "faces"], ["report"], ["dev"]])
def test_the_image_requirements_are_the_lock_as_uv_reads_it(extras: list[str]) -> None:
    """docker/requirements.py (standard library only) pins the same versions and hashes as
    uv export for each set of extras, on every platform the lock covers."""
    for values in ENVIRONMENTS:
        environment = _environment(values)
        assert installs(ours(extras), environment) == installs(uv_export(extras), environment)


def test_every_requirement_is_pinned_and_hashed() -> None:
    """Each line of the image's requirements pins one version and carries the lock's hashes,
    so pip installs nothing the lock did not name."""
    lines = ours(["sync", "faces"])
    assert lines
    for line in lines:
        spec, *hashes = line.split(" --hash=")
        (pin,) = Requirement(spec).specifier
        assert pin.operator == "==" and hashes and all(h.startswith("sha256:") for h in hashes)
    # numpy 2.5 needs Python 3.12: the lock holds two versions, each with its marker.
    numpy = [Requirement(line.split(" --hash=")[0]) for line in lines if line.startswith("numpy==")]
    assert len(numpy) == 2 and all(r.marker is not None for r in numpy)


def test_an_unknown_extra_is_named() -> None:
    """Asking for an extra the project lacks fails with one line naming it and the known ones."""
    result = subprocess.run(
        [sys.executable, str(REQUIREMENTS), str(LOCK), "sync,kafka"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no extra 'kafka'" in result.stderr and "'sync'" in result.stderr


def project_copy(destination: Path, new_dependency: str | None = None) -> Path:
    """The files uv and the set-up read, with ``new_dependency`` added to pyproject.toml."""
    for name in ("pyproject.toml", "uv.lock", "README.md", "LICENSE", "main.py"):
        shutil.copy2(ROOT / name, destination / name)
    for folder in ("scripts", "docker", "src"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=_no_caches)
    if new_dependency:
        pyproject = destination / "pyproject.toml"
        text = pyproject.read_text()
        pyproject.write_text(
            text.replace('    "pyyaml>=6.0",\n', f'    "pyyaml>=6.0",\n    "{new_dependency}",\n')
        )
        assert pyproject.read_text() != text
    return destination


def _no_caches(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "wheelhouse") or n.endswith(".egg-info")]


@pytest.mark.skipif(UV is None, reason="needs uv: scripts/setup.sh --test installs it")
def test_the_lock_matches_pyproject_and_a_stale_one_fails_the_check(tmp_path: Path) -> None:
    """scripts/lock.sh --check passes on this checkout, and fails with the command that fixes
    it once pyproject.toml gains a dependency the lock lacks."""
    env = clean_env()
    env["PATH"] = f"{Path(str(UV)).parent}{os.pathsep}{env['PATH']}"
    current = subprocess.run(
        ["scripts/lock.sh", "--check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert current.returncode == 0, current.stderr
    stale = project_copy(tmp_path, new_dependency="six>=1.16")
    result = subprocess.run(
        ["scripts/lock.sh", "--check"], cwd=stale, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "uv.lock does not match pyproject.toml" in result.stderr
    assert "Run scripts/lock.sh and commit uv.lock" in result.stderr


@pytest.mark.slow
def test_the_set_up_refuses_a_lock_that_does_not_match(tmp_path: Path) -> None:
    """scripts/setup.sh installs from the lock only: with a dependency missing from it, it
    stops before installing anything, saying how to refresh the lock."""
    stale = project_copy(tmp_path, new_dependency="six>=1.16")
    env = clean_env()
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        ["scripts/setup.sh"], cwd=stale, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 1, result.stderr
    assert "refresh the lock with scripts/lock.sh" in result.stderr
    assert not (stale / ".venv/bin/sensorfleet").exists()
