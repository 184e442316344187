"""Reading a metrics endpoint into samples that can be summed by name and labels.

The names are kept as the page writes them, as Prometheus stores them (prometheus_client's
parser would rename a counter `x` to `x_total`, and these names must match the rules').
"""

from __future__ import annotations

import math
import re
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from maas.base.errors import MonitorError

Labels = dict[str, str]


@dataclass
class Snapshot:
    """Every sample of one or more endpoints, read at one moment (monotonic seconds)."""

    at: float
    samples: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, at: float | None = None) -> Snapshot:
        """Samples of a Prometheus text page."""
        samples: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
        for line in text.splitlines():
            parsed = parse_line(line)
            if parsed is not None:
                name, labels, value = parsed
                samples[name].append((labels, value))
        return cls(time.monotonic() if at is None else at, dict(samples))

    def merged(self, other: Snapshot) -> Snapshot:
        """The samples of both snapshots (e.g. Triton's and the gateway's)."""
        samples = {name: list(values) for name, values in self.samples.items()}
        for name, values in other.samples.items():
            samples.setdefault(name, []).extend(values)
        return Snapshot(self.at, samples)

    def series(self, name: str, **match: str) -> list[tuple[Labels, float]]:
        """The samples of name whose labels include match."""
        return [
            (labels, value)
            for labels, value in self.samples.get(name, [])
            if all(labels.get(key) == wanted for key, wanted in match.items())
        ]

    def total(self, name: str, **match: str) -> float:
        """The sum of name's matching samples (NaN ignored); 0 if there are none."""
        return sum(value for _, value in self.series(name, **match) if not math.isnan(value))

    def label_values(self, name: str, label: str) -> set[str]:
        """The values label takes in name's samples."""
        return {labels[label] for labels, _ in self.samples.get(name, []) if label in labels}

    def names(self) -> set[str]:
        """Every sample name, as the page writes it."""
        return set(self.samples)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')
ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_line(line: str) -> tuple[str, Labels, float] | None:
    """(name, labels, value) of one sample line; None for comments, blanks and other lines."""
    found = SAMPLE.match(line.strip())
    if found is None or line.startswith("#"):
        return None
    name, label_text, value = found.groups()
    labels = {
        key: re.sub(r"\\[\\\"n]", lambda escape: ESCAPES[escape.group()], raw)
        for key, raw in LABEL.findall(label_text or "")
    }
    try:
        return name, labels, float(value)
    except ValueError:
        return None


def read_metrics(url: str, timeout_s: float = 5.0) -> str:
    """The text of a metrics page, or a MonitorError naming the URL."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return str(reply.read().decode())
    except OSError as failure:
        raise MonitorError(f"cannot read metrics from {url}: {failure}") from failure


def scrape(*urls: str, timeout_s: float = 5.0) -> Snapshot:
    """One snapshot of every URL, merged; an empty URL is skipped."""
    snapshot = Snapshot(time.monotonic())
    for url in filter(None, urls):
        snapshot = snapshot.merged(Snapshot.parse(read_metrics(url, timeout_s)))
    return snapshot
