"""The one tree of errors maas raises; the CLI turns each into one line and exit code 1."""

from __future__ import annotations


class MaasError(Exception):
    """Base of every error maas raises on purpose."""


class UnknownModelError(MaasError, KeyError):
    """A model name that no registry or server knows."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown model {name!r}; known models: {', '.join(sorted(known)) or 'none'}"
        )
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return str(self.args[0])


class ExportError(MaasError):
    """Export could not build, convert or write a model."""


class VerificationError(ExportError):
    """An exported artifact disagrees with its source model beyond tolerance."""

    def __init__(self, model: str, failures: list[str]) -> None:
        lines = "\n  ".join(failures)
        super().__init__(f"{model}: verification failed ({len(failures)} problem(s)):\n  {lines}")
        self.model = model
        self.failures = failures


class RepositoryError(MaasError):
    """The model repository is missing, malformed or inconsistent."""


class ServerError(MaasError):
    """The embedded Triton server cannot be prepared, started or kept running."""


class ServerDependencyError(ServerError):
    """Something the embedded server needs is not installed; the message says what to install."""
