"""Text generation: a prompt in, text out, whole or streamed as it is decoded.

A generation model (``NAME_generate``, decoupled) streams its text over gRPC's bidirectional
stream and over HTTP's ``generate_stream`` (server-sent events); ``generate`` returns it whole.
Options (``max_tokens``, ``temperature``, ``top_k``, ``top_p``, ``seed``, ``stop``) are checked
here first, so a bad one fails before it is sent; greedy decoding is the default.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from maas.base.errors import ClientError, InvalidInputError
from maas.base.served.generation import INVALID_PREFIX, GenerationError, SamplingParams

from .errors import map_error
from .transport import ClientOptions, Protocol, auth_headers

END = object()  # the last item a stream's queue holds


@dataclass(frozen=True)
class Generation:
    """A whole answer: the text, its tokens and why decoding ended (eos, stop, length)."""

    text: str
    finish_reason: str
    token_ids: tuple[int, ...] = ()

    @classmethod
    def joined(cls, pieces: list[Piece]) -> Generation:
        """The pieces of one answer as one."""
        return cls(
            "".join(piece.text for piece in pieces),
            pieces[-1].reason if pieces else "",
            tuple(token for piece in pieces for token in piece.token_ids),
        )


class Piece(NamedTuple):
    """One response: new text, the tokens behind it, why decoding ended (last one only)."""

    text: str
    token_ids: tuple[int, ...]
    reason: str


def sampling(options: dict[str, Any]) -> dict[str, Any]:
    """The options a request carries, checked; unknown names are an error."""
    unknown = set(options) - {"max_tokens", "temperature", "top_k", "top_p", "seed", "stop"}
    if unknown:
        raise InvalidInputError(f"unknown generation options: {', '.join(sorted(unknown))}")
    try:
        SamplingParams.parse(options)
    except GenerationError as error:
        raise InvalidInputError(str(error)) from None
    return {name: value for name, value in options.items() if value is not None}


def grpc_inputs(prompt: str, options: dict[str, Any]) -> list[grpcclient.InferInput]:
    """The prompt and options as the model's input tensors."""
    kinds = {"max_tokens": "INT32", "temperature": "FP32", "top_k": "INT32", "top_p": "FP32"}
    kinds |= {"seed": "INT64"}
    numpy = {"INT32": np.int32, "FP32": np.float32, "INT64": np.int64}
    tensors = [("text_input", "BYTES", np.array([prompt.encode()], dtype=np.object_))]
    for name, value in options.items():
        if name == "stop":
            stops = [value] if isinstance(value, str) else list(value)
            tensors.append((name, "BYTES", np.array([s.encode() for s in stops], np.object_)))
        else:
            tensors.append((name, kinds[name], np.array([value], dtype=numpy[kinds[name]])))
    inputs = []
    for name, datatype, array in tensors:
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def chunk_of(result: Any) -> Piece:
    """One gRPC response as a piece."""
    text, ids = result.as_numpy("text_output"), result.as_numpy("token_ids")
    reason = result.as_numpy("finish_reason")
    return Piece(
        text.reshape(-1)[0].decode() if text is not None else "",
        tuple(int(token) for token in ids.reshape(-1)) if ids is not None else (),
        reason.reshape(-1)[0].decode() if reason is not None else "",
    )


def piece_of(event: dict[str, Any]) -> Piece:
    """One generate / generate_stream JSON answer as a piece."""
    ids = event.get("token_ids", [])
    return Piece(
        str(event.get("text_output", "")),
        tuple(int(token) for token in (ids if isinstance(ids, list) else [ids])),
        str(event.get("finish_reason", "")),
    )


def engine_status(message: str) -> str | None:
    """The status an engine's refusal means, read from its words.

    Streams carry no status, and the generate endpoints give every model error one HTTP status.
    """
    if message.startswith(INVALID_PREFIX):
        return "StatusCode.INVALID_ARGUMENT"
    if "retry later" in message or "stopping" in message:
        return "StatusCode.UNAVAILABLE"
    return None


def stream_error(message: str, model: str) -> ClientError:
    """An error that arrived inside a stream, typed by its words."""
    return map_error(InferenceServerException(message, status=engine_status(message)), model=model)


