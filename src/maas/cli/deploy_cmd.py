"""`maas deploy`: render the Kubernetes manifests, and prepare a pod's serving repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maas.deploy import DeployOptions, ModelSource, Resources, prepare_serving_repository, write

from .common import RepositoryOption, user_errors

deploy_app = typer.Typer(
    help="Kubernetes: render the manifests (Kustomize), prepare a serving pod's repository.",
    no_args_is_help=True,
)
DEFAULTS = DeployOptions()

PaddingOption = Annotated[
    str,
    typer.Option(help="Variable-length batching: buckets (rows grouped by length) or longest."),
]


@deploy_app.command("render")
def render_command(
    out: Annotated[Path, typer.Option(help="Folder to write the layout into.")],
    name: Annotated[str, typer.Option(help="Name of the objects (and prefix of the rest).")] = (
        DEFAULTS.name
    ),
    namespace: Annotated[str, typer.Option(help="Namespace of every object.")] = (
        DEFAULTS.namespace
    ),
    image: Annotated[str, typer.Option(help="The maas image (deploy/docker, target maas).")] = (
        DEFAULTS.image
    ),
    triton_image: Annotated[
        str, typer.Option(help="NVIDIA's Triton image with maas (deploy/docker, target triton).")
    ] = DEFAULTS.triton_image,
    replicas: Annotated[int, typer.Option(help="Serving pods before the HPA acts.")] = (
        DEFAULTS.replicas
    ),
    min_replicas: Annotated[int, typer.Option(help="The HPA's lower bound.")] = (
        DEFAULTS.min_replicas
    ),
    max_replicas: Annotated[int, typer.Option(help="The HPA's upper bound.")] = (
        DEFAULTS.max_replicas
    ),
    gpu: Annotated[int, typer.Option(help="GPUs per serving pod (0: CPU only).")] = DEFAULTS.gpu,
    cpu: Annotated[str, typer.Option(help="Triton's CPU request.")] = DEFAULTS.triton.cpu,
    memory: Annotated[str, typer.Option(help="Triton's memory request and limit.")] = (
        DEFAULTS.triton.memory
    ),
    shm_size: Annotated[str, typer.Option(help="Size of /dev/shm in a serving pod.")] = (
        DEFAULTS.shm_size
    ),
    claim: Annotated[
        str, typer.Option(help="PersistentVolumeClaim holding the model repository.")
    ] = DEFAULTS.source.claim,
    url: Annotated[
        str, typer.Option(help="s3:// or gs:// folder of the repository instead of a claim.")
    ] = "",
    endpoint: Annotated[str, typer.Option(help="S3-compatible store's URL (s3:// only).")] = "",
    padding: PaddingOption = DEFAULTS.padding_strategy,
    queue_target_ms: Annotated[
        float, typer.Option(help="The HPA holds each pod's mean queue time per request here.")
    ] = DEFAULTS.queue_target_s * 1000,
    scale_down_window: Annotated[
        int, typer.Option(help="Seconds the HPA looks back before scaling down.")
    ] = DEFAULTS.scale_down_window_s,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--limit", help="The gateway's MODEL=IN_FLIGHT[:QUEUE[:WAIT_MS]] (repeatable)."
        ),
    ] = None,
    load_model: Annotated[str, typer.Option(help="The model the Locust users call.")] = (
        DEFAULTS.load_model
    ),
) -> None:
    """Write the Kustomize layout (base, monitoring, kserve, locust) into --out."""
    with user_errors():
        options = DeployOptions(
            name=name,
            namespace=namespace,
            image=image,
            triton_image=triton_image,
            replicas=replicas,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            gpu=gpu,
            triton=Resources(cpu, memory),
            shm_size=shm_size,
            source=ModelSource(claim="" if url else claim, url=url, endpoint=endpoint),
            padding_strategy=padding,
            queue_target_s=queue_target_ms / 1000,
            scale_down_window_s=scale_down_window,
            limits=tuple(limit or ()),
            load_model=load_model,
        )
        written = write(options, out)
    typer.echo(f"wrote {len(written)} files under {out}; apply with `kubectl apply -k {out}`")


@deploy_app.command("prepare")
def prepare_command(
    repository: RepositoryOption,
    out: Annotated[Path, typer.Option(help="Folder the serving repository is built in.")],
    padding: PaddingOption = DEFAULTS.padding_strategy,
    replace: Annotated[
        bool, typer.Option("--replace", help="Empty a non-empty --out first.")
    ] = False,
) -> None:
    """Build the repository Triton serves from a canonical one (a serving pod's init step)."""
    with user_errors():
        served = prepare_serving_repository(repository, out, padding, replace)
    for model in served:
        typer.echo(f"model {model.name:24} {model.backend:12} served {model.served_by}")
