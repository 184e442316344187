"""`maas deploy`: the Kubernetes manifests, validated offline, and the pods' preparation step.

Built-in kinds are validated against Kubernetes 1.33's JSON schemas (kubernetes-validate, strict:
unknown fields rejected); custom resources against the CRD schemas stored in deploy/schemas,
made strict the same way, with their metadata checked as Kubernetes' ObjectMeta.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource
from typer.main import get_command
from typer.testing import CliRunner

from maas import __version__
from maas.cli import app
from maas.deploy import DeployOptions, ModelSource, manifests, render
from maas.deploy.autoscaling import METRIC
from maas.deploy.layout import KUSTOMIZATION, PARTS
from maas.monitor.rules import RuleOptions, rule_groups
from maas.serve.embedded import ServerOptions, TritonPaths, triton_arguments
from tests.unit.test_serving_repo import canonical_repository

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = "1.33"
SCHEMAS = ROOT / "deploy/schemas"
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com/servicemonitor_v1",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com/prometheusrule_v1",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "serving.kserve.io/servingruntime_v1alpha1",
    ("serving.kserve.io/v1beta1", "InferenceService"): "serving.kserve.io/inferenceservice_v1beta1",
}  # fmt: skip
OBJECT_META = (
    "https://kubernetes.io/api/_definitions.json#/$defs/"
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)
CONTROL_KEY = "$(MAAS_CONTROL_KEY)"
VARIANT = DeployOptions(
    name="ranker",
    namespace="search",
    gpu=0,
    replicas=2,
    min_replicas=2,
    max_replicas=10,
    source=ModelSource(claim="", url="s3://models/maas", endpoint="http://minio.minio:9000"),
    limits=("resnet50=8:16:500",),
    padding_strategy="longest",
)
OPTION_SETS = {"defaults": DeployOptions(), "variant": VARIANT}
runner = CliRunner()


# --- validation ------------------------------------------------------------------------------


def strict(node: Any) -> Any:
    """A CRD schema with unknown fields refused wherever it lists its fields (like --strict)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: strict(value) for key, value in node.items()}
    open_ended = "additionalProperties" in found or found.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if isinstance(found.get("properties"), dict) and not open_ended:
        found["additionalProperties"] = False
    return found