def http_error(status: int, body: str, model: str) -> ClientError:
    """A refused generate call: Triton's JSON error (or the body as it is) with its status."""
    try:
        message = str(json.loads(body).get("error", body))
    except (ValueError, AttributeError):
        message = body
    typed = engine_status(message) or str(status)
    return map_error(InferenceServerException(message, status=typed), model=model)


def sse_chunk(line: bytes, model: str) -> Piece | None:
    """One server-sent event line as a piece, None for other lines."""
    if not line.startswith(b"data:"):
        return None
    event = json.loads(line[5:])
    if "error" in event:
        raise stream_error(str(event["error"]), model)
    return piece_of(event)


class GeneratorBase:
    """What both generators take: the model and how to reach it."""

    def __init__(
        self,
        model: str,
        url: str | None = None,
        protocol: Protocol = "http",
        timeout_s: float = 60.0,
        version: str = "",
        tls_root_cert: str = "",
        api_key: str | None = None,
    ) -> None:
        self.model = model
        self.options = ClientOptions.create(
            url, protocol, timeout_s, version, None, tls_root_cert, api_key
        )


class TextGenerator(GeneratorBase):
    """Blocking generation over HTTP or gRPC; a context manager."""

    _grpc: Any = None  # one channel for every call; a stream at a time on it

    def __enter__(self) -> TextGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the gRPC channel (HTTP opens a connection per call)."""
        client, self._grpc = self._grpc, None
        if client is not None:
            client.close()

    def generate(self, prompt: str, **options: Any) -> Generation:
        """The whole text for a prompt."""
        return Generation.joined(list(self._chunks(prompt, sampling(options), stream=False)))

    def stream(self, prompt: str, **options: Any) -> Generator[str, None, None]:
        """The text as it is decoded; closing the iterator early cancels the request."""
        for piece in self._chunks(prompt, sampling(options), stream=True):
            if piece.text:
                yield piece.text

    def _chunks(self, prompt: str, options: dict[str, Any], stream: bool) -> Iterator[Any]:
        if self.options.protocol == "http":
            return http_chunks(self.options, self.model, prompt, options, stream)
        if self._grpc is None:
            self._grpc = grpcclient.InferenceServerClient(
                self.options.url, **self.options.grpc_kwargs()
            )
        return grpc_chunks(self._grpc, self.options, self.model, prompt, options, stream)


def generate_path(model: str, version: str, stream: bool) -> str:
    """The generate endpoint of a model (and version)."""
    versioned = f"/versions/{version}" if version else ""
    return f"/v2/models/{model}{versioned}/generate{'_stream' if stream else ''}"


def generate_body(prompt: str, options: dict[str, Any], stream: bool) -> bytes:
    """The generate extension's JSON: options as top-level fields (the model's inputs)."""
    return json.dumps({"text_input": prompt, **options, "parameters": {"stream": stream}}).encode()


def http_chunks(
    options: ClientOptions, model: str, prompt: str, sampling: dict[str, Any], stream: bool
) -> Iterator[Piece]:
    """POST to generate / generate_stream; closing early closes the connection (a cancel)."""
    host, _, port = options.url.rpartition(":")
    cert = options.root_cert()
    connection: http.client.HTTPConnection = http.client.HTTPConnection(
        host, int(port), timeout=options.timeout_s
    )
    if cert:
        context = ssl.create_default_context(cafile=cert)
        connection = http.client.HTTPSConnection(
            host, int(port), timeout=options.timeout_s, context=context
        )
    headers = {"content-type": "application/json", **auth_headers(options.api_key or None)}
    try:
        connection.request(
            "POST",
            generate_path(model, options.version, stream),
            generate_body(prompt, sampling, stream),
            headers,
        )
        response = connection.getresponse()
        if response.status != 200:
            raise http_error(response.status, response.read().decode(errors="replace"), model)
        if not stream:
            answer = json.loads(response.read())
            yield piece_of(answer)
            return
        for line in response:
            chunk = sse_chunk(line.strip(), model)
            if chunk is not None:
                yield chunk
                if chunk.reason:
                    return
    except ClientError:
        raise
    except Exception as error:
        raise map_error(error, model=model) from error
    finally:
        connection.close()


def grpc_chunks(
    client: Any,
    options: ClientOptions,
    model: str,
    prompt: str,
    sampling: dict[str, Any],
    stream: bool,
) -> Iterator[Piece]:
    """One request on a bidirectional stream; stopping early cancels it on the server."""
    arrived: queue.Queue[Any] = queue.Queue()
    done = False
    try:
        client.start_stream(
            lambda result, error: arrived.put(error or result),
            stream_timeout=options.timeout_s,
            headers=auth_headers(options.api_key or None),
        )
        client.async_stream_infer(
            model,
            grpc_inputs(prompt, sampling),
            model_version=options.version,
            parameters={"stream": stream},
        )
        while True:
            item = arrived.get(timeout=options.timeout_s)
            if isinstance(item, InferenceServerException) and item.status() is None:
                raise stream_error(item.message() or str(item), model)
            if isinstance(item, BaseException):
                raise map_error(item, model=model)
            piece = chunk_of(item)
            yield piece
            if piece.reason:
                done = True
                return
    except queue.Empty:
        raise map_error(TimeoutError(f"no token in {options.timeout_s} s"), model=model) from None
    finally:
        client.stop_stream(cancel_requests=not done)


class AsyncTextGenerator(GeneratorBase):
    """Generation from asyncio over HTTP (aiohttp) or gRPC (grpc.aio)."""

    async def __aenter__(self) -> AsyncTextGenerator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing stays open between calls."""

    async def generate(self, prompt: str, **options: Any) -> Generation:
        """The whole text for a prompt."""
        pieces = [piece async for piece in self._chunks(prompt, sampling(options), stream=False)]
        return Generation.joined(pieces)

    async def stream(self, prompt: str, **options: Any) -> AsyncGenerator[str, None]:
        """The text as it is decoded; leaving early cancels the request."""
        async for piece in self._chunks(prompt, sampling(options), stream=True):
            if piece.text:
                yield piece.text

    def _chunks(self, prompt: str, options: dict[str, Any], stream: bool) -> AsyncIterator[Any]:
        if self.options.protocol == "http":
            return http_chunks_async(self.options, self.model, prompt, options, stream)
        return grpc_chunks_async(self.options, self.model, prompt, options, stream)


