"""deploy/k8s: no cluster runs here, so the manifests are validated offline (the built-in kinds
against Kubernetes' own schemas through kubernetes-validate, the LocustTest against the operator's
documented v2 fields) and held to the compose file: the suite's image, the same Locust options and
settings, and the token only from the Secret."""

from __future__ import annotations

import copy
import re
import shlex

import pytest
import yaml

from config import Settings
from tests.helpers import ROOT

K8S = ROOT / "deploy" / "k8s"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.locust.yml").read_text())
SERVICES = COMPOSE["services"]
DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")
SECRET, TOKEN_KEY, CONFIGMAP = "payment-suite-auth", "AUTH_TOKEN", "payment-suite-settings"


def resolve(value: str) -> str:
    """A compose value with every ${VAR:-default} at its default."""
    return DEFAULT.sub(lambda m: m.group(1), str(value))


def docs() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


MANIFESTS = docs()


def container(kind_name: tuple[str, str]) -> dict:
    (only,) = MANIFESTS[kind_name]["spec"]["template"]["spec"]["containers"]
    return only


def compose_args(service: str, drop: tuple[str, ...] = ()) -> list[str]:
    return [resolve(a) for a in SERVICES[service]["command"] if not a.startswith(drop)]


def test_every_manifest_parses_and_is_known():
    kinds = {kind for kind, _ in MANIFESTS}
    assert kinds == {"ConfigMap", "Secret", "Deployment", "Service", "LocustTest"}
    assert {p.name for p in K8S.glob("*.yaml")} == {
        "configmap.yaml",
        "secret.yaml",
        "master.yaml",
        "worker.yaml",
        "sandbox.yaml",
        "locusttest.yaml",
    }
    text = (ROOT / "docs" / "distributed.md").read_text()
    for path in K8S.glob("*.yaml"):
        assert path.name in text, f"docs/distributed.md does not mention {path.name}"


def test_everything_runs_the_suite_image():
    image = COMPOSE["x-suite"]["image"]
    for kind, name in MANIFESTS:
        if kind == "Deployment":
            assert container((kind, name))["image"] == image, name
    assert MANIFESTS[("LocustTest", "payment-volume")]["spec"]["image"] == image


def test_plain_master_and_workers_run_the_compose_options():
    assert container(("Deployment", "locust-master"))["args"] == compose_args("master")
    worker_args = container(("Deployment", "locust-worker"))["args"]
    expected = [a.replace("--master-host=master", "--master-host=locust-master") for a in compose_args("worker")]
    assert worker_args == expected
    replicas = int(resolve(SERVICES["worker"]["deploy"]["replicas"]))
    assert MANIFESTS[("Deployment", "locust-worker")]["spec"]["replicas"] == replicas
    assert f"--expect-workers={replicas}" in compose_args("master")
    ports = {p["port"] for p in MANIFESTS[("Service", "locust-master")]["spec"]["ports"]}
    assert {5557, 8089} <= ports
    sandbox_ports = {p["port"] for p in MANIFESTS[("Service", "sandbox")]["spec"]["ports"]}
    assert sandbox_ports == {8000, 1080}
    assert container(("Deployment", "sandbox"))["args"] == SERVICES["sandbox"]["command"]


def test_locusttest_runs_the_volume_test_set():
    spec = MANIFESTS[("LocustTest", "payment-volume")]["spec"]
    # The operator adds --master/--expect-workers (and autostart/autoquit instead of --headless).
    master = compose_args("volume-master", drop=("--master", "--expect-workers=", "--headless"))
    assert shlex.split(spec["master"]["command"]) == master
    assert shlex.split(spec["worker"]["command"]) == compose_args("volume-worker", drop=("--worker", "--master-host"))
    assert spec["worker"]["replicas"] == int(resolve(SERVICES["volume-worker"]["deploy"]["replicas"]))
    waits = {v["name"]: v["value"] for v in spec["env"]["variables"]}
    env = SERVICES["volume-master"]["environment"]
    assert waits == {k: resolve(env[k]) for k in ("MIN_WAIT_TIME", "MAX_WAIT_TIME")}
    assert {"name": CONFIGMAP, "prefix": ""} in spec["env"]["configMapRefs"]
    assert {"name": SECRET, "prefix": ""} in spec["env"]["secretRefs"]


def test_configmap_holds_the_compose_settings_and_they_are_valid():
    data = MANIFESTS[("ConfigMap", CONFIGMAP)]["data"]
    compose_env = {**COMPOSE["x-suite"]["environment"], **SERVICES["master"]["environment"]}
    for key, value in data.items():
        if key.startswith("SUITE_"):  # the image entrypoint's own
            continue
        assert key in compose_env, f"{key} is not a setting the compose file passes"
        assert value == resolve(compose_env[key]), key
    fields = {k.lower(): v for k, v in data.items() if k.lower() in Settings.model_fields}
    Settings(_env_file=None, **fields)  # every value valid


