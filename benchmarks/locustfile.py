"""Locust entry point: `locust -f benchmarks/locustfile.py --model resnet50_image`.

Opens Locust's web UI with maas's users (see `maas.benchmarks.locust_users`); `--protocol`,
`--url`, `--rate`, `--arrival` and `--shm` choose how the model is called. `maas bench` runs the
same users headless, with clean measurement windows, server statistics and a report.
"""

from maas.benchmarks.locust_users import TritonUser

__all__ = ["TritonUser"]
