"""Autoscaling on queue time: a prometheus-adapter rule and the HPA that reads it.

The metric is each pod's queue time per request, weighted by requests: the sum of the rates
of queue time over the sum of the rates of successes (maas.monitor.rules, the expression the
alerts use), not Triton's chart's average of per-model ratios.
"""

from __future__ import annotations

from typing import Any

from maas.monitor import signals as s
from maas.monitor.rules import queue_seconds_per_request

from .manifests import Manifest, manifest, metadata, to_yaml
from .options import DeployOptions

METRIC = "maas_queue_seconds_per_request"
WINDOW = "2m"  # ≥ 8 scrapes at 15 s: one slow scrape does not move the replica count
ADAPTER_CONFIG = "config.yaml"
# Up fast: double, or add 4 pods, every 30 s, whichever is more; no stabilization.
SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 30},
        {"type": "Pods", "value": 4, "periodSeconds": 30},
    ],
}
SCALE_DOWN_POLICY = {"type": "Pods", "value": 1, "periodSeconds": 120}  # one pod per 2 minutes


def adapter_rules() -> dict[str, Any]:
    """prometheus-adapter's `rules:`: the per-pod metric, idle pods reading 0."""
    query = queue_seconds_per_request(
        by="<<.GroupBy>>", selector="<<.LabelMatchers>>", window=WINDOW, idle_as_zero=True
    )
    rule = {
        "seriesQuery": f'{s.QUEUE_US}{{namespace!="",pod!=""}}',
        "resources": {
            "overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        },
        "name": {"matches": f"^{s.QUEUE_US}$", "as": METRIC},
        "metricsQuery": query,
    }
    return {"rules": [rule]}


def adapter_config_map(options: DeployOptions) -> Manifest:
    """The adapter's rules as a config file (merge into the adapter's own configuration)."""
    meta = metadata(options, f"{options.name}-adapter-rules", "autoscaling")
    return manifest("v1", "ConfigMap", meta, data={ADAPTER_CONFIG: to_yaml(adapter_rules())})


def as_quantity(seconds: float) -> str:
    """Seconds as a Kubernetes quantity in milli-units (0.05 → 50m)."""
    return f"{round(seconds * 1000)}m"


def autoscaler(options: DeployOptions) -> Manifest:
    """Scale the serving Deployment to hold each pod's queue time per request at the target."""
    target = {"type": "AverageValue", "averageValue": as_quantity(options.queue_target_s)}
    scale_down = {
        "stabilizationWindowSeconds": options.scale_down_window_s,
        "selectPolicy": "Min",
        "policies": [SCALE_DOWN_POLICY],
    }
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.name},
        "minReplicas": options.min_replicas,
        "maxReplicas": options.max_replicas,
        "metrics": [{"type": "Pods", "pods": {"metric": {"name": METRIC}, "target": target}}],
        "behavior": {"scaleUp": SCALE_UP, "scaleDown": scale_down},
    }
    meta = metadata(options, options.name, "autoscaling")
    return manifest("autoscaling/v2", "HorizontalPodAutoscaler", meta, spec=spec)


def autoscaling_files(options: DeployOptions) -> dict[str, list[Manifest]]:
    """The adapter rules and the HPA."""
    return {
        "adapter-rules.yaml": [adapter_config_map(options)],
        "hpa.yaml": [autoscaler(options)],
    }
