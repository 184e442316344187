"""The monitoring files for one stack, written into one folder.

prometheus.yml                         scrape configs for the stack's three endpoints
maas_rules.yml                         recording and alert rules
grafana/dashboards/maas.json           the dashboard
grafana/provisioning/dashboards/maas.yml, grafana/provisioning/datasources/maas.yml
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .dashboard import render_dashboard, render_dashboard_provider, render_datasource
from .prometheus import RULES_FILE, StackUrls, render_prometheus_config
from .rules import RuleOptions, render_rules

DASHBOARDS = "grafana/dashboards"
GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/maas"  # where provisioning looks


@dataclass(frozen=True)
class MonitoringFiles:
    """What the files say: which stack, how often, which budgets, where Prometheus answers."""

    urls: StackUrls = field(default_factory=StackUrls.on_host)
    scrape_interval_s: float = 5.0
    rules: RuleOptions = field(default_factory=RuleOptions)
    prometheus_url: str = "http://127.0.0.1:9090"

    def contents(self) -> dict[str, str]:
        """Relative path → text."""
        return {
            "prometheus.yml": render_prometheus_config(self.urls, self.scrape_interval_s),
            RULES_FILE: render_rules(self.rules),
            f"{DASHBOARDS}/maas.json": render_dashboard(),
            "grafana/provisioning/dashboards/maas.yml": render_dashboard_provider(
                GRAFANA_DASHBOARDS_PATH
            ),
            "grafana/provisioning/datasources/maas.yml": render_datasource(self.prometheus_url),
        }

    def write(self, folder: Path) -> list[Path]:
        """Write every file under folder; the paths written."""
        written = []
        for relative, text in self.contents().items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
        return written
