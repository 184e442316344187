"""Both public ports over TLS at the gateway, with the self-signed certificate maas makes."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from maas.clients import NO_RETRIES, ModelClient, ServerUnavailableError
from maas.export.verify import torch_runner
from maas.serve.tls import self_signed_certificate
from tests.conftest import Exported, start_maas_serve, stop_maas_serve


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 and its key, as PEM files."""
    cert, key, _ = self_signed_certificate(folder, "127.0.0.1")
    return cert, key


def test_both_protocols_serve_tls_only_and_clients_with_the_ca_get_the_models_answers(
    exported: Exported, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("digits_cnn"), repo / "digits_cnn")
    cert, key = self_signed(tmp_path)
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    serve = start_maas_serve(repo, tmp_path, extra_args=tls)  # ready: answered over HTTPS
    result = exported.results["digits_cnn"]
    pixels = result.built.eval_inputs["pixels"][:4]
    expected = torch_runner(result.spec, result.built.module)({"pixels": pixels})
    try:
        for protocol in ("http", "grpc"):
            url = serve.url(protocol)
            with ModelClient(
                "digits_cnn", url=url, protocol=protocol, tls_root_cert=str(cert)
            ) as client:
                np.testing.assert_allclose(
                    client.infer({"pixels": pixels})["probabilities"],
                    expected["probabilities"],
                    atol=1e-4,
                    err_msg=protocol,
                )
            plain = ModelClient("digits_cnn", url=url, protocol=protocol, retry=NO_RETRIES)
            with plain, pytest.raises(ServerUnavailableError):  # plaintext is not served
                plain.infer({"pixels": pixels})
    finally:
        assert stop_maas_serve(serve) == 0


def test_the_server_accepts_keepalive_pings_on_idle_connections(
    exported: Exported, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Triton's defaults answer pings more often than every 5 min on an idle connection with
    # GOAWAY "too_many_pings" (gRPC's C core logs it); maas serve allows one a second. Pinging
    # every 1.5 s for longer than two strikes' worth, the connection must stay up.
    repo = tmp_path / "repo"
    shutil.copytree(exported.repository.model_dir("digits_cnn"), repo / "digits_cnn")
    serve = start_maas_serve(repo, tmp_path)
    eager = grpcclient.KeepAliveOptions(
        keepalive_time_ms=1500,
        keepalive_timeout_ms=1000,
        keepalive_permit_without_calls=True,
        http2_max_pings_without_data=0,
    )
    try:
        client = grpcclient.InferenceServerClient(serve.grpc_url, keepalive_options=eager)
        assert client.is_server_live()
        time.sleep(6)
        assert client.is_server_live()
        client.close()
    finally:
        assert stop_maas_serve(serve) == 0
    assert "too_many_pings" not in capfd.readouterr().err
