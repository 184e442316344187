"""`maas export`: export registered models or a Hugging Face folder, or check a repository.

maas.export imports torch, so each function imports it where it is needed: `maas --help` and the
other commands start without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maas.base.errors import ExportError

from .common import DEFAULT_REPOSITORY, RepositoryOption, echo_lines, setup_logging, user_errors

if TYPE_CHECKING:
    from maas.export import ModelRepository, ModelSpec

ModelsArgument = Annotated[
    list[str] | None, typer.Argument(help="Registered model names [default: all].")
]
VersionOption = Annotated[int, typer.Option(min=1, help="Version folder to write.")]
ListOption = Annotated[bool, typer.Option("--list", help="List registered models and exit.")]
HfOption = Annotated[
    Path | None, typer.Option(help="Export a local Hugging Face encoder folder instead.")
]
TaskOption = Annotated[
    str, typer.Option(help="With --hf: feature-extraction or text-classification.")
]
NameOption = Annotated[str | None, typer.Option(help="With --hf: the served model name.")]
TruncationOption = Annotated[
    bool, typer.Option(help="With --hf: cut texts over the maximum length (else reject).")
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option(help="Only try these targets (repeatable); one forces it [default: all]."),
]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Re-export into a scratch folder and compare.")
]


def export_command(
    models: ModelsArgument = None,
    repository: RepositoryOption = DEFAULT_REPOSITORY,
    version: VersionOption = 1,
    list_models: ListOption = False,
    hf: HfOption = None,
    task: TaskOption = "feature-extraction",
    name: NameOption = None,
    truncation: TruncationOption = True,
    target: TargetOption = None,
    check: CheckOption = False,
) -> None:
    """Export models to ONNX, verify them against their source and write the repository."""
    from maas.export import ModelRepository, export_model
    from maas.export.summary import describe_export

    with user_errors():
        if list_models:
            echo_lines(registered_models())
            return
        setup_logging()
        if check:
            check_exports(ModelRepository(repository), models)
            return
        specs = specs_to_export(models, hf, task, name, truncation)
        repo = ModelRepository(repository)
        for spec in specs:
            typer.echo(describe_export(export_model(spec, repo, version=version, targets=target)))


def registered_models() -> list[str]:
    """One line per registered model: its name, what it is and where its weights come from."""
    from maas.export import get_spec, model_names

    return [
        f"{name:14} {spec.description}; weights: {spec.weights}"
        for name, spec in ((name, get_spec(name)) for name in model_names())
    ]


def specs_to_export(
    models: list[str] | None, hf: Path | None, task: str, name: str | None, truncation: bool
) -> list[ModelSpec]:
    """The named registered models (default: all), or the one Hugging Face folder."""
    from maas.export import get_spec, model_names
    from maas.export.text import hf_text_spec, text_task

    if hf is None:
        return [get_spec(registered) for registered in (models or model_names())]
    if models or name is None:
        raise typer.BadParameter("--hf exports one folder: give --name and no model names")
    return [hf_text_spec(hf, text_task(task), name, truncation=truncation)]


def check_exports(repository: ModelRepository, models: list[str] | None) -> None:
    """Print one verdict per model version; exit 1 if any differs beyond tolerance."""
    from maas.export.reproduce import check_reproducible
    from maas.export.summary import describe_checks

    results = check_reproducible(repository, models or None)
    echo_lines(describe_checks(results))
    if not all(result.ok for result in results):
        raise ExportError("the re-export differs from the committed repository (see above)")
