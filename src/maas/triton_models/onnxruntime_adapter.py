"""Triton Python-backend adapter that serves an ONNX file with ONNX Runtime.

`maas serve` puts this in place of a model whose config names the onnxruntime backend when
the bundled server lacks that backend. Name, inputs, outputs, batching and instance groups
stay as configured; Triton's own scheduler forms the batches.

Variable-length inputs (text): requests of different lengths are padded with zeros to a
common length. With `padding_strategy: buckets` the rows of a formed batch are grouped by
real length (counted from the `padding_mask` input) so that little compute goes to padding;
with `longest`, the batch is padded to its longest row. Real and computed token counts are
exported as Prometheus counters on Triton's metrics endpoint.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

DEFAULT_MAX_WASTE = 0.25  # a bucket may compute at most 25 % more positions than real tokens


class TritonPythonModel:
    """Run each batch the dynamic batcher formed with as few ONNX Runtime calls as pay."""

    def initialize(self, args: dict[str, str]) -> None:
        """Open an ONNX Runtime session on the version's artifact."""
        config = json.loads(args["model_config"])
        parameters = {
            key: value["string_value"] for key, value in config.get("parameters", {}).items()
        }
        artifact = Path(args["model_repository"]) / args["model_version"] / parameters["artifact"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_threads", os.cpu_count() or 1))
        self.session = ort.InferenceSession(
            str(artifact), options, providers=["CPUExecutionProvider"]
        )
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
            if not self.batched:
                results = [self.run(feed) for feed in feeds]
            else:
                results = self.run_batch(feeds)
        except Exception as error:  # ONNX Runtime raises its own exception types
            failure = pb_utils.TritonError(f"ONNX Runtime failed: {error}")
            return [pb_utils.InferenceResponse(error=failure) for _ in requests]
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor(name, result[name]) for name in self.output_names]
            )
            for result in results
        ]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One ONNX Runtime call."""
        outputs = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, outputs, strict=True))

    def run_batch(self, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Rows of all requests, grouped, run, and handed back to their requests."""
        sizes = [len(feed[self.input_names[0]]) for feed in feeds]
        rows = {name: [row for feed in feeds for row in feed[name]] for name in self.input_names}
        lengths = self.row_lengths(feeds)
        if lengths is not None:  # right-padded text: drop each row's padding, re-pad per group
            rows = {
                name: [row[:n] for row, n in zip(values, lengths, strict=True)]
                for name, values in rows.items()
            }
        groups = self.group_rows(lengths, sum(sizes))
        outputs: dict[str, list[Any]] = {name: [None] * sum(sizes) for name in self.output_names}
        computed = 0
        for group in groups:
            joined = {name: pad_and_stack([rows[name][i] for i in group]) for name in rows}
            computed += joined[self.input_names[0]].shape[0] * padded_length(
                joined[self.input_names[0]]
            )
            for name, values in self.run(joined).items():
                for index, value in zip(group, values, strict=True):
                    outputs[name][index] = value
        if self.tokens is not None and lengths is not None:
            self.tokens[0].increment(int(sum(lengths)))
            self.tokens[1].increment(int(computed))
            self.tokens[2].increment(len(groups))
        bounds = np.cumsum([0, *sizes])
        return [
            {name: np.stack(values[start:stop]) for name, values in outputs.items()}
            for start, stop in itertools.pairwise(bounds)
        ]

    def row_lengths(self, feeds: list[dict[str, np.ndarray]]) -> list[int] | None:
        """Real tokens per row, from the padding mask; None for fixed-size models."""
        if self.padding_mask is None:
            return None
        return [int(row.sum()) for feed in feeds for row in feed[self.padding_mask]]

    def group_rows(self, lengths: list[int] | None, count: int) -> list[list[int]]:
        """Row indices per ONNX Runtime call: one call for fixed-size rows."""
        if lengths is None:
            return [list(range(count))]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        if self.strategy != "buckets":
            return [order]
        return length_buckets(order, lengths, self.max_waste)


def length_buckets(order: list[int], lengths: list[int], max_waste: float) -> list[list[int]]:
    """Greedy buckets over rows sorted by length: each computes ≤ (1 + max_waste) × real tokens."""
    buckets: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        length = max(lengths[index], 1)
        if current and (len(current) + 1) * length > (1 + max_waste) * (real + length):
            buckets.append(current)
            current, real = [], 0
        current.append(index)
        real += length
    if current:
        buckets.append(current)
    return buckets


def pad_and_stack(rows: list[np.ndarray]) -> np.ndarray:
    """Stack rows, right-padding with zeros to the longest along every axis."""
    shape = tuple(max(sizes) for sizes in zip(*(row.shape for row in rows), strict=True))
    if all(row.shape == shape for row in rows):
        return np.stack(rows)
    stacked = np.zeros((len(rows), *shape), dtype=rows[0].dtype)
    for position, row in enumerate(rows):
        stacked[(position, *(slice(0, size) for size in row.shape))] = row
    return stacked


def padded_length(batch: np.ndarray) -> int:
    """Positions per row the runtime computes."""
    return int(np.prod(batch.shape[1:])) if batch.ndim > 1 else 1


def token_counters(model: str) -> tuple[tuple[Any, ...], tuple[Any, Any, Any]]:
    """Prometheus counters (real tokens, computed positions, runtime calls) and their families.

    The families must outlive their metrics, so the model keeps both.
    """
    labels = {"model": model}
    real = pb_utils.MetricFamily(
        name="maas_real_tokens_total",
        description="Tokens of real text the model received",
        kind=pb_utils.MetricFamily.COUNTER,
    )
    computed = pb_utils.MetricFamily(
        name="maas_computed_tokens_total",
        description="Token positions the runtime computed, padding included",
        kind=pb_utils.MetricFamily.COUNTER,
    )
    calls = pb_utils.MetricFamily(
        name="maas_runtime_calls_total",
        description="ONNX Runtime calls made for the formed batches",
        kind=pb_utils.MetricFamily.COUNTER,
    )
    families = (real, computed, calls)
    return families, (
        real.Metric(labels=labels),
        computed.Metric(labels=labels),
        calls.Metric(labels=labels),
    )
