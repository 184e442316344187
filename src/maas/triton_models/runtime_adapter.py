"""Triton Python-backend adapter that serves an artifact with maas's own runtime runners.

`maas serve` puts this in place of a model whose config names a backend the bundled server
lacks (onnxruntime, openvino, tensorrt). Name, inputs, outputs, batching and instance groups
stay as configured and Triton's scheduler forms the batches; the artifact runs through the same
runner that export verified and timed. It runs in the embedded server's stub, whose Python is
maas's own environment, so it imports maas.

Variable-length inputs (text): each row's padding is dropped and rows are re-padded per runtime
call, grouped by real length (`padding_strategy: buckets`) or all together (`longest`). Real and
computed token counts are exported as Prometheus counters on Triton's metrics endpoint.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from maas.runtimes import RuntimeOptions, load_runner
from maas.server.batching import DEFAULT_MAX_WASTE, plan_calls, positions


class TritonPythonModel:
    """Run each formed batch with as few runtime calls as pay."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the version's artifact with the runtime its config names."""
        config = json.loads(args["model_config"])
        parameters = {
            key: value["string_value"] for key, value in config.get("parameters", {}).items()
        }
        artifact = Path(args["model_repository"]) / args["model_version"] / parameters["artifact"]
        options = RuntimeOptions(
            precision=parameters.get("precision", "fp32"),
            threads=int(parameters.get("threads", "0")),
        )
        self.runner = load_runner(parameters["runtime"], artifact, options)
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_names = [tensor["name"] for tensor in config["output"]]
        self.padding_mask = parameters.get("padding_mask") or None
        self.strategy = parameters.get("padding_strategy", "buckets")
        self.max_waste = float(parameters.get("max_padding_waste", DEFAULT_MAX_WASTE))
        self.families: tuple[Any, ...] = ()
        self.tokens: tuple[Any, Any, Any] | None = None
        if self.padding_mask is not None:
            self.families, self.tokens = token_counters(args["model_name"])

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer every request of the formed batch; a runtime failure fails them all clearly."""
        feeds = [
            {
                name: pb_utils.get_input_tensor_by_name(r, name).as_numpy()
                for name in self.input_names
            }
            for r in requests
        ]
        try:
            results = (
                self.run_batch(feeds) if self.batched else [self.runner.infer(f) for f in feeds]
            )
        except Exception as error:  # runtimes raise their own exception types
            failure = pb_utils.TritonError(f"{self.runner.describe()['runtime']} failed: {error}")
            return [pb_utils.InferenceResponse(error=failure) for _ in requests]
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor(name, result[name]) for name in self.output_names]
            )
            for result in results
        ]

    def run_batch(self, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Rows of all requests, grouped, run, and handed back to their requests."""
        sizes = [len(feed[self.input_names[0]]) for feed in feeds]
        bounds = list(itertools.accumulate(sizes, initial=0))
        if self.padding_mask is None:  # fixed-size rows: one call on the joined requests
            joined = {name: np.concatenate([feed[name] for feed in feeds]) for name in feeds[0]}
            results = self.runner.infer(joined)
            return [
                {name: values[start:stop] for name, values in results.items()}
                for start, stop in itertools.pairwise(bounds)
            ]
        groups, calls, lengths = plan_calls(feeds, self.padding_mask, self.strategy, self.max_waste)
        outputs: dict[str, list[Any]] = {name: [None] * sum(sizes) for name in self.output_names}
        computed = 0
        for group, joined in zip(groups, calls, strict=True):
            computed += positions(joined[self.input_names[0]])
            for name, values in self.runner.infer(joined).items():
                for index, value in zip(group, values, strict=True):
                    outputs[name][index] = value
        if self.tokens is not None:
            self.tokens[0].increment(sum(lengths))
            self.tokens[1].increment(computed)
            self.tokens[2].increment(len(groups))
        return [
            {name: np.stack(values[start:stop]) for name, values in outputs.items()}
            for start, stop in itertools.pairwise(bounds)
        ]


def token_counters(model: str) -> tuple[tuple[Any, ...], tuple[Any, Any, Any]]:
    """Prometheus counters (real tokens, computed positions, runtime calls) and their families.

    The families must outlive their metrics, so the model keeps both.
    """
    labels = {"model": model}
    counter = pb_utils.MetricFamily.COUNTER
    real = pb_utils.MetricFamily(
        name="maas_real_tokens_total",
        description="Tokens of real text the model received",
        kind=counter,
    )
    computed = pb_utils.MetricFamily(
        name="maas_computed_tokens_total",
        description="Token positions the runtime computed, padding included",
        kind=counter,
    )
    calls = pb_utils.MetricFamily(
        name="maas_runtime_calls_total",
        description="Runtime calls made for the formed batches",
        kind=counter,
    )
    families = (real, computed, calls)
    return families, (
        real.Metric(labels=labels),
        computed.Metric(labels=labels),
        calls.Metric(labels=labels),
    )
