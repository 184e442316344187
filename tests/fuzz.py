"""A seeded request fuzzer for the public HTTP and gRPC endpoints.

Cases mix near-valid inference requests (real model and input names with random shapes,
datatypes, data and binary sizes) with garbage (random bytes, invalid UTF-8, truncated or
random JSON, path-traversal model names, bodies over the limits). The same seed gives the same
cases, so a failure can be replayed.
"""

from __future__ import annotations

import json
import random
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024

DATATYPES = (
    "BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16",
    "BYTES", "UINT64", "fp32", "FLOAT", "", "FP32\x00",
)  # fmt: skip
ELEMENT_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "INT16": 2, "FP16": 2, "BF16": 2,
                 "INT32": 4, "FP32": 4, "INT64": 8, "FP64": 8, "UINT64": 8}  # fmt: skip
DIMS = (0, 1, 1, 2, 3, 8, 16, 17, 64, 65, 224, 256, 257, 100000, 2**31, 2**40, 2**63 - 1, -1, -2)
BAD_NAMES = (
    "../../etc/passwd", "..%2f..%2fetc", "%2e%2e", "a/../digits_cnn", "модель", "x" * 300, " ",
    "digits_cnn\x00", "digits_cnn;rm -rf", "${jndi:ldap://x}", "<script>",
)  # fmt: skip


@dataclass(frozen=True)
class Model:
    """What the fuzzer knows of a served model: enough to write near-valid requests."""

    name: str
    inputs: dict[str, tuple[str, list[int]]]  # name -> (datatype, dims without batch)
    outputs: list[str]
    max_batch_size: int


