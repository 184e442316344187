"""Triton Python-backend adapter that serves an artifact with maas's own runtime runners.

`maas serve` puts this in place of a model whose config names a backend the bundled server
lacks (onnxruntime, openvino, tensorrt). Name, inputs, outputs, batching and instance groups
stay as configured and Triton's scheduler forms the batches; the batch runs through
`maas.base.served.adapter.ServedModelRunner`, the same code the benchmarks' limit calls. It runs
in the embedded server's stub, whose Python is maas's own environment, so it imports maas.
Real and computed token counts are exported as Prometheus counters on Triton's metrics endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils

from maas.base.served.adapter import Placement, ServedModelRunner, ServedSignature, TokenCounts
from maas.base.triton.config import json_parameters
from maas.base.triton.parameters import AdapterParameters


class TritonPythonModel:
    """Run each formed batch with as few runtime calls as pay."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the version's artifact with the runtime its config names."""
        config = json.loads(args["model_config"])
        parameters = AdapterParameters.read(json_parameters(config))
        folder = Path(args["model_repository"]) / args["model_version"]
        self.signature = ServedSignature.of_json(config)
        placement = Placement.of_instance(args, config)  # KIND_GPU: its GPU and CUDA graphs
        self.served = ServedModelRunner.load(parameters, folder, self.signature, placement)
        self.families: tuple[Any, ...] = ()
        self.tokens: tuple[Any, Any, Any] | None = None
        if self.served.padding_mask is not None:
            self.families, self.tokens = token_counters(args["model_name"])

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer every request of the formed batch; a runtime failure fails them all clearly."""
        feeds = [
            {
                name: pb_utils.get_input_tensor_by_name(r, name).as_numpy()
                for name in self.signature.inputs
            }
            for r in requests
        ]
        counts = TokenCounts()
        try:
            results = self.served.run(feeds, counts)
        except Exception as error:  # runtimes raise their own exception types
            failure = pb_utils.TritonError(f"{self.served.describe()['runtime']} failed: {error}")
            return [pb_utils.InferenceResponse(error=failure) for _ in requests]
        if self.tokens is not None:
            self.tokens[0].increment(counts.real)
            self.tokens[1].increment(counts.computed)
            self.tokens[2].increment(counts.calls)
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor(name, result[name]) for name in self.signature.outputs]
            )
            for result in results
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
