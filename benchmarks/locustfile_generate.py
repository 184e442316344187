"""Locust entry point for streamed generation (`maas.benchmarks.locust_generation`).

`locust -f benchmarks/locustfile_generate.py --model tinygpt_generate --protocol grpc
--url localhost:8001`
"""

from maas.benchmarks.locust_generation import GenerationUser

__all__ = ["GenerationUser"]
