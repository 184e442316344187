"""The blocking model client: `ModelClient`, one model on a Triton server over HTTP or gRPC."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .checks import PreparedRequest, extract_outputs, prepare_request
from .core import Closable, ModelClientBase, not_ready, poll_waits, raise_mapped
from .errors import TRANSPORT_ERRORS
from .info import Array, ModelInfo, parse_model_info
from .retry import retrying
from .transport import open_blocking


class ModelClient(ModelClientBase, Closable):
    """Blocking client for one model on a Triton server.

    Like the tritonclient objects underneath it, one instance serves one thread at a time; the
    HTTP transport is gevent-based and fails when shared across threads.
    """

    def _open_transport(self) -> Any:
        """Create the transport now, so a client that cannot be made fails on construction."""
        try:
            return open_blocking(self.options)
        except TRANSPORT_ERRORS as exc:
            raise_mapped(exc, self.model)

    def info(self) -> ModelInfo:
        """Model metadata and config, read from the server on the first call and kept."""
        if self._info is None:
            self._info = retrying(self._read_info, self.retry)
        return self._info

    def _read_info(self) -> ModelInfo:
        """Ask the server once for the model's metadata and config."""
        kwargs = self._info_kwargs
        try:
            metadata = self._client.get_model_metadata(self.model, self.version, **kwargs)
            config = self._client.get_model_config(self.model, self.version, **kwargs)
        except TRANSPORT_ERRORS as exc:
            raise_mapped(exc, self.model)
        return parse_model_info(metadata, config)

    def infer(
        self,
        inputs: Mapping[str, Array],
        outputs: Sequence[str] | None = None,
        class_count: int = 0,
    ) -> dict[str, Array]:
        """Run one inference; return the requested outputs (all when None) by name.

        With ``class_count > 0`` Triton's classification extension replaces each output with
        a BYTES array of ``"score:index[:label]"`` entries for the top classes.
        """
        request = prepare_request(self.info(), inputs, outputs, class_count, self.protocol)
        # Only what the server did not run is retried (see retry.py).
        result = retrying(lambda: self._send(request), self.retry)
        return extract_outputs(result, request.output_names, self.model)

    def _send(self, request: PreparedRequest) -> Any:
        """Send one inference request; return tritonclient's ``InferResult``."""
        try:
            return self._client.infer(
                self.model,
                request.inputs,
                model_version=self.version,
                outputs=request.outputs,
                **self._call_kwargs,
            )
        except TRANSPORT_ERRORS as exc:
            raise_mapped(exc, self.model)

    def wait_until_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the model is ready; ServerUnavailableError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        for wait in poll_waits():
            if self.is_ready():
                return
            if time.monotonic() + wait > deadline:
                raise self._not_ready_within(timeout_s)
            time.sleep(wait)

    def is_ready(self) -> bool:
        """Whether the server has the model loaded and ready; False if it cannot be reached."""
        try:
            return bool(self._client.is_model_ready(self.model, self.version, **self._call_kwargs))
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)

    def server_ready(self) -> bool:
        """Whether the server is ready for inference; False if it cannot be reached."""
        try:
            return bool(self._client.is_server_ready(**self._call_kwargs))
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)

    def close(self) -> None:
        """Close the connection; the client cannot be used afterwards."""
        self._client.close()
