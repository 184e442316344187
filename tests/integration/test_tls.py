"""Both public ports over TLS at the gateway, with a certificate made by the test."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from maas.clients import NO_RETRIES, ModelClient, ServerUnavailableError
from maas.export.verify import torch_runner
from tests.conftest import Exported, start_maas_serve, stop_maas_serve


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "server.pem", folder / "server.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key_file


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
