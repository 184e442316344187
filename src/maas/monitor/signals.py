"""The metrics the stack exports and what they mean, in one place.

Triton (2.51, summaries on) exports per model and version; the gateway (HAProxy) per backend,
one admitting backend and one refusing backend per model and protocol (`gateway_config`); the
stack's own endpoint (`stack_metrics`) exports restarts and memory. The alert rules, the
dashboard and `maas top` all derive their numbers from the names and rules below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maas.serve.stack_metrics import GATEWAY_RESTARTS as GATEWAY_RESTARTS
from maas.serve.stack_metrics import RESIDENT_BYTES as RESIDENT_BYTES
from maas.serve.stack_metrics import SHM_FREE_BYTES as SHM_FREE_BYTES
from maas.serve.stack_metrics import SHM_REGION_BYTES as SHM_REGION_BYTES
from maas.serve.stack_metrics import SHM_SIZE_BYTES as SHM_SIZE_BYTES
from maas.serve.stack_metrics import STUB_RELOADS as STUB_RELOADS
from maas.serve.stack_metrics import TRITON_RESTARTS as TRITON_RESTARTS

# Triton, per model and version (durations are cumulative microseconds).
SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"  # labelled by reason
INFERENCES = "nv_inference_count"  # batch rows computed
EXECUTIONS = "nv_inference_exec_count"  # model executions (formed batches)
QUEUE_US = "nv_inference_queue_duration_us"
COMPUTE_US = (
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
)
LATENCY_SUMMARY = "nv_inference_request_summary_us"  # quantile-labelled, a sliding window
# The runtime adapters' counters, on Triton's endpoint.
REAL_TOKENS = "maas_real_tokens_total"
COMPUTED_TOKENS = "maas_computed_tokens_total"

# HAProxy, per backend (the label `proxy`).
GATEWAY_REQUESTS = "haproxy_backend_http_requests_total"
GATEWAY_RESPONSES = "haproxy_backend_http_responses_total"  # labelled by code class
GATEWAY_QUEUE_TIMEOUTS = "haproxy_backend_connection_errors_total"  # waited their limit out
GATEWAY_SESSIONS = "haproxy_backend_current_sessions"  # in flight at Triton
GATEWAY_WAITING = "haproxy_backend_current_queue"


# Prometheus job names, one per endpoint.
JOBS = {"triton": "maas-triton", "gateway": "maas-gateway", "stack": "maas-stack"}

BACKEND = re.compile(r"^(http|grpc)_(model|refused)_(.+)$")


@dataclass(frozen=True)
class GatewayBackend:
    """What a gateway backend's name says: protocol, admitting or refusing, and the model."""

    protocol: str
    refusing: bool
    model: str

    @classmethod
    def parse(cls, proxy: str) -> GatewayBackend | None:
        """The backend behind a `proxy` label, or None for the gateway's other proxies."""
        found = BACKEND.match(proxy)
        if found is None:
            return None
        protocol, kind, model = found.groups()
        return cls(protocol, kind == "refused", model)

    def refusals_metric(self) -> tuple[str, dict[str, str]]:
        """The counter (and label filter) of this refusing backend's refusals.

        Over HTTP the refusing backend answers 503s (bad requests are answered before routing);
        over gRPC it answers trailers-only 200s carrying UNAVAILABLE, so every request counts.
        """
        if self.protocol == "http":
            return GATEWAY_RESPONSES, {"code": "5xx"}
        return GATEWAY_REQUESTS, {}


# PromQL: a gateway series with `model` and `protocol` labels read off the backend's name.
def by_model_and_protocol(expression: str) -> str:
    """Sum an expression over HAProxy backends into (model, protocol) series."""
    model = f'label_replace({expression}, "model", "$3", "proxy", "{BACKEND.pattern}")'
    both = f'label_replace({model}, "protocol", "$1", "proxy", "{BACKEND.pattern}")'
    return f"sum by (model, protocol) ({both})"
