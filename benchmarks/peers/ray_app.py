"""The Ray Serve peer: one deployment with `@serve.batch`, as Ray Serve's batching guide shows.

`python -m maas.benchmarks.peers.ray_app PORT`, with the task and settings in the environment.
Starts a local Ray with the machine's cores, the HTTP proxy on PORT and the deployment on the
task's route, prints READY, and serves until SIGTERM. `max_ongoing_requests` is raised above
the batch size (Ray's default of 5 would cap every batch at 5), as the guide says to.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

import ray
from ray import serve
from starlette.requests import Request

from maas.benchmarks.peers.tasks import TASKS
from maas.benchmarks.peers.work import PeerEnvironment, PeerWork

REPLICAS = int(os.environ.get("MAAS_PEER_WORKERS", "1"))
WAIT_S = float(os.environ.get("MAAS_PEER_WAIT_MS", "10")) / 1000.0
TASK = TASKS[PeerEnvironment.from_environment().task]
CORES = os.cpu_count() or 1
QUIET_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}  # Serve's and the app's


@serve.deployment(
    num_replicas=REPLICAS,
    max_ongoing_requests=4 * TASK.max_batch,
    ray_actor_options={"num_cpus": CORES / REPLICAS},
)
class MaasPeer:
    """Serves the task named by MAAS_PEER_TASK with the artifact maas serves."""

    def __init__(self) -> None:
        self.work = PeerWork.from_environment()

    @serve.batch(max_batch_size=TASK.max_batch, batch_wait_timeout_s=WAIT_S)  # type: ignore[misc]
    async def run(self, bodies: list[bytes]) -> list[dict[str, list[float]]]:
        """One formed batch of raw request bodies."""
        return self.work.raw_bodies(bodies)

    async def __call__(self, request: Request) -> Any:
        """One HTTP request: the raw body in, its outputs out as JSON."""
        return await self.run(await request.body())


def main(port: int) -> None:
    """Start Ray and Serve, deploy, and serve until told to stop."""
    ray.init(
        num_cpus=CORES, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
    )
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config=QUIET_LOGGING,
    )
    serve.run(
        MaasPeer.bind(),  # type: ignore[attr-defined]
        route_prefix=f"/{TASK.route}",
        logging_config=QUIET_LOGGING,
    )
    print("READY", flush=True)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, _frame: stopping.append(number))
    while not stopping:
        time.sleep(0.2)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]))
