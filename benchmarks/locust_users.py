"""Locust users that call one served model: Triton over HTTP or gRPC, a peer, or the naive service.

Each user holds one client, built in `on_start` with every request's inputs serialised up
front, so the timed region is the call alone. Every call, failed or not, is reported through
`events.request` under the model's name. In arrival-rate mode (open loop) the users share one
schedule of send times; a call sent late against its slot is counted as delayed, the way
perf_analyzer warns that it could not hold the offered rate (coordinated omission).

Importing this module switches gRPC to gevent, which must happen before any channel exists.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from locust import User, constant, events, task  # noqa: E402

from maas.base.triton.endpoints import DEFAULT_URLS  # noqa: E402
from maas.base.triton.repository import ModelRepository  # noqa: E402
from maas.clients.transport import auth_headers  # noqa: E402

from .pacing import ARRIVALS, DELAY_TOLERANCE_S, PROTOCOLS, ArrivalSchedule, LoadConfig  # noqa: E402
from .peers import wire  # noqa: E402
from .peers.tasks import task_for  # noqa: E402
from .workloads import Inputs, Workload, build_workload  # noqa: E402


@dataclass
class Traffic:
    """Process-wide state the driver uses to open and close measurement windows cleanly."""

    open: gevent.event.Event = field(default_factory=gevent.event.Event)
    in_flight: int = 0  # calls claimed or under way; the driver drains them at window edges

    def __post_init__(self) -> None:
        self.open.set()

    def drain(self, timeout_s: float = 120.0) -> None:
        """Shut the gate and wait until no call is in flight."""
        self.open.clear()
        deadline = time.perf_counter() + timeout_s
        while self.in_flight and time.perf_counter() < deadline:
            gevent.sleep(0.001)


CONFIG = LoadConfig()
TRAFFIC = Traffic()
SCHEDULE = ArrivalSchedule(0.0, "constant")
_WORKLOADS: dict[tuple[str, str, str], Workload] = {}
_USER_NUMBERS = itertools.count()


def configure(config: LoadConfig) -> None:
    """Set what every user of this process calls."""
    config.check()
    for name, value in vars(config).items():
        setattr(CONFIG, name, value)
    SCHEDULE.arrival = config.arrival
    SCHEDULE.random.seed(config.seed)
    SCHEDULE.restart(config.rate)


def workload() -> Workload:
    """The payloads for CONFIG's model, built once per process."""
    key = (CONFIG.repository, CONFIG.model, CONFIG.image)
    if key not in _WORKLOADS:
        image = Path(CONFIG.image).read_bytes() if CONFIG.image else None
        repository = ModelRepository(Path(CONFIG.repository))
        _WORKLOADS[key] = build_workload(repository, CONFIG.model, image)
    return _WORKLOADS[key]


# --- transports ----------------------------------------------------------------------------


class Transport(Protocol):
    """One connection that sends prepared requests."""

    def prepare(self, inputs: Inputs) -> Any:
        """Serialise one request's inputs once, before the timed calls."""
        ...

    def send(self, prepared: Any) -> int:
        """Make one call; return the bytes of output received. Raises on any failure."""
        ...

    def close(self) -> None:
        """Release the connection and anything registered with the server."""
        ...


class TritonTransport:
    """tritonclient over HTTP (geventhttpclient) or gRPC, optionally via system shared memory."""

    def __init__(self, config: LoadConfig, user_number: int) -> None:
        if config.protocol == "http":
            import tritonclient.http as client_module

            self.client: Any = client_module.InferenceServerClient(
                config.url, network_timeout=config.timeout_s, connection_timeout=config.timeout_s
            )
            self.call_options: dict[str, Any] = {"headers": auth_headers()}
        else:
            import tritonclient.grpc as client_module  # type: ignore[no-redef]

            self.client = client_module.InferenceServerClient(config.url)
            self.call_options = {"client_timeout": config.timeout_s, "headers": auth_headers()}
        self.module: Any = client_module
        self.model = config.model
        self.shm_prefix = f"maas_bench_{id(self):x}_{user_number}" if config.shm else ""
        self.regions: list[tuple[str, Any]] = []
        outputs = self.client.get_model_metadata(config.model, headers=auth_headers())
        names = [o["name"] if isinstance(o, dict) else o.name for o in _outputs_of(outputs)]
        self.outputs = [self._requested(name) for name in names]

    def _requested(self, name: str) -> Any:
        if self.module.__name__.endswith("http"):
            return self.module.InferRequestedOutput(name, binary_data=True)
        return self.module.InferRequestedOutput(name)

    def prepare(self, inputs: Inputs) -> Any:
        """InferInputs holding the data, or pointing into a registered shared-memory region."""
        prepared = []
        for name, array in inputs.items():
            datatype = "BYTES" if array.dtype == object else _triton_datatype(array)
            infer_input = self.module.InferInput(name, list(array.shape), datatype)
            if self.shm_prefix and datatype != "BYTES":
                infer_input.set_shared_memory(self._region_for(array), array.nbytes)
            elif self.module.__name__.endswith("http"):
                infer_input.set_data_from_numpy(array, binary_data=True)
            else:
                infer_input.set_data_from_numpy(array)
            prepared.append(infer_input)
        return prepared

    def _region_for(self, array: Any) -> str:
        import tritonclient.utils.shared_memory as shm

        name = f"{self.shm_prefix}_{len(self.regions)}"
        handle = shm.create_shared_memory_region(name, f"/{name}", array.nbytes)
        shm.set_shared_memory_region(handle, [array])
        self.client.register_system_shared_memory(
            name, f"/{name}", array.nbytes, headers=auth_headers()
        )
        self.regions.append((name, handle))
        return name

    def send(self, prepared: Any) -> int:
        """One inference; every output is read back as numpy, as a real client would."""
        result = self.client.infer(self.model, prepared, outputs=self.outputs, **self.call_options)
        return sum(result.as_numpy(output.name()).nbytes for output in self.outputs)

    def close(self) -> None:
        """Unregister and free shared memory, then close the connection."""
        import tritonclient.utils.shared_memory as shm

        for name, handle in self.regions:
            try:
                self.client.unregister_system_shared_memory(name)
            except Exception as error:  # the server may be gone; the region is still ours to free
                logging.getLogger(__name__).warning("could not unregister %s: %s", name, error)
            shm.destroy_shared_memory_region(handle)
        self.regions.clear()
        self.client.close()


