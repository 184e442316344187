"""The gateway's JSON decoder (Lua, run by the real HAProxy): strict, typed, depth-bounded."""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from maas.base.triton.endpoints import free_port
from maas.serve.gateway import HAProxy, accepts_connections
from maas.serve.gateway_config import LUA_DIR

PROBE = Path(__file__).parent / "lua" / "json_probe.lua"


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An HAProxy whose only service decodes request bodies with maas_json.lua."""
    port = free_port()
    config = tmp_path_factory.mktemp("json") / "haproxy.cfg"
    config.write_text(
        f"global\n    lua-prepend-path {LUA_DIR}/?.lua\n    lua-load {PROBE}\n"
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n"
        "    timeout server 10s\n"
        f"frontend probe\n    bind 127.0.0.1:{port}\n"
        "    http-request use-service lua.json_probe\n"
    )
    process = subprocess.Popen([str(HAProxy.locate().binary), "-db", "-f", str(config)])
    deadline = time.monotonic() + 10
    while not accepts_connections("127.0.0.1", port):
        assert process.poll() is None and time.monotonic() < deadline, "HAProxy did not start"
        time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)


def decode(port: int, body: bytes) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/", body=body)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # integral numbers read as integers, whatever their spelling (the checks need integrality)
        (b'{"b": [1, 2.5, -3e2], "a": {}}', 'ok {"a":{},"b":[int:1,float:2.5,int:-300]}'),
        (b"[]", "ok []"),  # an empty array stays an array, an empty object an object
        (b'  {"x": null, "y": true}  ', 'ok {"x":null,"y":true}'),
        (
            b'"\\u00e9\\ud83d\\ude00\\n"',
            'ok "\u00e9\U0001f600\\\n"',  # Lua's %q writes a newline as backslash, newline
        ),
        (b"[1,]", "error unexpected character at byte 4"),
        (b"01", "error trailing data at byte 2"),
        (b"NaN", "error unexpected character at byte 1"),
        (b'{"a" 1}', "error expected ':' at byte 6"),
        (b'"\x01"', "error control character in string at byte 2"),
        (b"[[[[[1]]]]]", "error nested deeper than 4 at byte 5"),
        (b"1e400", "error number out of range at byte 1"),
        (b'"\\ud800"', "error unpaired surrogate at byte 2"),
    ],
)
def test_the_gateway_decodes_json_strictly(probe: int, text: bytes, expected: str) -> None:
    assert decode(probe, text) == expected
