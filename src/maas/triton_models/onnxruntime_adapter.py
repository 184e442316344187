"""Triton Python-backend adapter that serves an ONNX file with ONNX Runtime.

`maas serve` puts this in place of a model whose config names the onnxruntime backend when
the bundled server lacks that backend. Name, inputs, outputs, batching and instance groups
stay as configured; Triton's own scheduler forms the batches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Run each batch the dynamic batcher formed as one ONNX Runtime call."""

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

    def execute(self, requests: list[Any]) -> list[Any]:
        """Join the requests along the batch axis, run once, split the outputs back."""
        feeds = {
            name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests]
            for name in self.input_names
        }
        if not self.batched:
            return [
                self.run({name: arrays[i] for name, arrays in feeds.items()})
                for i in range(len(requests))
            ]
        sizes = [array.shape[0] for array in feeds[self.input_names[0]]]
        joined = {
            name: np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
            for name, arrays in feeds.items()
        }
        try:
            outputs = self.session.run(self.output_names, joined)
        except Exception as error:  # ONNX Runtime raises its own exception types
            failure = pb_utils.TritonError(f"ONNX Runtime failed: {error}")
            return [pb_utils.InferenceResponse(error=failure) for _ in requests]
        bounds = np.cumsum(sizes)[:-1]
        per_request = [np.split(output, bounds) for output in outputs]
        return [
            pb_utils.InferenceResponse(
                [
                    pb_utils.Tensor(name, parts[i])
                    for name, parts in zip(self.output_names, per_request, strict=True)
                ]
            )
            for i in range(len(requests))
        ]

    def run(self, feeds: dict[str, np.ndarray]) -> Any:
        """One request on a model without a batch axis."""
        try:
            outputs = self.session.run(self.output_names, feeds)
        except Exception as error:  # ONNX Runtime raises its own exception types
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"ONNX Runtime failed: {error}")
            )
        return pb_utils.InferenceResponse(
            [
                pb_utils.Tensor(name, value)
                for name, value in zip(self.output_names, outputs, strict=True)
            ]
        )