def _outputs_of(metadata: Any) -> Sequence[Any]:
    outputs: Sequence[Any] = metadata["outputs"] if isinstance(metadata, dict) else metadata.outputs
    return outputs


def _triton_datatype(array: Any) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return str(np_to_triton_dtype(array.dtype))


class PeerTransport:
    """HTTP to a peer (BentoML, Ray Serve, TorchServe) or the naive service, as its client would."""

    def __init__(self, config: LoadConfig, user_number: int) -> None:
        from geventhttpclient import HTTPClient

        host, port = config.url.rsplit(":", 1)
        self.client = HTTPClient(
            host, int(port), network_timeout=config.timeout_s, connection_timeout=config.timeout_s
        )
        self.peer = config.protocol
        self.task = task_for(config.protocol, config.model)

    def prepare(self, inputs: Inputs) -> Any:
        """The request the peer takes, serialised once."""
        return wire.encode(self.peer, self.task, inputs)

    def send(self, prepared: Any) -> int:
        """One POST; anything but a 200 with a JSON answer is a failure."""
        response = self.client.post(prepared.path, body=prepared.body, headers=prepared.headers)
        body = response.read()
        wire.decode(response.status_code, body)
        return len(body)

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


TRANSPORTS: dict[str, Callable[[LoadConfig, int], Transport]] = {
    "http": TritonTransport,
    "grpc": TritonTransport,
    **dict.fromkeys(wire.CALLERS, PeerTransport),
}


# --- the user ------------------------------------------------------------------------------


class TritonUser(User):
    """Calls CONFIG.model back to back (closed loop) or on the shared schedule (open loop)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Connect and serialise every request's inputs, outside the timed region."""
        number = next(_USER_NUMBERS)
        self.transport: Transport = TRANSPORTS[CONFIG.protocol](CONFIG, number)
        self.prepared = [self.transport.prepare(inputs) for inputs in workload().requests]
        self.position = number * 7  # users start at different sentences

    def on_stop(self) -> None:
        """Close the connection."""
        self.transport.close()

    @task
    def call(self) -> None:
        """One request, timed and reported through events.request."""
        TRAFFIC.open.wait()
        TRAFFIC.in_flight += 1
        try:
            late_s = self._wait_for_slot() if SCHEDULE.rate else 0.0
            self._send(late_s)
        finally:
            TRAFFIC.in_flight -= 1

    def _wait_for_slot(self) -> float:
        """Sleep until this call's send time; return how late it is sent (seconds)."""
        slot = SCHEDULE.claim()
        ahead = slot - time.perf_counter()
        if ahead > 0:
            gevent.sleep(ahead)
        return max(0.0, time.perf_counter() - slot)

    def _send(self, late_s: float) -> None:
        prepared = self.prepared[self.position % len(self.prepared)]
        self.position += 1
        error: Exception | None = None
        length = 0
        began = time.perf_counter()
        try:
            length = self.transport.send(prepared)
        except Exception as caught:  # reported to Locust below, never swallowed
            error = caught
        elapsed_ms = (time.perf_counter() - began) * 1000.0
        self.environment.events.request.fire(
            request_type=CONFIG.protocol,
            name=CONFIG.model,
            response_time=elapsed_ms,
            response_length=length,
            exception=error,
            context={"late_ms": late_s * 1000.0, "delayed": late_s > DELAY_TOLERANCE_S},
        )


# --- Locust's own command line and web UI --------------------------------------------------


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _add_options(parser: Any) -> None:
    parser.add_argument("--model", default="", help="served model to call")
    parser.add_argument("--url", default=DEFAULT_URLS["http"], help="host:port of the server")
    parser.add_argument("--protocol", default="http", choices=PROTOCOLS)
    parser.add_argument("--repository", default="model_repository", help="Triton repository")
    parser.add_argument("--shm", action="store_true", help="inputs via system shared memory")
    parser.add_argument("--rate", type=float, default=0.0, help="offered requests/s (open loop)")
    parser.add_argument("--arrival", default="constant", choices=ARRIVALS)
    parser.add_argument("--image", default="", help="image file to send")


@events.init.add_listener  # type: ignore[untyped-decorator]
def _configure_from_options(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None and getattr(options, "model", None):
        configure(
            LoadConfig(
                model=options.model,
                url=options.url,
                protocol=options.protocol,
                repository=options.repository,
                shm=options.shm,
                rate=options.rate,
                arrival=options.arrival,
                image=options.image,
            )
        )
