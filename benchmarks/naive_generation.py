"""The generation service people write first: FastAPI, one request at a time, streamed.

`uvicorn maas.benchmarks.naive_generation:app` with MAAS_GENERATION_FOLDER naming the version
folder of an exported text-generation model (model.onnx, tokenizer.json, generation.json).
It runs the same ONNX decode step as maas, greedily, one request after another (a lock), and
streams server-sent events in the form of Triton's generate_stream, so the same client reads
both: what differs from maas is in-flight batching alone.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from maas.base.served.generation import (
    GENERATION_FILE,
    STEP_FILE,
    ModelShape,
    onnx_step,
    tokenizer_file,
    tokens_alone,
)

app = FastAPI(title="one-at-a-time generation service (benchmark baseline)")
_state: dict[str, Any] = {}
_one_at_a_time = threading.Lock()


@app.on_event("startup")
def load_model() -> None:
    """Load the decode step and the tokenizer once."""
    from tokenizers import Tokenizer

    folder = Path(os.environ["MAAS_GENERATION_FOLDER"])
    _state["step"] = onnx_step(folder / STEP_FILE)
    _state["shape"] = ModelShape.load(folder / GENERATION_FILE)
    _state["tokenizer"] = Tokenizer.from_file(str(tokenizer_file(folder)))


@app.get("/health")
def health() -> dict[str, str]:
    """Ready once the model is loaded."""
    return {"status": "ok" if _state else "loading"}


def events(prompt: str, max_tokens: int) -> Iterator[bytes]:
    """Each token's text as an event, the last with its finish reason; one request at a time."""
    tokenizer = _state["tokenizer"]
    with _one_at_a_time:
        ids: list[int] = []
        sent = ""
        prompt_ids = tokenizer.encode(prompt).ids
        for token in tokens_alone(_state["step"], _state["shape"], prompt_ids, max_tokens):
            ids.append(token)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            new, sent = text[len(sent) :], text
            final = token == _state["shape"].eos_token_id or len(ids) == max_tokens
            reason = "eos" if token == _state["shape"].eos_token_id else "length"
            event = {"text_output": new, "finish_reason": reason if final else ""}
            yield b"data: " + json.dumps(event).encode() + b"\n\n"
            if final:
                return


@app.post("/v2/models/{model}/generate_stream")
async def generate_stream(model: str, request: Request) -> StreamingResponse:
    """Stream a greedy continuation of text_input."""
    body = await request.json()
    max_tokens = int(body.get("max_tokens", 32))
    return StreamingResponse(
        events(str(body["text_input"]), max_tokens), media_type="text/event-stream"
    )
