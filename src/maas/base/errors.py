"""The one tree of errors maas raises; the CLI turns each into one line and exit code 1.

Only the self-contained served-model cores (maas.base.served.image and .text, copied into
model repositories to run without maas) raise ValueErrors of their own.
"""

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


class FrontUnavailableError(ServerDependencyError):
    """The gateway (HAProxy) is not installed, or cannot run here."""


class RuntimeUnavailableError(MaasError):
    """The runtime or the hardware an artifact needs is not on this machine."""


# --- clients: maas.clients.errors maps transport errors onto these ---------------------------


class ClientError(MaasError):
    """A call to the inference server failed; `model` and `status` say where and how."""

    def __init__(self, message: str, *, model: str = "", status: str | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.status = status


class ModelNotFoundError(ClientError):
    """The server does not serve the requested model (or model version)."""


class InvalidInputError(ClientError):
    """The request does not fit the model: HTTP 400 / gRPC INVALID_ARGUMENT, or a local check."""


class ServerUnavailableError(ClientError):
    """The server cannot be reached or refuses work: connection errors, HTTP 503, UNAVAILABLE."""


class ServerOverloadedError(ServerUnavailableError):
    """The model's queue is full and the server shed the request at once; safe to retry later."""


class AuthenticationError(ClientError):
    """No API key, or one the server does not accept: HTTP 401 / gRPC UNAUTHENTICATED."""


class PermissionDeniedError(ClientError):
    """The key's tenant may not call this model: HTTP 403 / gRPC PERMISSION_DENIED."""


class RateLimitedError(ClientError):
    """The tenant is over its rate, in-flight or daily limit: HTTP 429 / RESOURCE_EXHAUSTED.

    Nothing ran; `retry_after_s` is the server's hint (the clients' retries wait at least that).
    """

    def __init__(
        self, message: str, *, model: str = "", status: str | None = None, retry_after_s: float = 1
    ) -> None:
        super().__init__(message, model=model, status=status)
        self.retry_after_s = retry_after_s


class InferenceTimeoutError(ClientError):
    """The call ran past the client timeout: socket/asyncio timeouts, gRPC DEADLINE_EXCEEDED."""


class InferenceFailedError(ClientError):
    """Any other failure, such as an error raised by the model itself (HTTP 500 / INTERNAL)."""


# --- benchmarks ---------------------------------------------------------------------------


class BenchmarkError(MaasError):
    """A benchmark could not run or measure what it was asked to."""


class BenchError(BenchmarkError):
    """The benchmark was asked for something it cannot do."""


class LoadTestError(BenchmarkError):
    """The load generator could not run."""


class BaselineError(BenchmarkError):
    """A baseline could not be measured."""


class StatsError(BenchmarkError):
    """The server's statistics endpoint could not be read."""


class WorkloadError(BenchmarkError):
    """No real payload can be built for a model."""


# --- monitoring ---------------------------------------------------------------------------


class MonitorError(MaasError):
    """Monitoring could not start, or a running stack's metrics could not be read."""


class MonitorUnavailableError(MonitorError):
    """A tool monitoring needs (Prometheus, promtool) is not installed."""


class DeployError(MaasError):
    """Kubernetes manifests cannot be rendered from the options given, or a pod cannot prepare."""
