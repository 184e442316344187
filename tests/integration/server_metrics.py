"""What the server itself reports, read while a test runs: proof rather than guesses."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass

from tests.conftest import RunningServer


@dataclass(frozen=True)
class RequestCounts:
    """One reading of a model's request counters from Triton's metrics."""

    pending: int  # arrived, not yet handed to the model by the batcher
    succeeded: int  # answered


def model_metric(text: str, metric: str, model: str) -> int:
    """A Prometheus metric of one model (summed over its versions) from a metrics page."""
    pattern = rf'^{metric}{{[^}}]*model="{model}"[^}}]*}} (\S+)$'
    found = re.findall(pattern, text, flags=re.MULTILINE)
    assert found, f"no {metric} for {model} in the metrics:\n{text}"
    return sum(int(float(value)) for value in found)


def request_counts(server: RunningServer, model: str) -> RequestCounts:
    """Pending and answered requests of model, from one metrics page.

    Triton counts a request as pending from its arrival until the batcher hands it to the model,
    and as a success once answered: no request is in both at once.
    """
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return RequestCounts(
        model_metric(text, "nv_inference_pending_request_count", model),
        model_metric(text, "nv_inference_request_success", model),
    )


def pending_requests(server: RunningServer, model: str) -> int:
    """Requests Triton holds for model and has not started."""
    return request_counts(server, model).pending


def gateway_requests(server: RunningServer, backend: str) -> int:
    """Requests the gateway holds for one backend right now: queued there or at Triton."""
    url = f"http://127.0.0.1:{server.gateway_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    pattern = rf'^haproxy_backend_current_(?:sessions|queue){{proxy="{backend}"}} (\S+)$'
    found = re.findall(pattern, text, flags=re.MULTILINE)
    assert len(found) == 2, f"no gateway counts for {backend}:\n{text[:2000]}"
    return sum(int(float(value)) for value in found)


def gateway_sheds(server: RunningServer, protocol: str, model: str) -> int:
    """Requests the gateway has refused for model over protocol so far.

    Refused at the door (queue full) are answered in `<protocol>_refused_<model>`, 5xx over
    HTTP, trailers-only 200s over gRPC; refused after waiting their full time in the queue are
    the model backend's connection errors. Rejected bad requests (4xx) are not counted here.
    """
    url = f"http://127.0.0.1:{server.gateway_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()

    def value(metric: str, proxy: str, code: str = "") -> int:
        labels = rf'proxy="{proxy}"' + (rf',code="{code}"' if code else "")
        found = re.findall(rf"^{metric}{{{labels}}} (\S+)$", text, flags=re.MULTILINE)
        return int(float(found[0])) if found else 0

    refused = f"{protocol}_refused_{model}"
    at_door = (
        value("haproxy_backend_http_responses_total", refused, "5xx")
        if protocol == "http"
        else value("haproxy_backend_http_requests_total", refused)
    )
    waited = value("haproxy_backend_connection_errors_total", f"{protocol}_model_{model}")
    return at_door + waited
