"""A request whose client deadline passes while it waits in the gateway never reaches Triton.

One request holds ResNet-50's only slot (limit 1 in flight, per protocol) for as long as the
test likes: its upload stops partway, so Triton waits for the rest. Calls made meanwhile over
the same protocol queue at the gateway with short deadlines; they must fail as timeouts, and
Triton must never see them, even after the slot frees.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h2.config
import h2.connection
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2

from maas.clients import NO_RETRIES, InferenceTimeoutError, ModelClient, Protocol
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve
from tests.integration.server_metrics import gateway_requests, request_counts

MODEL = "resnet50"
DEADLINE_S = 0.5
CALLERS = 3


class StalledUpload:
    """An HTTP inference request sent up to its middle; `release()` sends the rest."""

    def __init__(self, url: str, pixels: np.ndarray) -> None:
        tensor = httpclient.InferInput("pixel_values", list(pixels.shape), "FP32")
        tensor.set_data_from_numpy(pixels, binary_data=True)
        body, json_size = httpclient.InferenceServerClient.generate_request_body([tensor])
        host, port = url.split(":")
        self.body = body
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        head = (
            f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: {url}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {json_size}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        # More than the gateway buffers before admitting (its JSON limit): admitted, then stuck.
        self.half = len(body) * 2 // 3
        self.sock.sendall(head.encode() + body[: self.half])

    def release(self) -> int:
        """Send the rest; return how many requests Triton ran for it (it answers 200)."""
        self.sock.sendall(self.body[self.half :])
        reply = b""
        while b"\r\n" not in reply:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        self.sock.close()
        assert reply.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK", reply[:200]
        return 1


class StalledGrpcUpload:
    """A gRPC ModelInfer whose message stops after its first frame; `release()` cancels it."""

    def __init__(self, url: str, pixels: np.ndarray) -> None:
        request = service_pb2.ModelInferRequest(model_name=MODEL)
        tensor = request.inputs.add(name="pixel_values", datatype="FP32", shape=pixels.shape)
        del tensor  # its data travels in raw_input_contents, as tritonclient sends it
        request.raw_input_contents.append(pixels.astype(np.float32).tobytes())
        message = request.SerializeToString()
        framed = b"\x00" + len(message).to_bytes(4, "big") + message
        host, port = url.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.connection = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.connection.initiate_connection()
        self.stream = self.connection.get_next_available_stream_id()
        self.connection.send_headers(
            self.stream,
            [
                (":method", "POST"), (":scheme", "http"), (":authority", url),
                (":path", "/inference.GRPCInferenceService/ModelInfer"),
                ("content-type", "application/grpc"), ("te", "trailers"),
            ],
        )  # fmt: skip
        # One frame: past the bytes the gateway reads to find the model, far short of the end.
        self.connection.send_data(self.stream, framed[:16000])
        self.sock.sendall(self.connection.data_to_send())

    def release(self) -> int:
        """Cancel the call; Triton never ran it."""
        self.connection.reset_stream(self.stream)
        self.sock.sendall(self.connection.data_to_send())
        self.sock.close()
        return 0


def call_with_deadline(url: str, protocol: Protocol, pixels: np.ndarray) -> BaseException | None:
    """One call that must time out while it waits; returns what it raised."""
    try:
        with ModelClient(
            MODEL, url=url, protocol=protocol, timeout_s=DEADLINE_S, retry=NO_RETRIES
        ) as client:
            client.infer({"pixel_values": pixels})
    except Exception as error:  # the test inspects what was raised
        return error
    return None


@pytest.fixture
def one_slot(exported: Exported, tmp_path: Path) -> Iterator[RunningServer]:
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir(MODEL), repo / MODEL)
    limit = ["--limit", f"{MODEL}=1:{CALLERS}:30000"]  # waits far longer than the deadlines
    server = start_maas_serve(repo, tmp_path, extra_args=limit)
    yield server
    assert stop_maas_serve(server) == 0


@pytest.mark.parametrize("route", ["http", "grpc"])
def test_a_call_whose_deadline_passes_in_the_gateway_queue_never_reaches_triton(
    one_slot: RunningServer, exported: Exported, route: Protocol
) -> None:
    server = one_slot
    backend = f"{route}_model_{MODEL}"
    batch = exported.results[MODEL].built.eval_inputs["pixel_values"]
    blocker_pixels = np.concatenate([batch] * (16 // len(batch) + 1))[:16]  # 9.6 MB
    before = request_counts(server, MODEL).succeeded

    stalled = StalledUpload if route == "http" else StalledGrpcUpload
    blocker: StalledUpload | StalledGrpcUpload = stalled(server.url(route), blocker_pixels)
    deadline = time.monotonic() + 10
    while gateway_requests(server, backend) < 1:  # admitted: the slot is taken
        assert time.monotonic() < deadline, "the stalled request never took the slot"
        time.sleep(0.05)

    one = batch[:1]
    with ThreadPoolExecutor(CALLERS) as pool:
        calls = [
            pool.submit(call_with_deadline, server.url(route), route, one) for _ in range(CALLERS)
        ]
        raised = [call.result() for call in calls]
    assert all(isinstance(error, InferenceTimeoutError) for error in raised), raised

    ran = blocker.release()
    time.sleep(1.0)  # anything the gateway still held would reach Triton by now
    assert request_counts(server, MODEL).succeeded - before == ran, "a timed-out call ran"
    assert gateway_requests(server, backend) == 0
    with ModelClient(MODEL, url=server.url(route), protocol=route) as client:
        assert client.infer({"pixel_values": one})["probabilities"].shape == (1, 1000)
