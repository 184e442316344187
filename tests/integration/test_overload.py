"""Far more load than capacity: every request succeeds or is shed at once with a clear error."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from maas.benchmarks.workloads import sample_jpeg
from maas.clients import (
    NO_RETRIES,
    AsyncModelClient,
    ClientError,
    ModelClient,
    Protocol,
    ServerOverloadedError,
)
from maas.serve.gateway_config import ModelLimit
from tests.conftest import Exported, RunningServer
from tests.integration.server_metrics import gateway_sheds

DEADLINE_S = 60.0


async def flood(model: str, url: str, protocol: Protocol, inputs: dict, count: int) -> list:  # type: ignore[type-arg]
    """`count` requests at once from one client; each outcome is a result or the error raised."""
    # No client retries: this measures the server's own shedding.
    async with AsyncModelClient(
        model, url=url, protocol=protocol, timeout_s=DEADLINE_S, retry=NO_RETRIES
    ) as client:
        await client.infer(inputs)  # metadata and connection first
        calls = [client.infer(inputs) for _ in range(count)]
        return await asyncio.gather(*calls, return_exceptions=True)


def inputs_for(model: str, exported: Exported) -> dict[str, np.ndarray]:
    if model == "resnet50_image":  # the ensemble: its composing models shed, it passes that on
        return {"IMAGE": np.array([sample_jpeg()], dtype=np.object_).reshape(1, 1)}
    return {"pixel_values": exported.results["resnet50"].built.eval_inputs["pixel_values"][:1]}


@pytest.mark.parametrize("model", ["resnet50", "resnet50_image"])
def test_overload_is_shed_promptly_with_a_retryable_error_and_the_server_stays_ready(
    server: RunningServer, exported: Exported, protocol: Protocol, model: str
) -> None:
    config = exported.repository.read_config(model)
    limit = ModelLimit.for_config(config)
    queue = limit.max_in_flight + limit.max_queue  # what the gateway admits at once
    inputs = inputs_for(model, exported)
    count = 6 * queue  # far past what can wait: in flight plus the queue
    sheds_before = gateway_sheds(server, protocol, model)
    began = time.monotonic()
    outcomes = asyncio.run(flood(model, server.url(protocol), protocol, inputs, count))
    elapsed = time.monotonic() - began
    print(f"\n{model}/{protocol}: {count} at once, queue {queue}: {elapsed:.1f} s", end=" ")

    served = [o for o in outcomes if isinstance(o, dict)]
    shed = [o for o in outcomes if isinstance(o, ServerOverloadedError)]
    other = [o for o in outcomes if not isinstance(o, dict | ServerOverloadedError)]
    assert not other, f"unexpected outcomes: {other[:3]}"
    print(f"{len(served)} served, {len(shed)} shed")
    assert len(served) + len(shed) == count  # nothing lost
    assert served, "no request was served under overload"
    assert shed, f"{count} simultaneous requests with a queue of {queue}: none was shed"
    assert elapsed < DEADLINE_S  # nothing hung until the client deadline
    # the gateway's own metrics count each refusal against the model and protocol
    assert gateway_sheds(server, protocol, model) - sheds_before == len(shed)
    error = shed[0]
    assert isinstance(error, ClientError)
    assert f"model '{model}' is at its limit of {limit.describe()}" in str(error)
    assert error.status in ("503", "StatusCode.UNAVAILABLE")
    assert all(o["probabilities"].shape == (1, 1000) for o in served)
    assert server.is_ready()
    with ModelClient(model, url=server.url(protocol), protocol=protocol) as client:
        after = client.infer(inputs)
    np.testing.assert_allclose(after["probabilities"], served[0]["probabilities"], atol=1e-5)
