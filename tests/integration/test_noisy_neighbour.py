"""One tenant's flood must not cost another tenant: the noisy-neighbour test of issue 17.

Tenant A sends ten times its rate over both protocols from a process of its own (as another
team would, with its own CPU); tenant B sends a steady open-loop load over both protocols
meanwhile. A's flood is turned on and off every second, so the machine's own noise (shared,
two cores) falls on both sides alike; B's p99 and success rate beside the flood must stay
within 10 % of B's without it, and A must have been held to its rate.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2

from maas.base.errors import MaasError
from maas.benchmarks.peers_bench import subset_repository
from maas.clients import NO_RETRIES, ModelClient, Protocol
from maas.serve.gateway_config import GRPC_SERVICE
from maas.serve.keys import TenantPolicy
from tests.conftest import Exported, RunningServer, stop_maas_serve
from tests.integration.test_keys import Keys, start_keyed_stack

MODEL = "digits_cnn"
A_RATE = 10  # requests per second the noisy tenant may make
A_SENDS = 10 * A_RATE  # what it sends while flooding, over both protocols
B_RATE = 60  # requests per second of the quiet tenant, per protocol
PHASE_S = 1.0  # the flood is on and off by turns, so the machine's noise falls on both
PHASES = 40
ROUNDS = 2  # of PHASES turns each, pooled
RESAMPLES = 2000
GUARD_S = 0.1  # B's requests this close after a turn count for neither side
TOLERANCE = 1.10


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    keys = Keys(tmp_path_factory.mktemp("keys") / "keys.json")
    keys.create("noisy", TenantPolicy(rate_per_s=A_RATE, concurrency=4))
    keys.create("quiet")
    return keys


@pytest.fixture(scope="module")
def stack(
    exported: Exported, tenants: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("neighbours")
    repo = subset_repository(exported.repository, MODEL, folder / "repo")
    serve = start_keyed_stack(repo, folder, tenants)
    yield serve
    assert stop_maas_serve(serve) == 0


class RawHttp:
    """Tenant A's HTTP caller: one prepared request, resent on one keep-alive connection."""

    def __init__(self, url: str, key: str, pixels: np.ndarray) -> None:
        tensor = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
        tensor.set_data_from_numpy(pixels, binary_data=True)
        self.body, json_size = httpclient.InferenceServerClient.generate_request_body([tensor])
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Inference-Header-Content-Length": str(json_size),
            "Content-Type": "application/octet-stream",
        }
        self.connection = http.client.HTTPConnection(url, timeout=10)

    def __call__(self) -> str:
        self.connection.request("POST", f"/v2/models/{MODEL}/infer", self.body, self.headers)
        response = self.connection.getresponse()
        response.read()
        if response.will_close:
            self.connection.close()
        return {200: "ok", 429: "limited"}.get(response.status, "failed")


class RawGrpc:
    """Tenant A's gRPC caller: one prepared ModelInfer message, resent as bytes."""

    def __init__(self, url: str, key: str, pixels: np.ndarray) -> None:
        request = service_pb2.ModelInferRequest(
            model_name=MODEL,
            inputs=[service_pb2.ModelInferRequest.InferInputTensor(
                name="pixels", datatype="FP32", shape=list(pixels.shape))],
            raw_input_contents=[pixels.tobytes()],
        )  # fmt: skip
        self.message = request.SerializeToString()
        self.channel = grpc.insecure_channel(url)
        self.infer = self.channel.unary_unary(f"{GRPC_SERVICE}ModelInfer")
        self.metadata = (("authorization", f"Bearer {key}"),)

    def __call__(self) -> str:
        try:
            self.infer(self.message, metadata=self.metadata, timeout=10)
        except grpc.RpcError as failure:
            limited = failure.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            return "limited" if limited else "failed"
        return "ok"


