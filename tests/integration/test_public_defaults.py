"""On a public address `maas serve` is safe by default: TLS, API keys, an audit log."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from maas.serve.tls import self_signed_certificate
from tests.conftest import Exported, RunningServer, start_maas_serve, stop_maas_serve


def test_a_public_address_gets_tls_keys_and_an_audit_log_without_being_asked(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_TLS_DIR", str(tmp_path / "tls"))
    monkeypatch.setenv("MAAS_KEYS", str(tmp_path / "keys.json"))  # not there: a loud warning
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    # The certificate maas serve would make, made first so the test can trust it while waiting.
    cert, _, made = self_signed_certificate(tmp_path / "tls", "0.0.0.0")
    assert made
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("digits_cnn"), repo / "digits_cnn")
    serve = start_maas_serve(repo, tmp_path, extra_args=["--host", "0.0.0.0"], tls_ca=cert)
    try:
        context = ssl.create_default_context(cafile=cert)
        url = f"https://{serve.http_url}/v2/models/digits_cnn"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10, context=context)
        assert refused.value.code == 401, "keys are required"
        with pytest.raises((urllib.error.URLError, http.client.HTTPException)):  # TLS only
            urllib.request.urlopen(f"http://{serve.http_url}/v2/health/ready", timeout=10)
        shared_memory_is_refused_off_this_host(serve, cert)
    finally:
        assert stop_maas_serve(serve) == 0
    printed = serve.log.read_text()
    assert "TLS with a self-signed certificate (made earlier)" in printed
    assert f"clients must trust {cert}" in printed
    assert "API keys are required but" in printed and "does not exist" in printed
    assert f"audit log {tmp_path / 'state' / 'maas' / 'audit.jsonl'}" in printed
    assert '"status":401' in (tmp_path / "state" / "maas" / "audit.jsonl").read_text()


def outward_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))
        return str(probe.getsockname()[0])


def shared_memory_is_refused_off_this_host(serve: RunningServer, cert: Path) -> None:
    """Registration reaches Triton from loopback only, over both protocols, key or not."""
    address = outward_address()
    assert not address.startswith("127."), "the test needs an address other than loopback"
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False  # the certificate names loopback and this machine's names
    request = urllib.request.Request(
        f"https://{address}:{serve.http_url.rsplit(':', 1)[1]}"
        "/v2/systemsharedmemory/region/x/register",
        data=json.dumps({"key": "/x", "offset": 0, "byte_size": 64}).encode(),
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=context)
    assert refused.value.code == 403
    assert "from this host only" in refused.value.read().decode()
    client = grpcclient.InferenceServerClient(
        f"{address}:{serve.grpc_url.rsplit(':', 1)[1]}",
        ssl=True,
        root_certificates=str(cert),
        channel_args=[("grpc.ssl_target_name_override", "localhost")],
    )
    try:
        with pytest.raises(InferenceServerException, match="from this host only") as denied:
            client.register_system_shared_memory("x", "/x", 64)
        assert denied.value.status() == "StatusCode.PERMISSION_DENIED"
    finally:
        client.close()
