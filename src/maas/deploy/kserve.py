"""kserve/: the alternative on KServe, a ServingRuntime and an InferenceService.

KServe's storage initializer puts the canonical repository in /mnt/models; the runtime's
container prepares the serving repository from it and then runs tritonserver with the same
`triton_arguments` as the base pods. KServe has no place for the maas gateway: Triton's HTTP
port is what the InferenceService exposes (see deploy/README.md).
"""

from __future__ import annotations

from pathlib import Path

from maas.serve.embedded import ServerOptions, TritonPaths, triton_arguments

from .manifests import Manifest, manifest, metadata
from .options import TRITON_BACKENDS, TRITON_CACHES, DeployOptions
from .pod import control_key_env, control_key_reference, exec_health, mount

KSERVE_MODELS = Path("/mnt/models")  # where KServe's storage initializer writes
KSERVE_SERVING = Path("/tmp/serving")
KSERVE_HTTP, KSERVE_GRPC = 8080, 9000  # the ports KServe's own Triton runtime uses
MODEL_FORMAT = "triton"
KSERVE = "kserve"
# sh runs the preparation, then becomes tritonserver with the args Kubernetes appends.
PREPARE = f"maas deploy prepare --repository={KSERVE_MODELS} --out={KSERVE_SERVING} --replace"


def prepare_then_exec(options: DeployOptions) -> str:
    """sh: prepare the serving repository, then become tritonserver with the appended args."""
    return f'{PREPARE} --padding={options.padding_strategy} && exec tritonserver "$@"'


def kserve_server_options(options: DeployOptions) -> ServerOptions:
    """Triton in KServe: every port on the pod IP (KServe routes to HTTP directly)."""
    return ServerOptions(
        repository=KSERVE_MODELS,
        http_port=KSERVE_HTTP,
        grpc_port=KSERVE_GRPC,
        metrics_port=options.ports.triton_metrics,
        host="0.0.0.0",
        exit_timeout_s=options.exit_timeout_s,
        padding_strategy=options.padding_strategy,
    )


def kserve_triton_args(options: DeployOptions) -> list[str]:
    """The flags of tritonserver in the KServe runtime."""
    paths = TritonPaths(KSERVE_SERVING, TRITON_BACKENDS, TRITON_CACHES)
    return triton_arguments(paths, kserve_server_options(options), control_key_reference())


def serving_runtime(options: DeployOptions) -> Manifest:
    """A ServingRuntime for models of format `triton`, run by NVIDIA's image with maas inside."""
    ready = exec_health(KSERVE_HTTP, "/v2/health/ready") | {"periodSeconds": 5}
    container = {
        "name": "kserve-container",
        "image": options.triton_image,
        "command": ["/bin/sh", "-c", prepare_then_exec(options), "tritonserver"],
        "args": kserve_triton_args(options),
        "env": [control_key_env(options.name)],
        "ports": [{"containerPort": KSERVE_HTTP, "protocol": "TCP"}],
        "readinessProbe": ready,
        "resources": options.triton.spec(options.gpu),
        "volumeMounts": [mount("dshm", Path("/dev/shm"))],
    }
    shm = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": options.shm_size}}
    spec = {
        "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "2", "autoSelect": True}],
        "protocolVersions": ["v2", "grpc-v2"],
        "multiModel": False,
        "containers": [container],
        "volumes": [shm],
    }
    meta = metadata(options, f"{options.name}-triton", KSERVE)
    return manifest("serving.kserve.io/v1alpha1", "ServingRuntime", meta, spec=spec)


def storage_uri(options: DeployOptions) -> str:
    """The canonical repository as KServe names it: pvc://claim/ or the object-store URL."""
    source = options.source
    return f"pvc://{source.claim}/" if source.claim else source.url


def inference_service(options: DeployOptions) -> Manifest:
    """The InferenceService serving the repository with that runtime."""
    model = {
        "modelFormat": {"name": MODEL_FORMAT},
        "runtime": f"{options.name}-triton",
        "storageUri": storage_uri(options),
        "resources": options.triton.spec(options.gpu),
    }
    predictor = {
        "minReplicas": options.min_replicas,
        "maxReplicas": options.max_replicas,
        "model": model,
    }
    meta = metadata(options, options.name, KSERVE)
    return manifest(
        "serving.kserve.io/v1beta1", "InferenceService", meta, spec={"predictor": predictor}
    )


def kserve_files(options: DeployOptions) -> dict[str, list[Manifest]]:
    """kserve/'s manifest files."""
    return {
        "servingruntime.yaml": [serving_runtime(options)],
        "inferenceservice.yaml": [inference_service(options)],
    }