def flood(urls: dict[str, str], key: str, pixels: np.ndarray, flooding: Event, done: Event,
          ready: Event, results: Any) -> None:  # fmt: skip
    """Tenant A: A_SENDS requests a second, half per protocol, while `flooding` is set.

    Another team's client runs on its own machine; here it shares the server's two cores, so
    it is made as light as a client can be (prepared requests; measured: tritonclient-based
    calls took 1.4 ms of CPU each, five times what the gateway spent refusing them) and runs
    at the lowest CPU priority: its own CPU is not what the test is about.
    """
    os.nice(19)
    counts = {"ok": 0, "limited": 0, "failed": 0}
    lock = threading.Lock()

    def send(caller: Callable[[], str]) -> None:
        caller()  # connected and warm before it counts
        ready.set()
        interval, next_at = 2 / A_SENDS, time.monotonic()
        while not done.is_set():
            if not flooding.wait(0.05):
                next_at = time.monotonic()
                continue
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            outcome = caller()
            with lock:
                counts[outcome] += 1

    callers = [RawHttp(urls["http"], key, pixels), RawGrpc(urls["grpc"], key, pixels)]
    threads = [threading.Thread(target=send, args=(caller,)) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(counts)


@dataclass
class Measured:
    """Tenant B's latencies (from each request's scheduled time) per protocol and phase."""

    latencies: dict[str, dict[int, list[float]]] = field(
        default_factory=lambda: {"http": {}, "grpc": {}}
    )
    failures: dict[str, int] = field(default_factory=lambda: {"http": 0, "grpc": 0})

    def add(self, protocol: str, phase: int, latency: float | None) -> None:
        if latency is None:
            self.failures[protocol] += 1
        else:
            self.latencies[protocol].setdefault(phase, []).append(latency)

    def merge(self, other: Measured, phase_offset: int) -> None:
        for protocol, phases in other.latencies.items():
            for phase, values in phases.items():
                self.latencies[protocol][phase + phase_offset] = values
            self.failures[protocol] += other.failures[protocol]

    def phases(self, protocol: str) -> list[np.ndarray]:
        return [np.asarray(v) for _, v in sorted(self.latencies[protocol].items())]

    def all(self, protocol: str) -> np.ndarray:
        return np.concatenate(self.phases(protocol))

    def success(self, protocol: str) -> float:
        answered = len(self.all(protocol))
        return answered / (answered + self.failures[protocol])


def tail_ratio(alone: Measured, beside: Measured, protocol: str) -> tuple[float, float, float]:
    """B's p99 beside A over alone, and its 95 % interval by resampling whole phases.

    The p99 of each phase (one second, ~54 requests), then the median over the phases of each
    side: a stall of this shared machine (seen: 150 ms, with or without a flood) makes one
    phase's p99, and would make the p99 of all requests pooled, whichever side it fell on.
    """
    rng = np.random.default_rng(17)
    tails = [
        np.array([np.percentile(phase, 99) for phase in side.phases(protocol)])
        for side in (alone, beside)
    ]
    resampled = [
        [np.median(rng.choice(side, len(side))) for _ in range(RESAMPLES)] for side in tails
    ]
    low, high = np.percentile(np.array(resampled[1]) / np.array(resampled[0]), [2.5, 97.5])
    return float(np.median(tails[1]) / np.median(tails[0])), float(low), float(high)


class Turns:
    """When the flood was turned on and off: which phase a moment belongs to, if any."""

    def __init__(self) -> None:
        self.turns: list[tuple[float, bool]] = []  # (time, flooding from then on)

    def turn(self, flooding: bool) -> None:
        self.turns.append((time.monotonic(), flooding))

    def side(self, at: float) -> tuple[int, bool] | None:
        """The phase at `at` and whether A flooded; None just after a turn or outside them."""
        state = None
        for phase, (when, flooding) in enumerate(self.turns):
            if when > at:
                break
            state = None if at - when < GUARD_S else (phase, flooding)
        return state


def quiet_tenant(stack: RunningServer, key: str, pixels: np.ndarray, seconds: float,
                 turns: Turns) -> tuple[Measured, Measured]:  # fmt: skip
    """Tenant B: B_RATE requests a second per protocol, open loop; (alone, beside A)."""
    alone, beside = Measured(), Measured()

    def send(protocol: Protocol, offset: float) -> None:
        with ModelClient(
            MODEL, url=stack.url(protocol), protocol=protocol, api_key=key, retry=NO_RETRIES
        ) as client:
            client.infer({"pixels": pixels})
            began = time.monotonic() + offset
            for index in range(int(B_RATE * seconds)):
                at = began + index / B_RATE
                time.sleep(max(0.0, at - time.monotonic()))
                try:
                    client.infer({"pixels": pixels})
                    latency: float | None = time.monotonic() - at
                except MaasError:
                    latency = None
                side = turns.side(at)
                if side is not None:
                    (beside if side[1] else alone).add(protocol, side[0], latency)

    # the protocols' sends interleave: two threads of one process waking together would
    # measure their own wait for the GIL
    offsets = {"http": 0.0, "grpc": 0.5 / B_RATE}
    threads = [threading.Thread(target=send, args=item) for item in offsets.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return alone, beside


def alternate(stack: RunningServer, key: str, pixels: np.ndarray,
              flooding: Event) -> tuple[Measured, Measured]:  # fmt: skip
    """Tenant B throughout PHASES turns of A's flood, off and on: (alone, beside)."""
    turns = Turns()
    outcome: list[tuple[Measured, Measured]] = []
    quiet = threading.Thread(
        target=lambda: outcome.append(quiet_tenant(stack, key, pixels, PHASES * PHASE_S + 1, turns))
    )
    quiet.start()
    time.sleep(1.0)  # B's warm-up: counted on neither side
    for phase in range(PHASES):
        (flooding.set if phase % 2 else flooding.clear)()
        turns.turn(bool(phase % 2))
        time.sleep(PHASE_S)
    flooding.clear()
    turns.turn(False)
    quiet.join()
    return outcome[0]


def report(alone: Measured, beside: Measured) -> dict[str, tuple[float, float, float]]:
    """Prints both sides per protocol; the p99 ratios with their intervals."""
    ratios = {}
    for protocol in ("http", "grpc"):
        ratios[protocol] = tail_ratio(alone, beside, protocol)
        p99s = [float(np.percentile(m.all(protocol), 99)) * 1000 for m in (alone, beside)]
        medians = [float(np.median(m.all(protocol))) * 1000 for m in (alone, beside)]
        samples = [len(m.all(protocol)) for m in (alone, beside)]
        point, low, high = ratios[protocol]
        print(f"{protocol}: B p99 per phase beside A / alone {point:.3f}x (95 % interval "
              f"{low:.3f}-{high:.3f}); pooled p99 alone {p99s[0]:.2f} ms, beside {p99s[1]:.2f} "
              f"ms; medians {medians[0]:.2f}, {medians[1]:.2f} ms; samples {samples}; failed "
              f"{alone.failures[protocol]}, {beside.failures[protocol]}")  # fmt: skip
    return ratios


def test_a_tenant_flooding_at_ten_times_its_rate_does_not_cost_another_tenant(
    stack: RunningServer, tenants: Keys, exported: Exported
) -> None:
    """Fails when B's p99 beside the flood is over 10 % above alone beyond the noise.

    This shared two-core machine moves a p99 of a few ms by 10-17 % between two sides that
    differ in nothing (measured with the flood never turned on), so one comparison cannot
    decide: the test fails when the 95 % interval of the ratio lies wholly above 1.10.
    Measured with this test's numbers: A held to its rate 1.11x and 1.14x (intervals from 0.96
    and 0.90: passes); A without a rate limit 1.48x and 1.37x (from 1.25 and 1.14: fails).
    """
    pixels = exported.results[MODEL].built.eval_inputs["pixels"][:1]
    urls = {protocol: stack.url(protocol) for protocol in ("http", "grpc")}
    spawn = multiprocessing.get_context("spawn")  # no inherited gRPC threads; its own GIL
    flooding, done, ready, results = spawn.Event(), spawn.Event(), spawn.Event(), spawn.Queue()
    key = tenants.secrets["noisy"]
    noisy = spawn.Process(target=flood, args=(urls, key, pixels, flooding, done, ready, results))
    noisy.start()
    assert ready.wait(60), "the noisy tenant did not start"
    alone, beside = Measured(), Measured()
    try:
        for attempt in range(ROUNDS):
            round_alone, round_beside = alternate(stack, tenants.secrets["quiet"], pixels, flooding)
            alone.merge(round_alone, attempt * (PHASES + 1))
            beside.merge(round_beside, attempt * (PHASES + 1))
    finally:
        done.set()
        counts = results.get(timeout=60)
        noisy.join(timeout=30)

    flood_s = ROUNDS * PHASES / 2 * PHASE_S
    print(f"A over {flood_s:.0f} s of flooding: {counts}")
    assert counts["failed"] == 0, counts
    assert sum(counts.values()) >= 0.9 * A_SENDS * flood_s, f"not ten times its rate: {counts}"
    # HAProxy's rate is a sliding estimate over 1 s: a flood of 1 s after a quiet one may get
    # up to twice the rate through; flooding without pause, A gets its rate (seen: 91 in 9 s).
    assert counts["ok"] <= 2 * A_RATE * flood_s, f"not held to its rate: {counts}"
    for protocol, (_, low, _) in report(alone, beside).items():
        assert alone.success(protocol) == beside.success(protocol) == 1.0, protocol
        assert low <= TOLERANCE, f"{protocol}: B's p99 beside A's flood is over 10 % above alone"