@cache
def kubernetes_definitions() -> Resource[Any]:
    """Kubernetes' strict definitions as kubernetes-validate bundles them (offline)."""
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    text = (folder / f"v{KUBERNETES}.0-local-strict" / "_definitions.json").read_text()
    return Resource.from_contents(json.loads(text))


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    """A validator for one custom resource: its stored schema, metadata as ObjectMeta."""
    schema = strict(json.loads((SCHEMAS / f"{CRDS[api_version, kind]}.json").read_text()))
    schema["properties"]["metadata"] = {"$ref": OBJECT_META}
    registry: Registry[Any] = kubernetes_definitions() @ Registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless the document is a valid object of its kind."""
    key = (document["apiVersion"], document["kind"])
    if key in CRDS:
        crd_validator(*key).validate(document)
    else:
        assert kubernetes_validate.validate(document, KUBERNETES, strict=True) == KUBERNETES


def documents(options: DeployOptions) -> list[tuple[str, dict[str, Any]]]:
    """(file, object) for every rendered object."""
    return [(path, doc) for path, docs in manifests(options).items() for doc in docs]


def find(options: DeployOptions, kind: str, name: str) -> dict[str, Any]:
    """The one rendered object of that kind and name, read back from its YAML."""
    for text in render(options).values():
        for document in yaml.safe_load_all(text):
            if document["kind"] == kind and document["metadata"]["name"] == name:
                return dict(document)
    raise AssertionError(f"no {kind} {name}")


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == name]
    assert len(found) == 1, name
    return dict(found[0])


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=list(OPTION_SETS))
def test_every_rendered_object_validates_when_checked_strictly_offline(
    options: DeployOptions,
) -> None:
    checked = documents(options)
    assert {doc["kind"] for _, doc in checked} >= {
        "Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "HorizontalPodAutoscaler",
        "ServiceMonitor", "PrometheusRule", "ServingRuntime", "InferenceService",
    }  # fmt: skip
    for path, document in checked:
        try:
            validate(document)
        except jsonschema.ValidationError as error:
            pytest.fail(f"{path} {document['kind']}: {error.message} at {list(error.path)}")


@pytest.mark.parametrize(
    ("kind", "name", "path", "value"),
    [
        ("Deployment", "maas", ["spec", "template", "spec", "containers", 0, "imagee"], "x"),
        ("Deployment", "maas", ["spec", "replicas"], "two"),
        ("Service", "maas", ["spec", "ports", 0, "port"], "http"),
        ("HorizontalPodAutoscaler", "maas", ["spec", "behavior", "scaleUp", "window"], 0),
        ("ServiceMonitor", "maas", ["spec", "endpoints", 0, "portt"], "x"),
        ("ServiceMonitor", "maas", ["metadata", "labelz"], {}),
        ("PrometheusRule", "maas", ["spec", "groups", 0, "rules", 0, "expr"], ["no", "str"]),
        ("ServingRuntime", "maas-triton", ["spec", "containers", 0, "args"], "--one-string"),
        ("InferenceService", "maas", ["spec", "predictor", "model", "storageUrl"], "pvc://x"),
    ],
)  # fmt: skip
def test_validation_rejects_a_broken_object_when_a_field_is_unknown_or_mistyped(
    kind: str, name: str, path: list[Any], value: Any
) -> None:
    document = find(DeployOptions(), kind, name)
    validate(document)  # valid as rendered
    node: Any = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(document)


def test_crd_schemas_are_made_strict_except_where_they_keep_unknown_fields() -> None:
    schema = strict({
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"c": {"type": "string"}}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    })  # fmt: skip
    assert schema["additionalProperties"] is False
    assert schema["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["free"]
    assert schema["properties"]["map"]["additionalProperties"] == {"type": "string"}


# --- one source of truth -----------------------------------------------------------------------


def test_triton_args_are_triton_arguments_when_rendered_for_a_pod() -> None:
    for options in OPTION_SETS.values():
        pod = find(options, "Deployment", options.name)["spec"]["template"]["spec"]
        triton = container(pod, "triton")
        server = ServerOptions(
            repository=Path("/source"),
            host="0.0.0.0",
            http_host="127.0.0.1",
            grpc_host="127.0.0.1",
            padding_strategy=options.padding_strategy,
        )
        paths = TritonPaths(
            Path("/models"), Path("/opt/tritonserver/backends"), Path("/opt/tritonserver/caches")
        )
        assert triton["command"] == ["tritonserver"]
        assert triton["args"] == triton_arguments(paths, server, CONTROL_KEY)
        assert "MAAS_CONTROL_KEY" in {variable["name"] for variable in triton["env"]}
        served = {m["mountPath"] for m in container(pod, "prepare-models")["volumeMounts"]}
        assert {"/source", "/models"} <= served  # the serving repository links into /source
        assert {m["mountPath"] for m in triton["volumeMounts"]} >= served | {"/dev/shm"}


def test_kserve_runtime_runs_triton_arguments_after_preparing_the_repository() -> None:
    runtime = find(DeployOptions(), "ServingRuntime", "maas-triton")["spec"]["containers"][0]
    server = ServerOptions(
        repository=Path("/mnt/models"), http_port=8080, grpc_port=9000, host="0.0.0.0"
    )
    paths = TritonPaths(
        Path("/tmp/serving"), Path("/opt/tritonserver/backends"), Path("/opt/tritonserver/caches")
    )
    assert runtime["args"] == triton_arguments(paths, server, CONTROL_KEY)
    shell, flag, script, zeroth = runtime["command"]
    assert (shell, flag, zeroth) == ("/bin/sh", "-c", "tritonserver")
    prepare, _, run = script.partition(" && ")
    assert run == 'exec tritonserver "$@"'
    parse(["deploy", "prepare"], prepare.split()[3:])


def parse(command: list[str], argv: list[str]) -> dict[str, Any]:
    """Parse argv with the real `maas` command, without running it; its parameters."""
    group: Any = get_command(app)
    for name in command[:-1]:
        group = group.commands[name]
    context = group.commands[command[-1]].make_context(command[-1], list(argv))
    return dict(context.params)


def test_gateway_and_prepare_argv_are_accepted_by_the_real_cli() -> None:
    pod = find(VARIANT, "Deployment", VARIANT.name)["spec"]["template"]["spec"]
    gateway = container(pod, "gateway")
    assert gateway["command"] == ["maas", "front"]
    front = parse(["front"], gateway["args"])
    assert front["upstream"] == "127.0.0.1:8000" and front["upstream_grpc"] == "127.0.0.1:8001"
    assert (front["host"], front["port"], front["grpc_port"]) == ("0.0.0.0", 8080, 8081)
    assert front["limit"] == ["resnet50=8:16:500"]
    prepare = container(pod, "prepare-models")
    assert prepare["command"] == ["maas", "deploy", "prepare"]
    params = parse(["deploy", "prepare"], prepare["args"])
    assert params["padding"] == "longest" and params["replace"] is True


def test_alias_of_a_missing_option_is_refused_by_the_parser() -> None:
    with pytest.raises(Exception, match="No such option"):
        parse(["front"], ["--upstream=a:1", "--upstream-grpc=a:2", "--no-such-option=1"])


def test_service_and_monitor_ports_name_ports_the_pod_has() -> None:
    options = DeployOptions()
    pod = find(options, "Deployment", "maas")["spec"]["template"]["spec"]
    named = {port["name"] for c in pod["containers"] for port in c.get("ports", [])}
    for service in ("maas", "maas-metrics"):
        ports = find(options, "Service", service)["spec"]["ports"]
        assert {port["targetPort"] for port in ports} <= named
    endpoints = find(options, "ServiceMonitor", "maas")["spec"]["endpoints"]
    assert {endpoint["port"] for endpoint in endpoints} == {"triton-metrics", "gateway-metrics"}
    assert find(options, "Service", "maas")["spec"]["selector"] == pod_labels(options)


def pod_labels(options: DeployOptions) -> dict[str, str]:
    return dict(find(options, "Deployment", options.name)["spec"]["template"]["metadata"]["labels"])


def test_prometheus_rule_carries_the_rules_maas_monitor_writes() -> None:
    rule = find(DeployOptions(), "PrometheusRule", "maas")
    assert rule["spec"] == rule_groups(RuleOptions())
    assert yaml.safe_load((ROOT / "deploy/monitoring/maas_rules.yml").read_text()) == rule["spec"]


# --- autoscaling -------------------------------------------------------------------------------


def adapter_rule() -> dict[str, Any]:
    config_map = find(DeployOptions(), "ConfigMap", "maas-adapter-rules")
    (rule,) = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    return dict(rule)


def test_adapter_exposes_the_metric_the_hpa_scales_on() -> None:
    hpa = find(DeployOptions(), "HorizontalPodAutoscaler", "maas")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert adapter_rule()["name"]["as"] == metric["pods"]["metric"]["name"] == METRIC
    assert hpa["spec"]["scaleTargetRef"]["name"] == "maas"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "50m"}


def test_adapter_metric_is_a_sum_of_rates_over_a_sum_of_rates_per_pod() -> None:
    rule = adapter_rule()
    queued, served, scale = rule["metricsQuery"].split(" / ")
    assert queued == (
        "sum by (<<.GroupBy>>) (rate(nv_inference_queue_duration_us{<<.LabelMatchers>>}[2m]))"
    )
    assert served == (
        "clamp_min(sum by (<<.GroupBy>>) "
        "(rate(nv_inference_request_success{<<.LabelMatchers>>}[2m])), 1e-9)"
    )
    assert scale == "1e6"
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_hpa_scales_up_at_once_and_down_slowly() -> None:
    behavior = find(DeployOptions(), "HorizontalPodAutoscaler", "maas")["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]


# --- layout, committed files, options ----------------------------------------------------------


def test_each_kustomization_lists_the_files_of_its_folder() -> None:
    files = render(DeployOptions())
    for part in PARTS:
        listed = yaml.safe_load(files[f"{part}/{KUSTOMIZATION}"])["resources"]
        present = sorted(p.split("/")[1] for p in files if p.startswith(f"{part}/"))
        assert sorted([*listed, KUSTOMIZATION]) == present
    top = yaml.safe_load(files[KUSTOMIZATION])
    assert top["resources"] == ["base", "monitoring", "locust"]
    (patch,) = top["patches"]
    assert patch["target"]["name"] == "maas"
    assert yaml.safe_load(patch["patch"]) == [{"op": "remove", "path": "/spec/replicas"}]
    assert "replicas" in find(DeployOptions(), "Deployment", "maas")["spec"]


def test_committed_k8s_files_are_what_maas_deploy_render_writes() -> None:
    committed = ROOT / "deploy/k8s"
    expected = render(DeployOptions())
    on_disk = {str(p.relative_to(committed)) for p in committed.rglob("*") if p.is_file()}
    assert on_disk == set(expected), "deploy/k8s is stale: maas deploy render --out deploy/k8s"
    for relative, text in expected.items():
        assert (committed / relative).read_text() == text, f"{relative} is stale"


def test_images_are_tagged_with_the_package_version_and_built_on_triton_2_51() -> None:
    options = DeployOptions()
    assert options.image.endswith(f":{__version__}")
    assert options.triton_image.endswith(f":{__version__}")
    dockerfile = (ROOT / "deploy/docker/Dockerfile").read_text()
    assert "nvcr.io/nvidia/tritonserver:24.10-py3" in dockerfile  # Triton 2.51


def test_locust_pods_run_the_project_locustfile_against_the_service() -> None:
    options = DeployOptions()
    config_map = find(options, "ConfigMap", "maas-locustfile")
    assert config_map["data"]["locustfile.py"] == (ROOT / "benchmarks/locustfile.py").read_text()
    master = find(options, "Deployment", "maas-locust-master")["spec"]["template"]["spec"]
    worker = find(options, "Deployment", "maas-locust-worker")["spec"]["template"]["spec"]
    assert "--url=maas.maas.svc:8000" in container(master, "locust")["args"]
    assert "--master-host=maas-locust" in container(worker, "locust")["args"]


def test_object_storage_source_adds_a_fetch_step_and_no_claim() -> None:
    pod = find(VARIANT, "Deployment", "ranker")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-models", "prepare-models"]
    fetch = container(pod, "fetch-models")
    assert fetch["command"][-2:] == ["s3://models/maas", "/source"]
    assert "--endpoint-url=http://minio.minio:9000" in fetch["command"]
    assert {"name": "source", "emptyDir": {}} in pod["volumes"]
    assert "nvidia.com/gpu" not in container(pod, "triton")["resources"]["limits"]
    assert (
        find(VARIANT, "InferenceService", "ranker")["spec"]["predictor"]["model"]["storageUri"]
        == "s3://models/maas"
    )


# --- the CLI -----------------------------------------------------------------------------------


def test_render_writes_the_layout_when_called_from_the_cli(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["deploy", "render", "--out", str(tmp_path), "--gpu", "0", "--max-replicas", "6"]
    )
    assert result.exit_code == 0, result.output
    hpa = yaml.safe_load((tmp_path / "monitoring/hpa.yaml").read_text())
    assert hpa["spec"]["maxReplicas"] == 6
    assert (tmp_path / KUSTOMIZATION).is_file() and (
        tmp_path / "kserve/servingruntime.yaml"
    ).is_file()


def test_render_fails_in_one_line_when_options_contradict(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["deploy", "render", "--out", str(tmp_path), "--min-replicas", "5", "--max-replicas", "2"],
    )
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: replicas must satisfy")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_prepare_builds_the_serving_repository_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    canonical = canonical_repository(tmp_path / "canonical")
    out = tmp_path / "serving"
    argv = ["deploy", "prepare", "--repository", str(canonical.root), "--out", str(out)]
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert "digits_cnn" in first.output and "python adapter" in first.output
    assert (out / "digits_cnn/1/model.py").is_file()
    assert (out / "digits_cnn_preprocess").is_symlink()
    again = runner.invoke(app, argv)
    assert again.exit_code == 1 and "is not empty; pass --replace" in again.output
    replaced = runner.invoke(app, [*argv, "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert (out / "digits_cnn/1/model.py").is_file()


def test_prepare_fails_in_one_line_when_the_repository_is_missing(tmp_path: Path) -> None:
    argv = ["deploy", "prepare", "-r", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 1 and "does not exist" in result.output
