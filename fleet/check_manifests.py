#!/usr/bin/env python3
"""Check the fleet's orchestrator files against their published schemas and the demo fleet.

    python fleet/check_manifests.py          # from the repository root

- compose.yaml and swarm-stack.yaml: the Compose Specification's JSON schema;
- k8s/*.yaml: Kubernetes' own OpenAPI schemas (strict: unknown fields are errors),
  for the oldest version with the pod-index label (1.28) and the newest known;
- bacalhau/*.yaml: the job model of Bacalhau's API, field by field, plus the Docker
  engine's parameters.

That they run the demo's 15 identities is tested in tests/test_fleet.py.
Needs ``pip install -r fleet/requirements-check.txt``.
Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import bacalhau_apiclient.models  # type: ignore[import-untyped]
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "fleet"
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
# Parameters of Bacalhau's Docker engine (Engine.Params when Engine.Type is docker).
DOCKER_ENGINE_PARAMS = {
    "Image",
    "Entrypoint",
    "Parameters",
    "EnvironmentVariables",
    "WorkingDirectory",
}
JOB_TYPES = {"batch", "ops", "daemon", "service"}
INPUT_SOURCE_PARAMS = {"localDirectory": {"SourcePath", "ReadWrite"}}
NETWORK_TYPES = {"None", "Host", "HTTP", "Full"}


def load_documents(path: Path) -> list[Any]:
    """Every YAML document in ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def compose_schema() -> Any:
    """The Compose Specification schema vendored by check-jsonschema."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))


def check_compose(path: Path, schema: Any) -> Iterator[str]:
    """Problems of a Compose file against the Compose Specification."""
    (document,) = load_documents(path)
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top)"
        yield f"{path.relative_to(ROOT)}: {where}: {error.message}"


def check_kubernetes(path: Path) -> Iterator[str]:
    """Problems of Kubernetes manifests against Kubernetes' schemas."""
    for document in load_documents(path):
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(str(p) for p in error.path) or "(top)"
                kind = document.get("kind", "?")
                yield f"{path.relative_to(ROOT)}: {kind} {where}: {error.message} (k8s {version})"


def _model(name: str) -> Any:
    """A Bacalhau API model class by its swagger name."""
    module = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return getattr(getattr(bacalhau_apiclient.models, module), name)


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_bacalhau_value(value: Any, swagger_type: str, where: str = "") -> Iterator[str]:
    """Problems of ``value`` as the swagger type ``swagger_type``, as ``path: problem``."""
    if swagger_type.startswith("list["):
        if not isinstance(value, list):
            yield f"{where}: expected a list"
            return
        for i, item in enumerate(value):
            yield from check_bacalhau_value(item, swagger_type[5:-1], f"{where}[{i}]")
    elif swagger_type.startswith("dict("):
        inner = swagger_type[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            yield f"{where}: expected a mapping"
            return
        for key, item in value.items():
            yield from check_bacalhau_value(item, inner, _at(where, key))
    elif swagger_type in ("str", "int", "bool", "object"):
        expected = {"str": str, "int": int, "bool": bool, "object": object}[swagger_type]
        if not isinstance(value, expected) or (swagger_type == "int" and isinstance(value, bool)):
            yield f"{where}: expected {swagger_type} (got {value!r})"
    else:
        model = _model(swagger_type)
        fields = {
            json_key: model.swagger_types[attr] for attr, json_key in model.attribute_map.items()
        }
        if not fields:  # an enumeration: a scalar
            if not isinstance(value, str | int):
                yield f"{where}: expected a value of {swagger_type}"
            return
        if not isinstance(value, dict):
            yield f"{where}: expected a {swagger_type} mapping"
            return
        for key, item in value.items():
            if key not in fields:
                known = ", ".join(fields)
                yield f"{_at(where, key)}: not a field of {swagger_type} (fields: {known})"
            else:
                yield from check_bacalhau_value(item, fields[key], _at(where, key))


def check_bacalhau(path: Path) -> Iterator[str]:
    """Problems of a Bacalhau job spec against the API's Job model and engine parameters."""
    name = str(path.relative_to(ROOT))
    (job,) = load_documents(path)
    for problem in check_bacalhau_value(job, "Job"):
        yield f"{name}: {problem}"
    if job.get("Type") not in JOB_TYPES:
        yield f"{name}: Type: expected one of {sorted(JOB_TYPES)} (got {job.get('Type')!r})"
    if not job.get("Tasks"):
        yield f"{name}: Tasks: a job needs one task"
    for i, task in enumerate(job.get("Tasks") or []):
        where = f"{name}: Tasks[{i}]"
        engine = task.get("Engine") or {}
        if engine.get("Type") != "docker":
            yield f"{where}.Engine.Type: expected docker"
        params = engine.get("Params") or {}
        for key in sorted(set(params) - DOCKER_ENGINE_PARAMS):
            yield f"{where}.Engine.Params.{key}: not a Docker engine parameter"
        if not params.get("Image"):
            yield f"{where}.Engine.Params.Image: required"
        for key in ("Entrypoint", "Parameters", "EnvironmentVariables"):
            if key in params and not all(isinstance(v, str) for v in params[key]):
                yield f"{where}.Engine.Params.{key}: expected a list of strings"
        for j, source in enumerate(task.get("InputSources") or []):
            spec = source.get("Source") or {}
            allowed = INPUT_SOURCE_PARAMS.get(str(spec.get("Type")))
            if allowed is None:
                yield f"{where}.InputSources[{j}].Source.Type: unexpected {spec.get('Type')!r}"
            elif set(spec.get("Params") or {}) - allowed:
                yield f"{where}.InputSources[{j}].Source.Params: only {sorted(allowed)}"
        network = (task.get("Network") or {}).get("Type")
        if network is not None and network not in NETWORK_TYPES:
            yield f"{where}.Network.Type: expected one of {sorted(NETWORK_TYPES)}"


def main() -> int:
    """Run every check; print the problems."""
    schema = compose_schema()
    problems = [
        *check_compose(FLEET / "compose.yaml", schema),
        *check_compose(FLEET / "swarm-stack.yaml", schema),
        *(p for path in sorted((FLEET / "k8s").glob("*.yaml")) for p in check_kubernetes(path)),
        *(p for path in sorted((FLEET / "bacalhau").glob("*.yaml")) for p in check_bacalhau(path)),
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    checked = "compose, swarm stack, kubernetes, bacalhau manifests"
    print(f"check_manifests: {checked}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
