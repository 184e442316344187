"""Which model takes a raw input: the named model, its companion ensemble, or neither.

A model ``NAME`` that takes tensors (pixels, token ids) may have a companion ensemble
``NAME_image`` or ``NAME_text`` that takes the raw input (encoded images, raw text) and prepares
it on the server. `CompanionEnsemble` describes one such companion; `RoutedClient` and
`AsyncRoutedClient` hold the connections to a model and its companion and pick between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, TypeVar

from maas.base.errors import ModelNotFoundError
from maas.base.triton.names import IMAGE, TEXT, Companions, RawKind

from .aio import AsyncModelClient
from .core import AsyncClosable, Closable
from .info import ModelInfo, takes_bytes_input
from .retry import RetryPolicy
from .sync import ModelClient
from .transport import ClientOptions, Protocol

InputKind = Literal["image", "text", "tensor"]
# A model that takes raw bytes itself says which kind by the name of its one input.
RAW_INPUTS: dict[str, InputKind] = {c.raw_input: c.kind for c in (IMAGE, TEXT)}


@dataclass(frozen=True)
class CompanionEnsemble:
    """The ensemble that takes raw inputs for a model that takes tensors, and how to explain it.

    `names` says what the ensemble is called; the words fill the error raised when the server
    lacks it: "model 'm' takes `model_takes` (...), and the server has no `kind` ensemble
    'm_kind' to `prepares` `takes`; `remedy`".
    """

    names: Companions
    takes: str  # what the companion takes, e.g. "encoded images"
    prepares: str  # what it does with them for the model, e.g. "decode"
    model_takes: str  # what the model itself takes, e.g. "preprocessed tensors"
    remedy: str  # what the caller can do without the companion

    @property
    def kind(self) -> RawKind:
        """The raw input the companion takes: image or text."""
        return self.names.kind

    def name(self, model: str) -> str:
        """Name of the companion ensemble of `model`."""
        return self.names.ensemble(model)

    def missing_error(
        self, model: str, info: ModelInfo, cause: ModelNotFoundError
    ) -> ModelNotFoundError:
        """Explain that raw inputs need the companion, which the server does not have."""
        inputs = ", ".join(tensor.describe() for tensor in info.inputs)
        return ModelNotFoundError(
            f"model {model!r} takes {self.model_takes} ({inputs}), and the server has no "
            f"{self.kind} ensemble {self.name(model)!r} to {self.prepares} {self.takes}; "
            f"{self.remedy} ({cause})",
            model=self.name(model),
            status=cause.status,
        )


IMAGE_COMPANION = CompanionEnsemble(
    names=IMAGE,
    takes="encoded images",
    prepares="decode",
    model_takes="preprocessed tensors",
    remedy="pass float32 arrays shaped [C,H,W] or [N,C,H,W] instead, or serve the ensemble",
)
TEXT_COMPANION = CompanionEnsemble(
    names=TEXT,
    takes="raw text",
    prepares="tokenize",
    model_takes="token ids",
    remedy="serve the ensemble, or send token ids with ModelClient",
)
COMPANIONS = (IMAGE_COMPANION, TEXT_COMPANION)

_ClientT = TypeVar("_ClientT", ModelClient, AsyncModelClient)


class _Routed(Generic[_ClientT]):
    """What `RoutedClient` and `AsyncRoutedClient` share: options and the two connections.

    Subclasses set `companion` and say which client class connects (`_client_for`).
    """

    companion: ClassVar[CompanionEnsemble]

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 30.0,
        version: str = "",
        retry: RetryPolicy | None = None,
        tls_root_cert: str = "",
        api_key: str | None = None,
    ) -> None:
        self.model = model
        self.options = ClientOptions.create(
            url, protocol, timeout_s, version, retry, tls_root_cert, api_key
        )
        # Neither connects before its first call, so making both up front costs nothing and
        # leaves no state that concurrent async calls could race to set.
        self._named: _ClientT = self._client_for(model)
        self._ensemble: _ClientT = self._client_for(self.companion.name(model))

    def _client_for(self, model: str) -> _ClientT:
        """Return a client for `model` with this client's options."""
        raise NotImplementedError


class RoutedClient(_Routed[ModelClient], Closable):
    """Blocking connections to a named model and its companion ensemble."""

    def _client_for(self, model: str) -> ModelClient:
        """Return a blocking client for `model` with this client's options."""
        return ModelClient.from_options(model, self.options)

    def _for_raw_inputs(self) -> ModelClient:
        """Return the named model if it takes BYTES itself, else its companion ensemble."""
        info = self._named.info()
        if takes_bytes_input(info):
            return self._named
        try:
            self._ensemble.info()  # fetch now to report a missing ensemble clearly
        except ModelNotFoundError as exc:
            raise self.companion.missing_error(self.model, info, exc) from exc
        return self._ensemble

    def close(self) -> None:
        """Close the connections to the server."""
        try:
            self._named.close()
        finally:
            self._ensemble.close()


class AsyncRoutedClient(_Routed[AsyncModelClient], AsyncClosable):
    """Asyncio connections to a named model and its companion ensemble."""

    def _client_for(self, model: str) -> AsyncModelClient:
        """Return an asyncio client for `model` with this client's options."""
        return AsyncModelClient.from_options(model, self.options)

    async def _for_raw_inputs(self) -> AsyncModelClient:
        """Return the named model if it takes BYTES itself, else its companion ensemble."""
        info = await self._named.info()
        if takes_bytes_input(info):
            return self._named
        try:
            await self._ensemble.info()  # fetch now to report a missing ensemble clearly
        except ModelNotFoundError as exc:
            raise self.companion.missing_error(self.model, info, exc) from exc
        return self._ensemble

    async def close(self) -> None:
        """Close the connections that were opened."""
        try:
            await self._named.close()
        finally:
            await self._ensemble.close()


def input_kind(
    model: str, url: str | None, protocol: Protocol, timeout_s: float = 30.0
) -> InputKind:
    """Read the server's metadata: a BYTES input named IMAGE or TEXT, or such a companion model."""
    options = ClientOptions.create(url, protocol, timeout_s)
    with ModelClient.from_options(model, options) as client:
        info = client.info()  # raises ModelNotFoundError for unknown models
    if takes_bytes_input(info):
        return RAW_INPUTS.get(info.inputs[0].name, "text")
    for companion in COMPANIONS:
        with ModelClient.from_options(companion.name(model), options) as ensemble:
            if ensemble.is_ready():
                return companion.kind
    return "tensor"


def require_raw_kind(model: str, kind: InputKind) -> Literal["image", "text"]:
    """Refuse models that only take tensors, where a command needs files or text."""
    if kind == "tensor":
        raise ModelNotFoundError(
            f"model {model!r} takes tensors and the server has no "
            f"{IMAGE_COMPANION.name(model)} or {TEXT_COMPANION.name(model)} ensemble "
            "for raw images or text",
            model=model,
        )
    return kind


def output_names(
    model: str, url: str | None, protocol: Protocol, timeout_s: float = 30.0
) -> tuple[str, ...]:
    """The outputs a served model declares, e.g. to tell an embedder from a classifier."""
    with ModelClient(model, url=url, protocol=protocol, timeout_s=timeout_s) as client:
        return client.info().output_names
