"""monitoring/: scraping, the alert and recording rules, and the dashboard, for prometheus-operator.

The rules and the dashboard are the ones `maas monitor` writes (maas.monitor); only their
packaging differs.
"""

from __future__ import annotations

from maas.monitor.dashboard import render_dashboard
from maas.monitor.rules import RuleOptions, rule_groups
from maas.monitor.signals import JOBS

from .manifests import Manifest, manifest, metadata
from .options import DeployOptions
from .workload import SERVING

MONITORING = "monitoring"
SCRAPE_INTERVAL = "15s"
MONITORING_API = "monitoring.coreos.com/v1"


def scrape_endpoint(port: str, job: str) -> dict[str, object]:
    """One scraped port; `job` set to the name the maas rules and dashboard expect."""
    relabel = {"action": "replace", "targetLabel": "job", "replacement": job}
    return {"port": port, "path": "/metrics", "interval": SCRAPE_INTERVAL, "relabelings": [relabel]}


def service_monitor(options: DeployOptions) -> Manifest:
    """Scrape Triton's and the gateway's metrics from every serving pod."""
    spec = {
        "selector": {"matchLabels": options.labels(SERVING)},
        "namespaceSelector": {"matchNames": [options.namespace]},
        "endpoints": [
            scrape_endpoint("triton-metrics", JOBS["triton"]),
            scrape_endpoint("gateway-metrics", JOBS["gateway"]),
        ],
    }
    meta = metadata(options, options.name, MONITORING)
    return manifest(MONITORING_API, "ServiceMonitor", meta, spec=spec)


def prometheus_rule(options: DeployOptions, rules: RuleOptions) -> Manifest:
    """The recording and alert rules of maas (maas_rules.yml) as a PrometheusRule."""
    meta = metadata(options, options.name, MONITORING)
    return manifest(MONITORING_API, "PrometheusRule", meta, spec=rule_groups(rules))


def dashboard_config_map(options: DeployOptions) -> Manifest:
    """The Grafana dashboard, labelled for Grafana's dashboard sidecar (kube-prometheus-stack)."""
    meta = metadata(options, f"{options.name}-dashboard", MONITORING)
    meta["labels"]["grafana_dashboard"] = "1"
    return manifest("v1", "ConfigMap", meta, data={"maas.json": render_dashboard()})


def monitoring_files(options: DeployOptions) -> dict[str, list[Manifest]]:
    """monitoring/'s scrape, rule and dashboard files (autoscaling adds its own)."""
    return {
        "servicemonitor.yaml": [service_monitor(options)],
        "prometheusrule.yaml": [prometheus_rule(options, RuleOptions())],
        "dashboard.yaml": [dashboard_config_map(options)],
    }
