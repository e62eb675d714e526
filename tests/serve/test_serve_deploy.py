"""The deployment recipe (deploy/): the KServe ServingRuntime and InferenceService validate
against KServe's published CRD schemas (tests/serve/schemas/, no network), strictly (an
unknown field is an error, as `kubectl apply` with strict field validation makes it), and
agree with `kiln serve` itself: the container's arguments parse with its command line, the
probes are its health endpoints (answered by a running server), the ports are the ones it
listens on, and the termination grace period covers the drain."""

from __future__ import annotations

import copy
import functools
import gzip
import json
import re
from pathlib import Path

import pytest

from serve_helpers import request

jsonschema = pytest.importorskip("jsonschema", reason="validates the manifests")
yaml = pytest.importorskip("yaml", reason="reads the manifests")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
#: metadata.name of both kinds: a DNS-1123 label (KServe makes Service names of it)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def strict(schema: dict) -> dict:
    """`schema` with unknown fields refused: every object that lists its properties, and
    does not say x-kubernetes-preserve-unknown-fields, gets additionalProperties false."""
    schema = copy.deepcopy(schema)

    def visit(node) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


@functools.cache
def schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict schema."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.json.gz")):
        data = json.loads(gzip.decompress(path.read_bytes()))
        schemas[(data["apiVersion"], data["kind"])] = strict(data["openAPIV3Schema"])
    return schemas


def manifests() -> dict[str, dict]:
    """kind -> the manifest of deploy/kserve/."""
    found = {}
    for path in sorted((DEPLOY / "kserve").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def problems(document: dict) -> list[str]:
    """Every way `document` breaks its kind's published schema."""
    schema = schemas().get((document.get("apiVersion"), document.get("kind")))
    assert schema is not None, f"no published schema for {document.get('apiVersion')} " \
                               f"{document.get('kind')}"
    validator = jsonschema.Draft7Validator(schema)
    found = [f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
             for error in validator.iter_errors(document)]
    name = document.get("metadata", {}).get("name", "")
    if not DNS_LABEL.match(name) or len(name) > 63:
        found.append(f"metadata.name {name!r} is not a DNS-1123 label")
    return found


def test_the_manifests_validate_against_kserves_published_schemas():
    found = manifests()
    assert set(found) == {"ServingRuntime", "InferenceService"}, sorted(found)
    for kind, document in found.items():
        assert problems(document) == [], kind


@pytest.mark.parametrize("change, error", [
    (lambda d: d["spec"]["containers"][0].update(readinesProbe={}), "readinesProbe"),
    (lambda d: d["spec"]["containers"][0]["ports"][0].update(containerPort="8080"),
     "is not of type 'integer'"),
    (lambda d: d["spec"].pop("containers"), "'containers' is a required property"),
    (lambda d: d["metadata"].update(name="Kiln_Runtime"), "not a DNS-1123 label"),
], ids=["misspelt field", "wrong type", "missing field", "bad name"])
def test_the_validation_catches_mistakes(change, error):
    document = copy.deepcopy(manifests()["ServingRuntime"])
    change(document)
    assert any(error in problem for problem in problems(document)), problems(document)


def container() -> dict:
    (only,) = manifests()["ServingRuntime"]["spec"]["containers"]
    return only


def serve_args(args: list[str]):
    """`kiln serve ARGS` as kiln's own command line parses it ($(VAR) references, which
    Kubernetes expands from the container's env, given a value)."""
    from kiln.cli import build_parser

    expanded = [re.sub(r"\$\((\w+)\)", "2", arg) for arg in args]
    return build_parser().parse_args(["serve", *expanded])


def test_the_runtime_runs_kiln_serve_as_its_probes_and_ports_expect(server):
    runtime = manifests()["ServingRuntime"]["spec"]
    assert {"v2", "grpc-v2"} <= set(runtime["protocolVersions"])
    assert "onnx" in {f["name"] for f in runtime["supportedModelFormats"]}
    spec = container()
    args = serve_args(spec["args"])
    assert args.source == "/mnt/models" and args.host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports == {"http1": args.http_port, "grpc": args.grpc_port}
    assert spec["ports"][0]["name"] == "http1"   # KServe's Service port 80 goes to the first
    env = {e["name"]: e for e in spec["env"]}
    threads = [a for a in spec["args"] if a.startswith("$(")]
    assert threads == ["$(KILN_THREADS)"] and \
        env["KILN_THREADS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    for probe, path in (("livenessProbe", "/v2/health/live"),
                        ("readinessProbe", "/v2/health/ready")):
        get = spec[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, args.http_port), probe
        assert request(server.url, "GET", path)[0] == 200, path   # kiln serve answers it


def test_the_termination_grace_period_covers_the_drain():
    spec = container()
    args = serve_args(spec["args"])
    pause = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    predictor = manifests()["InferenceService"]["spec"]["predictor"]
    # the preStop pause, then the drain (--grace-period), then at most a second to exit
    assert predictor["terminationGracePeriodSeconds"] >= float(pause[1]) + \
        args.grace_period + 1
    assert predictor["model"]["runtime"] == manifests()["ServingRuntime"]["metadata"]["name"]
    assert predictor["model"]["protocolVersion"] in manifests()["ServingRuntime"]["spec"][
        "protocolVersions"]


def test_the_container_recipe_runs_kiln_serve_on_the_runtimes_ports():
    text = (DEPLOY / "Dockerfile").read_text()
    instructions: dict[str, str] = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.setdefault(word.upper(), "")
            instructions[word.upper()] += (" " if instructions[word.upper()] else "") + rest
    command = json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"])
    assert command[:2] == ["kiln", "serve"]
    args = serve_args(command[2:])
    assert args.source == "/mnt/models" and args.host == "0.0.0.0"
    assert {int(p) for p in instructions["EXPOSE"].split()} == {args.http_port,
                                                                args.grpc_port}
    assert "[serve]" in instructions["RUN"] and instructions["USER"] == "1000"
    assert instructions["STOPSIGNAL"] == "SIGTERM"
    runtime = serve_args(container()["args"])
    assert (runtime.http_port, runtime.grpc_port, runtime.grace_period) == (
        args.http_port, args.grpc_port, args.grace_period)