def test_the_token_comes_only_from_the_secret():
    assert TOKEN_KEY not in MANIFESTS[("ConfigMap", CONFIGMAP)]["data"]
    assert TOKEN_KEY in MANIFESTS[("Secret", SECRET)]["stringData"]
    for kind, name in MANIFESTS:
        if kind != "Deployment":
            continue
        c = container((kind, name))
        refs = [e for e in c.get("env", []) if e["name"] == TOKEN_KEY]
        assert refs == [{"name": TOKEN_KEY, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": TOKEN_KEY}}}], name
        assert not any("token" in a.lower() for a in c["args"]), name
    spec = MANIFESTS[("LocustTest", "payment-volume")]["spec"]
    assert all(v["name"] != TOKEN_KEY for v in spec["env"]["variables"])
    assert "token" not in (spec["master"]["command"] + spec["worker"]["command"]).lower()
    for path in K8S.glob("*.yaml"):
        if path.name != "secret.yaml":
            assert "test_token" not in path.read_text(), path.name


# -- offline schema validation ----------------------------------------------------------------------

# The Kubernetes release the built-in resources are validated against (kubernetes-validate ships its
# schemas, so no cluster and no network are needed).
KUBERNETES_VERSION = "1.33.0"

_ENV_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1}, "prefix": {"type": "string"}},
}
_POD_EXTRAS = {
    "resources": {"type": "object"},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    "extraArgs": {"type": "array", "items": {"type": "string"}},
}
# The LocustTest v2 spec as the operator's API reference lists its fields (root, MasterSpec,
# WorkerSpec, EnvConfig): required fields, types, and no field it does not name, so a typo fails.
LOCUSTTEST_V2 = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "locust.io/v2"},
        "kind": {"const": "LocustTest"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["image", "master", "worker"],
            "additionalProperties": False,
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                "imagePullSecrets": {"type": "array", "items": _ENV_REF},
                "master": {
                    "type": "object",
                    "required": ["command"],
                    "additionalProperties": False,
                    "properties": {
                        "command": {"type": "string", "minLength": 1},
                        "autostart": {"type": "boolean"},
                        "autoquit": {"type": "object"},
                        **_POD_EXTRAS,
                    },
                },
                "worker": {
                    "type": "object",
                    "required": ["command", "replicas"],
                    "additionalProperties": False,
                    "properties": {
                        "command": {"type": "string", "minLength": 1},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 500},
                        **_POD_EXTRAS,
                    },
                },
                "testFiles": {"type": "object"},
                "scheduling": {"type": "object"},
                "env": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "configMapRefs": {"type": "array", "items": _ENV_REF},
                        "secretRefs": {"type": "array", "items": _ENV_REF},
                        "variables": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                            },
                        },
                        "secretMounts": {"type": "array"},
                    },
                },
                "volumes": {"type": "array"},
                "volumeMounts": {"type": "array"},
                "observability": {"type": "object"},
            },
        },
    },
}


def validate_manifest(doc: dict) -> None:
    """Raises when ``doc`` breaks its schema: Kubernetes' own (strict: no unknown fields) for the
    built-in kinds, the operator's documented v2 fields for a LocustTest."""
    import jsonschema
    import kubernetes_validate

    if doc["kind"] == "LocustTest":
        jsonschema.validate(doc, LOCUSTTEST_V2)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kind_name", sorted(MANIFESTS), ids=lambda kn: f"{kn[0]}/{kn[1]}")
def test_every_manifest_validates_against_its_schema(kind_name):
    validate_manifest(MANIFESTS[kind_name])


PLANTED = [
    (("Deployment", "locust-worker"), lambda d: d["spec"].update(replica=2)),  # a typo of replicas
    (("Deployment", "locust-master"), lambda d: d["spec"]["template"]["spec"]["containers"][0].update(args="x")),
    (("Service", "locust-master"), lambda d: d["spec"]["ports"][0].update(port="5557")),
    (("LocustTest", "payment-volume"), lambda d: d["spec"]["worker"].update(replica=2)),
    (("LocustTest", "payment-volume"), lambda d: d["spec"].pop("master")),
    (("LocustTest", "payment-volume"), lambda d: d["spec"]["env"].update(configMapRef=[])),
]


@pytest.mark.parametrize("kind_name,break_it", PLANTED, ids=[f"{k[0]}-{i}" for i, (k, _) in enumerate(PLANTED)])
def test_a_broken_manifest_fails_validation(kind_name, break_it):
    doc = copy.deepcopy(MANIFESTS[kind_name])
    break_it(doc)
    with pytest.raises(Exception, match=r"(?i)not allowed|not of type|required|unexpected"):
        validate_manifest(doc)
