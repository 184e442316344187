"""The one place that knows the Triton repository layout: <model>/config.pbtxt, <model>/<ver>/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf.text_format import ParseError

from maas.base.errors import RepositoryError

from .config import LABELS_FILE, ModelConfig, from_text, to_text

CONFIG_FILE = "config.pbtxt"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelRepository:
    """A Triton model repository on disk."""

    root: Path

    def model_dir(self, name: str) -> Path:
        """Folder of one model."""
        return self.root / name

    def version_dir(self, name: str, version: int) -> Path:
        """Folder of one version of a model, where its artifact lives."""
        return self.root / name / str(version)

    def config_path(self, name: str) -> Path:
        """Path of a model's config.pbtxt."""
        return self.root / name / CONFIG_FILE

    @property
    def manifest_path(self) -> Path:
        """Path of the export manifest."""
        return self.root / MANIFEST_FILE

    def model_names(self) -> list[str]:
        """Every model in the repository (a folder holding config.pbtxt), sorted."""
        if not self.root.is_dir():
            raise RepositoryError(f"model repository {self.root} does not exist; run `maas export`")
        return sorted(path.parent.name for path in self.root.glob(f"*/{CONFIG_FILE}"))

    def versions(self, name: str) -> list[int]:
        """The numbered version folders of a model, ascending."""
        model = self.model_dir(name)
        return sorted(
            int(path.name) for path in model.iterdir() if path.is_dir() and path.name.isdigit()
        )

    def has_artifacts(self, name: str, version: int) -> bool:
        """Whether a model's config and a non-empty version folder exist."""
        folder = self.version_dir(name, version)
        return self.config_path(name).is_file() and folder.is_dir() and any(folder.iterdir())

    def write_config(self, config: ModelConfig) -> Path:
        """Write config.pbtxt for config.name."""
        path = self.config_path(config.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_text(config))
        return path

    def read_config(self, name: str) -> ModelConfig:
        """Parse a model's config.pbtxt; a clear RepositoryError when missing or malformed."""
        path = self.config_path(name)
        if not path.is_file():
            raise RepositoryError(f"{path} is missing")
        try:
            return from_text(path.read_text())
        except ParseError as error:
            raise RepositoryError(f"{path} is not a valid Triton model config: {error}") from error

    def write_labels(self, name: str, labels: list[str]) -> Path:
        """One label per line, line i naming class i, as Triton's classification expects."""
        path = self.model_dir(name) / LABELS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{label}\n" for label in labels))
        return path
