"""Triton Python-backend model (decoupled): a prompt in, generated text out, token by token.

A thin shell over `maas.base.served.generation`, which export copies beside this file as
`maas_generation.py`; the decode step, tokenizer and shape come from the version folder of the
step model this one names (parameter `step_model`). Every request goes to one engine that
batches all requests in flight at each decoding step.

Requests: `text_input` (the prompt) and optional `max_tokens`, `temperature`, `top_k`, `top_p`,
`seed`, `stop` as inputs or request parameters (the generate endpoints pass JSON fields either
way); parameter `stream` true sends text as it is decoded (gRPC streaming, generate_stream),
else one response with the whole text. Outputs: `text_output`, `token_ids` (the tokens
behind that text) and `finish_reason` (eos, stop, length) on the last response.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from maas_generation import (
    INVALID_PREFIX,
    Chunk,
    GenerationError,
    OverloadedError,
    SamplingParams,
    load_engine,
)

OPTIONS = ("max_tokens", "temperature", "top_k", "top_p", "seed", "stop")
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    """Hand each request to the engine; its tokens come back on the engine's thread."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the step model named in the config and start the engine."""
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        step = Path(args["model_repository"]).parent / parameters["step_model"]
        folder = step / parameters.get("step_version", args["model_version"])
        self.engine = load_engine(
            folder,
            slots=int(parameters.get("slots", "16")),
            max_waiting=int(parameters.get("max_waiting", "64")),
        )

    def execute(self, requests: list[Any]) -> None:
        """Queue every request; a bad one is answered at once with the reason."""
        for request in requests:
            sender = request.get_response_sender()
            try:
                prompt, values, stream = read_request(request)
                params = SamplingParams.parse(values)
                self.engine.submit(prompt, params, responder(sender, stream), cancelled(sender))
            except GenerationError as error:
                fail(sender, INVALID_PREFIX + str(error), pb_utils.TritonError.INVALID_ARG)
            except OverloadedError as error:
                fail(sender, str(error), pb_utils.TritonError.UNAVAILABLE)

    def finalize(self) -> None:
        """Stop the engine; requests still running end with an error."""
        self.engine.stop()


def read_request(request: Any) -> tuple[str, dict[str, Any], bool]:
    """The prompt, the sampling options (inputs win over parameters) and whether to stream."""
    parameters = json.loads(request.parameters() or "{}")
    values = {name: parameters[name] for name in OPTIONS if name in parameters}
    for name in OPTIONS:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        if tensor is None:
            continue
        array = tensor.as_numpy().reshape(-1)
        if name == "stop":
            values[name] = [text_of(item, name) for item in array]
        elif array.size != 1:
            raise GenerationError(f"{name} must hold one value, got {array.size}")
        else:
            values[name] = array[0].item()
    prompt = pb_utils.get_input_tensor_by_name(request, "text_input")
    if prompt is None:
        raise GenerationError("text_input is missing: give the prompt as a string")
    texts = prompt.as_numpy().reshape(-1)
    if texts.size != 1:
        raise GenerationError(f"text_input must be one string, got {texts.size}")
    stream = parameters.get("stream", False)
    if not isinstance(stream, bool):
        raise GenerationError(f"stream must be true or false, got {stream!r}")
    return text_of(texts[0], "text_input"), values, stream


def text_of(item: Any, name: str) -> str:
    """A string tensor element as text; invalid UTF-8 is the caller's error."""
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            raise GenerationError(f"{name} is not valid UTF-8") from None
    return str(item)


def responder(sender: Any, stream: bool) -> Any:
    """What the engine calls with new text: a response now (streaming) or at the end."""
    parts: list[Chunk] = []

    def emit(chunk: Chunk) -> None:
        if chunk.reason.startswith("error"):
            fail(sender, chunk.reason.removeprefix("error: "), pb_utils.TritonError.UNAVAILABLE)
        elif chunk.reason == "cancelled":
            sender.send(flags=FINAL)
        elif stream:
            sender.send(response(chunk), flags=FINAL if chunk.final else 0)
        else:
            parts.append(chunk)
            if chunk.final:
                text = "".join(part.text for part in parts)
                ids = [token for part in parts for token in part.token_ids]
                sender.send(response(Chunk(text, ids, True, chunk.reason)), flags=FINAL)

    return emit


def cancelled(sender: Any) -> Any:
    """Whether the caller has gone away (Triton marks the request cancelled)."""
    return lambda: bool(sender.is_cancelled())


def response(chunk: Chunk) -> Any:
    """A response with the new text, its tokens and, on the last one, why generation ended."""
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor("text_output", np.array([chunk.text.encode()], dtype=np.object_)),
            pb_utils.Tensor("token_ids", np.array(chunk.token_ids, dtype=np.int64)),
            pb_utils.Tensor("finish_reason", np.array([chunk.reason.encode()], dtype=np.object_)),
        ]
    )


def fail(sender: Any, message: str, code: Any) -> None:
    """End a request with an error."""
    error = pb_utils.TritonError(message, code)
    sender.send(pb_utils.InferenceResponse(error=error), flags=FINAL)
