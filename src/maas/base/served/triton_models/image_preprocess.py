"""Triton Python-backend model: encoded image bytes (JPEG/PNG) → normalised NCHW float32.

A thin shell over `maas.base.served.image`, which export copies beside this file as
`maas_image.py` so that the model runs where maas is not installed (NVIDIA's container).
"""

from __future__ import annotations

import json
from typing import Any

import triton_python_backend_utils as pb_utils
from maas_image import ImagePreprocessor, InvalidImageError


class TritonPythonModel:
    """Decode, resize and normalise each image of each request."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read the preprocessing settings from the model config."""
        config = json.loads(args["model_config"])
        self.preprocessor = ImagePreprocessor.from_config(config, args["model_name"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad image fails its own request with INVALID_ARG."""
        responses = []
        for request in requests:
            encoded = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            try:
                batch = self.preprocessor.preprocess_batch(encoded)
            except InvalidImageError as error:
                failure = pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=failure))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, batch)]))
        return responses
