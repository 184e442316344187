"""Locust users for streamed generation: time to first token, inter-token latency, tokens/s.

`locust -f benchmarks/locustfile_generate.py --model tinygpt_generate --url localhost:8001
--protocol grpc`. Each stream reports three kinds of entries through `events.request`:
`<model> ttft` (request sent → first text, once per stream), `<model> itl` (between
consecutive texts, once per later token: its requests/s is the tokens/s after the first) and
`<model> stream` (the whole stream; response_length = its tokens). Prompts are the first words
of Python's help topics; decoding is greedy.

Importing this module switches gRPC to gevent, which must happen before any channel exists.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

from locust import User, constant, events, task  # noqa: E402

from maas.base.sentences import help_topic_prompts  # noqa: E402
from maas.clients.generate import TextGenerator  # noqa: E402

SETTINGS: dict[str, Any] = {"model": "", "url": "localhost:8000", "protocol": "http"}
SETTINGS |= {"max_tokens": 48}
_NUMBERS = itertools.count()


class GenerationUser(User):
    """Streams one prompt after another and reports each stream's token timings."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """One client per user; users start at different prompts."""
        self.generator = TextGenerator(
            SETTINGS["model"], SETTINGS["url"], SETTINGS["protocol"], timeout_s=120.0
        )
        self.prompts = help_topic_prompts()
        self.position = next(_NUMBERS) * 7

    def on_stop(self) -> None:
        """Close the client."""
        self.generator.close()

    @task
    def stream(self) -> None:
        """One stream, timed token by token."""
        prompt = self.prompts[self.position % len(self.prompts)]
        self.position += 1
        model, kind = SETTINGS["model"], SETTINGS["protocol"]
        began = last = time.perf_counter()
        tokens, error = 0, None
        try:
            for _ in self.generator.stream(prompt, max_tokens=SETTINGS["max_tokens"]):
                now = time.perf_counter()
                name = f"{model} ttft" if tokens == 0 else f"{model} itl"
                self.report(kind, name, (now - last) * 1000.0, 1, None)
                last, tokens = now, tokens + 1
        except Exception as caught:  # reported to Locust below, never swallowed
            error = caught
        total_ms = (time.perf_counter() - began) * 1000.0
        self.report(kind, f"{model} stream", total_ms, tokens, error)

    def report(
        self, kind: str, name: str, milliseconds: float, length: int, error: Exception | None
    ) -> None:
        """One entry in Locust's statistics."""
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=milliseconds,
            response_length=length,
            exception=error,
            context={},
        )


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _add_options(parser: Any) -> None:
    parser.add_argument("--model", default="", help="generation model to call")
    parser.add_argument("--url", default="localhost:8000", help="host:port of the server")
    parser.add_argument("--protocol", default="http", choices=("http", "grpc"))
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per stream")


@events.init.add_listener  # type: ignore[untyped-decorator]
def _configure_from_options(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None and getattr(options, "model", None):
        SETTINGS.update(
            model=options.model,
            url=options.url,
            protocol=options.protocol,
            max_tokens=options.max_tokens,
        )
