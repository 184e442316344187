"""A serving pod's init step: the serving repository, built from the canonical one."""

from __future__ import annotations

import shutil
from pathlib import Path

from maas.base.errors import DeployError
from maas.base.triton.repository import ModelRepository
from maas.serve.serving_repo import ServedModel, build_serving_repository


def clear(folder: Path) -> None:
    """Remove everything inside folder (an emptyDir a restarted pod prepares again)."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def prepare_serving_repository(
    source: Path, out: Path, padding_strategy: str = "buckets", replace: bool = False
) -> list[ServedModel]:
    """Build the repository Triton serves into out; refuse a non-empty out unless replace."""
    if not source.is_dir():
        raise DeployError(f"model repository {source} does not exist or is not a folder")
    if out.exists() and any(out.iterdir()):
        if not replace:
            raise DeployError(f"{out} is not empty; pass --replace to build it again")
        clear(out)
    return build_serving_repository(ModelRepository(source), out, padding_strategy)
