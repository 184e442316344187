"""What Locust users call and when: their settings and the open-loop schedule.

Kept apart from the users themselves, which import Locust (and so patch the standard library
for gevent): this module is safe to import anywhere.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from maas.base.triton.endpoints import DEFAULT_URLS

from .peers.tasks import CALLERS

PROTOCOLS = ("http", "grpc", *CALLERS)
ARRIVALS = ("constant", "poisson")
DELAY_TOLERANCE_S = 0.002  # a call sent later than this after its slot counts as delayed


@dataclass
class LoadConfig:
    """What the users call and how; set once per process before users start."""

    model: str = ""
    url: str = DEFAULT_URLS["http"]
    # http | grpc: Triton; naive: the FastAPI baseline service; bentoml | ray | torchserve: peers
    protocol: str = "http"
    repository: str = "model_repository"
    shm: bool = False  # send inputs through system shared memory (Triton only)
    rate: float = 0.0  # requests/s offered by all users together; 0 = closed loop
    arrival: str = "constant"  # constant | poisson spacing of the offered requests
    timeout_s: float = 60.0
    image: str = ""  # image file to send; empty = the bundled photograph
    seed: int = 0

    def check(self) -> None:
        """Refuse settings that cannot be run, naming what was expected."""
        if not self.model:
            raise ValueError("no model given; pass --model NAME")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival {self.arrival!r}: expected one of {', '.join(ARRIVALS)}")
        if self.shm and self.protocol not in ("http", "grpc"):
            raise ValueError(f"shared memory is a Triton feature; {self.protocol} has none")
        if self.rate < 0:
            raise ValueError(f"rate must be ≥ 0 requests/s, got {self.rate}")


class ArrivalSchedule:
    """Send times for all users together: evenly spaced or Poisson, at a given rate."""

    def __init__(self, rate: float, arrival: str, seed: int = 0) -> None:
        self.rate = rate
        self.arrival = arrival
        self.random = random.Random(seed)
        self.next_at = time.perf_counter()

    def restart(self, rate: float | None = None) -> None:
        """Start the schedule afresh from now, optionally at a new rate."""
        self.rate = self.rate if rate is None else rate
        self.next_at = time.perf_counter()

    def claim(self) -> float:
        """The next send time (perf_counter seconds); each slot goes to exactly one caller."""
        slot = self.next_at
        gap = 1.0 / self.rate if self.arrival == "constant" else self.random.expovariate(self.rate)
        self.next_at += gap
        return slot
