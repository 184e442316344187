"""Triton Python-backend model: raw UTF-8 strings → input_ids and attention_mask.

A thin shell over `maas.base.served.text`, which export copies beside this file as
`maas_text.py` (with the tokenizer.json it loads) so that the model runs where maas is not
installed (NVIDIA's container).

Tokens are metered here, the one place that knows them: the gateway names the tenant, the
model called and the protocol in headers that Triton forwards as request parameters (also
through an ensemble), and each request adds its tokens (padding aside) to a counter with
those labels on Triton's metrics page. Requests without those parameters are not counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils
from maas_text import InvalidTextError, TextTokenizer

TOKENS_METRIC = "maas_tokenizer_tokens_total"
USAGE_PARAMETERS = ("maas-tenant", "maas-model", "maas-protocol")  # set by the gateway


class TritonPythonModel:
    """Tokenize each request's texts; pad within the request."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the tokenizer and its truncation policy."""
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        self.tokenizer = TextTokenizer.from_config(config, folder, args["model_name"])
        self.input_name = config["input"][0]["name"]
        self.tokens = pb_utils.MetricFamily(
            name=TOKENS_METRIC,
            description="Tokens of the texts a tenant sent (padding aside), by the model called",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self.counters: dict[tuple[str, str, str], Any] = {}

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad text fails its own request with INVALID_ARG."""
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            try:
                ids, mask = self.tokenizer.tokenize_tensor(raw)
            except InvalidTextError as error:
                failure = pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=failure))
                continue
            self._count_tokens(request, int(mask.sum()))
            outputs = [pb_utils.Tensor("input_ids", ids), pb_utils.Tensor("attention_mask", mask)]
            responses.append(pb_utils.InferenceResponse(outputs))
        return responses

    def _count_tokens(self, request: Any, tokens: int) -> None:
        parameters = json.loads(request.parameters() or "{}")
        tenant, model, protocol = (str(parameters.get(name, "")) for name in USAGE_PARAMETERS)
        labels = (tenant, model, protocol)
        if not any(labels):
            return  # not through a metering gateway
        counter = self.counters.get(labels)
        if counter is None:
            names = dict(zip(("tenant", "model", "protocol"), labels, strict=True))
            counter = self.counters[labels] = self.tokens.Metric(labels=names)
        counter.increment(tokens)
