"""How a caller talks to each peer: the request each one's documented client would send.

- BentoML: its HTTP client's encodings: images as multipart file uploads, tensors and text as
  JSON (its faster pickle media type is refused by a public server: internal calls only);
  batchable APIs take a list (a batch of one per call).
- Ray Serve, TorchServe and the naive FastAPI service: the handler reads the raw body (JPEG
  bytes, float32 tensor bytes, or JSON for text) and answers JSON, as their examples do.
Free of any peer's packages and of gevent, so the Locust users and the tests can both use it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..workloads import RAW_IMAGE_INPUT, RAW_TEXT_INPUT, Inputs
from .tasks import CALLERS, PeerTask

__all__ = ["CALLERS", "PeerProtocolError", "PeerRequest", "decode", "encode"]


@dataclass(frozen=True)
class PeerRequest:
    """One HTTP request, serialised once before the timed calls."""

    path: str
    body: bytes
    headers: dict[str, str]


class PeerProtocolError(RuntimeError):
    """A peer answered something other than a result."""


def encode(peer: str, task: PeerTask, inputs: Inputs) -> PeerRequest:
    """The request `peer` takes for one request's inputs of `task`."""
    path = {"torchserve": f"/predictions/{task.route}", "naive": "/predict"}.get(
        peer, f"/{task.route}"
    )
    if peer == "naive" and RAW_IMAGE_INPUT not in inputs:
        raise ValueError("the naive service takes encoded images; bench an image ensemble")
    if task.kind == "image":
        image = bytes(inputs[RAW_IMAGE_INPUT].reshape(-1)[0])
        if peer == "bentoml":
            return multipart(path, "images", image)
        return PeerRequest(path, image, {"Content-Type": "image/jpeg"})
    if task.kind == "image-tensor":
        pixels = np.ascontiguousarray(next(iter(inputs.values())), dtype=np.float32)
        if peer == "bentoml":
            as_json = json.dumps({"pixels": pixels.tolist()}).encode()
            return PeerRequest(path, as_json, {"Content-Type": "application/json"})
        return PeerRequest(path, pixels.tobytes(), {"Content-Type": "application/octet-stream"})
    sentence = bytes(inputs[RAW_TEXT_INPUT].reshape(-1)[0]).decode()
    document: dict[str, Any] = {"texts": [sentence]} if peer == "bentoml" else {"text": sentence}
    return PeerRequest(path, json.dumps(document).encode(), {"Content-Type": "application/json"})


def multipart(path: str, field: str, content: bytes) -> PeerRequest:
    """A multipart/form-data upload of one file, as BentoML's client sends files."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="image.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return PeerRequest(path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def decode(status: int, body: bytes) -> object:
    """The answer as the client would have it; PeerProtocolError for anything but a result."""
    if status != 200:
        raise PeerProtocolError(f"HTTP {status}: {body[:200]!r}")
    return json.loads(body)