@dataclass(frozen=True)
class HttpCase:
    """One HTTP request."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""


def random_json_value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, nested a little."""
    pick = rng.randrange(8 if depth < 4 else 5)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick == 1:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**63), 1e308, -1e-308, 0.5])
    if pick == 2:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(12)))
    if pick == 3:
        return rng.random()
    if pick == 4:
        return rng.choice(["inputs", "outputs", "data", "shape", "datatype", "parameters"])
    if pick in (5, 6):
        return [random_json_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ("inputs", "outputs", "name", "shape", "data", "datatype", "parameters", "id", "x")
    return {rng.choice(keys): random_json_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def random_shape(rng: random.Random, model: Model, dims: list[int]) -> Any:
    """Mostly the right rank with random sizes; sometimes nonsense."""
    batch = [rng.choice([1, 2, model.max_batch_size, model.max_batch_size + 1, 0, 100000])]
    if model.max_batch_size == 0:
        batch = []
    roll = rng.random()
    if roll < 0.4:
        return batch + [d if d >= 0 else rng.choice([1, 7, 300]) for d in dims]
    if roll < 0.7:
        return batch + [rng.choice(DIMS) for _ in dims]
    if roll < 0.85:
        return [rng.choice(DIMS) for _ in range(rng.randrange(7))]
    return rng.choice([[1.5, 3], ["1", "3"], [None], "1,3", {}, [[1]], [True, 3]])


def element_count(shape: list[Any]) -> int | None:
    """Elements in shape, if it is a list of small non-negative integers."""
    count = 1
    for size in shape:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        count *= size
    return count


def random_data(rng: random.Random, datatype: str, count: int | None) -> list[Any]:
    """JSON data for count elements, or a wrong amount, or wrong types."""
    exact = count if count is not None and count <= 4096 else rng.randrange(8)
    size = exact if rng.random() < 0.6 else rng.choice([0, 1, max(exact - 1, 0), exact + 1])
    roll = rng.random()
    if roll < 0.7:
        if datatype == "BYTES":
            return ["".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(4)) for _ in range(size)]
        if datatype == "BOOL":
            return [rng.random() < 0.5 for _ in range(size)]
        return [rng.uniform(-3, 3) for _ in range(size)]
    if roll < 0.85:
        return [[rng.random()] * 2 for _ in range(size // 2)]  # nested
    return [random_json_value(rng) for _ in range(size)]


def random_tensor(rng: random.Random, model: Model) -> tuple[dict[str, Any], bytes]:
    """One input entry and its binary payload (possibly empty)."""
    name = rng.choice([*model.inputs, "input", "", "IMAGE", "pixels"])
    datatype, dims = model.inputs.get(name, ("FP32", [3]))
    if rng.random() < 0.25:
        datatype = rng.choice(DATATYPES)
    shape = random_shape(rng, model, dims)
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    count = element_count(shape) if isinstance(shape, list) else None
    roll = rng.random()
    if roll < 0.45:
        entry["data"] = random_data(rng, datatype, count)
        return entry, b""
    if roll < 0.9:
        width = ELEMENT_BYTES.get(datatype, 4)
        exact = count * width if count is not None and count * width <= 4 * MiB else 64
        size = rng.choice([exact, exact, 0, exact + 1, max(exact - 1, 0), 2**40, -5])
        entry["parameters"] = {"binary_data_size": size}
        payload_size = exact if size == 2**40 or size < 0 else size
        return entry, rng.randbytes(min(payload_size, 5 * MiB))
    entry["parameters"] = rng.choice(
        [
            {"shared_memory_region": "no_such_region", "shared_memory_byte_size": 64},
            {"shared_memory_region": rng.choice(BAD_NAMES), "shared_memory_byte_size": -1},
            {"binary_data_size": "64"},
            "not an object",
        ]
    )
    return entry, b""


def infer_path(name: str, version: str | None = None) -> str:
    """The infer URL path of a model, quoted as a client would."""
    quoted = urllib.parse.quote(name, safe="")
    middle = f"/versions/{version}" if version is not None else ""
    return f"/v2/models/{quoted}{middle}/infer"


def near_valid_infer(rng: random.Random, model: Model) -> HttpCase:
    """An inference request that is right in most respects and wrong in one or two."""
    tensors = [random_tensor(rng, model) for _ in range(rng.choice([1, 1, 1, 2, 0]))]
    request: dict[str, Any] = {"inputs": [entry for entry, _ in tensors]}
    if rng.random() < 0.3:
        request["outputs"] = [
            {"name": rng.choice([*model.outputs, "nope"]),
             "parameters": rng.choice([{}, {"class_count": rng.choice([1, 5, 10**9, -1, "3"])},
                                       {"binary_data": rng.choice([True, False, "yes"])}])}
        ]  # fmt: skip
    if rng.random() < 0.2:
        request["parameters"] = rng.choice([{"binary_data_output": True}, {"timeout": -1}, []])
    if rng.random() < 0.1:
        request["id"] = rng.choice([1, None, "x" * 1000, {}])
    header = json.dumps(request).encode()
    payload = b"".join(binary for _, binary in tensors)
    headers = {"Content-Type": "application/json"}
    if payload or rng.random() < 0.1:
        length = rng.choice([len(header)] * 6 + [0, len(header) + 1, -1, 2**40])
        headers["Inference-Header-Content-Length"] = str(length)
    version = rng.choice([None] * 8 + ["1", "0", "-1", "99999999999", "x"])
    return HttpCase("POST", infer_path(model.name, version), header + payload, headers, "infer")


def valid_infer(rng: random.Random, model: Model) -> HttpCase:
    """A request the model should serve: every input, batch 1, zeros or a short text as JSON."""
    inputs = []
    for name, (datatype, dims) in model.inputs.items():
        shape = [1, *(d if d >= 0 else rng.randrange(1, 9) for d in dims)]
        count = element_count(shape) or 0
        data: list[Any] = ["a short text"] * count if datatype == "BYTES" else [0] * count
        inputs.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
    body = json.dumps({"inputs": inputs}).encode()
    return HttpCase("POST", infer_path(model.name), body, {}, "valid")


def garbage_infer(rng: random.Random, model: Model) -> HttpCase:
    """Bytes and JSON that are not an inference request at all."""
    valid = json.dumps({"inputs": [random_tensor(rng, model)[0]]}).encode()
    body = rng.choice(
        [
            rng.randbytes(rng.randrange(2000)),
            valid[: rng.randrange(len(valid))],
            json.dumps(random_json_value(rng)).encode(),
            b"\xff\xfe\xfd" + valid,
            valid.replace(b'"', b"'"),
            b"[" * 10000 + b"]" * 10000,
            b'{"inputs": "' + bytes([0xC3, 0x28]) * 50 + b'"}',
        ]
    )
    name = rng.choice([model.name, model.name, *BAD_NAMES])
    return HttpCase("POST", infer_path(name), body, {"Content-Type": "application/json"}, "garbage")


def other_endpoint(rng: random.Random, model: Model) -> HttpCase:
    """Metadata, config, statistics, repository, shared memory and unknown paths."""
    name = urllib.parse.quote(rng.choice([model.name, *BAD_NAMES]), safe="")
    path = rng.choice(
        [
            f"/v2/models/{name}", f"/v2/models/{name}/config", f"/v2/models/{name}/ready",
            f"/v2/models/{name}/stats", "/v2/repository/index",
            f"/v2/repository/models/{name}/load",
            f"/v2/systemsharedmemory/region/{name}/register", "/v2/systemsharedmemory/status",
            "/v2/cudasharedmemory/status", f"/v2/models/{name}/generate", "/v2/trace/setting",
            "/v2/logging", "/v2", "/", "/metrics", "/v2/models/stats", "/%00",
            "/v2/../../etc/passwd",
        ]
    )  # fmt: skip
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
    body = json.dumps(random_json_value(rng)).encode() if method in ("POST", "PUT") else b""
    return HttpCase(method, path, body, {}, "endpoint")


def oversized(rng: random.Random, model: Model) -> HttpCase:
    """Bodies over the size limit and JSON over the JSON limit."""
    if rng.random() < 0.5:
        return HttpCase("POST", infer_path(model.name), b" " * (40 * MiB), {}, "oversized")
    data = ",".join(["1.5"] * (MiB + rng.randrange(1000)))  # about 4 MiB of JSON
    body = (
        '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[' + data + "]}]}"
    ).encode()
    return HttpCase("POST", infer_path(model.name), body, {}, "oversized")


def http_cases(models: list[Model], count: int, seed: int) -> list[HttpCase]:
    """count cases; a handful are the slow oversized kind."""
    rng = random.Random(seed)
    makers = [near_valid_infer] * 12 + [garbage_infer] * 6 + [other_endpoint] * 2 + [valid_infer]
    cases = [rng.choice(makers)(rng, rng.choice(models)) for _ in range(count)]
    for _ in range(4):
        cases.insert(rng.randrange(len(cases)), oversized(rng, rng.choice(models)))
    return cases


def valid_grpc_request(model: Model) -> Any:
    """A request the model should serve: every input, batch 1, zeros or a short text."""
    import numpy as np
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import serialize_byte_tensor

    request = service_pb2.ModelInferRequest(model_name=model.name)
    for name, (datatype, dims) in model.inputs.items():
        shape = [1, *(d if d >= 0 else 4 for d in dims)]
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        if datatype == "BYTES":
            raw = serialize_byte_tensor(np.full(shape, b"a short text", dtype=object)).item()
        else:
            raw = bytes(ELEMENT_BYTES[datatype] * (element_count(shape) or 0))
        request.raw_input_contents.append(raw)
    return request


def grpc_request(rng: random.Random, model: Model) -> Any:
    """A random ModelInferRequest: real names with random shapes, datatypes and contents."""
    from tritonclient.grpc import service_pb2

    if rng.random() < 0.05:
        return valid_grpc_request(model)
    request = service_pb2.ModelInferRequest()
    request.model_name = rng.choice([model.name] * 8 + list(BAD_NAMES))
    request.model_version = rng.choice([""] * 8 + ["1", "-1", "x"])
    uses_raw = rng.random() < 0.7
    for _ in range(rng.choice([1, 1, 1, 2, 0])):
        name = rng.choice([*model.inputs, "input", ""])
        datatype, dims = model.inputs.get(name, ("FP32", [3]))
        if rng.random() < 0.25:
            datatype = rng.choice(DATATYPES)
        shape = random_shape(rng, model, dims)
        tensor = request.inputs.add(name=name, datatype=datatype)
        numbers = [s for s in shape if isinstance(s, int) and not isinstance(s, bool)]
        tensor.shape.extend(max(min(s, 2**63 - 1), -(2**63)) for s in numbers)
        count = element_count(numbers) or 0
        if uses_raw:
            width = ELEMENT_BYTES.get(datatype, 4)
            exact = count * width if count * width <= 4 * MiB else 64
            size = rng.choice([exact, exact, 0, exact + 1, max(exact - 1, 0)])
            request.raw_input_contents.append(rng.randbytes(size))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(rng.randbytes(4) for _ in range(min(count, 64)))
        else:
            values = [rng.uniform(-2, 2) for _ in range(min(count, 4096) + rng.choice([0, 0, 1]))]
            tensor.contents.fp32_contents.extend(values)
        if rng.random() < 0.1:
            tensor.parameters["shared_memory_region"].string_param = "no_such_region"
            tensor.parameters["shared_memory_byte_size"].int64_param = rng.choice([64, -1])
    if rng.random() < 0.3:
        output = request.outputs.add(name=rng.choice([*model.outputs, "nope"]))
        if rng.random() < 0.5:
            output.parameters["class_count"].int64_param = rng.choice([1, 5, 10**9, -1])
    if rng.random() < 0.1:
        request.parameters["timeout"].int64_param = rng.choice([-1, 0, 1])
    return request


def grpc_requests(models: list[Model], count: int, seed: int) -> list[Any]:
    """count random gRPC requests."""
    rng = random.Random(seed)
    return [grpc_request(rng, rng.choice(models)) for _ in range(count)]