async def http_chunks_async(
    options: ClientOptions, model: str, prompt: str, sampling: dict[str, Any], stream: bool
) -> AsyncIterator[Piece]:
    """POST to generate / generate_stream with aiohttp."""
    import aiohttp

    cert = options.root_cert()
    scheme = "https" if cert else "http"
    context: ssl.SSLContext | bool = ssl.create_default_context(cafile=cert) if cert else True
    url = f"{scheme}://{options.url}{generate_path(model, options.version, stream)}"
    headers = {"content-type": "application/json", **auth_headers(options.api_key or None)}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=options.timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                url, data=generate_body(prompt, sampling, stream), headers=headers, ssl=context
            ) as response,
        ):
            if response.status != 200:
                raise http_error(response.status, await response.text(), model)
            if not stream:
                answer = json.loads(await response.read())
                yield piece_of(answer)
                return
            async for line in response.content:
                chunk = sse_chunk(line.strip(), model)
                if chunk is not None:
                    yield chunk
                    if chunk.reason:
                        return
    except ClientError:
        raise
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
        raise map_error(error, model=model) from error


async def grpc_chunks_async(
    options: ClientOptions, model: str, prompt: str, sampling: dict[str, Any], stream: bool
) -> AsyncIterator[Piece]:
    """One request on a grpc.aio bidirectional stream."""
    client = grpcaio.InferenceServerClient(options.url, **options.grpc_kwargs())

    async def requests() -> AsyncIterator[dict[str, Any]]:
        yield {
            "model_name": model,
            "inputs": grpc_inputs(prompt, sampling),
            "model_version": options.version,
            "parameters": {"stream": stream},
        }

    responses = client.stream_infer(
        requests(), stream_timeout=options.timeout_s, headers=auth_headers(options.api_key or None)
    )
    try:
        async for result, error in responses:
            if error is not None:
                raise stream_error(error.message() or str(error), model)
            piece = chunk_of(result)
            yield piece
            if piece.reason:
                return
    finally:
        responses.cancel()
        await client.close()
