"""The asyncio model client: `AsyncModelClient`, the same API as `ModelClient`, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .checks import PreparedRequest, extract_outputs, prepare_request
from .core import AsyncClosable, ModelClientBase, not_ready, poll_waits, raise_mapped
from .errors import TRANSPORT_ERRORS
from .info import Array, ModelInfo, parse_model_info
from .retry import retrying_async
from .transport import open_asyncio


class AsyncModelClient(ModelClientBase, AsyncClosable):
    """Asyncio client for one model on a Triton server; the same API as `ModelClient`.

    The connection opens on the first call, inside the running event loop, because aiohttp
    sessions and grpc.aio channels bind to the loop they are created in.
    """

    def _open_transport(self) -> Any:
        """Open nothing yet; `_connected` opens the transport inside the event loop."""
        return None

    def _connected(self) -> Any:
        """Return the tritonclient aio client, creating it on first use."""
        if self._client is None:
            try:
                self._client = open_asyncio(self.options)
            except TRANSPORT_ERRORS as exc:
                raise_mapped(exc, self.model)
        return self._client

    async def info(self) -> ModelInfo:
        """Model metadata and config, read from the server on the first call and kept."""
        if self._info is None:
            # Connect before retrying: a client that cannot be made is not worth retrying.
            client = self._connected()
            self._info = await retrying_async(lambda: self._read_info(client), self.retry)
        return self._info

    async def _read_info(self, client: Any) -> ModelInfo:
        """Ask the server once for the model's metadata and config."""
        kwargs = self._info_kwargs
        try:
            metadata = await client.get_model_metadata(self.model, self.version, **kwargs)
            config = await client.get_model_config(self.model, self.version, **kwargs)
        except TRANSPORT_ERRORS as exc:
            raise_mapped(exc, self.model)
        return parse_model_info(metadata, config)

    async def infer(
        self,
        inputs: Mapping[str, Array],
        outputs: Sequence[str] | None = None,
        class_count: int = 0,
    ) -> dict[str, Array]:
        """Run one inference; see `ModelClient.infer`."""
        info = await self.info()
        request = prepare_request(info, inputs, outputs, class_count, self.protocol)
        result = await retrying_async(lambda: self._send(request), self.retry)
        return extract_outputs(result, request.output_names, self.model)

    async def _send(self, request: PreparedRequest) -> Any:
        """Send one inference request; return tritonclient's ``InferResult``."""
        try:
            return await self._connected().infer(
                self.model,
                request.inputs,
                model_version=self.version,
                outputs=request.outputs,
                **self._call_kwargs,
            )
        except TRANSPORT_ERRORS as exc:
            raise_mapped(exc, self.model)

    async def wait_until_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the model is ready; ServerUnavailableError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        for wait in poll_waits():
            if await self.is_ready():
                return
            if time.monotonic() + wait > deadline:
                raise self._not_ready_within(timeout_s)
            await asyncio.sleep(wait)

    async def is_ready(self) -> bool:
        """Whether the server has the model loaded and ready; False if it cannot be reached."""
        try:
            ready = await self._connected().is_model_ready(
                self.model, self.version, **self._call_kwargs
            )
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)
        return bool(ready)

    async def server_ready(self) -> bool:
        """Whether the server is ready for inference; False if it cannot be reached."""
        try:
            ready = await self._connected().is_server_ready(**self._call_kwargs)
        except TRANSPORT_ERRORS as exc:
            return not_ready(exc, self.model)
        return bool(ready)

    async def close(self) -> None:
        """Close the connection if one was opened."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
